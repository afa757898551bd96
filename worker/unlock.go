package worker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// AccountUnlock carries out an administrator's unlock: the accounts are
// unlocked until the company's next local midnight, each with an audit
// event naming the actor, and their owners' notices are written to the
// outbox in the same transaction and queued after the commit.
//
// The actor is checked here, not only by whoever enqueued the task: an
// actor who is not an active administrator of the company, and an unlock
// naming an account of another company, are refused whole and archived.
// A redelivered task unlocks nothing new and queues whatever notice of
// today's unlock is still pending.
func (h *Handlers) AccountUnlock(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.DecodeAccountUnlock(t.Payload())
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	res, err := h.store.Unlock(ctx, postgres.Unlock{
		CompanyID: p.CompanyID, ActorID: p.ActorAccountID, AccountIDs: p.AccountIDs, All: p.All,
		At: h.now(), RequestID: p.RequestID,
	})
	switch {
	case errors.Is(err, policy.ErrForbidden):
		return h.reject(ctx, t, p.CompanyID, err)
	case err != nil:
		return h.classify(ctx, t, p.CompanyID, err)
	}
	h.logger(ctx).Info("accounts unlocked", slog.String("company_id", p.CompanyID),
		slog.Int64("actor_account_id", p.ActorAccountID), slog.Int("unlocked", len(res.Unlocked)),
		slog.Time("deadline", res.Deadline), slog.Int("mails", len(res.NoticeMailIDs)))
	out := make([]outgoing, len(res.NoticeMailIDs))
	for i, id := range res.NoticeMailIDs {
		out[i] = outgoing{tasks.TypeEmailNotice, tasks.Email{MailID: id}}
	}
	return h.enqueue(ctx, out)
}
