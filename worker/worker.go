// Package worker is the asynq server that carries out dormancy's tasks:
// it records login attempts, locks dormant accounts, issues verification
// links and delivers email. Every handler is idempotent and sorts each
// failure into retryable (returned as is, retried with backoff) or permanent
// (wrapped in asynq.SkipRetry, archived at once, recorded with its reason).
package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"

	"github.com/dormancy/dormancy/cluster"
	"github.com/dormancy/dormancy/internal/asynqlog"
	"github.com/dormancy/dormancy/internal/outage"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/webhook"
)

// Sender delivers one rendered message and returns the provider's id.
// mail.Resend and mail.Dev implement it.
type Sender interface {
	Send(ctx context.Context, m mail.Message) (string, error)
}

// Links builds the URLs that emails carry. They point at the host
// platform, which owns the login form.
type Links struct {
	// Base is the host platform's public URL (PUBLIC_BASE_URL).
	Base *url.URL
}

// Verify is the verification link: the host's login form with the token.
func (l Links) Verify(token string) string {
	return l.Base.JoinPath("verify").String() + "?token=" + url.QueryEscape(token)
}

// Login is the host's login page.
func (l Links) Login() string { return l.Base.JoinPath("login").String() }

// EmployeeList is where an administrator retires or unlocks people.
func (l Links) EmployeeList() string { return l.Base.JoinPath("employees").String() }

// Config is everything the worker needs; cmd/dormancy fills it from the
// environment.
type Config struct {
	Redis       asynq.RedisConnOpt
	Store       *postgres.Store
	Sender      Sender
	Links       Links
	Concurrency int
	// TaskCheckInterval is how often an idle processor polls Redis; asynq's
	// default of 1 s delays a verification email by up to that much.
	TaskCheckInterval time.Duration
	ShutdownTimeout   time.Duration
	Retry             RetryPolicy
	// EmailMaxRetry is how often an email task is retried before the mail
	// is marked failed; 0 keeps the task constructor's count.
	EmailMaxRetry int
	Logger        *slog.Logger
	// Retention is what maintenance:retention keeps; the zero value keeps
	// everything (cmd/dormancy fills postgres.DefaultRetention).
	Retention postgres.Retention
	// SweepGuard holds a sweep that would lock a company wholesale; the
	// zero value holds nothing (cmd/dormancy fills policy.DefaultSweepGuard).
	SweepGuard policy.SweepGuard
	// LockNoticeRate paces the notices of one sweep, per second: the mail
	// provider's limit (Resend allows 2 by default). 0 means 2.
	LockNoticeRate int
	// Trace records spans of the handlers' Redis commands (redisotel);
	// the caller turns the store's on (postgres.Store.Trace) and sets the
	// global tracer provider. The task spans themselves follow the global
	// provider, which records nothing until one is set.
	Trace bool
	// RedisWatch, when set, turns asynq's repeated complaints during a
	// Redis outage into its one line.
	RedisWatch *outage.Watch
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// Random is the token source; nil means crypto/rand.
	Random io.Reader
	// TokenSecret derives verification tokens from their seeds
	// (policy.DeriveToken); every worker process shares it, since one
	// issues a link and another may send it. At least
	// policy.MinTokenSecret bytes.
	TokenSecret []byte
	// PlatformName names the host platform in the emails where the
	// manual's sentences do; empty, they go without it.
	PlatformName string
	// HelpURL is the help page the alert links to, as the manual's second
	// link; empty leaves it out.
	HelpURL string
	// Metrics, when set, measure every task (NewMetrics).
	Metrics *Metrics
	// Layout is where the handlers put the tasks they enqueue (emails, and
	// held login attempts on the hosts' CriticalQueues) and how long Redis
	// keeps them done; the zero value is the constructors' layout.
	Layout tasks.Layout
	// Replication is what re-queueing a held login attempt waits for on a
	// Redis Cluster (cluster.Options): the attempt leaves Postgres only
	// once a replica holds it. The zero value waits for nothing.
	Replication cluster.Options
	// ServedCriticalQueues is how many spread critical queues the worker
	// serves besides critical (tasks.ServedQueues): at least the largest
	// CriticalQueues any host uses. 0 serves critical alone.
	ServedCriticalQueues int
	// Webhooks is how webhook deliveries are made.
	Webhooks WebhookConfig
}

