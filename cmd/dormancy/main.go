// Command dormancy runs dormancy's processes: the worker, the migrations,
// and (as they arrive) the scheduler and the admin server. Configuration
// comes from environment variables, read once here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/worker"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

const usage = `usage: dormancy <command>

commands:
  dev                     run everything in one process with a demo host platform (see README)
  worker                  run the task worker (asynq server)
  scheduler               enqueue the maintenance tasks on their schedules
  admin                   run the admin server (API, administrators' pages, /monitoring/)
  apikey create NAME (-companies a,b | -platform)
                          a host platform's API key for those companies, or for every
                          company; the key alone goes to stdout, once
  apikey list|revoke ID   list the keys with their scope; revoke one
  migrate up|down|status [-through NNNNNN]
                          apply, roll back or list the database migrations
  import [-format csv|jsonl] [-rejects FILE] [-create-companies [-fallback-contact TEXT]]
         [-batch N] [-accept-rejects] [-lock-notices] FILE
                          load employees from a CSV or JSON Lines file; exit 3 when
                          rows were rejected (listed in FILE.rejects.csv)
  report -company ID [-format json|csv] [-out FILE] [-since T] [-until T]
                          the company's compliance report: a summary, then every
                          account with its login date, state and dormancy date
  sweep -dry-run [-company ID]
                          list the accounts the sweep would lock now; lock nothing
  sweep confirm -company ID [-by NAME]
                          let a sweep the guard held proceed at its next run
  account export -company ID -login LOGIN [-out FILE]
                          everything dormancy holds about one account, as JSON
  account erase -company ID -login LOGIN [-by NAME]
                          erase a retired account's personal data; its audit
                          trail stays, pseudonymised
  webhook add -url URL -events a,b (-company ID | -platform) [-description TEXT]
                          register a webhook endpoint; its signing secret alone goes
                          to stdout, once
  webhook list [-company ID] | show ID | remove ID | enable ID | disable ID
  webhook rotate ID       a new signing secret (stdout, once); the old one signs beside
                          it for WEBHOOK_SECRET_OVERLAP
  webhook replay ID (-event N | -since T -until T)
                          send events again, each with its original webhook-id
  webhook deliveries ID [-limit N]
                          the endpoint's delivery log, newest first
  env                     list the environment variables and their defaults
  version                 the module version and VCS revision of this binary
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], osGetenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dormancy:", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		if errors.Is(err, errRejected) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("bad usage")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	if args[0] == "env" {
		for _, e := range envVars {
			fmt.Fprintf(stdout, "%-28s %-60s %s\n", e.name, e.def, e.doc)
		}
		return nil
	}
	if args[0] == "version" {
		fmt.Fprintln(stdout, version())
		return nil
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cfg, err := loadConfig(getenv, sectionsOf(args[0]))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// While a process waits for its services at start, go-redis's dial
	// failures repeat what the wait logs once; after that they matter.
	redis.SetLogger(slogRedis{log, slog.LevelDebug, nil})
	switch args[0] {
	case "worker", "scheduler", "admin", "dev":
		if err := awaitServices(ctx, cfg, log, true); err != nil {
			return err
		}
	}
	watch := newWatches(log)
	switch args[0] {
	case "worker", "scheduler", "admin", "dev":
		stop, err := startTracing(ctx, cfg, args[0], log)
		if err != nil {
			return err
		}
		defer stop()
	}
	redis.SetLogger(slogRedis{log, slog.LevelWarn, watch.redis})
	switch args[0] {
	case "migrate":
		fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
		fs.SetOutput(stderr)
		through := fs.String("through", "", "apply only the migrations up to this number (such as 000018); the later ones stay pending")
		if len(args) < 2 || fs.Parse(args[2:]) != nil || fs.NArg() != 0 {
			return fmt.Errorf("migrate wants one of up, down, status [-through NNNNNN]: %w", errUsage)
		}
		return postgres.MigrateThrough(ctx, cfg.DatabaseURL, args[1], *through, stdout)
	case "worker":
		return runWorker(ctx, cfg, log, watch)
	case "dev":
		return runDev(ctx, cfg, log, watch, stdout)
	case "import":
		return runImport(ctx, cfg, args[1:], stdout, stderr)
	case "scheduler":
		return runScheduler(ctx, cfg, log, watch)
	case "admin":
		return runAdmin(ctx, cfg, log, watch)
	case "apikey":
		return runAPIKey(ctx, cfg, args[1:], stdout, stderr)
	case "report":
		return runReport(ctx, cfg, args[1:], stdout, stderr)
	case "sweep":
		return runSweep(ctx, cfg, args[1:], stdout, stderr)
	case "webhook":
		return runWebhook(ctx, cfg, args[1:], stdout, stderr)
	case "account":
		return runAccount(ctx, cfg, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q: %w", strings.Join(args, " "), errUsage)
}

func runWorker(ctx context.Context, cfg *Config, log *slog.Logger, watch watches) error {
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	sender, err := newSender(cfg, log)
	if err != nil {
		return err
	}
	secret, err := workerTokenSecret(cfg, log)
	if err != nil {
		return err
	}
	reg := processRegistry()
	metrics := worker.NewMetrics(reg)
	if err := serveMetrics(ctx, cfg, log, reg); err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		TokenSecret: secret, PlatformName: cfg.PlatformName, HelpURL: cfg.HelpURL, Metrics: metrics,
		Redis: cfg.Redis, Store: store, Sender: sender, Links: worker.Links{Base: cfg.PublicBaseURL},
		Concurrency: cfg.WorkerConcurrency, TaskCheckInterval: cfg.WorkerTaskCheckInterval,
		ShutdownTimeout: cfg.WorkerShutdownTimeout,
		Retry:           cfg.Retry, EmailMaxRetry: cfg.EmailMaxRetry, Retention: cfg.Retention, SweepGuard: cfg.SweepGuard, LockNoticeRate: cfg.LockNoticeRate,
		Layout: cfg.Layout, ServedCriticalQueues: cfg.ServedCriticalQueues, Replication: cfg.Replication,
		Logger: log, RedisWatch: watch.redis, Trace: cfg.tracing(), Webhooks: cfg.Webhooks.worker(),
	})
	if err != nil {
		return err
	}
	watch.probe(ctx, cfg, store)
	log.Info("worker started", "concurrency", cfg.WorkerConcurrency, "dev_mailbox", cfg.ResendAPIKey == "")
	return w.Run(ctx)
}

// devTokenSecret derives verification links when mail goes to the dev
// mailbox and VERIFICATION_SECRET is unset: fixed, so that worker
// processes started apart agree, and useless anywhere real mail goes out.
var devTokenSecret = []byte("dormancy-dev-only-verification-secret-not-for-production")

// workerTokenSecret is VERIFICATION_SECRET, required when real mail goes
// out: a verification link is derived from it and the token row's seed.
func workerTokenSecret(cfg *Config, log *slog.Logger) ([]byte, error) {
	if len(cfg.TokenSecret) > 0 {
		return cfg.TokenSecret, nil
	}
	if cfg.ResendAPIKey != "" {
		return nil, fmt.Errorf("VERIFICATION_SECRET: required when RESEND_API_KEY is set (at least %d bytes, the same in every worker process)", policy.MinTokenSecret)
	}
	log.Warn("VERIFICATION_SECRET is not set: verification links use the dev mailbox's fixed secret")
	return devTokenSecret, nil
}

// newSender is Resend with a key, and the dev mailbox without one: mail is
// never dropped silently.
func newSender(cfg *Config, log *slog.Logger) (worker.Sender, error) {
	if cfg.ResendAPIKey == "" {
		log.Warn("RESEND_API_KEY is not set: mail goes to the dev mailbox, not to people")
		return mail.NewDev(log), nil
	}
	rc := mail.ResendConfig{APIKey: cfg.ResendAPIKey, BaseURL: cfg.ResendBaseURL, From: cfg.MailFrom}
	if cfg.tracing() {
		rc.Transport = otelhttp.NewTransport(http.DefaultTransport)
	}
	return mail.NewResend(rc)
}

// version is the module version and the VCS revision the binary was built
// from, as the Go toolchain recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dormancy (no build information)"
	}
	v := bi.Main.Version
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	out := "dormancy " + v
	if rev != "" {
		out += " " + rev + dirty
	}
	if when != "" {
		out += " " + when
	}
	return out + " " + bi.GoVersion
}
