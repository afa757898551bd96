package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/webhook"
)

// WebhookConfig is how the worker delivers webhooks.
type WebhookConfig struct {
	// Policy is checked on every connection to an endpoint, so an endpoint
	// whose name now resolves to an internal address is refused.
	Policy webhook.AddressPolicy
	// Timeout bounds one request to an endpoint (10 s when 0).
	Timeout time.Duration
	// DisableAfter disables an endpoint that has failed continuously this
	// long, from its first failure since its last success (24 h when 0;
	// negative never disables).
	DisableAfter time.Duration
	// DispatchInterval is how often the dispatcher looks for new
	// deliveries in Postgres: the latency from a commit to its delivery
	// (1 s when 0; negative turns the dispatcher off).
	DispatchInterval time.Duration
	// RequeueAfter is the age at which a pending delivery is handed to
	// asynq again in case its task went missing (5 min when 0).
	RequeueAfter time.Duration
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = 24 * time.Hour
	}
	if c.DispatchInterval == 0 {
		c.DispatchInterval = time.Second
	}
	if c.RequeueAfter <= 0 {
		c.RequeueAfter = 5 * time.Minute
	}
	return c
}

// DefaultWebhookBackoff is the backoff of webhook:deliver unless
// RETRY_BACKOFF names one: with tasks.WebhookMaxRetry retries, a day.
var DefaultWebhookBackoff = TypeBackoff{Prefix: "webhook:", Base: 10 * time.Second, Max: time.Hour}

// webhookRetry carries the delay the handler chose, and wrote to the
// delivery log as the next attempt, to asynq's RetryDelayFunc.
type webhookRetry struct {
	after time.Duration
	cause error
}

func (e *webhookRetry) Error() string { return e.cause.Error() }
func (e *webhookRetry) Unwrap() error { return e.cause }

// dispatchBatch is how many deliveries one dispatcher transaction hands
// over.
const dispatchBatch = 500

// DispatchWebhooks hands the pending deliveries in Postgres to asynq until
// none is left, and returns how many it handed over. A delivery's task ID
// is its id, so one handed over twice (by two workers, or again after
// RequeueAfter while its task still exists) is queued once.
func (h *Handlers) DispatchWebhooks(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := h.store.DispatchWebhookDeliveries(ctx, h.now(), h.webhookCfg.RequeueAfter, dispatchBatch, func(id int64, stale bool) error {
			t, err := tasks.NewWebhookDeliveryTask(tasks.WebhookDelivery{DeliveryID: id})
			if err != nil {
				return err
			}
			tasks.Inject(ctx, t)
			_, err = h.queue.EnqueueContext(ctx, t)
			if errors.Is(err, asynq.ErrTaskIDConflict) && stale {
				// Still pending long after it was handed over: its task
				// waits for a retry (fine), or was archived without the
				// handler recording why (then nothing will send it).
				info, ierr := h.inspector.GetTaskInfo(tasks.QueueWebhooks, tasks.WebhookTaskID(id))
				if ierr == nil && info.State == asynq.TaskStateArchived {
					return postgres.ErrTaskArchived
				}
				return nil
			}
			if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				return fmt.Errorf("worker: enqueue webhook delivery %d: %w", id, err)
			}
			return nil
		})
		total += n
		if err != nil || n < dispatchBatch {
			return total, err
		}
	}
}

// runDispatcher calls DispatchWebhooks every interval until ctx ends. A
// failure (Postgres or Redis away) is logged once per outage and tried
// again at the next tick: nothing is lost, the rows stay pending.
func (h *Handlers) runDispatcher(ctx context.Context) {
	if h.webhookCfg.DispatchInterval < 0 {
		return
	}
	tick := time.NewTicker(h.webhookCfg.DispatchInterval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := h.DispatchWebhooks(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			h.log.Warn("webhook dispatcher: deliveries wait in Postgres", slog.String("error", err.Error()))
		case err == nil && failing:
			failing = false
			h.log.Info("webhook dispatcher: dispatching again")
		}
		if n > 0 {
			h.log.Debug("webhook deliveries dispatched", slog.Int("deliveries", n))
		}
	}
}

