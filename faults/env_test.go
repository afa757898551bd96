package faults

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail/resendtest"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

const day = 24 * time.Hour

// env is one test's world: a database, a Redis, a fake Resend, and the
// host's side of the queue. The dormancy processes a test starts run
// against the same database and Redis.
type env struct {
	ctx      context.Context
	dsn      string
	redisURL string
	redisOpt asynq.RedisConnOpt
	store    *postgres.Store
	db       *sql.DB
	resend   *resendtest.Server
	queue    *asynq.Client
	host     *tasks.Client
	inspect  *asynq.Inspector
	// start is when the test began, by the clock the processes use.
	start time.Time
}

type envOpts struct {
	// redis is a private redis-server; nil means the test binary's Redis
	// DB (internal/testenv), emptied before and after the test, which at
	// most one parallel test may use: a worker takes any task on its
	// queues, whichever test's database it names.
	redis *redisServer
	// ownDatabase gives the test a fresh database instead of the binary's
	// shared one: for tests whose jobs act on every row.
	ownDatabase bool
	// cluster is a Redis Cluster of the test's own, instead of redis.
	cluster *testenv.Cluster
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{ctx: context.Background(), start: time.Now(), dsn: testenv.DSN(), redisURL: testenv.RedisURL()}
	if o.ownDatabase {
		e.dsn = testenv.NewDatabase(t)
	}
	if o.redis != nil {
		e.redisURL = o.redis.URL()
	}
	var opt asynq.RedisConnOpt
	var err error
	if o.cluster != nil {
		e.redisURL, opt = o.cluster.URL(), o.cluster.Opt()
	} else if opt, err = asynq.ParseRedisURI(e.redisURL); err != nil {
		t.Fatal(err)
	}
	e.redisOpt = opt
	if o.redis == nil && o.cluster == nil {
		// Registered before any process starts, so it runs after they are
		// killed: the next test starts with empty queues.
		flush := func() {
			c := redis.NewClient(&redis.Options{Addr: opt.(asynq.RedisClientOpt).Addr, DB: opt.(asynq.RedisClientOpt).DB})
			defer c.Close()
			if err := c.FlushDB(context.Background()).Err(); err != nil {
				t.Errorf("flush the test's Redis DB: %v", err)
			}
		}
		flush()
		t.Cleanup(flush)
	}
	e.store, err = postgres.Open(e.ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.db = sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(e.dsn)))
	t.Cleanup(func() { e.db.Close() })
	e.resend = resendtest.New(t)
	e.queue = asynq.NewClient(e.redisOpt)
	t.Cleanup(func() { e.queue.Close() })
	e.inspect = asynq.NewInspector(e.redisOpt)
	t.Cleanup(func() { e.inspect.Close() })
	e.host = tasks.NewClient(e.queue, e.store, nil)
	return e
}

