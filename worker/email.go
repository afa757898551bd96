package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// Email delivers one outbox mail. It holds the mail's row lock while it
// sends, so a duplicate task waits and then finds the mail sent. Resend's
// idempotency key covers the gap where the send succeeded but the commit
// did not.
//
// A mail that is no longer worth sending (its link superseded or expired,
// its person retired) is dropped, not sent. A failure Resend will never
// accept, or the last allowed retry, marks the mail failed with an audit
// event; for a verification email the undelivered link is revoked too.
func (h *Handlers) Email(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.DecodeEmail(t.Type(), t.Payload())
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	try := taskTry
	if lastTry(ctx) {
		try = lastTaskTry
	}
	d, err := h.deliver(ctx, t.Type(), p, try)
	if err != nil {
		return h.classify(ctx, t, "", err)
	}
	if d.refused != nil {
		return h.reject(ctx, t, d.refusedCompany, d.refused)
	}
	if d.permanent != nil {
		return h.reject(ctx, t, "", d.permanent)
	}
	h.logger(ctx).Info("mail handled", slog.Int64("mail_id", p.MailID), slog.String("status", string(d.result)))
	return nil
}

// delivery is what one try at an outbox mail came to.
type delivery struct {
	result postgres.MailStatus
	// permanent is a failure that marked the mail failed; refused, a task
	// that names a mail of another kind (of refusedCompany).
	permanent, refused error
	refusedCompany     string
}

// try says what a failed send may conclude.
type try int

const (
	// firstTry is the attempt's own try at its link: any failure is
	// returned, the mail still pending, for its task to retry or refuse.
	firstTry try = iota
	// taskTry is a task's try before its last: a failure Resend will
	// never accept ends the mail.
	taskTry
	// lastTaskTry is a task's final try: any failure ends the mail.
	lastTaskTry
)

// deliver tries one outbox mail under its row lock. A failure the try may
// not conclude rolls back and is returned, the mail still pending.
func (h *Handlers) deliver(ctx context.Context, typ string, p tasks.Email, try try) (delivery, error) {
	now := h.now()
	var permanent, refused error
	var refusedCompany string
	var result postgres.MailStatus
	err := h.store.WithTx(ctx, func(tx *postgres.Tx) error {
		m, err := tx.LockMail(ctx, p.MailID, now)
		if err != nil {
			return err
		}
		if m.Status != postgres.MailPending {
			result = m.Status
			return nil
		}
		if err := taskMatchesMail(typ, m, p); err != nil {
			refused, refusedCompany = err, m.CompanyID
			return nil
		}
		if staleTask(m, p) {
			result = "stale task"
			return nil
		}
		reason, token := h.dropReason(m, p)
		if reason != "" {
			result = postgres.MailDropped
			return tx.FinishMail(ctx, m.ID, postgres.Delivery{Status: postgres.MailDropped, Error: reason, At: now})
		}
		// A digest's lists are read when it is sent; a database that does
		// not answer is retried, unlike a template that cannot render.
		var digest *postgres.DigestContent
		if m.Kind == postgres.MailDailyDigest {
			end, err := postgres.ParseDigestKey(m.IdempotencyKey)
			if err != nil {
				permanent = err
				return h.failMail(ctx, tx, m, err, now)
			}
			c, err := h.store.Digest(ctx, m.CompanyID, end)
			if err != nil {
				return err
			}
			digest = &c
		}
		// The disabled endpoint's URL is read as the notice is sent; one
		// removed meanwhile needs no notice.
		var endpoint *postgres.WebhookEndpoint
		if m.Kind == postgres.MailWebhookDisabled {
			id, err := postgres.ParseWebhookDisabledKey(m.IdempotencyKey)
			if err != nil {
				permanent = err
				return h.failMail(ctx, tx, m, err, now)
			}
			ep, err := h.store.WebhookEndpoint(ctx, id)
			if errors.Is(err, postgres.ErrNotFound) {
				result = postgres.MailDropped
				return tx.FinishMail(ctx, m.ID, postgres.Delivery{Status: postgres.MailDropped, Error: "endpoint removed", At: now})
			}
			if err != nil {
				return err
			}
			endpoint = &ep
		}
		msg, err := h.render(m, token, digest, endpoint)
		if err != nil {
			permanent = err
			return h.failMail(ctx, tx, m, err, now)
		}
		providerID, err := h.sender.Send(ctx, msg)
		if err != nil {
			if try == firstTry || !mail.IsPermanent(err) && try != lastTaskTry {
				return err // rolls back: the mail stays pending for the retry
			}
			permanent = err
			result = postgres.MailFailed
			return h.failMail(ctx, tx, m, err, now)
		}
		d := postgres.Delivery{Status: postgres.MailSent, Subject: msg.Subject, ProviderID: providerID, At: now}
		if strings.HasPrefix(providerID, mail.DevProviderPrefix) {
			d.Text, d.HTML = msg.Text, msg.HTML
		}
		kind := postgres.EventMailSent
		if m.Kind == postgres.MailDormantLoginAlert {
			kind = postgres.EventAlertSent
		}
		d.Audit = &postgres.Event{
			Kind: kind, CompanyID: m.CompanyID, AccountID: m.AccountID, OccurredAt: now,
			Detail: map[string]any{"mail_id": m.ID, "mail_kind": string(m.Kind), "recipient_account_id": m.RecipientAccountID, "provider_id": providerID},
		}
		result = postgres.MailSent
		return tx.FinishMail(ctx, m.ID, d)
	})
	return delivery{result: result, permanent: permanent, refused: refused, refusedCompany: refusedCompany}, err
}

