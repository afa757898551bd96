package tasks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
)

// Store is what the host client reads and writes synchronously. The
// Postgres store (postgres.Store) implements it; the interface lives here so
// this package never imports the database layer.
type Store interface {
	// CheckAccount returns an account and its company's settings.
	CheckAccount(ctx context.Context, companyID, loginID string) (policy.Employee, policy.Company, error)
	// Administrators returns the company's administrators (employed, with
	// the permission), whom policy.CanAct narrows to those who can act:
	// read only for a platform ID a lock refuses.
	Administrators(ctx context.Context, companyID string) ([]policy.Employee, error)
	Redeem(ctx context.Context, r policy.Redemption) (accountID, noticeMailID int64, err error)

	// Directory sync (see directory.go). Each returns one of the Outcome
	// constants; version is the host's, at is when dormancy applied it.
	SyncCompany(ctx context.Context, c policy.Company, version int64, at time.Time) (outcome string, err error)
	SyncAccount(ctx context.Context, e policy.Employee, version int64, at time.Time) (accountID int64, outcome string, err error)
	SyncRetirement(ctx context.Context, companyID, loginID string, version int64, at time.Time) (accountID int64, outcome string, err error)

	// HoldTask keeps a task Redis did not take, in Postgres, until the
	// worker's requeue job hands it over (see RebuildTask).
	HoldTask(ctx context.Context, typ, taskID string, payload []byte, now time.Time) error
}

// Enqueuer is the part of *asynq.Client the host client uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Client is what a host's login handler holds.
type Client struct {
	queue  Enqueuer
	store  Store
	now    func() time.Time
	layout Layout
	// heldUntil is, for each critical queue whose enqueue failed, when the
	// client next tries it (*atomic.Int64, Unix nanoseconds of its
	// clock): during an outage each login costs one Postgres write, not a
	// wait for Redis first. Per queue, because with the queues spread over
	// a cluster's shards one shard down leaves the others' logins going
	// straight to Redis.
	heldUntil sync.Map
}

