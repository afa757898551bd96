// Command e2eserver runs the admin server for the browser test in e2e/: a
// database and a Redis DB of its own on the local servers, seeded
// companies whose dormant employees are locked through the real
// login:attempt path, an in-process worker that carries out the unlocks,
// and the admin server on a free port. It prints one JSON line with the
// addresses and links the test needs, and cleans up when its standard input
// closes or it is signalled.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/admin"
	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

// Ready is the line printed once the server answers.
type Ready struct {
	Base     string `json:"base"`
	Login    string `json:"login"`
	Login2   string `json:"login2"`
	Expired  string `json:"expired"`
	Tampered string `json:"tampered"`
	Operator struct {
		User     string `json:"user"`
		Password string `json:"password"`
	} `json:"operator"`
	Company string `json:"company"`
}

const (
	companyID  = "e2e-acme"
	otherID    = "e2e-other"
	opUser     = "ops"
	opPassword = "e2e-operator-password"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2eserver:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // the test runner went away: stop
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	setupCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	dsn, drop, err := testenv.CreateDatabase(setupCtx, "dormancy_e2e")
	if err != nil {
		return err
	}
	defer drop()
	redisDB, release, err := testenv.ClaimRedisDB(setupCtx)
	if err != nil {
		return err
	}
	defer release()
	redisAddr := testenv.RedisAddr()
	redisOpt := asynq.RedisClientOpt{Addr: redisAddr, DB: redisDB}

	store, err := postgres.Open(setupCtx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()

	w, err := worker.New(worker.Config{
		TokenSecret: []byte("dormancy-e2e-verification-token-secret-0123"),
		Redis:       redisOpt, Store: store, Sender: mail.NewDev(log),
		Links: worker.Links{Base: &url.URL{Scheme: "https", Host: "platform.example.com"}}, Concurrency: 4,
		TaskCheckInterval: 20 * time.Millisecond, Logger: log,
	})
	if err != nil {
		return err
	}
	workerCtx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(workerCtx) }()
	defer func() { stopWorker(); <-workerDone }()

	queue := asynq.NewClient(redisOpt)
	defer queue.Close()
	if err := seed(setupCtx, store, tasks.NewClient(queue, store, nil)); err != nil {
		return err
	}

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	srv, err := admin.New(admin.Config{
		Store: store, Redis: redisOpt, Queue: queue, LinkSecret: secret, OperatorUser: opUser, OperatorPassword: opPassword,
		DevMailbox: true, Logger: log,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	adminID, err := accountID(setupCtx, store, companyID, "admin")
	if err != nil {
		return err
	}
	sign := func(expires time.Time) string {
		var n [16]byte
		_, _ = rand.Read(n[:])
		l, err := admin.SignLink(secret, base, admin.Link{CompanyID: companyID, AccountID: adminID, Expires: expires, Nonce: hex.EncodeToString(n[:])})
		if err != nil {
			panic(err)
		}
		return l
	}
	ready := Ready{Base: base, Login: sign(time.Now().Add(10 * time.Minute)), Login2: sign(time.Now().Add(10 * time.Minute)), Expired: sign(time.Now().Add(-time.Minute)), Company: companyID}
	tampered, _ := url.Parse(sign(time.Now().Add(10 * time.Minute)))
	q := tampered.Query()
	q.Set("company", otherID)
	tampered.RawQuery = q.Encode()
	ready.Tampered = tampered.String()
	ready.Operator.User, ready.Operator.Password = opUser, opPassword

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ctx, ln) }()
	line, _ := json.Marshal(ready)
	fmt.Println(string(line))
	return <-serveDone
}

type person struct {
	login, name, dept string
	kind              policy.IDKind
	admin, dormant    bool
}

// seed creates the companies and people, and locks the dormant ones the
// way production does: each tries to log in and the worker locks them.
func seed(ctx context.Context, store *postgres.Store, host *tasks.Client) error {
	now := time.Now()
	people := map[string][]person{
		companyID: {
			{"admin", "管理 花子", "総務部", policy.IDKindPlatform, true, false},
			{"yamada", "山田 太郎", "営業部", policy.IDKindPlatform, false, true},
			{"sato", "佐藤 健", "営業部", policy.IDKindPlatform, false, true},
			{"evil", "<script>alert(1)</script>", "開発部", policy.IDKindPlatform, false, true},
			{"suzuki@example.com", "鈴木 一郎", "開発部", policy.IDKindEmail, false, true},
			{"tanaka@example.com", "田中 次郎", "開発部", policy.IDKindEmail, false, false},
			{"notify@example.com", "通知 三子", "総務部", policy.IDKindEmail, false, false},
		},
		otherID: {
			{"other-admin", "他社 管理", "本社", policy.IDKindPlatform, true, false},
			{"other-locked", "他社 ロック", "本社", policy.IDKindPlatform, false, true},
		},
	}
	want := 0
	for co, ps := range people {
		if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: co, Name: map[string]string{companyID: "株式会社エーツーイー", otherID: "他社株式会社"}[co]}); err != nil {
			return err
		}
		for _, p := range ps {
			rec := postgres.AccountRecord{CompanyID: co, LoginID: p.login, IDKind: p.kind, Name: p.name, Department: p.dept,
				CanManageEmployees: p.admin, CreatedAt: now.Add(-400 * 24 * time.Hour), LastLoginAt: now.Add(-2 * time.Hour)}
			if p.kind == policy.IDKindEmail {
				rec.Email = p.login
			}
			if p.dormant {
				rec.LastLoginAt = now.Add(-120 * 24 * time.Hour)
			}
			if _, err := store.UpsertAccount(ctx, rec); err != nil {
				return err
			}
		}
	}
	notify, err := accountID(ctx, store, companyID, "notify@example.com")
	if err != nil {
		return err
	}
	if err := store.ReplaceLoginNotificationRecipients(ctx, companyID, 0, []int64{notify}, now, "e2e-seed"); err != nil {
		return err
	}
	for co, ps := range people {
		for _, p := range ps {
			if !p.dormant {
				continue
			}
			want++
			err := host.ReportLoginAttempt(ctx, tasks.LoginAttempt{CompanyID: co, LoginID: p.login, Method: policy.MethodPassword,
				IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"})
			if err != nil {
				return err
			}
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n := 0
		for co := range people {
			p, err := store.ListAccounts(ctx, co, postgres.AccountFilter{LockedOnly: true}, time.Now())
			if err != nil {
				return err
			}
			n += p.Total
		}
		if n == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("seed: %d of %d accounts locked: %w", n, want, ctx.Err())
		case <-tick.C:
		}
	}
}

func accountID(ctx context.Context, store *postgres.Store, company, login string) (int64, error) {
	e, _, err := store.CheckAccount(ctx, company, login)
	return e.ID, err
}