// DeliverWebhook sends one delivery. 2xx delivers it. Any other answer, a
// timeout or a refused connection is retried with backoff (the delivery
// log says when), until the task's last retry; a 410 disables the
// endpoint at once. An endpoint failing for WebhookConfig.DisableAfter is
// disabled, its pending deliveries failed and its company's
// administrators told by email (a platform-wide endpoint's operator, by an
// error in the log). A delivery whose endpoint was removed is done.
func (h *Handlers) DeliverWebhook(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.DecodeWebhookDelivery(t.Payload())
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	now := h.now()
	m, err := h.store.WebhookMessage(ctx, p.DeliveryID, now)
	if errors.Is(err, postgres.ErrNotFound) {
		h.logger(ctx).Info("webhook delivery gone with its endpoint", slog.Int64("delivery_id", p.DeliveryID))
		return nil
	}
	if err != nil {
		return h.classify(ctx, t, "", err)
	}
	if m.Delivery.Status != postgres.WebhookPending {
		return nil
	}
	l := h.logger(ctx).With(slog.Int64("delivery_id", p.DeliveryID), slog.Int64("endpoint_id", m.Endpoint.ID), slog.String("webhook_id", m.Delivery.MessageID))
	giveUp := func(reason string) error {
		if err := h.store.FailWebhookDelivery(ctx, p.DeliveryID, reason, now); err != nil {
			return h.classify(ctx, t, m.Endpoint.CompanyID, err)
		}
		l.Warn("webhook delivery failed", slog.String("reason", reason))
		return fmt.Errorf("%s: %s: %w", t.Type(), reason, asynq.SkipRetry)
	}
	if !m.Endpoint.Enabled {
		return giveUp("endpoint disabled")
	}
	if m.Event == nil {
		return giveUp("the event is no longer kept")
	}
	body, err := postgres.WebhookBody(*m.Event)
	if err != nil {
		return giveUp(err.Error())
	}
	status, sendErr := h.webhooks.Send(ctx, m.Endpoint.URL, webhook.Message{ID: m.Delivery.MessageID, At: now, Body: body, Keys: m.Keys})
	a := postgres.WebhookAttempt{At: now, Status: status, Delivered: sendErr == nil}
	var retry *webhookRetry
	if sendErr != nil {
		var f *webhook.Failure
		if !errors.As(sendErr, &f) {
			f = &webhook.Failure{Reason: sendErr.Error()}
		}
		a.Error, a.Gone = f.Error(), f.Gone
		a.Final = f.Permanent || f.Gone || lastTry(ctx)
		if !a.Final {
			n, _ := asynq.GetRetryCount(ctx)
			d := h.retry.Delay(n, nil, t)
			if f.RetryAfter > d {
				d = min(f.RetryAfter, time.Hour)
			}
			retry = &webhookRetry{after: d, cause: sendErr}
			a.NextAt = now.Add(d)
		}
	}
	// The outcome is recorded even when the task's own deadline has
	// passed during the request.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, err := h.store.RecordWebhookAttempt(recordCtx, p.DeliveryID, a, h.webhookCfg.DisableAfter)
	if errors.Is(err, postgres.ErrNotFound) {
		return nil // removed while we sent
	}
	if err != nil {
		// The receiver may have the message already; the retry sends it
		// again with the same webhook-id, which is what at-least-once means.
		return h.classify(ctx, t, m.Endpoint.CompanyID, err)
	}
	if out.Disabled {
		// A platform-wide endpoint has no administrators to email: this
		// line (level ERROR) and the metric are how its operator hears of
		// it.
		if h.metrics != nil {
			scope := "company"
			if m.Endpoint.CompanyID == "" {
				scope = "platform"
			}
			h.metrics.Disabled(scope).Inc()
		}
		l.Error("webhook endpoint disabled", slog.String("url", out.Endpoint.URL), slog.String("company_id", m.Endpoint.CompanyID),
			slog.String("reason", out.Endpoint.DisabledReason), slog.Int("administrators_told", len(out.Mails)))
		if err := h.enqueueNotices(ctx, out.Mails); err != nil {
			// The notices are pending in the outbox; the requeue job
			// sends them.
			l.Warn("webhook disabled notices not queued", slog.String("error", err.Error()))
		}
	}
	switch {
	case a.Delivered:
		l.Info("webhook delivered", slog.Int("status", status))
		return nil
	case a.Final || out.Disabled:
		l.Warn("webhook delivery failed", slog.String("error", a.Error))
		return fmt.Errorf("%s: %w: %w", t.Type(), sendErr, asynq.SkipRetry)
	}
	return retry
}
