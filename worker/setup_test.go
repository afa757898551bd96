package worker_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/mail/resendtest"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type testBundle struct {
	ctx     context.Context
	store   *postgres.Store
	db      *sql.DB
	resend  *resendtest.Server
	clock   *testenv.Clock
	h       *worker.Handlers
	mux     *asynq.ServeMux
	cfg     worker.Config
	client  *tasks.Client
	inspect *asynq.Inspector
	company string
	tokyo   *time.Location
}

var baseURL, _ = url.Parse("https://platform.example.com/")

// start is the fixed "now" of every test: 2026-11-26 10:00 in Tokyo.
var start = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	store := testenv.Store(t)
	fake := resendtest.New(t)
	sender, err := mail.NewResend(mail.ResendConfig{APIKey: "re_test", BaseURL: fake.URL(), From: "dormancy <no-reply@example.com>", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.NewClock(start)
	cfg := worker.Config{TokenSecret: testenv.TokenSecret,
		Redis: testenv.RedisOpt(), Store: store, Sender: sender, Links: worker.Links{Base: baseURL},
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: c.Now,
	}
	h := worker.NewHandlers(cfg)
	t.Cleanup(h.Close)
	q := asynq.NewClient(testenv.RedisOpt())
	t.Cleanup(func() { q.Close() })
	insp := asynq.NewInspector(testenv.RedisOpt())
	t.Cleanup(func() { insp.Close() })
	// The package's tests share one Redis DB and run one at a time: each
	// starts with empty queues, whatever the one before left behind.
	for _, q := range []string{tasks.QueueCritical, tasks.QueueDefault, tasks.QueueWebhooks, tasks.QueueLow} {
		insp.DeleteAllPendingTasks(q)
		insp.DeleteAllScheduledTasks(q)
		insp.DeleteAllRetryTasks(q)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	b := &testBundle{
		ctx: ctx, store: store, db: testenv.DB(t), resend: fake, clock: c, h: h, mux: asynq.NewServeMux(), cfg: cfg,
		client: tasks.NewClient(q, store, c.Now), inspect: insp, tokyo: tokyo,
	}
	h.Register(b.mux)
	b.company = b.newCompany(t)
	return b
}

func (b *testBundle) newCompany(t *testing.T) string {
	t.Helper()
	id := testenv.UniqueID("co")
	if err := b.store.UpsertCompany(b.ctx, postgres.CompanyRecord{ID: id, Name: "Example"}); err != nil {
		t.Fatal(err)
	}
	return id
}

// accountOpts are fixture options; zero values take defaults.
type accountOpts struct {
	company    string
	kind       policy.IDKind
	email      string
	name       string
	dept       string
	admin      bool
	retired    bool
	lastLogin  time.Duration // ago; 0 = never
	createdAgo time.Duration
	exempt     bool
}

func (b *testBundle) account(t *testing.T, o accountOpts) (loginID string, id int64) {
	t.Helper()
	if o.company == "" {
		o.company = b.company
	}
	if o.kind == "" {
		o.kind = policy.IDKindEmail
	}
	if o.name == "" {
		o.name = "山田 太郎"
	}
	if o.createdAgo == 0 {
		o.createdAgo = 400 * 24 * time.Hour
	}
	loginID = testenv.UniqueID("user")
	if o.kind == policy.IDKindEmail {
		loginID += "@example.com"
		if o.email == "" {
			o.email = loginID
		}
	}
	rec := postgres.AccountRecord{
		CompanyID: o.company, LoginID: loginID, IDKind: o.kind, Email: o.email, Name: o.name,
		Department: o.dept, CanManageEmployees: o.admin, Retired: o.retired,
		CreatedAt: start.Add(-o.createdAgo), Exempt: o.exempt,
	}
	if o.admin && o.lastLogin == 0 {
		o.lastLogin = 24 * time.Hour // an administrator who can act
	}
	if o.lastLogin != 0 {
		rec.LastLoginAt = start.Add(-o.lastLogin)
	}
	id, err := b.store.UpsertAccount(b.ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	return loginID, id
}

func (b *testBundle) recipients(t *testing.T, company string, ids ...int64) {
	t.Helper()
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, company, 0, ids, start, ""); err != nil {
		t.Fatal(err)
	}
}

// attempt builds a login:attempt task with the public constructor.
func (b *testBundle) attempt(t *testing.T, company, loginID string, m policy.Method) *asynq.Task {
	t.Helper()
	task, err := tasks.NewLoginAttemptTask(tasks.LoginAttempt{
		CompanyID: company, LoginID: loginID, Method: m, IP: "203.0.113.7",
		UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
		At:        b.clock.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// run calls a handler the way asynq would and fails the test on error.
func (b *testBundle) run(t *testing.T, task *asynq.Task) {
	t.Helper()
	if err := b.process(task); err != nil {
		t.Fatalf("%s: %v", task.Type(), err)
	}
}

// process runs a task through the handlers' own routing (Register), as
// the asynq server would, so a test cannot reach a handler by a route the
// server lacks.
func (b *testBundle) process(task *asynq.Task) error {
	return b.mux.ProcessTask(b.ctx, task)
}

// drain runs every pending email task in the test's Redis DB, as a worker
// would, and returns how many ran.
func (b *testBundle) drain(t *testing.T) int {
	t.Helper()
	n := 0
	for {
		infos, err := b.inspect.ListPendingTasks(tasks.QueueDefault)
		if err != nil || len(infos) == 0 {
			return n
		}
		for _, info := range infos {
			if err := b.inspect.DeleteTask(tasks.QueueDefault, info.ID); err != nil {
				t.Fatal(err)
			}
			b.run(t, asynq.NewTask(info.Type, info.Payload))
			n++
		}
	}
}

func (b *testBundle) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	return testenv.Count(t, b.db, q, args...)
}

var linkRE = regexp.MustCompile(`https://platform\.example\.com/verify\?token=([A-Za-z0-9_-]{43})`)

// tokenOf pulls the verification token out of a delivered email.
func tokenOf(t *testing.T, e resendtest.Email) string {
	t.Helper()
	m := linkRE.FindStringSubmatch(e.Text)
	if m == nil {
		t.Fatalf("no verification link in email:\n%s", e.Text)
	}
	return m[1]
}

func (b *testBundle) emailsTo(addr string) []resendtest.Email {
	var out []resendtest.Email
	for _, e := range b.resend.Emails() {
		for _, to := range e.To {
			if to == addr {
				out = append(out, e)
			}
		}
	}
	return out
}

// serve runs a real asynq server with the handlers, configured by cfg, until
// the test ends; the test fails if it does not stop cleanly.
func (b *testBundle) serve(t *testing.T, cfg worker.Config) {
	t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// column reads the one column a query returns, every row.
func column[T any](t *testing.T, b *testBundle, q string, args ...any) []T {
	t.Helper()
	rows, err := b.db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// companyWithSettings creates a company through the host client with the
// settings c gives (its id and version are filled in).
func (b *testBundle) companyWithSettings(t *testing.T, c tasks.Company) string {
	t.Helper()
	c.CompanyID, c.Version = b.newCompany(t), 2
	if c.Name == "" {
		c.Name = "Example"
	}
	if _, err := b.client.UpsertCompany(b.ctx, c); err != nil {
		t.Fatal(err)
	}
	return c.CompanyID
}
