package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dormancy/dormancy/cluster"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/webhook"
)

// Handlers carries out the tasks. Its methods have asynq's handler shape.
type Handlers struct {
	store  *postgres.Store
	sender Sender
	links  Links
	queue  *asynq.Client
	// held re-queues the attempts hosts held in Postgres: on a cluster it
	// waits for a replica, since the held row is deleted once it succeeds.
	held   cluster.Queue
	layout tasks.Layout
	// closeQueue closes the Redis client under queue when the handlers
	// made it themselves (to trace it); asynq leaves that to its owner.
	closeQueue func() error
	inspector  *asynq.Inspector
	log        *slog.Logger
	now        func() time.Time
	random     io.Reader
	secret     []byte
	platform   string
	helpURL    string
	metrics    *Metrics
	logins     *loginBatcher
	retention  postgres.Retention
	sweepGuard policy.SweepGuard
	// lockNoticeRate is how many lock notices a second are queued.
	lockNoticeRate int
	// emailMaxRetry overrides the email tasks' retry count when > 0.
	emailMaxRetry int
	// retry is the worker's backoff, which webhook deliveries compute
	// themselves to write the next attempt to the delivery log.
	retry      RetryPolicy
	webhookCfg WebhookConfig
	webhooks   *webhook.Client
}

// Register routes each task type to its handler, inside the logging
// middleware.
func (h *Handlers) Register(mux *asynq.ServeMux) {
	if h.metrics != nil {
		mux.Use(h.metrics.middleware)
	}
	mux.Use(h.logTask)
	mux.HandleFunc(tasks.TypeLoginAttempt, h.LoginAttempt)
	mux.HandleFunc(tasks.TypeEmailVerification, h.Email)
	mux.HandleFunc(tasks.TypeEmailAlert, h.Email)
	mux.HandleFunc(tasks.TypeEmailNotice, h.Email)
	mux.HandleFunc(tasks.TypeUpsertCompany, h.UpsertCompany)
	mux.HandleFunc(tasks.TypeUpsertAccount, h.UpsertAccount)
	mux.HandleFunc(tasks.TypeRetireAccount, h.RetireAccount)
	mux.HandleFunc(tasks.TypeAccountUnlock, h.AccountUnlock)
	mux.HandleFunc(tasks.TypeMaintenanceRelock, h.Relock)
	mux.HandleFunc(tasks.TypeMaintenanceSweep, h.SweepDormant)
	mux.HandleFunc(tasks.TypeMaintenancePurgeTokens, h.PurgeTokens)
	mux.HandleFunc(tasks.TypeMaintenancePrelockWarning, h.PrelockWarnings)
	mux.HandleFunc(tasks.TypeMaintenanceRequeueMail, h.RequeueMail)
	mux.HandleFunc(tasks.TypeMaintenanceRetention, h.Retention)
	mux.HandleFunc(tasks.TypeMaintenanceDigest, h.DailyDigest)
	mux.HandleFunc(tasks.TypeWebhookDeliver, h.DeliverWebhook)
}

// Close releases the handlers' own Redis connections.
func (h *Handlers) Close() {
	h.logins.close()
	if h.closeQueue != nil {
		_ = h.closeQueue() // asynq refuses to close a client it was given
	}
	if h.closeQueue == nil {
		_ = h.queue.Close()
	}

	h.inspector.Close()
}

type loggerKey struct{}

// taskLog is a task's logger, built on first use: most tasks (an ordinary
// login) log nothing, and a logger's attributes are formatted as it is
// built, which cost every task a few microseconds for nothing.
type taskLog struct {
	base  *slog.Logger
	id    string
	typ   string
	retry int
	once  sync.Once
	l     *slog.Logger
}

func (t *taskLog) get() *slog.Logger {
	t.once.Do(func() {
		t.l = t.base.With(slog.String("task_id", t.id), slog.String("task_type", t.typ), slog.Int("retry", t.retry))
	})
	return t.l
}

// logTask gives every handler a logger carrying the task's id and type,
// and logs each task's end with its duration.
func (h *Handlers) logTask(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		retry, _ := asynq.GetRetryCount(ctx)
		// The task's span continues the trace its enqueuer carried in the
		// headers (tasks.Inject).
		ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(t.Headers()))
		ctx, span := otel.Tracer("github.com/dormancy/dormancy/worker").Start(ctx, t.Type(),
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.message.id", id), attribute.Int("asynq.retry", retry)))
		defer span.End()
		l := &taskLog{base: h.log, id: id, typ: t.Type(), retry: retry}
		start := time.Now()
		err := next.ProcessTask(context.WithValue(ctx, loggerKey{}, l), t)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		if err == nil && h.log.Enabled(ctx, slog.LevelDebug) {
			l.get().Debug("task done", slog.Duration("took", time.Since(start)))
		}
		return err
	})
}

func (h *Handlers) logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*taskLog); ok {
		return l.get()
	}
	return h.log
}

// reject ends a task that can never succeed: it is logged and recorded as
// an audit event with the reason, and returned wrapped in SkipRetry so
// asynq archives it instead of retrying it forever.
func (h *Handlers) reject(ctx context.Context, t *asynq.Task, companyID string, cause error) error {
	id, _ := asynq.GetTaskID(ctx)
	// The company is recorded as the payload named it, real or not: the
	// audit trail has no foreign keys, so a wrong one cannot lose the event.
	// It is recorded before the line is logged, so that whoever reads the
	// line finds the event.
	err := h.store.Audit(ctx, postgres.Event{
		Kind: postgres.EventTaskRejected, CompanyID: companyID, OccurredAt: h.now(),
		Detail: map[string]any{"task_type": t.Type(), "task_id": id, "reason": cause.Error()},
	})
	h.logger(ctx).Error("task rejected", slog.String("reason", cause.Error()))
	if err != nil {
		h.logger(ctx).Error("task rejection not recorded", slog.String("error", err.Error()))
	}
	return fmt.Errorf("%s: %w: %w", t.Type(), cause, asynq.SkipRetry)
}

// retryable classifies a failure from the store: permanent when it names
// nothing real or breaks a constraint, retryable when the database was
// unreachable or busy.
func (h *Handlers) classify(ctx context.Context, t *asynq.Task, companyID string, err error) error {
	if errors.Is(err, policy.ErrNotFound) || !postgres.Retryable(err) {
		return h.reject(ctx, t, companyID, err)
	}
	return err
}
