package worker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// The directory handlers apply the host's changes to companies and
// employees. Each is a single transaction in the store, made idempotent by
// the host's version: a redelivered event finds its version stored and
// changes nothing, an older one delivered late is stale. A payload that
// does not validate is permanent, named by its field.

// UpsertCompany creates or updates a company and its settings.
func (h *Handlers) UpsertCompany(ctx context.Context, t *asynq.Task) error {
	c, err := tasks.DecodeUpsertCompany(t.Payload())
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	pc, err := c.PolicyCompany()
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	outcome, err := h.store.SyncCompany(ctx, pc, c.Version, h.now())
	if err != nil {
		return h.classify(ctx, t, c.CompanyID, err)
	}
	h.logger(ctx).Info("company synced", slog.String("company_id", c.CompanyID),
		slog.Int64("version", c.Version), slog.String("outcome", outcome))
	return nil
}

// UpsertAccount creates or updates an employee.
func (h *Handlers) UpsertAccount(ctx context.Context, t *asynq.Task) error {
	a, err := tasks.DecodeUpsertAccount(t.Payload())
	if err == nil {
		err = a.CheckTimes(h.now())
	}
	if err != nil {
		return h.reject(ctx, t, a.CompanyID, err)
	}
	id, outcome, err := h.store.SyncAccount(ctx, a.Employee(), a.Version, h.now())
	if err != nil {
		return h.directoryFailure(ctx, t, a.CompanyID, err)
	}
	h.logger(ctx).Info("account synced", slog.String("company_id", a.CompanyID), slog.Int64("account_id", id),
		slog.Int64("version", a.Version), slog.String("outcome", outcome))
	return nil
}

// RetireAccount retires an employee.
func (h *Handlers) RetireAccount(ctx context.Context, t *asynq.Task) error {
	r, err := tasks.DecodeRetireAccount(t.Payload())
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	id, outcome, err := h.store.SyncRetirement(ctx, r.CompanyID, r.LoginID, r.Version, h.now())
	if err != nil {
		return h.directoryFailure(ctx, t, r.CompanyID, err)
	}
	h.logger(ctx).Info("account retired", slog.String("company_id", r.CompanyID), slog.Int64("account_id", id),
		slog.Int64("version", r.Version), slog.String("outcome", outcome))
	return nil
}

// directoryFailure classifies a failed account event. An unknown company
// is retried until the task's last try: a host that enqueues a new
// company and its employees together has them run concurrently, and an
// employee's event may run before the company's commits. Only when the
// company never appears is the event rejected.
func (h *Handlers) directoryFailure(ctx context.Context, t *asynq.Task, companyID string, err error) error {
	if errors.Is(err, policy.ErrNotFound) && !lastTry(ctx) {
		return err
	}
	return h.classify(ctx, t, companyID, err)
}
