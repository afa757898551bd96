package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
)

// Directory sync: the host platform owns its companies and employees, and
// dormancy decides on a copy of them. A stale copy is a security bug (an
// alert to someone who left, a link to an address the employee no longer
// owns), so every change the host makes is sent here as an event.
//
// Every event carries the host's version of the record, a number that grows
// with each change (a counter, or the updated-at time in milliseconds). An
// event whose version is not newer than the stored one changes nothing: a
// late delivery of an older event is "stale", a second delivery of the same
// event is "unchanged". So events may arrive in any order, any number of
// times.

// Outcomes of a directory event, as DirectoryResult.Outcome.
const (
	OutcomeCreated   = "created"
	OutcomeUpdated   = "updated"
	OutcomeUnchanged = "unchanged"
	// OutcomeStale: the stored record has a newer version; nothing changed.
	OutcomeStale = "stale"
)

// DirectoryResult says what a directory event did.
type DirectoryResult struct {
	// AccountID is dormancy's id of the account; 0 for a company.
	AccountID int64
	Outcome   string
}

// Limits of company settings, in the payload's units; the bounds
// themselves are policy's (policy.Policy.Validate).
const (
	MaxInactivityDays         = int(policy.MaxInactivityPeriod / (24 * time.Hour))
	MaxVerificationTTLSeconds = int(policy.MaxVerificationTTL / time.Second)
	MaxPrelockWarningDay      = 365
	MaxPrelockWarnings        = 10
	MaxFallbackContact        = 500
	MaxPlatformName           = 100
)

// Company is a tenant as the host describes it. A setting left at its zero
// value takes the manual's default (Asia/Tokyo, 90 days, 24 hours, ja, no
// warnings); an upsert replaces every setting, so a setting left out is
// reset to its default.
type Company struct {
	Contract
	CompanyID string `json:"company_id"`
	Version   int64  `json:"version"`
	Name      string `json:"name"`
	// TimeZone is an IANA zone name; "same day" and local times in emails
	// follow it.
	TimeZone       string `json:"time_zone,omitempty"`
	InactivityDays int    `json:"inactivity_days,omitempty"`
	// VerificationTTLSeconds is how long a verification link works.
	VerificationTTLSeconds int    `json:"verification_ttl_seconds,omitempty"`
	Locale                 string `json:"locale,omitempty"`
	// PrelockWarningDays: days before the lock on which an email-ID owner
	// is warned, each 1 to 365 and shorter than the inactivity period.
	PrelockWarningDays []int `json:"prelock_warning_days,omitempty"`
	// FallbackContact is whom a locked platform-ID user asks when no
	// administrator of the company can act (a help desk, a phone number);
	// the lock message shows it. Free text, at most 500 bytes.
	FallbackContact string `json:"fallback_contact,omitempty"`
	// PlatformName is the host platform's name as this company's emails
	// say it (the manual's "BtoBプラットフォーム"); empty uses the
	// worker's PLATFORM_NAME. One line, at most 100 bytes.
	PlatformName string `json:"platform_name,omitempty"`
	// Digest opts the company into the daily digest: "administrators" or
	// "recipients" (the login notification recipients) get it at 09:00
	// company time; "off" or absent sends none. Added in contract version 3.
	Digest string `json:"digest,omitempty"`
	// NoticeOnLock: when the sweep locks an account with an address, its
	// owner is told how to get back in (the link flow for an email ID, the
	// administrators for a platform ID). Off by default. Added in contract
	// version 3.
	NoticeOnLock bool `json:"notice_on_lock,omitempty"`

	// explicitZero lists settings a JSON document set to 0 or "" rather
	// than leaving out. Go callers cannot tell the two apart and get the
	// default; a JSON sender who wrote "inactivity_days": 0 meant it, and
	// is told it is invalid instead of silently getting 90 days.
	explicitZero []string
}

// UnmarshalJSON decodes strictly (unknown fields are refused wherever a
// Company is decoded, by the worker or by an HTTP handler) and notes the
// settings given as an explicit zero, which Validate refuses.
func (c *Company) UnmarshalJSON(data []byte) error {
	type plain Company // the same fields without this method
	var p plain
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	var present map[string]json.RawMessage
	if err := json.Unmarshal(data, &present); err != nil {
		return err
	}
	*c = Company(p)
	c.explicitZero = nil
	for _, s := range []struct {
		field string
		zero  bool
	}{
		{"time_zone", p.TimeZone == ""},
		{"inactivity_days", p.InactivityDays == 0},
		{"verification_ttl_seconds", p.VerificationTTLSeconds == 0},
		{"locale", p.Locale == ""},
	} {
		if _, ok := present[s.field]; ok && s.zero {
			c.explicitZero = append(c.explicitZero, s.field)
		}
	}
	return nil
}

