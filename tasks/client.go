package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
)

// Store is what the host client reads and writes synchronously. The
// Postgres store (postgres.Store) implements it; the interface lives here so
// this package never imports the database layer.
type Store interface {
	CheckAccount(ctx context.Context, companyID, loginID string) (policy.Employee, policy.Company, []policy.Administrator, error)
	Redeem(ctx context.Context, r policy.Redemption) (accountID, noticeMailID int64, err error)

	// Directory sync (see directory.go). Each returns one of the Outcome
	// constants; version is the host's, at is when dormancy applied it.
	SyncCompany(ctx context.Context, c policy.Company, version int64, at time.Time) (outcome string, err error)
	SyncAccount(ctx context.Context, e policy.Employee, version int64, at time.Time) (accountID int64, outcome string, err error)
	SyncRetirement(ctx context.Context, companyID, loginID string, version int64, at time.Time) (accountID int64, outcome string, err error)
}

// Enqueuer is the part of *asynq.Client the host client uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Client is what a host's login handler holds.
type Client struct {
	queue Enqueuer
	store Store
	now   func() time.Time
}

// NewClient returns a host client. now is the clock (time.Now in
// production); a nil now means time.Now.
func NewClient(queue Enqueuer, store Store, now func() time.Time) *Client {
	if now == nil {
		now = time.Now
	}
	return &Client{queue: queue, store: store, now: now}
}

// CheckResult is the answer a login page shows.
type CheckResult struct {
	AccountID int64
	Decision  policy.Decision
	// Administrators to contact, for a platform ID refused by a lock.
	Administrators []policy.Administrator
	// Message is the manual's sentence for a locked account, in the
	// company's locale; empty when the login is allowed.
	Message string
}

// LockMessages are the sentences shown to a user refused by a lock.
var LockMessages = map[policy.Locale]string{
	policy.LocaleJA: "一定期間ログインがなかったため、セキュリティ上の理由によりアカウントをロックしました",
	policy.LocaleEN: "Your account was locked for security reasons because it was not used for a certain period.",
}

// Check decides a login that passed the host's password check, in one round
// trip to Postgres, without changing anything: the host shows the result and
// then reports the attempt with ReportLoginAttempt, which makes the change.
// An unknown account is policy.ErrNotFound.
func (c *Client) Check(ctx context.Context, companyID, loginID string, m policy.Method) (CheckResult, error) {
	e, co, admins, err := c.store.CheckAccount(ctx, companyID, loginID)
	if err != nil {
		return CheckResult{}, fmt.Errorf("tasks.Client.Check: %w", err)
	}
	d := policy.Decide(e.Account, co.Policy, m, c.now())
	r := CheckResult{AccountID: e.ID, Decision: d}
	if d.Outcome.Locked() {
		r.Message = LockMessages[co.Policy.Locale]
		if d.Outcome == policy.OutcomeAskAdministrator {
			r.Administrators = admins
		}
	}
	return r, nil
}

// ReportLoginAttempt enqueues the attempt for the worker. A duplicate of an
// attempt already enqueued (same AttemptKey) is not an error.
func (c *Client) ReportLoginAttempt(ctx context.Context, p LoginAttempt) error {
	if p.At.IsZero() {
		p.At = c.now()
	}
	if err := p.CheckTime(c.now()); err != nil {
		return fmt.Errorf("tasks.Client.ReportLoginAttempt: %w", err)
	}
	t, err := NewLoginAttemptTask(p)
	if err != nil {
		return err
	}
	return c.Enqueue(ctx, t)
}

// Enqueue hands a task to the queue, treating "already there" as success:
// every task ID in this package names its work, so a conflict means the
// work is already queued or done.
func (c *Client) Enqueue(ctx context.Context, t *asynq.Task) error {
	_, err := c.queue.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("tasks: enqueue %s: %w", t.Type(), err)
	}
	return nil
}

// RedeemResult says what a redeemed link did.
type RedeemResult struct {
	AccountID int64
	// NoticeQueued is false when the owner's unlock notice could not be
	// handed to the queue now; it stays in the outbox and the scheduler
	// hands it over later.
	NoticeQueued bool
}

// Redeem uses a verification link after the host checked the password
// typed on the form the link led to. It consumes the token, unlocks the
// account and sets its login date atomically. Any unusable link is
// policy.ErrTokenRefused, without saying why.
func (c *Client) Redeem(ctx context.Context, companyID, loginID, token, requestID string) (RedeemResult, error) {
	hash, err := policy.ParseToken(token)
	if err != nil {
		return RedeemResult{}, fmt.Errorf("tasks.Client.Redeem: %w", policy.ErrTokenRefused)
	}
	id, mailID, err := c.store.Redeem(ctx, policy.Redemption{
		CompanyID: companyID, LoginID: loginID, TokenHash: hash, At: c.now(), RequestID: requestID,
	})
	if err != nil {
		return RedeemResult{}, fmt.Errorf("tasks.Client.Redeem: %w", err)
	}
	r := RedeemResult{AccountID: id}
	if mailID != 0 {
		t, err := NewEmailTask(TypeEmailNotice, Email{MailID: mailID})
		r.NoticeQueued = err == nil && c.Enqueue(ctx, t) == nil
	}
	return r, nil
}

// Profile is what a host's profile or employee page shows of an account.
type Profile struct {
	AccountID  int64
	Name       string
	Department string
	// LoginDate is the last interactive login; zero if never.
	LoginDate     time.Time
	State         policy.LockState
	Reason        policy.LockReason
	UnlockedUntil time.Time
	Location      *time.Location
}

// Profile reads an account's login date and lock state in one round trip.
func (c *Client) Profile(ctx context.Context, companyID, loginID string) (Profile, error) {
	e, co, _, err := c.store.CheckAccount(ctx, companyID, loginID)
	if err != nil {
		return Profile{}, fmt.Errorf("tasks.Client.Profile: %w", err)
	}
	return Profile{
		AccountID: e.ID, Name: e.Name, Department: e.Department, LoginDate: e.LastLoginAt,
		State: e.State, Reason: e.Reason, UnlockedUntil: e.UnlockedUntil, Location: co.Policy.Location,
	}, nil
}