// Worker is the running server with its handlers.
type Worker struct {
	cfg      Config
	srv      *asynq.Server
	handlers *Handlers
}

// New builds a worker; Run starts it.
func New(cfg Config) (*Worker, error) {
	if cfg.Store == nil || cfg.Sender == nil || cfg.Redis == nil || cfg.Links.Base == nil {
		return nil, errors.New("worker.New: Store, Sender, Redis and Links.Base are required")
	}
	if len(cfg.TokenSecret) < policy.MinTokenSecret {
		return nil, fmt.Errorf("worker.New: TokenSecret must be at least %d bytes", policy.MinTokenSecret)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 20
	}
	if cfg.TaskCheckInterval <= 0 {
		cfg.TaskCheckInterval = 5 * time.Millisecond
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 25 * time.Second
	}
	h := NewHandlers(cfg)
	srv := asynq.NewServer(cfg.Redis, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            tasks.ServedQueues(cfg.ServedCriticalQueues),
		TaskCheckInterval: cfg.TaskCheckInterval,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		RetryDelayFunc:    cfg.Retry.withWebhookDefault().Delay,
		Logger:            asynqlog.Logger{L: cfg.Logger, Redis: cfg.RedisWatch},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if errors.Is(err, asynq.SkipRetry) {
				return // rejected: the handler logged it once, with its reason
			}
			id, _ := asynq.GetTaskID(ctx)
			cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "task failed",
				slog.String("task_type", t.Type()), slog.String("task_id", id),
				slog.String("error", err.Error()))
		}),
	})
	return &Worker{cfg: cfg, srv: srv, handlers: h}, nil
}

// Run serves until ctx is cancelled, then stops taking tasks and waits up
// to ShutdownTimeout for running ones; unfinished tasks go back to the queue.
func (w *Worker) Run(ctx context.Context) error {
	mux := asynq.NewServeMux()
	w.handlers.Register(mux)
	if err := w.srv.Start(mux); err != nil {
		return fmt.Errorf("worker.Run: %w", err)
	}
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		w.handlers.runDispatcher(ctx)
	}()
	<-ctx.Done()
	<-dispatched
	w.srv.Shutdown()
	w.handlers.Close()
	return nil
}

// NewHandlers builds the handlers without a server, for tests and for
// processes that embed them in their own asynq server.
func NewHandlers(cfg Config) *Handlers {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	random := cfg.Random
	if random == nil {
		random = rand.Reader
	}
	queue, held, closeQueue := newQueue(cfg)
	hooks := cfg.Webhooks.withDefaults()
	return &Handlers{
		store:      cfg.Store,
		sender:     cfg.Sender,
		links:      cfg.Links,
		queue:      queue,
		held:       held,
		closeQueue: closeQueue,
		layout:     cfg.Layout,
		inspector:  asynq.NewInspector(cfg.Redis),
		log:        cfg.Logger,
		now:        now,
		random:     random,
		secret:     cfg.TokenSecret,
		platform:   cfg.PlatformName,
		helpURL:    cfg.HelpURL,
		metrics:    cfg.Metrics,
		// One lane: the next batch fills while its statement runs, and
		// a second lane only split the waiting attempts into smaller
		// batches (BENCHMARKS.md).
		logins:         newLoginBatcher(cfg.Store, cfg.Metrics, 1, 64, 500*time.Microsecond),
		emailMaxRetry:  cfg.EmailMaxRetry,
		retention:      cfg.Retention,
		sweepGuard:     cfg.SweepGuard,
		lockNoticeRate: cmp.Or(cfg.LockNoticeRate, 2),
		retry:          cfg.Retry.withWebhookDefault(),
		webhookCfg:     hooks,
		webhooks:       webhook.NewClient(hooks.Policy, hooks.Timeout),
	}
}

// newQueue is the handlers' asynq client, and the queue of held attempts
// on the same Redis client; with tracing, that client's commands are
// traced. The returned func closes the Redis client.
func newQueue(cfg Config) (*asynq.Client, cluster.Queue, func() error) {
	rc, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		q := asynq.NewClient(cfg.Redis)
		return q, q, nil
	}
	if cfg.Trace {
		if err := redisotel.InstrumentTracing(rc); err != nil {
			cfg.Logger.Warn("worker: Redis commands not traced", slog.String("error", err.Error()))
		}
	}
	return asynq.NewClientFromRedisClient(rc), cluster.NewQueue(rc, cfg.Replication), rc.Close
}