// procEnv is the environment of a dormancy process of this test: short
// retries and polling so faults heal within the test's deadlines, debug
// logs so the test can count what each process did.
func (e *env) procEnv(extra map[string]string) map[string]string {
	m := map[string]string{
		"DATABASE_URL":               e.dsn,
		"REDIS_URL":                  e.redisURL,
		"RESEND_API_KEY":             "re_faults",
		"VERIFICATION_SECRET":        string(testenv.TokenSecret),
		"RESEND_BASE_URL":            e.resend.URL(),
		"PUBLIC_BASE_URL":            "https://platform.example.com",
		"LOG_LEVEL":                  "debug",
		"WORKER_CONCURRENCY":         "10",
		"WORKER_TASK_CHECK_INTERVAL": checkInterval.String(),
		"WORKER_SHUTDOWN_TIMEOUT":    shutdownAfter.String(),
		"RETRY_BASE":                 retryBase.String(),
		"RETRY_MAX":                  retryMax.String(),
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// worker starts `dormancy worker`.
func (e *env) worker(t *testing.T, name string, extra map[string]string) *proc {
	t.Helper()
	return startProc(t, name, e.procEnv(extra), "worker")
}

// scheduler starts `dormancy scheduler`.
func (e *env) scheduler(t *testing.T, name string, extra map[string]string) *proc {
	t.Helper()
	return startProc(t, name, e.procEnv(extra), "scheduler")
}

// company creates a company with the manual's defaults.
func (e *env) company(t *testing.T) string {
	t.Helper()
	id := testenv.UniqueID("co")
	if err := e.store.UpsertCompany(e.ctx, postgres.CompanyRecord{ID: id, Name: "Faults Inc."}); err != nil {
		t.Fatal(err)
	}
	return id
}

// acct describes a fixture account; zero values take defaults.
type acct struct {
	kind  policy.IDKind // default email
	idle  time.Duration // since the last login; default one day (active)
	admin bool
	email string // for a platform ID; an email ID's is its login ID
}

func (e *env) account(t *testing.T, company string, o acct) (loginID string, id int64) {
	t.Helper()
	if o.kind == "" {
		o.kind = policy.IDKindEmail
	}
	if o.idle == 0 {
		o.idle = day
	}
	loginID = testenv.UniqueID("user")
	if o.kind == policy.IDKindEmail {
		loginID += "@example.com"
		o.email = loginID
	}
	now := time.Now()
	id, err := e.store.UpsertAccount(e.ctx, postgres.AccountRecord{
		CompanyID: company, LoginID: loginID, IDKind: o.kind, Email: o.email, Name: "山田 太郎",
		Department: "営業部", CanManageEmployees: o.admin, CreatedAt: now.Add(-400 * day), LastLoginAt: now.Add(-o.idle),
	})
	if err != nil {
		t.Fatal(err)
	}
	return loginID, id
}

func (e *env) recipients(t *testing.T, company string, ids ...int64) {
	t.Helper()
	if err := e.store.ReplaceLoginNotificationRecipients(e.ctx, company, 0, ids, time.Now(), ""); err != nil {
		t.Fatal(err)
	}
}

// attempt builds a login:attempt as a host reports it, with a fresh key.
func attempt(t *testing.T, company, loginID string, m policy.Method) (*asynq.Task, string) {
	t.Helper()
	task, key, err := newAttempt(company, loginID, m)
	if err != nil {
		t.Fatal(err)
	}
	return task, key
}

func newAttempt(company, loginID string, m policy.Method) (*asynq.Task, string, error) {
	key := tasks.NewKey()
	task, err := tasks.NewLoginAttemptTask(tasks.LoginAttempt{
		AttemptKey: key, CompanyID: company, LoginID: loginID, Method: m, IP: "203.0.113.7",
		UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
		At:        time.Now(),
	})
	return task, key, err
}

func (e *env) enqueue(t *testing.T, task *asynq.Task) {
	t.Helper()
	if err := e.host.Enqueue(e.ctx, task); err != nil {
		t.Fatal(err)
	}
}

func (e *env) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	return testenv.Count(t, e.db, q, args...)
}

// recorded is how many of the attempt keys have their login_attempts row.
func (e *env) recorded(keys []string) (int, error) {
	var n int
	err := e.db.QueryRow(`SELECT count(*) FROM login_attempts WHERE attempt_key = ANY($1)`, pgArray(keys)).Scan(&n)
	return n, err
}

// waitRecorded waits until every attempt has its row.
func (e *env) waitRecorded(t *testing.T, keys []string, still time.Duration) {
	t.Helper()
	var n int
	waitUntil(t, still, fmt.Sprintf("%d attempts recorded", len(keys)), func() (bool, error) {
		var err error
		n, err = e.recorded(keys)
		if err != nil {
			return false, err
		}
		return n == len(keys), fmt.Errorf("%d recorded", n)
	})
}

// waitMailsSettled waits until the company has at least want mails and
// none of them is pending.
func (e *env) waitMailsSettled(t *testing.T, company string, want int, still time.Duration) {
	t.Helper()
	waitUntil(t, still, fmt.Sprintf("%d mails of %s settled", want, company), func() (bool, error) {
		var total, pending int
		err := e.db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM mails WHERE company_id = $1`, company).Scan(&total, &pending)
		if err != nil {
			return false, err
		}
		return total >= want && pending == 0, fmt.Errorf("%d mails, %d pending", total, pending)
	})
}

// pgArray is xs as a Postgres array literal, for ANY($n).
func pgArray[T int64 | string](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		s := fmt.Sprint(x)
		if _, ok := any(x).(string); ok {
			s = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
		}
		parts[i] = s
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// invariant is a query that lists what breaks a rule; no rows means the
// rule holds.
type invariant struct {
	rule  string
	query string
}

// lockInvariants hold for a company whose accounts were locked by login
// attempts within one alert window and one resend interval: whatever
// failed or ran twice in between, each dormant account that tried is
// locked once, has one live link and one verification email carrying it,
// and each recipient got one alert about it. Nothing is half-applied: the
// rows a decision writes exist together or not at all.
var lockInvariants = []invariant{
	{"an account is locked exactly when it has one lock event",
		`SELECT a.login_id FROM accounts a WHERE a.company_id = $1
		 AND (SELECT count(*) FROM audit_events ev WHERE ev.account_id = a.id AND ev.kind = 'locked')
		     <> CASE WHEN a.lock_state = 'locked' THEN 1 ELSE 0 END`},
	{"a locked account has an attempt that locked it",
		`SELECT a.login_id FROM accounts a WHERE a.company_id = $1 AND a.lock_state = 'locked'
		 AND NOT EXISTS (SELECT 1 FROM login_attempts la WHERE la.account_id = a.id AND la.outcome IN ('verify_by_email', 'ask_administrator'))`},
	{"a locked email ID has one live link, one verification email, and the email carries the live link",
		`SELECT a.login_id FROM accounts a WHERE a.company_id = $1 AND a.lock_state = 'locked' AND a.id_kind = 'email'
		 AND NOT ((SELECT count(*) FROM verification_tokens vt WHERE vt.account_id = a.id AND vt.consumed_at IS NULL AND vt.revoked_at IS NULL) = 1
		      AND (SELECT count(*) FROM mails m WHERE m.account_id = a.id AND m.kind = 'verification') = 1
		      AND EXISTS (SELECT 1 FROM mails m JOIN verification_tokens vt ON vt.id = m.token_id
		                  WHERE m.account_id = a.id AND m.kind = 'verification' AND vt.consumed_at IS NULL AND vt.revoked_at IS NULL))`},
	{"every link issued has its token_issued event",
		`SELECT a.login_id FROM accounts a WHERE a.company_id = $1
		 AND (SELECT count(*) FROM verification_tokens vt WHERE vt.account_id = a.id)
		     <> (SELECT count(*) FROM audit_events ev WHERE ev.account_id = a.id AND ev.kind = 'token_issued')`},
	{"each recipient has one alert per locked account",
		`SELECT a.login_id || ' → ' || r.account_id FROM accounts a JOIN login_notification_recipients r ON r.company_id = a.company_id
		 WHERE a.company_id = $1 AND a.lock_state = 'locked'
		 AND (SELECT count(*) FROM mails m WHERE m.kind = 'dormant_login_alert' AND m.account_id = a.id AND m.recipient_account_id = r.account_id) <> 1`},
	{"an active account has no verification email or alert",
		`SELECT a.login_id FROM accounts a WHERE a.company_id = $1 AND a.lock_state = 'active'
		 AND EXISTS (SELECT 1 FROM mails m WHERE m.account_id = a.id AND m.kind IN ('verification', 'dormant_login_alert'))`},
}

// mailInvariants hold once a company's outbox has drained.
var mailInvariants = []invariant{
	{"every mail was sent",
		`SELECT id || ' ' || status || ' ' || coalesce(error, '') FROM mails WHERE company_id = $1 AND status <> 'sent'`},
	{"every sent mail has one sent event",
		`SELECT m.id::text FROM mails m WHERE m.company_id = $1
		 AND (SELECT count(*) FROM audit_events ev WHERE ev.kind IN ('mail_sent', 'alert_sent') AND ev.detail->>'mail_id' = m.id::text) <> 1`},
}

func (e *env) check(t *testing.T, company string, rules []invariant) {
	t.Helper()
	for _, r := range rules {
		rows, err := e.db.Query(r.query, company)
		if err != nil {
			t.Fatalf("%s: %v", r.rule, err)
		}
		var bad []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			bad = append(bad, s)
		}
		rows.Close()
		if len(bad) > 0 {
			t.Errorf("%s: broken for %d: %s", r.rule, len(bad), strings.Join(bad[:min(len(bad), 10)], ", "))
		}
	}
}

// checkDelivered holds every sent mail of the company to exactly one
// delivery at the fake Resend, and the fake to nothing else for it.
func (e *env) checkDelivered(t *testing.T, company string) {
	t.Helper()
	rows, err := e.db.Query(`SELECT id, provider_id FROM mails WHERE company_id = $1 AND status = 'sent'`, company)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	sent := map[string]int64{}
	for rows.Next() {
		var id int64
		var provider string
		if err := rows.Scan(&id, &provider); err != nil {
			t.Fatal(err)
		}
		sent[provider] = id
	}
	delivered := map[string]int{}
	for _, m := range e.resend.Emails() {
		if m.Tags["company"] == company {
			delivered[m.ID]++
		}
	}
	for provider, id := range sent {
		if delivered[provider] != 1 {
			t.Errorf("mail %d (%s): delivered %d times, want 1", id, provider, delivered[provider])
		}
	}
	for provider, n := range delivered {
		if _, ok := sent[provider]; !ok {
			t.Errorf("delivery %s (%d times) is not a sent mail of the company", provider, n)
		}
	}
}

// rejectedSince counts task_rejected events since the test began.
func (e *env) rejectedSince(t *testing.T) int {
	t.Helper()
	return e.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected' AND occurred_at >= $1`, e.start)
}
