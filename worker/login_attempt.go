package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/device"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// outgoing is a mail written to the outbox that still has to be handed to
// the queue once the transaction commits.
type outgoing struct {
	typ   string
	email tasks.Email
	// after delays the task, to pace mail a provider would refuse in bulk.
	after time.Duration
}

// LoginAttempt records an attempt and acts on the decision: it moves the
// login date, locks a dormant account, issues a verification link and
// writes the emails to the outbox, all in one transaction under the
// account's row lock. Only after the commit are the emails queued.
//
// The decision is policy.Decide at the instant dormancy answered the login
// (the payload's decided_at, else this worker's clock), so what is
// recorded is what the host showed; the host's "at" only dates the record.
//
// A redelivered attempt (same attempt key) changes nothing; it only queues
// again whatever mail of that attempt is still pending, in case the first
// delivery died between its commit and its enqueue.
func (h *Handlers) LoginAttempt(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.DecodeLoginAttempt(t.Payload())
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	now := h.now()
	if err := p.CheckTime(now); err != nil {
		return h.reject(ctx, t, p.CompanyID, err)
	}
	var ip netip.Addr
	if p.IP != "" {
		ip, _ = netip.ParseAddr(p.IP)
	}
	decidedAt := p.DecisionTime(now)
	attempt := postgres.Attempt{
		Key: p.AttemptKey, CompanyID: p.CompanyID, LoginID: p.LoginID, Method: p.Method, IP: ip,
		UserAgent: p.UserAgent, Device: device.Classify(p.UserAgent), AttemptedAt: p.At, DecidedAt: decidedAt,
		RequestID: p.RequestID, RecordedAt: now,
	}
	handled, err := h.logins.record(ctx, attempt)
	if err != nil {
		return h.classify(ctx, t, p.CompanyID, err)
	}
	if handled {
		return nil
	}
	var out []outgoing
	var decision policy.Decision
	err = h.store.WithTx(ctx, func(tx *postgres.Tx) error {
		out = out[:0]
		sub, err := tx.LockAccount(ctx, p.CompanyID, p.LoginID)
		if err != nil {
			return err
		}
		e, pol := sub.Employee, sub.Company.Policy
		decision = policy.Decide(e.Account, pol, p.Method, decidedAt)
		attempt.AccountID, attempt.Outcome = e.ID, decision.Outcome
		attemptID, fresh, err := tx.InsertAttempt(ctx, attempt)
		if err != nil {
			return err
		}
		if !fresh {
			out, err = h.requeueAttemptMail(ctx, tx, e, pol, attemptID)
			return err
		}
		ev := postgres.Event{RequestID: p.RequestID, OccurredAt: now, Detail: map[string]any{"attempt_id": attemptID}}
		if err := tx.ApplyDecision(ctx, e, decision, decidedAt, ev); err != nil {
			return err
		}
		if decision.Outcome == policy.OutcomeVerifyByEmail {
			last, err := tx.LatestTokenIssuedAt(ctx, e.ID)
			if err != nil {
				return err
			}
			if policy.TokenIssueDue(pol, last, now) {
				o, _, err := h.issueVerification(ctx, tx, e, pol, attemptID, 0, p.RequestID)
				if err != nil {
					return err
				}
				out = append(out, o)
			}
		}
		if decision.Alert {
			ids, err := tx.InsertAlertMails(ctx, e.CompanyID, e.ID, attemptID, pol.Locale, pol.AlertWindow, now)
			if err != nil {
				return err
			}
			for _, id := range ids {
				out = append(out, outgoing{typ: tasks.TypeEmailAlert, email: tasks.Email{MailID: id}})
			}
		}
		return nil
	})
	if err != nil {
		return h.classify(ctx, t, p.CompanyID, err)
	}
	attrs := []any{slog.String("company_id", p.CompanyID), slog.String("outcome", string(decision.Outcome)), slog.Int("mails", len(out))}
	if decision.Transition != "" {
		attrs = append(attrs, slog.String("transition", string(decision.Transition)))
	}
	h.logger(ctx).Info("login attempt recorded", attrs...)
	return h.enqueue(ctx, h.sendNow(ctx, out))
}

