package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

// TestNoLiveTokenInRedis: a verification email's task carries the token
// row's id only; the link is derived when the email is rendered. No key of
// the queue's Redis DB holds the token while the email is pending, nor
// after it was sent and its task is kept as completed. The token searched
// for is the one the email delivered, so the search cannot miss it by
// looking for the wrong thing.
func TestNoLiveTokenInRedis(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	b.resend.FailNext(1, 422, nil) // Resend refuses the link's first try: it is left to its task
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))

	var seed []byte
	if err := b.db.QueryRow(`SELECT seed FROM verification_tokens WHERE account_id = $1 AND revoked_at IS NULL`, id).Scan(&seed); err != nil {
		t.Fatal(err)
	}
	token, _ := policy.DeriveToken(testenv.TokenSecret, seed)
	rdb := testenv.Redis(t)
	assertAbsent := func(when string) {
		t.Helper()
		if n := redisKeysHolding(t, b.ctx, rdb, token); n != 0 {
			t.Errorf("%s: %d Redis keys hold the live token", when, n)
		}
	}
	assertAbsent("pending")
	if pending, err := b.inspect.ListPendingTasks(tasks.QueueDefault); err != nil || len(pending) == 0 {
		t.Fatalf("no pending verification task: %v", err)
	}

	cfg := b.cfg
	cfg.Concurrency, cfg.TaskCheckInterval, cfg.ShutdownTimeout = 2, 10*time.Millisecond, 5*time.Second
	b.serve(t, cfg)
	wait, stop := context.WithTimeout(b.ctx, 20*time.Second)
	defer stop()
	emails, err := b.resend.WaitFor(wait, 1)
	if err != nil {
		t.Fatalf("waiting for the verification email: %v", err)
	}
	if got := tokenOf(t, emails[0]); got != token {
		t.Fatalf("the email's token %q is not the one derived from the row's seed", got)
	}
	for {
		completed, err := b.inspect.ListCompletedTasks(tasks.QueueDefault)
		if err != nil {
			t.Fatal(err)
		}
		if len(completed) > 0 {
			break
		}
		if wait.Err() != nil {
			t.Fatal("the sent email's task was not kept as completed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	assertAbsent("completed")
}

// redisKeysHolding counts the keys of the DB whose value contains s.
func redisKeysHolding(t *testing.T, ctx context.Context, rdb *redis.Client, s string) int {
	t.Helper()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		var values []string
		switch typ, _ := rdb.Type(ctx, k).Result(); typ {
		case "string":
			v, _ := rdb.Get(ctx, k).Result()
			values = []string{v}
		case "hash":
			m, _ := rdb.HGetAll(ctx, k).Result()
			for f, v := range m {
				values = append(values, f, v)
			}
		case "list":
			values, _ = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			values, _ = rdb.SMembers(ctx, k).Result()
		case "zset":
			values, _ = rdb.ZRange(ctx, k, 0, -1).Result()
		}
		for _, v := range values {
			if strings.Contains(v, s) {
				n++
				break
			}
		}
	}
	return n
}

// With PLATFORM_NAME set, the verification email and the alert read the
// manual's sentences exactly, and the alert carries the help link.
func TestEmailsNameThePlatform(t *testing.T) {
	b := setup(t)
	cfg := b.cfg
	cfg.PlatformName, cfg.HelpURL = "BtoBプラットフォーム", "https://help.example.com/answers/11915"
	h := worker.NewHandlers(cfg)
	t.Cleanup(h.Close)
	b.mux = asynq.NewServeMux()
	h.Register(b.mux)

	_, r := b.account(t, accountOpts{lastLogin: day})
	b.recipients(t, b.company, r)
	login, _ := b.account(t, accountOpts{lastLogin: 120 * day})
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	if got := b.drain(t); got != 1 {
		t.Fatalf("drained %d email tasks, want the alert (the link went out with the attempt)", got)
	}
	var texts []string
	for _, e := range b.resend.Emails() {
		texts = append(texts, e.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"一定期間、BtoBプラットフォームへのログインがなかったため、セキュリティ上の理由により、アカウントがロックいたしました。",
		"以下のURLからBtoBプラットフォームにアクセスしてください。",
		"一定期間ログインをしていない社員が、BtoBプラットフォームへのログインを試みました。",
		"https://help.example.com/answers/11915",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the emails lack %q:\n%s", want, all)
		}
	}

	// A company that names its platform (platform_name, from the directory)
	// overrides the worker's setting.
	if _, err := b.db.Exec(`UPDATE companies SET platform_name = 'ＸＹＺクラウド' WHERE id = $1`, b.company); err != nil {
		t.Fatal(err)
	}
	before := len(b.resend.Emails())
	other, _ := b.account(t, accountOpts{lastLogin: 120 * day})
	b.run(t, b.attempt(t, b.company, other, policy.MethodPassword))
	b.drain(t)
	var latest []string
	for _, e := range b.resend.Emails()[before:] {
		latest = append(latest, e.Text)
	}
	if got := strings.Join(latest, "\n"); !strings.Contains(got, "ＸＹＺクラウドへのログインがなかったため") || strings.Contains(got, "BtoBプラットフォーム") {
		t.Errorf("the company's own platform name is not used:\n%s", got)
	}
}

// A verification task enqueued before derived tokens carries its token:
// sent when it is the live link's, dropped when it is not.
func TestEmailTaskCarryingItsToken(t *testing.T) {
	for name, matching := range map[string]bool{"the live link's token": true, "another token": false} {
		t.Run(name, func(t *testing.T) {
			b := setup(t)
			login, id := b.account(t, accountOpts{lastLogin: 100 * day})
			b.resend.FailNext(1, 422, nil) // Resend refuses the link's first try: it is left to its task
			b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
			pending, err := b.inspect.ListPendingTasks(tasks.QueueDefault)
			if err != nil || len(pending) != 1 {
				t.Fatalf("pending: %d %v", len(pending), err)
			}
			var p tasks.Email
			if err := json.Unmarshal(pending[0].Payload, &p); err != nil {
				t.Fatal(err)
			}
			var seed []byte
			if err := b.db.QueryRow(`SELECT seed FROM verification_tokens WHERE id = $1`, p.TokenID).Scan(&seed); err != nil {
				t.Fatal(err)
			}
			p.Token, _ = policy.DeriveToken(testenv.TokenSecret, seed)
			if !matching {
				p.Token = strings.Repeat("A", 43)
			}
			payload, _ := json.Marshal(p)
			b.run(t, asynq.NewTask(tasks.TypeEmailVerification, payload))
			var status string
			if err := b.db.QueryRow(`SELECT status FROM mails WHERE id = $1`, p.MailID).Scan(&status); err != nil {
				t.Fatal(err)
			}
			want := map[bool]string{true: "sent", false: "dropped"}[matching]
			if status != want {
				t.Errorf("mail %s, want %s (account %d)", status, want, id)
			}
		})
	}
}
