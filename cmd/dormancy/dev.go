package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/admin"
	"github.com/dormancy/dormancy/examples/demohost"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/scheduler"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

// demoCompany is the company `dormancy dev` seeds afresh on every start.
const demoCompany = "demo"

// demoPassword is every demo user's password.
const demoPassword = "demo-pass"

type demoAccount struct {
	loginID, email, name, dept string
	kind                       policy.IDKind
	admin, recipient           bool
	lastLogin                  time.Duration // ago; 0 = never
}

// demoAccounts are the manual's cast: administrators in 総務部, 管理部 and
// システム部, dormant employees of both ID kinds, one who never logged in,
// and one in everyday use for the saved login.
var demoAccounts = []demoAccount{
	{"soumu@demo.example", "soumu@demo.example", "総務 花子", "総務部", policy.IDKindEmail, true, true, 2 * 24 * time.Hour},
	{"kanri01", "kanri@demo.example", "管理 次郎", "管理部", policy.IDKindPlatform, true, false, 24 * time.Hour},
	{"system01", "", "情報 三郎", "システム部", policy.IDKindPlatform, true, false, 5 * 24 * time.Hour},
	{"tanaka@demo.example", "tanaka@demo.example", "田中 一郎", "営業部", policy.IDKindEmail, false, false, 120 * 24 * time.Hour},
	{"suzuki01", "suzuki@demo.example", "鈴木 二郎", "営業部", policy.IDKindPlatform, false, false, 120 * 24 * time.Hour},
	{"takahashi01", "", "高橋 四郎", "経理部", policy.IDKindPlatform, false, false, 120 * 24 * time.Hour},
	{"ito@demo.example", "ito@demo.example", "伊藤 五郎", "開発部", policy.IDKindEmail, false, false, 0},
	{"yamamoto@demo.example", "yamamoto@demo.example", "山本 六子", "開発部", policy.IDKindEmail, false, false, 3 * 24 * time.Hour},
}

// seedDemo resets the demo company and writes its accounts relative to now.
func seedDemo(ctx context.Context, store *postgres.Store, now time.Time) error {
	if err := store.ResetCompany(ctx, demoCompany); err != nil {
		return err
	}
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: demoCompany, Name: "デモ株式会社",
		FallbackContact: "情報システム部ヘルプデスク（内線 1234）"}); err != nil {
		return err
	}
	var recipients []int64
	for _, a := range demoAccounts {
		rec := postgres.AccountRecord{
			CompanyID: demoCompany, LoginID: a.loginID, IDKind: a.kind, Email: a.email, Name: a.name,
			Department: a.dept, CanManageEmployees: a.admin, CreatedAt: now.Add(-400 * 24 * time.Hour),
		}
		if a.lastLogin == 0 {
			rec.CreatedAt = now.Add(-120 * 24 * time.Hour)
		} else {
			rec.LastLoginAt = now.Add(-a.lastLogin)
		}
		id, err := store.UpsertAccount(ctx, rec)
		if err != nil {
			return err
		}
		if a.recipient {
			recipients = append(recipients, id)
		}
	}
	return store.ReplaceLoginNotificationRecipients(ctx, demoCompany, 0, recipients, now, "dev-seed")
}

