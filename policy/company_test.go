package policy_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
)

func TestDefaultPolicy(t *testing.T) {
	p := policy.DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultPolicy().Validate() = %v, want nil", err)
	}
	if p.Location == nil {
		t.Fatal("DefaultPolicy().Location = nil")
	}
	if got, want := p.Location.String(), "Asia/Tokyo"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if got, want := p.InactivityPeriod, 90*24*time.Hour; got != want {
		t.Errorf("InactivityPeriod = %v, want %v", got, want)
	}
	if got, want := p.VerificationTTL, 24*time.Hour; got != want {
		t.Errorf("VerificationTTL = %v, want %v", got, want)
	}
	if got, want := p.AlertWindow, time.Hour; got != want {
		t.Errorf("AlertWindow = %v, want %v", got, want)
	}
	if got, want := p.ResendInterval, 5*time.Minute; got != want {
		t.Errorf("ResendInterval = %v, want %v", got, want)
	}
	if got, want := p.Locale, policy.LocaleJA; got != want {
		t.Errorf("Locale = %q, want %q", got, want)
	}
	// The zone is really Tokyo (UTC+9, no DST), not a stand-in with a wrong offset.
	for _, month := range []time.Month{time.January, time.July} {
		_, off := time.Date(2026, month, 1, 0, 0, 0, 0, p.Location).Zone()
		if got, want := off, 9*60*60; got != want {
			t.Errorf("offset in %v = %d, want %d", month, got, want)
		}
	}
	if got, want := policy.DefaultTimeZone, "Asia/Tokyo"; got != want {
		t.Errorf("DefaultTimeZone = %q, want %q", got, want)
	}
}

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(*policy.Policy)
		field  string // "" means valid
	}{
		{"default", func(*policy.Policy) {}, ""},
		{"UTC", func(p *policy.Policy) { p.Location = time.UTC }, ""},
		{"fixed zone", func(p *policy.Policy) { p.Location = time.FixedZone("X", -3*60*60) }, ""},
		{"nil location", func(p *policy.Policy) { p.Location = nil }, "time_zone"},

		{"inactivity exactly 1 day", func(p *policy.Policy) { p.InactivityPeriod = 24 * time.Hour }, ""},
		{"inactivity 1 day less 1ns", func(p *policy.Policy) { p.InactivityPeriod = 24*time.Hour - 1 }, "inactivity_days"},
		{"inactivity 1 hour", func(p *policy.Policy) { p.InactivityPeriod = time.Hour }, "inactivity_days"},
		{"inactivity zero", func(p *policy.Policy) { p.InactivityPeriod = 0 }, "inactivity_days"},
		{"inactivity negative", func(p *policy.Policy) { p.InactivityPeriod = -90 * 24 * time.Hour }, "inactivity_days"},
		{"inactivity 365 days", func(p *policy.Policy) { p.InactivityPeriod = 365 * 24 * time.Hour }, ""},
		{"inactivity at the maximum", func(p *policy.Policy) { p.InactivityPeriod = policy.MaxInactivityPeriod }, ""},
		{"inactivity a day past the maximum", func(p *policy.Policy) { p.InactivityPeriod = policy.MaxInactivityPeriod + 24*time.Hour }, "inactivity_days"},

		{"verification TTL 1ns", func(p *policy.Policy) { p.VerificationTTL = 1 }, ""},
		{"verification TTL zero", func(p *policy.Policy) { p.VerificationTTL = 0 }, "verification_ttl_seconds"},
		{"verification TTL negative", func(p *policy.Policy) { p.VerificationTTL = -time.Hour }, "verification_ttl_seconds"},
		{"verification TTL at the maximum", func(p *policy.Policy) { p.VerificationTTL = policy.MaxVerificationTTL }, ""},
		{"verification TTL past the maximum", func(p *policy.Policy) { p.VerificationTTL = policy.MaxVerificationTTL + time.Second }, "verification_ttl_seconds"},

		{"alert window zero", func(p *policy.Policy) { p.AlertWindow = 0 }, ""},
		{"alert window negative", func(p *policy.Policy) { p.AlertWindow = -1 }, "alert_window_seconds"},

		{"resend interval zero", func(p *policy.Policy) { p.ResendInterval = 0 }, ""},
		{"resend interval negative", func(p *policy.Policy) { p.ResendInterval = -1 }, "resend_interval_seconds"},

		{"locale en", func(p *policy.Policy) { p.Locale = policy.LocaleEN }, ""},
		{"locale empty", func(p *policy.Policy) { p.Locale = "" }, "locale"},
		{"locale fr", func(p *policy.Policy) { p.Locale = "fr" }, "locale"},
		{"locale JA upper case", func(p *policy.Policy) { p.Locale = "JA" }, "locale"},
		{"locale ja-JP", func(p *policy.Policy) { p.Locale = "ja-JP" }, "locale"},

		// Validate names the first bad field, in declaration order.
		{"everything bad", func(p *policy.Policy) { *p = policy.Policy{AlertWindow: -1, ResendInterval: -1, Locale: "xx"} }, "time_zone"},
		{"zero Policy", func(p *policy.Policy) { *p = policy.Policy{} }, "time_zone"},
		{"all but the zone bad", func(p *policy.Policy) { *p = policy.Policy{Location: time.UTC, AlertWindow: -1, Locale: "xx"} }, "inactivity_days"},
		{"TTL, window, interval and locale bad", func(p *policy.Policy) {
			p.VerificationTTL, p.AlertWindow, p.ResendInterval, p.Locale = 0, -1, -1, "xx"
		}, "verification_ttl_seconds"},
		{"window, interval and locale bad", func(p *policy.Policy) { p.AlertWindow, p.ResendInterval, p.Locale = -1, -1, "xx" }, "alert_window_seconds"},
		{"interval and locale bad", func(p *policy.Policy) { p.ResendInterval, p.Locale = -1, "xx" }, "resend_interval_seconds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := policy.DefaultPolicy()
			c.change(&p)
			err := p.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %q", c.field)
			}
			var fe *policy.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %T %v, want *policy.FieldError", err, err)
			}
			if got, want := fe.Field, c.field; got != want {
				t.Errorf("FieldError.Field = %q, want %q", got, want)
			}
			if fe.Reason == "" {
				t.Errorf("FieldError.Reason is empty")
			}
			if got, want := err.Error(), fe.Field+": "+fe.Reason; got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
		})
	}
}