// sendNow delivers the verification links this attempt wrote at once,
// rather than one queue hop later: the person is at the login page,
// waiting for the link. It returns the mail still to be queued: the other
// kinds, and a link whose send failed here. That try counts as the mail's
// first: a failure that may pass is logged like a task's and the task
// waits the backoff (or Resend's Retry-After) before its retry; one Resend
// will never accept is left to the task at once, which refuses it with the
// reason on record, as for any mail. A crash before the link is sent
// leaves the attempt's task unfinished; its redelivery finds the mail
// pending and sends the same link (requeueAttemptMail).
func (h *Handlers) sendNow(ctx context.Context, out []outgoing) []outgoing {
	rest := out[:0:0]
	for _, o := range out {
		if o.typ != tasks.TypeEmailVerification || o.after > 0 {
			rest = append(rest, o)
			continue
		}
		d, err := h.deliver(ctx, o.typ, o.email, firstTry)
		switch {
		case err != nil && mail.IsPermanent(err):
			h.logger(ctx).Debug("verification mail refused, left to its task", slog.Int64("mail_id", o.email.MailID), slog.String("error", err.Error()))
			rest = append(rest, o)
		case err != nil:
			// The backoff goes by the task's type alone.
			o.after = h.retry.Delay(0, err, asynq.NewTask(o.typ, nil))
			h.logger(ctx).Warn("mail send failed", slog.Int64("mail_id", o.email.MailID),
				slog.String("error", err.Error()), slog.Duration("retry_in", o.after))
			rest = append(rest, o)
		case d.permanent != nil:
			h.logger(ctx).Error("mail failed", slog.Int64("mail_id", o.email.MailID), slog.String("reason", d.permanent.Error()))
		default:
			h.logger(ctx).Info("mail handled", slog.Int64("mail_id", o.email.MailID), slog.String("status", string(d.result)))
		}
	}
	return rest
}

// issueVerification creates a live token superseding any other and, for a
// new mail, the outbox row, with its event, in one statement (IssueLink);
// for mailID != 0 it re-points that pending mail at the new token
// (RelinkMail), unless the mail was sent or dropped meanwhile: then it
// writes nothing and ok is false.
func (h *Handlers) issueVerification(ctx context.Context, tx *postgres.Tx, e policy.Employee, pol policy.Policy, attemptID, mailID int64, requestID string) (o outgoing, ok bool, err error) {
	now := h.now()
	seed, err := policy.NewTokenSeed(h.random)
	if err != nil {
		return outgoing{}, false, err
	}
	_, hash := policy.DeriveToken(h.secret, seed)
	tok := postgres.Token{
		AccountID: e.ID, Hash: hash, Seed: seed, Email: e.Email, AttemptID: attemptID,
		CreatedAt: now, ExpiresAt: policy.TokenExpiry(pol, now),
	}
	var tokenID int64
	ok = true
	if mailID == 0 {
		tokenID, mailID, err = tx.IssueLink(ctx, tok, e.CompanyID, pol.Locale, requestID)
	} else {
		tokenID, ok, err = tx.RelinkMail(ctx, tok, mailID, e.CompanyID, requestID)
	}
	// The task names the token; its email derives it when rendered.
	return outgoing{typ: tasks.TypeEmailVerification, email: tasks.Email{MailID: mailID, TokenID: tokenID}}, ok, err
}

// requeueAttemptMail hands an attempt's pending mails to the queue again;
// their task IDs make queueing one that is still queued harmless. A
// verification mail whose link is still live is sent with that same link,
// rebuilt from its token's seed, so a person whose first email did arrive
// keeps a working link; one whose link cannot be (expired, or issued
// under another secret) gets a fresh link.
func (h *Handlers) requeueAttemptMail(ctx context.Context, tx *postgres.Tx, e policy.Employee, pol policy.Policy, attemptID int64) ([]outgoing, error) {
	pending, err := tx.PendingMailsOfAttempt(ctx, attemptID)
	if err != nil {
		return nil, err
	}
	var out []outgoing
	for _, m := range pending {
		switch m.Kind {
		case postgres.MailVerification:
			seed, stored, live, err := tx.LiveTokenSeed(ctx, m.TokenID, h.now())
			if err != nil {
				return nil, err
			}
			if _, ok := h.derive(seed, stored); live && ok {
				out = append(out, outgoing{typ: tasks.TypeEmailVerification, email: tasks.Email{MailID: m.ID, TokenID: m.TokenID}})
				continue
			}
			o, ok, err := h.issueVerification(ctx, tx, e, pol, attemptID, m.ID, "")
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, o)
			}
		case postgres.MailDormantLoginAlert:
			out = append(out, outgoing{typ: tasks.TypeEmailAlert, email: tasks.Email{MailID: m.ID}})
		}
	}
	return out, nil
}

// enqueueNotices queues notice mails written to the outbox.
func (h *Handlers) enqueueNotices(ctx context.Context, ids []int64) error {
	out := make([]outgoing, len(ids))
	for i, id := range ids {
		out[i] = outgoing{typ: tasks.TypeEmailNotice, email: tasks.Email{MailID: id}}
	}
	return h.enqueue(ctx, out)
}

// enqueue hands committed outbox mail to the queue. A failure here is
// retryable: the task runs again, finds its attempt recorded, and queues
// what is still pending.
func (h *Handlers) enqueue(ctx context.Context, out []outgoing) error {
	for _, o := range out {
		t, err := tasks.NewEmailTask(o.typ, o.email)
		if err != nil {
			return err
		}
		opts := h.layout.Options(t)
		if h.emailMaxRetry > 0 {
			opts = append(opts, asynq.MaxRetry(h.emailMaxRetry))
		}
		if o.after > 0 {
			opts = append(opts, asynq.ProcessIn(o.after))
		}
		tasks.Inject(ctx, t)
		if _, err := h.queue.EnqueueContext(ctx, t, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("worker: enqueue %s mail %d: %w", o.typ, o.email.MailID, err)
		}
	}
	return nil
}