// Validate checks every field and names the first bad one.
func (c *Company) Validate() error {
	_, err := c.PolicyCompany()
	return err
}

// PolicyCompany validates the company and returns it as the policy sees
// it, defaults filled in. The alert window and resend interval are not the
// host's to set; they are left zero here and the store keeps its own
// values for them.
func (c *Company) PolicyCompany() (policy.Company, error) {
	if err := checkCompanyID(c.CompanyID); err != nil {
		return policy.Company{}, err
	}
	if err := checkVersion(c.Version); err != nil {
		return policy.Company{}, err
	}
	if err := checkText("name", c.Name, false, 200); err != nil {
		return policy.Company{}, err
	}
	if err := CheckFallbackContact(c.FallbackContact); err != nil {
		return policy.Company{}, err
	}
	if err := checkText("platform_name", c.PlatformName, false, MaxPlatformName); err != nil {
		return policy.Company{}, err
	}
	digest := policy.Digest(c.Digest)
	if digest == "" {
		digest = policy.DigestOff
	}
	if !digest.Valid() {
		return policy.Company{}, &FieldError{Field: "digest", Reason: fmt.Sprintf("unknown digest %q (want off, administrators or recipients)", short(c.Digest))}
	}
	zeroGiven := func(field string) bool { return slices.Contains(c.explicitZero, field) }

	tz := c.TimeZone
	switch {
	case zeroGiven("time_zone"):
		return policy.Company{}, &FieldError{Field: "time_zone", Reason: "empty; leave it out for " + policy.DefaultTimeZone}
	case tz == "":
		tz = policy.DefaultTimeZone
	}
	loc, err := loadZone(tz)
	if err != nil {
		return policy.Company{}, err
	}

	// Zero means "the default" unless the host wrote the zero; the bounds
	// are checked by the policy below.
	days := c.InactivityDays
	if days == 0 && !zeroGiven("inactivity_days") {
		days = int(policy.DefaultInactivityPeriod / (24 * time.Hour))
	}
	ttl := c.VerificationTTLSeconds
	if ttl == 0 && !zeroGiven("verification_ttl_seconds") {
		ttl = int(policy.DefaultVerificationTTL / time.Second)
	}

	locale := policy.Locale(c.Locale)
	switch {
	case zeroGiven("locale"):
		return policy.Company{}, &FieldError{Field: "locale", Reason: "empty; leave it out for " + string(policy.DefaultLocale)}
	case locale == "":
		locale = policy.DefaultLocale
	case !locale.Valid():
		return policy.Company{}, &FieldError{Field: "locale", Reason: fmt.Sprintf("unknown locale %q (want ja or en)", short(c.Locale))}
	}

	pol := policy.Policy{
		Location:         loc,
		InactivityPeriod: time.Duration(days) * 24 * time.Hour,
		VerificationTTL:  time.Duration(ttl) * time.Second,
		Locale:           locale,
	}
	// The defaults of the settings the host does not set, so that the
	// policy's bounds of those hold too.
	def := policy.DefaultPolicy()
	checked := pol
	checked.AlertWindow, checked.ResendInterval = def.AlertWindow, def.ResendInterval
	var pf *policy.FieldError
	if err := checked.Validate(); errors.As(err, &pf) {
		return policy.Company{}, &FieldError{Field: pf.Field, Reason: pf.Reason}
	} else if err != nil {
		return policy.Company{}, err
	}
	warn, err := checkPrelockDays(c.PrelockWarningDays, days)
	if err != nil {
		return policy.Company{}, err
	}
	return policy.Company{
		ID:                 c.CompanyID,
		Name:               c.Name,
		Policy:             pol,
		PrelockWarningDays: warn,
		FallbackContact:    c.FallbackContact,
		PlatformName:       c.PlatformName,
		Digest:             digest,
		NoticeOnLock:       c.NoticeOnLock,
	}, nil
}

// CheckFallbackContact validates a company's fallback contact wherever it
// comes from: the company upsert or the import's -fallback-contact.
func CheckFallbackContact(s string) error {
	return checkText("fallback_contact", s, false, MaxFallbackContact)
}

