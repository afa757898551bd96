package worker

import (
	"context"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// AccountUnlock carries out an administrator's unlock: the accounts are
// unlocked until the local midnight after the request (the click, not this
// run; policy.UnlockDeadline), each with an audit
// event naming the actor, and their owners' notices are written to the
// outbox in the same transaction and queued after the commit.
//
// The actor is checked here, not only by whoever enqueued the task: an
// actor who is not an active administrator of the company, and an unlock
// naming an account of another company, are refused whole and archived.
// A redelivered task unlocks nothing new and queues whatever notice of
// today's unlock is still pending. An unlock run at or after its deadline
// changes nothing and leaves an unlock_expired event, which the unlock's
// status endpoint reads.
func (h *Handlers) AccountUnlock(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.DecodeAccountUnlock(t.Payload())
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	// The status endpoint finds the outcome by the task's ID; a test that
	// calls the handler without a server has only the constructor's.
	taskID, ok := asynq.GetTaskID(ctx)
	if !ok {
		taskID = tasks.UnlockTaskID(p)
	}
	res, err := h.store.Unlock(ctx, postgres.Unlock{
		CompanyID: p.CompanyID, ActorID: p.ActorAccountID, AccountIDs: p.AccountIDs, All: p.All,
		RequestedAt: p.RequestedAt, At: h.now(), RequestID: p.RequestID, TaskID: taskID,
	})
	if err != nil {
		return h.classify(ctx, t, p.CompanyID, err)
	}
	if res.Expired {
		h.logger(ctx).Warn("unlock expired before it ran", slog.String("company_id", p.CompanyID),
			slog.Int64("actor_account_id", p.ActorAccountID), slog.Time("requested_at", p.RequestedAt), slog.Time("deadline", res.Deadline))
		return nil
	}
	h.logger(ctx).Info("accounts unlocked", slog.String("company_id", p.CompanyID),
		slog.Int64("actor_account_id", p.ActorAccountID), slog.Int("unlocked", len(res.Unlocked)),
		slog.Time("deadline", res.Deadline), slog.Int("mails", len(res.NoticeMailIDs)))
	return h.enqueueNotices(ctx, res.NoticeMailIDs)
}
