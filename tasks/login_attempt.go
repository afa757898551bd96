package tasks

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
)

// MaxUserAgentBytes is how much of a User-Agent is kept. Real ones are a
// few hundred bytes; the constructor cuts longer ones so a hostile header
// cannot bloat the queue, and the decoder refuses anything beyond.
const MaxUserAgentBytes = 1024

// LoginAttempt reports one login at the host that passed the password (or
// saved-login) check. The worker records it, updates the login date or
// locks the account, and sends the emails the lock calls for.
type LoginAttempt struct {
	Contract
	// AttemptKey identifies the attempt across redeliveries; the
	// constructor fills it when empty.
	AttemptKey string        `json:"attempt_key"`
	CompanyID  string        `json:"company_id"`
	LoginID    string        `json:"login_id"`
	Method     policy.Method `json:"method"`
	IP         string        `json:"ip,omitempty"`
	UserAgent  string        `json:"user_agent,omitempty"`
	// At is the host's time of the attempt. It dates the record and
	// nothing else: it never moves a threshold or widens a window.
	At time.Time `json:"at"`
	// DecidedAt is when dormancy answered the login: stamped by the HTTP
	// API, or by Client.Check for a Go host, and carried here so that the
	// worker decides at that same instant and records the answer the host
	// showed, however long the task waited (a login at 23:59:50 counts
	// even if it runs after the midnight relock). A host enqueueing the
	// task itself without asking leaves it out; the worker's clock then
	// decides. It is held within MaxAttemptSkew ahead of and MaxAttemptAge
	// behind the worker's clock.
	DecidedAt time.Time `json:"decided_at,omitzero"`
	RequestID string    `json:"request_id,omitempty"`
}

// Validate checks every field and names the first bad one.
func (p *LoginAttempt) Validate() error {
	if err := checkText("attempt_key", p.AttemptKey, true, 128); err != nil {
		return err
	}
	if err := checkCompanyID(p.CompanyID); err != nil {
		return err
	}
	if err := checkText("login_id", p.LoginID, true, 254); err != nil {
		return err
	}
	if !p.Method.Valid() {
		return &FieldError{Field: "method", Reason: fmt.Sprintf("unknown method %q (want %s)", p.Method, methodList)}
	}
	if p.IP != "" {
		if _, err := netip.ParseAddr(p.IP); err != nil {
			return &FieldError{Field: "ip", Reason: "not an IP address"}
		}
	}
	if len(p.UserAgent) > MaxUserAgentBytes {
		return &FieldError{Field: "user_agent", Reason: fmt.Sprintf("longer than %d bytes", MaxUserAgentBytes)}
	}
	if err := checkText("user_agent", p.UserAgent, false, MaxUserAgentBytes); err != nil {
		return err
	}
	if p.At.IsZero() {
		return &FieldError{Field: "at", Reason: "required"}
	}
	if p.At.Year() < 2000 || p.At.Year() > 9999 {
		return &FieldError{Field: "at", Reason: "outside the years 2000-9999"}
	}
	if !p.DecidedAt.IsZero() && (p.DecidedAt.Year() < 2000 || p.DecidedAt.Year() > 9999) {
		return &FieldError{Field: "decided_at", Reason: "outside the years 2000-9999"}
	}
	return checkText("request_id", p.RequestID, false, 128)
}

// Times in an attempt are held to the worker's clock: MaxAttemptSkew ahead
// allows for clocks that differ a little, MaxAttemptAge behind for a queue
// that waited out an outage.
const (
	MaxAttemptSkew = 5 * time.Minute
	MaxAttemptAge  = 7 * 24 * time.Hour
)

// CheckTime refuses attempt times that the clock reading now says cannot
// be right. One from the future is not a delayed delivery but a wrong
// clock; one older than MaxAttemptAge is a wrong clock or a replay.
func (p *LoginAttempt) CheckTime(now time.Time) error {
	if err := checkAttemptTime("at", p.At, now); err != nil {
		return err
	}
	if p.DecidedAt.IsZero() {
		return nil
	}
	return checkAttemptTime("decided_at", p.DecidedAt, now)
}

func checkAttemptTime(field string, t, now time.Time) error {
	switch {
	case t.After(now.Add(MaxAttemptSkew)):
		return &FieldError{Field: field, Reason: fmt.Sprintf("%s is more than %v ahead of the worker's clock (%s)",
			t.UTC().Format(time.RFC3339), MaxAttemptSkew, now.UTC().Format(time.RFC3339))}
	case t.Before(now.Add(-MaxAttemptAge)):
		return &FieldError{Field: field, Reason: fmt.Sprintf("%s is more than 7 days before the worker's clock (%s)",
			t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	return nil
}

// DecisionTime is the instant the attempt is decided at: DecidedAt, or now
// (the worker's clock) for a task its host enqueued without asking.
func (p *LoginAttempt) DecisionTime(now time.Time) time.Time {
	if p.DecidedAt.IsZero() {
		return now
	}
	return p.DecidedAt
}

// methodList names the valid methods for error messages.
var methodList = func() string {
	s := make([]string, len(policy.Methods))
	for i, m := range policy.Methods {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}()

// Complete fills what a host may leave out: the attempt key, and a
// User-Agent cut to MaxUserAgentBytes (a real one is a few hundred bytes;
// a longer one is not worth refusing a login record over).
func (p *LoginAttempt) Complete() {
	if p.AttemptKey == "" {
		p.AttemptKey = NewKey()
	}
	p.UserAgent = truncateUTF8(p.UserAgent, MaxUserAgentBytes)
}

// NewLoginAttemptTask builds a login:attempt task. The task ID is derived
// from the attempt key, so a host that enqueues the same attempt twice is
// told ErrTaskIDConflict instead of doing the work twice.
func NewLoginAttemptTask(p LoginAttempt) (*asynq.Task, error) {
	p.Complete()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewLoginAttemptTask: %w", err)
	}
	return marshal(TypeLoginAttempt, &p,
		asynq.Queue(QueueCritical),
		asynq.TaskID(LoginAttemptTaskID(p.AttemptKey)),
		asynq.MaxRetry(10),
		asynq.Timeout(30*time.Second),
		asynq.Retention(24*time.Hour),
	)
}

// DecodeLoginAttempt parses and validates a login:attempt payload.
func DecodeLoginAttempt(data []byte) (LoginAttempt, error) {
	var p LoginAttempt
	if err := decode(data, &p); err != nil {
		return p, err
	}
	return p, p.Validate()
}

// NewKey returns a random 128-bit key for an attempt or a request.
func NewKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// LoginAttemptTaskID is the task ID of the attempt with this key: a host
// that reports the same attempt twice enqueues it once.
func LoginAttemptTaskID(attemptKey string) string { return TypeLoginAttempt + ":" + attemptKey }