// loadZone accepts IANA zone names only: "Local" would mean whatever zone
// the worker's machine is in.
func loadZone(name string) (*time.Location, error) {
	if err := checkText("time_zone", name, true, 64); err != nil {
		return nil, err
	}
	if name == "Local" {
		return nil, &FieldError{Field: "time_zone", Reason: `"Local" is not an IANA time zone`}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, &FieldError{Field: "time_zone", Reason: fmt.Sprintf("unknown IANA time zone %q", short(name))}
	}
	return loc, nil
}

// checkPrelockDays returns the warning days largest first, the order in
// which they fall due.
func checkPrelockDays(days []int, inactivityDays int) ([]int, error) {
	if len(days) > MaxPrelockWarnings {
		return nil, &FieldError{Field: "prelock_warning_days", Reason: fmt.Sprintf("at most %d warnings", MaxPrelockWarnings)}
	}
	out := make([]int, 0, len(days))
	for _, d := range days {
		switch {
		case d < 1 || d > MaxPrelockWarningDay:
			return nil, &FieldError{Field: "prelock_warning_days", Reason: fmt.Sprintf("each day must be 1 to %d, got %d", MaxPrelockWarningDay, d)}
		case d >= inactivityDays:
			return nil, &FieldError{Field: "prelock_warning_days", Reason: fmt.Sprintf("%d days ahead is not within the %d-day inactivity period", d, inactivityDays)}
		case slices.Contains(out, d):
			return nil, &FieldError{Field: "prelock_warning_days", Reason: fmt.Sprintf("%d appears twice", d)}
		}
		out = append(out, d)
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, nil
}

// Account is an employee as the host describes it, keyed by company and
// login ID (login IDs are unique within a company, not across companies).
// An upsert replaces every field and makes a retired account active again
// (a rehire); the login date only ever moves forward, since dormancy
// records logins of its own.
type Account struct {
	Contract
	CompanyID string `json:"company_id"`
	LoginID   string `json:"login_id"`
	Version   int64  `json:"version"`
	// IDKind is "email" (the login ID is an address; the owner unlocks by
	// email) or "platform" (an administrator unlocks).
	IDKind string `json:"id_kind"`
	// Email is where mail for the person goes; for an email ID it defaults
	// to the login ID.
	Email              string `json:"email,omitempty"`
	Name               string `json:"name"`
	Department         string `json:"department,omitempty"`
	CanManageEmployees bool   `json:"can_manage_employees"`
	// Exempt accounts (service accounts) never turn dormant. An exemption
	// says why and who granted it, and may end (exempt_until): after that
	// the account follows the rule again. Added in contract version 3.
	Exempt          bool       `json:"exempt"`
	ExemptReason    string     `json:"exempt_reason,omitempty"`
	ExemptGrantedBy string     `json:"exempt_granted_by,omitempty"`
	ExemptUntil     *time.Time `json:"exempt_until,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	// LastLoginAt is the last interactive login at the host; nil if never.
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
}

// Validate checks every field and names the first bad one.
func (a *Account) Validate() error {
	if err := a.CheckFields(); err != nil {
		return err
	}
	return checkVersion(a.Version)
}

// CheckFields checks every field but the version. The import calls it
// alone: its files may leave versions out.
func (a *Account) CheckFields() error {
	if err := checkCompanyID(a.CompanyID); err != nil {
		return err
	}
	if err := checkText("login_id", a.LoginID, true, 254); err != nil {
		return err
	}
	switch policy.IDKind(a.IDKind) {
	case policy.IDKindEmail:
		if a.Email == "" && !isAddress(a.LoginID) {
			return &FieldError{Field: "login_id", Reason: "an email ID must be an email address (or give email)"}
		}
	case policy.IDKindPlatform:
	case "":
		return &FieldError{Field: "id_kind", Reason: "required (email or platform)"}
	default:
		return &FieldError{Field: "id_kind", Reason: fmt.Sprintf("unknown ID kind %q (want email or platform)", short(a.IDKind))}
	}
	if a.Email != "" && !isAddress(a.Email) {
		return &FieldError{Field: "email", Reason: "not an email address"}
	}
	if err := checkText("name", a.Name, true, 200); err != nil {
		return err
	}
	if err := checkText("department", a.Department, false, 200); err != nil {
		return err
	}
	if err := checkText("exempt_reason", a.ExemptReason, false, 500); err != nil {
		return err
	}
	if err := checkText("exempt_granted_by", a.ExemptGrantedBy, false, 200); err != nil {
		return err
	}
	if !a.Exempt && (a.ExemptReason != "" || a.ExemptGrantedBy != "" || a.ExemptUntil != nil) {
		return &FieldError{Field: "exempt", Reason: "false, yet the exemption's terms are given"}
	}
	if a.ExemptUntil != nil {
		if err := checkYear("exempt_until", *a.ExemptUntil); err != nil {
			return err
		}
	}
	if a.CreatedAt.IsZero() {
		return &FieldError{Field: "created_at", Reason: "required"}
	}
	if err := checkYear("created_at", a.CreatedAt); err != nil {
		return err
	}
	if a.LastLoginAt != nil {
		if a.LastLoginAt.IsZero() {
			return &FieldError{Field: "last_login_at", Reason: "zero time; leave it out for never"}
		}
		if err := checkYear("last_login_at", *a.LastLoginAt); err != nil {
			return err
		}
	}
	return nil
}

// Employee returns the account as the policy sees it, address defaulted.
func (a *Account) Employee() policy.Employee {
	e := policy.Employee{
		CompanyID: a.CompanyID, LoginID: a.LoginID, Email: a.Email, Name: a.Name,
		Department: a.Department, CanManageEmployees: a.CanManageEmployees,
		ExemptReason: a.ExemptReason, ExemptGrantedBy: a.ExemptGrantedBy,
		Account: policy.Account{IDKind: policy.IDKind(a.IDKind), Exempt: a.Exempt, CreatedAt: a.CreatedAt},
	}
	if a.ExemptUntil != nil {
		e.ExemptUntil = *a.ExemptUntil
	}
	if e.Email == "" && e.IDKind == policy.IDKindEmail {
		e.Email = a.LoginID
	}
	if a.LastLoginAt != nil {
		e.LastLoginAt = *a.LastLoginAt
	}
	return e
}

// Retirement says an employee left. A retired account is never locked,
// unlocked or alerted on again, its links stop working, and it is removed
// from the login notification recipients.
type Retirement struct {
	Contract
	CompanyID string `json:"company_id"`
	LoginID   string `json:"login_id"`
	Version   int64  `json:"version"`
}

// Validate checks every field and names the first bad one.
func (r *Retirement) Validate() error {
	if err := checkCompanyID(r.CompanyID); err != nil {
		return err
	}
	if err := checkText("login_id", r.LoginID, true, 254); err != nil {
		return err
	}
	return checkVersion(r.Version)
}

// short keeps an echoed value from making an error message as long as
// whatever was sent.
func short(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return truncateUTF8(s, max) + "…"
}

func checkVersion(v int64) error {
	if v < 1 {
		return &FieldError{Field: "version", Reason: "required, a positive number that grows with every change at the host"}
	}
	return nil
}

func checkYear(field string, t time.Time) error {
	if y := t.Year(); y < 1970 || y > 9999 {
		return &FieldError{Field: field, Reason: "outside the years 1970-9999"}
	}
	return nil
}

// isAddress accepts a bare address (no display name, no comments), as a
// mail header's To field would carry it.
func isAddress(s string) bool {
	if len(s) < 3 || len(s) > 254 || checkText("email", s, true, 254) != nil {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

// directoryTask is the options every directory task gets. There is no task
// ID: versions in the database make a repeated event harmless, and an ID
// derived from the event would keep a corrected resend out of the queue
// for as long as asynq remembers the first (archived ones for months).
func directoryTask(typ string, p stamper) (*asynq.Task, error) {
	return marshal(typ, p,
		asynq.Queue(QueueCritical),
		asynq.MaxRetry(10),
		asynq.Timeout(30*time.Second),
		asynq.Retention(24*time.Hour),
	)
}

// NewUpsertCompanyTask builds a directory:upsert-company task.
func NewUpsertCompanyTask(c Company) (*asynq.Task, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewUpsertCompanyTask: %w", err)
	}
	return directoryTask(TypeUpsertCompany, &c)
}

// DecodeUpsertCompany parses and validates a directory:upsert-company
// payload.
func DecodeUpsertCompany(data []byte) (Company, error) {
	var c Company
	if err := decode(data, &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// NewUpsertAccountTask builds a directory:upsert-account task.
func NewUpsertAccountTask(a Account) (*asynq.Task, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewUpsertAccountTask: %w", err)
	}
	return directoryTask(TypeUpsertAccount, &a)
}

// DecodeUpsertAccount parses and validates a directory:upsert-account
// payload.
func DecodeUpsertAccount(data []byte) (Account, error) {
	var a Account
	if err := decode(data, &a); err != nil {
		return a, err
	}
	return a, a.Validate()
}

// NewRetireAccountTask builds a directory:retire-account task.
func NewRetireAccountTask(r Retirement) (*asynq.Task, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewRetireAccountTask: %w", err)
	}
	return directoryTask(TypeRetireAccount, &r)
}

// DecodeRetireAccount parses and validates a directory:retire-account
// payload.
func DecodeRetireAccount(data []byte) (Retirement, error) {
	var r Retirement
	if err := decode(data, &r); err != nil {
		return r, err
	}
	return r, r.Validate()
}

// UpsertCompany creates or updates a company and its settings now, in one
// transaction. Invalid settings are a *FieldError naming the field.
func (c *Client) UpsertCompany(ctx context.Context, co Company) (DirectoryResult, error) {
	pc, err := co.PolicyCompany()
	if err != nil {
		return DirectoryResult{}, fmt.Errorf("tasks.Client.UpsertCompany(%q): %w", co.CompanyID, err)
	}
	outcome, err := c.store.SyncCompany(ctx, pc, co.Version, c.now())
	if err != nil {
		return DirectoryResult{}, fmt.Errorf("tasks.Client.UpsertCompany(%q): %w", co.CompanyID, err)
	}
	return DirectoryResult{Outcome: outcome}, nil
}

// UpsertAccount creates or updates an employee now. A company dormancy
// does not know is policy.ErrNotFound: create the company first.
//
// A changed address revokes the account's outstanding verification links
// in the same transaction; a removed employee-management permission takes
// effect on the next unlock or recipients change the account attempts.
func (c *Client) UpsertAccount(ctx context.Context, a Account) (DirectoryResult, error) {
	if err := a.Validate(); err != nil {
		return DirectoryResult{}, fmt.Errorf("tasks.Client.UpsertAccount(%q, %q): %w", a.CompanyID, a.LoginID, err)
	}
	if err := a.CheckTimes(c.now()); err != nil {
		return DirectoryResult{}, fmt.Errorf("tasks.Client.UpsertAccount(%q, %q): %w", a.CompanyID, a.LoginID, err)
	}
	id, outcome, err := c.store.SyncAccount(ctx, a.Employee(), a.Version, c.now())
	if err != nil {
		return DirectoryResult{}, fmt.Errorf("tasks.Client.UpsertAccount(%q, %q): %w", a.CompanyID, a.LoginID, err)
	}
	return DirectoryResult{AccountID: id, Outcome: outcome}, nil
}

// CheckTimes refuses a creation time or login date in the future of the
// clock reading now (beyond MaxAttemptSkew for clocks that differ a
// little): a login date in the future would put the account's lock off
// until long after it went dormant.
func (a *Account) CheckTimes(now time.Time) error {
	limit := now.Add(MaxAttemptSkew)
	if a.CreatedAt.After(limit) {
		return &FieldError{Field: "created_at", Reason: fmt.Sprintf("%s is in the future", a.CreatedAt.UTC().Format(time.RFC3339))}
	}
	if a.LastLoginAt != nil && a.LastLoginAt.After(limit) {
		return &FieldError{Field: "last_login_at", Reason: fmt.Sprintf("%s is in the future", a.LastLoginAt.UTC().Format(time.RFC3339))}
	}
	return nil
}

// RetireAccount retires an employee now: live links revoked, pending mail
// about or to the person dropped, removed from the login notification
// recipients, never locked or unlocked again. Retiring a login ID dormancy
// has not seen yet records the retirement ("created"), so an older upsert
// delivered later cannot bring the person back.
func (c *Client) RetireAccount(ctx context.Context, r Retirement) (DirectoryResult, error) {
	if err := r.Validate(); err != nil {
		return DirectoryResult{}, fmt.Errorf("tasks.Client.RetireAccount(%q, %q): %w", r.CompanyID, r.LoginID, err)
	}
	id, outcome, err := c.store.SyncRetirement(ctx, r.CompanyID, r.LoginID, r.Version, c.now())
	if err != nil {
		return DirectoryResult{}, fmt.Errorf("tasks.Client.RetireAccount(%q, %q): %w", r.CompanyID, r.LoginID, err)
	}
	return DirectoryResult{AccountID: id, Outcome: outcome}, nil
}