func TestValidateLocaleReasonQuotesValue(t *testing.T) {
	p := policy.DefaultPolicy()
	p.Locale = "fr"
	err := p.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want an error")
	}
	if got, want := err.Error(), `"fr"`; !strings.Contains(got, want) {
		t.Errorf("Error() = %q, want it to contain %s", got, want)
	}
}

func TestFieldErrorError(t *testing.T) {
	err := error(&policy.FieldError{Field: "inactivity_days", Reason: "must be at least 1 day"})
	if got, want := err.Error(), "inactivity_days: must be at least 1 day"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseLocale(t *testing.T) {
	cases := []struct {
		in      string
		want    policy.Locale
		wantErr bool
	}{
		{"ja", policy.LocaleJA, false},
		{"en", policy.LocaleEN, false},
		{"", "", true},
		{"JA", "", true},
		{"En", "", true},
		{" ja", "", true},
		{"ja ", "", true},
		{"ja-JP", "", true},
		{"en_US", "", true},
		{"fr", "", true},
		{"日本語", "", true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := policy.ParseLocale(c.in)
			if got != c.want {
				t.Errorf("ParseLocale(%q) = %q, want %q", c.in, got, c.want)
			}
			if gotErr := err != nil; gotErr != c.wantErr {
				t.Fatalf("ParseLocale(%q) error = %v, want error %v", c.in, err, c.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), strconv.Quote(c.in)) {
				t.Errorf("ParseLocale(%q) error = %q, want it to quote the input", c.in, err)
			}
			if err == nil && !got.Valid() {
				t.Errorf("ParseLocale(%q) = %q, which is not Valid()", c.in, got)
			}
		})
	}
}

func TestLocaleValid(t *testing.T) {
	for _, c := range []struct {
		l    policy.Locale
		want bool
	}{{policy.LocaleJA, true}, {policy.LocaleEN, true}, {"", false}, {"de", false}} {
		if got := c.l.Valid(); got != c.want {
			t.Errorf("Locale(%q).Valid() = %v, want %v", c.l, got, c.want)
		}
	}
	if got, want := policy.DefaultLocale, policy.LocaleJA; got != want {
		t.Errorf("DefaultLocale = %q, want %q", got, want)
	}
}
