package policy

import (
	"fmt"
	"time"
)

// Defaults are the manual's numbers; a company may override each.
const (
	DefaultTimeZone         = "Asia/Tokyo"
	DefaultInactivityPeriod = 90 * 24 * time.Hour
	DefaultVerificationTTL  = 24 * time.Hour
	DefaultAlertWindow      = time.Hour
	DefaultResendInterval   = 5 * time.Minute
	DefaultLocale           = LocaleJA
)

// Locale is the language of a company's emails and pages.
type Locale string

const (
	LocaleJA Locale = "ja"
	LocaleEN Locale = "en"
)

// Valid reports whether l is a supported locale.
func (l Locale) Valid() bool { return l == LocaleJA || l == LocaleEN }

// ParseLocale accepts the supported locale names.
func ParseLocale(s string) (Locale, error) {
	if l := Locale(s); l.Valid() {
		return l, nil
	}
	return "", fmt.Errorf("unknown locale %q (want ja or en)", s)
}

// Policy is one company's dormancy settings, already parsed.
type Policy struct {
	// Location is the company's time zone; "same day" means its calendar day.
	Location *time.Location
	// InactivityPeriod: an account whose last activity is at least this long
	// ago is dormant.
	InactivityPeriod time.Duration
	// VerificationTTL is how long a verification link stays valid.
	VerificationTTL time.Duration
	// AlertWindow: repeated attempts of one account within it alert each
	// recipient once.
	AlertWindow time.Duration
	// ResendInterval: a locked email-ID account gets at most one new
	// verification email per interval, however often it tries.
	ResendInterval time.Duration
	Locale         Locale
}

// DefaultPolicy is the manual's policy in Asia/Tokyo.
func DefaultPolicy() Policy {
	loc, err := time.LoadLocation(DefaultTimeZone)
	if err != nil {
		loc = time.FixedZone("JST", 9*60*60)
	}
	return Policy{
		Location:         loc,
		InactivityPeriod: DefaultInactivityPeriod,
		VerificationTTL:  DefaultVerificationTTL,
		AlertWindow:      DefaultAlertWindow,
		ResendInterval:   DefaultResendInterval,
		Locale:           DefaultLocale,
	}
}

// Bounds of a company's settings. The upper ones keep a typo (90000 days,
// a month-long link) from becoming a policy.
const (
	MinInactivityPeriod = 24 * time.Hour
	MaxInactivityPeriod = 3650 * 24 * time.Hour
	MaxVerificationTTL  = 7 * 24 * time.Hour
)

// Validate names the first setting that cannot work or is out of bounds;
// every way a company's settings arrive (the API, tasks, the importer)
// goes through it.
func (p Policy) Validate() error {
	day := 24 * time.Hour
	switch {
	case p.Location == nil:
		return &FieldError{Field: "time_zone", Reason: "missing"}
	case p.InactivityPeriod < MinInactivityPeriod:
		return &FieldError{Field: "inactivity_days", Reason: fmt.Sprintf("must be at least %d, got %d", MinInactivityPeriod/day, p.InactivityPeriod/day)}
	case p.InactivityPeriod > MaxInactivityPeriod:
		return &FieldError{Field: "inactivity_days", Reason: fmt.Sprintf("must be at most %d, got %d", MaxInactivityPeriod/day, p.InactivityPeriod/day)}
	case p.VerificationTTL <= 0:
		return &FieldError{Field: "verification_ttl_seconds", Reason: fmt.Sprintf("must be positive, got %d", p.VerificationTTL/time.Second)}
	case p.VerificationTTL > MaxVerificationTTL:
		return &FieldError{Field: "verification_ttl_seconds", Reason: fmt.Sprintf("must be at most %d (7 days), got %d", MaxVerificationTTL/time.Second, p.VerificationTTL/time.Second)}
	case p.AlertWindow < 0:
		return &FieldError{Field: "alert_window_seconds", Reason: "must not be negative"}
	case p.ResendInterval < 0:
		return &FieldError{Field: "resend_interval_seconds", Reason: "must not be negative"}
	case !p.Locale.Valid():
		return &FieldError{Field: "locale", Reason: fmt.Sprintf("unknown locale %q (want ja or en)", p.Locale)}
	}
	return nil
}

// FieldError names the input field a value was refused for, so an API, a
// task failure or an import reject can point at it.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