// lastTry reports whether this is the task's final allowed run, after
// which asynq would archive it without telling us.
func lastTry(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= max
}

func (h *Handlers) failMail(ctx context.Context, tx *postgres.Tx, m postgres.Mail, cause error, now time.Time) error {
	at := now
	if m.Kind == postgres.MailVerification && m.TokenID != 0 {
		if err := tx.RevokeToken(ctx, m.TokenID, "undelivered", at); err != nil {
			return err
		}
	}
	return tx.FinishMail(ctx, m.ID, postgres.Delivery{Status: postgres.MailFailed, Error: cause.Error(), At: at, Audit: &postgres.Event{
		Kind: postgres.EventMailFailed, CompanyID: m.CompanyID, AccountID: m.AccountID, OccurredAt: at,
		Detail: map[string]any{"mail_id": m.ID, "mail_kind": string(m.Kind), "recipient_account_id": m.RecipientAccountID, "error": cause.Error()},
	}})
}

// taskMatchesMail refuses a task that names a mail of another kind. The
// worker never writes such a task, and acting on one would drop or send a
// mail that its own task is still to deliver.
func taskMatchesMail(typ string, m postgres.Mail, p tasks.Email) error {
	want := tasks.TypeEmailNotice
	switch m.Kind {
	case postgres.MailVerification:
		want = tasks.TypeEmailVerification
	case postgres.MailDormantLoginAlert:
		want = tasks.TypeEmailAlert
	}
	if typ != want {
		return &tasks.FieldError{Field: "mail_id", Reason: fmt.Sprintf("mail %d is a %s mail, which %s delivers", m.ID, m.Kind, want)}
	}
	return nil
}

// staleTask reports a verification task whose link the mail no longer
// carries: the mail was given a fresh link (its old one could not be
// rebuilt) and a task of its own, which sends it. The stale task does
// nothing and is not an error. (A token deleted by the purge leaves no id
// to compare; dropReason drops such a mail.)
func staleTask(m postgres.Mail, p tasks.Email) bool {
	return m.Kind == postgres.MailVerification && m.TokenID != 0 && p.TokenID != m.TokenID
}

// dropReason says why a pending mail should not go out any more, or "";
// for a verification mail that goes out, it returns the link's token too,
// derived from the token row's seed (or, for a task enqueued before
// seeds, carried in the payload). The token's row came with the mail's
// (LockMail).
func (h *Handlers) dropReason(m postgres.Mail, p tasks.Email) (reason, token string) {
	if m.Retired || m.RecipientRetired {
		return "retired", ""
	}
	if m.Kind != postgres.MailVerification {
		return "", ""
	}
	var carried policy.TokenHash
	if p.Token != "" {
		var err error
		if carried, err = policy.ParseToken(p.Token); err != nil {
			return "malformed token", ""
		}
	}
	if !m.TokenLive {
		return "link no longer valid", ""
	}
	if p.Token != "" {
		// A task enqueued before derived tokens carries its token.
		if carried != m.TokenHash {
			return "link no longer valid", ""
		}
		return "", p.Token
	}
	token, ok := h.derive(m.TokenSeed, m.TokenHash)
	if !ok {
		return "link cannot be derived", ""
	}
	return "", token
}

// derive rebuilds a link's token from its seed. It cannot for a token
// issued under another secret (VERIFICATION_SECRET changed) or before
// seeds.
func (h *Handlers) derive(seed []byte, stored policy.TokenHash) (string, bool) {
	if seed == nil {
		return "", false
	}
	token, hash := policy.DeriveToken(h.secret, seed)
	return token, hash == stored
}