// runDev runs the whole system in one process for a newcomer: migrations,
// a fresh demo company, the worker, the scheduler, the admin server with
// the dev mailbox, the demo host platform and the dev clock. Mail never
// leaves the machine.
func runDev(ctx context.Context, cfg *Config, log *slog.Logger, watch watches, stdout io.Writer) error {
	clock := newDevClock()
	if err := postgres.Migrate(ctx, cfg.DatabaseURL, "up", io.Discard); err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := seedDemo(ctx, store, clock.Now()); err != nil {
		return fmt.Errorf("dev: seed: %w", err)
	}
	queue := asynq.NewClient(cfg.Redis)
	defer queue.Close()

	tokenSecret := cfg.TokenSecret
	if len(tokenSecret) == 0 {
		tokenSecret = devTokenSecret
	}
	w, err := worker.New(worker.Config{
		TokenSecret: tokenSecret, PlatformName: cfg.PlatformName, HelpURL: cfg.HelpURL,
		Redis: cfg.Redis, Store: store, Sender: mail.NewDev(log), Links: worker.Links{Base: cfg.PublicBaseURL},
		Concurrency: cfg.WorkerConcurrency, TaskCheckInterval: cfg.WorkerTaskCheckInterval,
		ShutdownTimeout: 5 * time.Second, Retry: cfg.Retry, EmailMaxRetry: cfg.EmailMaxRetry, Retention: cfg.Retention, SweepGuard: cfg.SweepGuard, LockNoticeRate: cfg.LockNoticeRate,
		Layout: cfg.Layout, ServedCriticalQueues: cfg.ServedCriticalQueues,
		Logger: log, Now: clock.Now, RedisWatch: watch.redis, Trace: cfg.tracing(), Webhooks: cfg.Webhooks.worker(),
	})
	if err != nil {
		return err
	}
	watch.probe(ctx, cfg, store)
	sched, err := scheduler.New(scheduler.Config{Redis: cfg.Redis, Jobs: cfg.Jobs, Logger: log, Now: clock.Now, RedisWatch: watch.redis})
	if err != nil {
		return err
	}
	secret := make([]byte, admin.MinLinkSecret)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	adminSrv, err := admin.New(admin.Config{
		Store: store, Redis: cfg.Redis, Queue: queue, LinkSecret: secret,
		OperatorUser: "dev", OperatorPassword: "dev", DevMailbox: true, InsecureCookies: true,
		Logger: log, Now: clock.Now, RedisWatch: watch.redis, Trace: cfg.tracing(), Layout: cfg.Layout, Webhooks: cfg.Webhooks.settings(),
	})
	if err != nil {
		return err
	}
	defer adminSrv.Close()
	adminBase := "http://" + cfg.Admin.Addr
	users := make([]demohost.User, len(demoAccounts))
	for i, a := range demoAccounts {
		users[i] = demohost.User{LoginID: a.loginID, Password: demoPassword}
	}
	host := demohost.New(demohost.Config{
		Dormancy: tasks.NewClient(queue, store, clock.Now, tasks.WithLayout(cfg.Layout)), CompanyID: demoCompany, Users: users, Logger: log,
		AdminLink: func(companyID string, accountID int64) (string, error) {
			var nonce [16]byte
			rand.Read(nonce[:])
			return admin.SignLink(secret, adminBase, admin.Link{
				CompanyID: companyID, AccountID: accountID, Expires: clock.Now().Add(5 * time.Minute),
				Nonce: hex.EncodeToString(nonce[:]),
			})
		},
	})
	tokyo, _ := time.LoadLocation(policy.DefaultTimeZone)
	hostMux := http.NewServeMux()
	hostMux.Handle("/dev/clock", clock.handler(tokyo))
	hostMux.Handle("/", host)
	hostAddr := cfg.PublicBaseURL.Host
	ln, err := net.Listen("tcp", hostAddr)
	if err != nil {
		return fmt.Errorf("dev: demo host on %s (PUBLIC_BASE_URL): %w", hostAddr, err)
	}
	// Both addresses are bound before the banner says anything is running.
	adminLn, err := net.Listen("tcp", cfg.Admin.Addr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("dev: admin server on %s (ADMIN_ADDR): %w", cfg.Admin.Addr, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	start := func(name string, run func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	hostSrv := &http.Server{Handler: hostMux, ReadHeaderTimeout: 10 * time.Second}
	start("worker", func() error { return w.Run(ctx) })
	start("scheduler", func() error { return sched.Run(ctx) })
	start("admin", func() error { return adminSrv.Serve(ctx, adminLn) })
	start("demo host", func() error { return hostSrv.Serve(ln) })
	// The sweep runs daily; run it now so the administrators' list shows
	// the dormant accounts locked from the start.
	sweep, err := tasks.NewMaintenanceTask(tasks.TypeMaintenanceSweep, tasks.Maintenance{Period: clock.Now()})
	if err == nil {
		_, err = queue.EnqueueContext(ctx, sweep)
	}
	if err != nil {
		log.Warn("dev: initial sweep", "error", err)
	}

	base := cfg.PublicBaseURL.String()
	fmt.Fprintf(stdout, `
dormancy dev is running. Ctrl-C stops everything.

  demo host platform   %[1]s/login
  dev clock            %[1]s/dev/clock        (+91d, +25h, 23:59 …)
  dev mailbox          %[2]s/dev/mailbox      (user dev, password dev)
  queues (Asynqmon)    %[2]s/monitoring/      (user dev, password dev)
  admin API            %[2]s/api/v1/openapi.json
  metrics              %[2]s/metrics          (user dev, password dev)

demo logins (company %[3]q, every password %[4]q):
`, base, adminBase, demoCompany, demoPassword)
	for _, a := range demoAccounts {
		state := "active"
		switch {
		case a.lastLogin == 0:
			state = "never logged in, created 120 days ago"
		case a.lastLogin >= 90*24*time.Hour:
			state = fmt.Sprintf("dormant, last login %d days ago", a.lastLogin/(24*time.Hour))
		}
		role := ""
		if a.admin {
			role = " administrator"
		}
		if a.recipient {
			role += ", login notification recipient"
		}
		fmt.Fprintf(stdout, "  %-24s %-8s %-12s %-10s %s%s\n", a.loginID, a.kind, a.name, a.dept, state, role)
	}

	<-ctx.Done()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	hostSrv.Shutdown(shutdownCtx)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		fmt.Fprintln(stdout, "dormancy dev stopped")
		return nil
	}
}