// NewClient returns a host client. now is the clock (time.Now in
// production); a nil now means time.Now.
func NewClient(queue Enqueuer, store Store, now func() time.Time, opts ...ClientOption) *Client {
	if now == nil {
		now = time.Now
	}
	c := &Client{queue: queue, store: store, now: now}
	for _, o := range opts {
		o(c)
	}
	return c
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithLayout makes the client enqueue by l: login attempts and directory
// events on the company's queue of l.CriticalQueues (CriticalQueue), each
// family retained as l.Retention says. Every host of one deployment
// should use the same l.CriticalQueues, though a worker serves any.
func WithLayout(l Layout) ClientOption { return func(c *Client) { c.layout = l } }

// CheckResult is the answer a login page shows.
type CheckResult struct {
	AccountID int64
	Decision  policy.Decision
	// DecidedAt is the instant the decision was made at. The attempt is
	// reported with it (LoginAttempt.DecidedAt), so the worker records
	// this same decision however long the task waits.
	DecidedAt time.Time
	// Administrators to contact, for a platform ID refused by a lock:
	// those who can act now (policy.CanAct).
	Administrators []policy.Administrator
	// Contact is whom to ask when no administrator can act: the company's
	// fallback contact. Empty otherwise.
	Contact string
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
// trip to Postgres (a second reads the administrators a platform ID refused
// by a lock is told to ask), without changing anything, at this client's clock: the
// host shows the result and then reports the attempt with
// ReportLoginAttempt, carrying the result's DecidedAt, or does both with
// Login. The method says only whether the login is interactive; it unlocks
// nothing (policy.Decide). An unknown account is policy.ErrNotFound.
func (c *Client) Check(ctx context.Context, companyID, loginID string, m policy.Method) (CheckResult, error) {
	if !m.Valid() {
		return CheckResult{}, fmt.Errorf("tasks.Client.Check: %w", &FieldError{Field: "method", Reason: fmt.Sprintf("unknown method %q (want %s)", m, methodList)})
	}
	now := c.now()
	e, co, err := c.store.CheckAccount(ctx, companyID, loginID)
	if err != nil {
		return CheckResult{}, fmt.Errorf("tasks.Client.Check: %w", err)
	}
	d := policy.Decide(e.Account, co.Policy, m, now)
	r := CheckResult{AccountID: e.ID, Decision: d, DecidedAt: now}
	if d.Outcome.Locked() {
		r.Message = LockMessages[co.Policy.Locale]
		if d.Outcome == policy.OutcomeAskAdministrator {
			admins, err := c.store.Administrators(ctx, companyID)
			if err != nil {
				return CheckResult{}, fmt.Errorf("tasks.Client.Check: %w", err)
			}
			r.Administrators = ableAdministrators(admins, co.Policy, now)
			if len(r.Administrators) == 0 {
				r.Contact = co.FallbackContact
			}
		}
	}
	return r, nil
}

// ableAdministrators keeps the administrators who can act at now.
func ableAdministrators(admins []policy.Employee, p policy.Policy, now time.Time) []policy.Administrator {
	var out []policy.Administrator
	for _, a := range admins {
		if policy.CanAct(a, p, now) {
			out = append(out, policy.Administrator{AccountID: a.ID, Department: a.Department, Name: a.Name})
		}
	}
	return out
}

// Login is Check and ReportLoginAttempt in one call, as a login page uses
// them: the attempt is reported with the instant of the answer, so the
// worker records the decision the host shows. p.DecidedAt must be empty.
func (c *Client) Login(ctx context.Context, p LoginAttempt) (CheckResult, error) {
	if !p.DecidedAt.IsZero() {
		return CheckResult{}, fmt.Errorf("tasks.Client.Login: %w", ErrDecidedAtSet)
	}
	res, err := c.Check(ctx, p.CompanyID, p.LoginID, p.Method)
	if err != nil {
		return CheckResult{}, err
	}
	p.DecidedAt = res.DecidedAt
	if err := c.ReportLoginAttempt(ctx, p); err != nil {
		return CheckResult{}, err
	}
	return res, nil
}

// ErrDecidedAtSet refuses a caller's decision time where dormancy stamps
// its own (Login, the HTTP API).
var ErrDecidedAtSet = &FieldError{Field: "decided_at", Reason: "set by dormancy when it answers the login; leave it out"}

// ReportLoginAttempt enqueues the attempt for the worker. A duplicate of an
// attempt already enqueued (same AttemptKey) is not an error. p.DecidedAt
// is the CheckResult's; left empty, the attempt is decided at this
// client's clock now, which may differ from what an earlier Check showed.
//
// When Redis does not take the task within HoldAfter, the attempt is held
// in Postgres and queued by the worker's requeue job once Redis is back:
// the decision needed only Postgres, so a Redis outage neither loses an
// attempt nor pushes the host to wave logins through. Only when Postgres
// fails too is the attempt refused with an error.
func (c *Client) ReportLoginAttempt(ctx context.Context, p LoginAttempt) error {
	now := c.now()
	if p.At.IsZero() {
		p.At = now
	}
	if p.DecidedAt.IsZero() {
		p.DecidedAt = now
	}
	if err := p.CheckTime(now); err != nil {
		return fmt.Errorf("tasks.Client.ReportLoginAttempt: %w", err)
	}
	t, err := NewLoginAttemptTask(p)
	if err != nil {
		return err
	}
	err = errRedisResting
	q := CriticalQueue(p.CompanyID, c.layout.CriticalQueues)
	v, ok := c.heldUntil.Load(q)
	if !ok { // a queue's first attempt; every later one finds it
		v, _ = c.heldUntil.LoadOrStore(q, new(atomic.Int64))
	}
	heldUntil := v.(*atomic.Int64)
	if now.UnixNano() >= heldUntil.Load() {
		qctx, cancel := context.WithTimeout(ctx, HoldAfter)
		err = c.Enqueue(qctx, t)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		heldUntil.Store(now.Add(RetryRedisAfter).UnixNano())
	}
	if herr := c.store.HoldTask(ctx, t.Type(), LoginAttemptTaskID(p.AttemptKey), t.Payload(), now); herr != nil {
		return fmt.Errorf("%w; not held either: %w", err, herr)
	}
	return nil
}

// HoldAfter is how long ReportLoginAttempt waits for Redis before it holds
// the attempt in Postgres: a login page must not wait out a partition.
// After a failure the client holds every attempt of that queue for
// RetryRedisAfter before it tries Redis again.
const (
	HoldAfter       = time.Second
	RetryRedisAfter = 5 * time.Second
)

var errRedisResting = errors.New("tasks: Redis failed moments ago; attempt held without trying it")

// RebuildTask makes a held task (Store.HoldTask) again from its type and
// payload, with the options its constructor gives it.
func RebuildTask(typ string, payload []byte) (*asynq.Task, error) {
	switch typ {
	case TypeLoginAttempt:
		p, err := DecodeLoginAttempt(payload)
		if err != nil {
			return nil, fmt.Errorf("tasks.RebuildTask(%s): %w", typ, err)
		}
		return NewLoginAttemptTask(p)
	}
	return nil, fmt.Errorf("tasks.RebuildTask: %q is never held", typ)
}

// Enqueue hands a task to the queue of the client's layout, treating
// "already there" as success: every task ID in this package names its
// work, so a conflict means the work is already queued or done.
func (c *Client) Enqueue(ctx context.Context, t *asynq.Task) error {
	Inject(ctx, t)
	_, err := c.queue.EnqueueContext(ctx, t, c.layout.Options(t)...)
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
	e, co, err := c.store.CheckAccount(ctx, companyID, loginID)
	if err != nil {
		return Profile{}, fmt.Errorf("tasks.Client.Profile: %w", err)
	}
	return Profile{
		AccountID: e.ID, Name: e.Name, Department: e.Department, LoginDate: e.LastLoginAt,
		State: e.State, Reason: e.Reason, UnlockedUntil: e.UnlockedUntil, Location: co.Policy.Location,
	}, nil
}