// render turns an outbox row into a message in the company's locale.
func (h *Handlers) render(m postgres.Mail, token string, digest *postgres.DigestContent, endpoint *postgres.WebhookEndpoint) (mail.Message, error) {
	var data any
	switch m.Kind {
	case postgres.MailVerification:
		data = mail.Verification{Name: m.Name, URL: h.links.Verify(token), ValidFor: m.VerificationTTL, Platform: h.platformOf(m)}
	case postgres.MailDormantLoginAlert:
		ip := ""
		if m.IP.IsValid() {
			ip = m.IP.String()
		}
		data = mail.DormantLoginAlert{
			AccountName: m.Name, Department: m.Department, LoginID: m.LoginID,
			AttemptedAt: m.AttemptedAt.In(m.Location), IP: ip, Device: m.Device,
			EmployeeListURL: h.links.EmployeeList(), Platform: h.platformOf(m), HelpURL: h.helpURL,
		}
	case postgres.MailUnlocked:
		data = mail.Unlocked{Name: m.Name, At: m.CreatedAt.In(m.Location), LoginURL: h.links.Login()}
	case postgres.MailAdminUnlocked:
		// The deadline of the unlock the notice is for, which the account
		// no longer shows once its owner logged in or it was relocked.
		deadline, err := postgres.ParseAdminUnlockedKey(m.IdempotencyKey)
		if err != nil {
			deadline = m.UnlockedUntil
		}
		data = mail.AdminUnlocked{Name: m.Name, Deadline: deadline.In(m.Location), LoginURL: h.links.Login()}
	case postgres.MailPrelockWarning:
		// The lock date is the one decided when the mail was written, and
		// the days are counted from then: a retry renders the same body,
		// which Resend's idempotency key requires.
		lockAt, err := postgres.ParsePrelockWarningKey(m.IdempotencyKey)
		if err != nil {
			return mail.Message{}, fmt.Errorf("worker: mail %d: %w", m.ID, err)
		}
		data = mail.PrelockWarning{
			Name: m.Name, LockOn: lockAt.In(m.Location), LoginURL: h.links.Login(),
			DaysLeft: max(0, policy.DaysLeft(m.CreatedAt, lockAt, m.Location)),
		}
	case postgres.MailDailyDigest:
		if digest == nil {
			return mail.Message{}, fmt.Errorf("worker: mail %d: digest not read", m.ID)
		}
		lines := func(items []postgres.DigestItem) []mail.DigestLine {
			out := make([]mail.DigestLine, len(items))
			for i, it := range items {
				out[i] = mail.DigestLine{Name: it.Name, Department: it.Department, At: it.At.In(m.Location)}
			}
			return out
		}
		data = mail.DailyDigest{Name: m.Name, Day: digest.End.In(m.Location), Locks: lines(digest.Locks), Unlocks: lines(digest.Unlocks),
			Relocks: lines(digest.Relocks), Alerts: lines(digest.Alerts), Upcoming: lines(digest.Upcoming),
			EmployeeListURL: h.links.EmployeeList()}
	case postgres.MailLockNotice:
		data = mail.LockNotice{Name: m.Name, EmailID: m.IDKind == policy.IDKindEmail,
			InactivityDays: int(m.InactivityPeriod / (24 * time.Hour)), LoginURL: h.links.Login()}
	case postgres.MailSweepHeld:
		wouldLock, employed, err := postgres.ParseSweepHeldKey(m.IdempotencyKey)
		if err != nil {
			return mail.Message{}, fmt.Errorf("worker: mail %d: %w", m.ID, err)
		}
		data = mail.SweepHeld{Name: m.Name, WouldLock: wouldLock, Employed: employed, InactivityDays: int(m.InactivityPeriod / (24 * time.Hour))}
	case postgres.MailWebhookDisabled:
		if endpoint == nil {
			return mail.Message{}, fmt.Errorf("worker: mail %d: endpoint not read", m.ID)
		}
		at, err := postgres.ParseWebhookDisabledAt(m.IdempotencyKey)
		if err != nil {
			return mail.Message{}, fmt.Errorf("worker: mail %d: %w", m.ID, err)
		}
		data = mail.WebhookDisabled{Name: m.Name, URL: endpoint.URL, DisabledAt: at.In(m.Location), FailingFor: h.webhookCfg.DisableAfter}
	default:
		return mail.Message{}, fmt.Errorf("worker: mail %d: no template for kind %q", m.ID, m.Kind)
	}
	subject, text, html, err := mail.Render(m.Locale, data)
	if err != nil {
		return mail.Message{}, fmt.Errorf("worker: render mail %d: %w", m.ID, err)
	}
	key := m.IdempotencyKey
	if m.Kind == postgres.MailVerification {
		// A re-issued link changes the body; Resend refuses a reused key
		// with a different body, so the key names the token too.
		key += ":" + strconv.FormatInt(m.TokenID, 10)
	}
	return mail.Message{
		To: m.To, Subject: subject, Text: text, HTML: html, IdempotencyKey: key,
		Tags: map[string]string{"kind": string(m.Kind), "company": tagSafe(m.CompanyID)},
	}, nil
}

// tagSafe keeps what Resend allows in a tag value.
func tagSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// platformOf is the platform's name as the mail's company says it, else
// the worker's PLATFORM_NAME.
func (h *Handlers) platformOf(m postgres.Mail) string {
	if m.PlatformName != "" {
		return m.PlatformName
	}
	return h.platform
}
