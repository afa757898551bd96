package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// Verification is the identity-verification email to a locked email-ID
// account. The link leads to the login form; only the link together with the
// password unlocks.
type Verification struct {
	Name     string
	URL      string
	ValidFor time.Duration
	// Platform names the host platform where the manual's sentences do
	// ("BtoBプラットフォーム"); empty, the sentences go without it.
	Platform string
}

// DormantLoginAlert tells one login notification recipient that a dormant
// account tried to log in, so an administrator can retire it if its owner left.
type DormantLoginAlert struct {
	AccountName string
	Department  string
	LoginID     string
	// AttemptedAt is shown as is, so it must already be in the company's
	// time zone.
	AttemptedAt     time.Time
	IP              string
	Device          policy.DeviceKind
	EmployeeListURL string
	// Platform as in Verification.
	Platform string
	// HelpURL is the manual's second link, to a help page on retiring
	// employees; empty leaves it out.
	HelpURL string
}

// Unlocked tells the owner that a verification link unlocked the account, so
// that an unlock they did not make is noticed (NIST SP 800-63B requires a
// notification after recovery).
type Unlocked struct {
	Name string
	// At is in the company's time zone.
	At       time.Time
	LoginURL string
}

// AdminUnlocked tells the owner of a platform-ID account that an
// administrator unlocked it and that the unlock lasts until local midnight.
type AdminUnlocked struct {
	Name string
	// Deadline is the next local midnight in the company's time zone; a
	// midnight is shown as 24:00 of the day before, as people say it.
	Deadline time.Time
	LoginURL string
}

// PrelockWarning warns the owner ahead of the lock, so that an account still
// in use is saved by a login instead of an unlock.
type PrelockWarning struct {
	Name string
	// LockOn is in the company's time zone; only its date is shown.
	LockOn   time.Time
	DaysLeft int
	LoginURL string
}

// SweepHeld tells a company's administrator that the sweep held back a
// mass lock and locks nobody until someone confirms: a mistyped inactivity
// period or a bad directory sync must not lock everyone overnight.
type SweepHeld struct {
	Name           string
	WouldLock      int
	Employed       int
	InactivityDays int
}

// DigestLine is one account in the daily digest; At is in the company's
// time zone.
type DigestLine struct {
	Name       string
	Department string
	At         time.Time
}

// DailyDigest is one company's day for its administrators (or its login
// notification recipients): what dormancy did in the 24 hours before Day
// 09:00 and who turns dormant in the coming week. Each list holds at most
// the first 50; the counts are of those listed.
type DailyDigest struct {
	Name string
	// Day is the end of the day covered, in the company's time zone.
	Day                             time.Time
	Locks, Unlocks, Relocks, Alerts []DigestLine
	Upcoming                        []DigestLine
	EmployeeListURL                 string
}

// LockNotice tells an owner that the sweep locked the account after a
// period without login, and how to get back in: an email ID through the
// verification link its next login sends, a platform ID through an
// administrator.
type LockNotice struct {
	Name           string
	EmailID        bool
	InactivityDays int
	LoginURL       string
}

// WebhookDisabled tells a company's administrator that dormancy stopped
// sending events to one of the company's webhook endpoints after it failed
// for too long: whatever the host does on a lock (revoke sessions, open a
// ticket) no longer happens until someone fixes and re-enables it.
type WebhookDisabled struct {
	Name string
	URL  string
	// DisabledAt is in the company's time zone.
	DisabledAt time.Time
	// FailingFor is how long it had failed when it was disabled.
	FailingFor time.Duration
}

//go:embed templates
var templateFS embed.FS

// kinds name the templates, one per data type; each has a .subject, a .txt
// and an .html file under templates/<locale>/.
var kinds = []string{"verification", "dormant-login-alert", "unlocked", "admin-unlocked", "prelock-warning", "sweep-held", "daily-digest", "lock-notice", "webhook-disabled"}

var locales = []policy.Locale{policy.LocaleJA, policy.LocaleEN}

type templateSet struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// templates are parsed once when the program starts: they are part of the
// binary, so a template that does not parse is a build mistake that every
// test run reports, not a runtime condition to handle.
var templates = mustParseTemplates()

func mustParseTemplates() map[policy.Locale]map[string]templateSet {
	sets := make(map[policy.Locale]map[string]templateSet)
	for _, loc := range locales {
		sets[loc] = make(map[string]templateSet)
		funcs := localeFuncs(loc)
		for _, kind := range kinds {
			base := "templates/" + string(loc) + "/" + kind
			subject := texttemplate.Must(texttemplate.New(kind+".subject").Funcs(funcs).ParseFS(templateFS, base+".subject"))
			text := texttemplate.Must(texttemplate.New(kind+".txt").Funcs(funcs).ParseFS(templateFS, base+".txt"))
			html := htmltemplate.Must(htmltemplate.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", base+".html"))
			// The HTML <title> repeats the subject, escaped by html/template.
			src, err := templateFS.ReadFile(base + ".subject")
			if err != nil {
				panic(err)
			}
			htmltemplate.Must(html.New("subject").Parse(strings.TrimRight(string(src), "\n")))
			sets[loc][kind] = templateSet{subject: subject, text: text, html: html}
		}
	}
	return sets
}

// Render renders the email for data, one of Verification, DormantLoginAlert,
// Unlocked, AdminUnlocked or PrelockWarning (or a pointer to one), in locale.
// Every value is escaped in the HTML version, and the subject is kept on one
// line whatever the data holds.
func Render(locale policy.Locale, data any) (subject, text, html string, err error) {
	kind, data, err := kindOf(data)
	if err != nil {
		if kind == "" {
			kind = fmt.Sprintf("%T", data)
		}
		return "", "", "", fmt.Errorf("mail.Render(%q, %s): %w", locale, kind, err)
	}
	set, ok := templates[locale][kind]
	if !ok {
		return "", "", "", fmt.Errorf("mail.Render(%q, %s): unknown locale (want ja or en)", locale, kind)
	}
	var buf bytes.Buffer
	if err := set.subject.Execute(&buf, data); err != nil {
		return "", "", "", fmt.Errorf("mail.Render(%q, %s): subject: %w", locale, kind, err)
	}
	subject = oneLine(buf.String())
	buf.Reset()
	if err := set.text.Execute(&buf, data); err != nil {
		return "", "", "", fmt.Errorf("mail.Render(%q, %s): text: %w", locale, kind, err)
	}
	text = buf.String()
	buf.Reset()
	if err := set.html.Execute(&buf, data); err != nil {
		return "", "", "", fmt.Errorf("mail.Render(%q, %s): html: %w", locale, kind, err)
	}
	return subject, text, buf.String(), nil
}

// kindOf names the template for data and checks the fields without which the
// email would mislead its reader.
func kindOf(data any) (string, any, error) {
	switch d := data.(type) {
	case *Verification:
		if d != nil {
			return kindOf(*d)
		}
	case *DormantLoginAlert:
		if d != nil {
			return kindOf(*d)
		}
	case *Unlocked:
		if d != nil {
			return kindOf(*d)
		}
	case *AdminUnlocked:
		if d != nil {
			return kindOf(*d)
		}
	case *PrelockWarning:
		if d != nil {
			return kindOf(*d)
		}
	case *SweepHeld:
		if d != nil {
			return kindOf(*d)
		}
	case *DailyDigest:
		if d != nil {
			return kindOf(*d)
		}
	case *LockNotice:
		if d != nil {
			return kindOf(*d)
		}
	case *WebhookDisabled:
		if d != nil {
			return kindOf(*d)
		}
	case WebhookDisabled:
		var errs []string
		if d.URL == "" {
			errs = append(errs, "URL is empty")
		}
		if d.DisabledAt.IsZero() {
			errs = append(errs, "DisabledAt is zero")
		}
		return "webhook-disabled", d, problems(errs)
	case LockNotice:
		var errs []string
		if d.InactivityDays <= 0 {
			errs = append(errs, "InactivityDays is not positive")
		}
		return "lock-notice", d, problems(errs)
	case DailyDigest:
		var errs []string
		if d.Day.IsZero() {
			errs = append(errs, "Day is zero")
		}
		if len(d.Locks)+len(d.Unlocks)+len(d.Relocks)+len(d.Alerts)+len(d.Upcoming) == 0 {
			errs = append(errs, "nothing to say")
		}
		return "daily-digest", d, problems(errs)
	case SweepHeld:
		var errs []string
		if d.WouldLock <= 0 || d.Employed < d.WouldLock {
			errs = append(errs, fmt.Sprintf("WouldLock %d of Employed %d", d.WouldLock, d.Employed))
		}
		return "sweep-held", d, problems(errs)
	case Verification:
		var errs []string
		if d.URL == "" {
			errs = append(errs, "URL is empty")
		}
		if d.ValidFor < time.Minute {
			errs = append(errs, fmt.Sprintf("ValidFor %v is less than a minute", d.ValidFor))
		}
		return "verification", d, problems(errs)
	case DormantLoginAlert:
		var errs []string
		if d.AttemptedAt.IsZero() {
			errs = append(errs, "AttemptedAt is zero")
		}
		if d.EmployeeListURL == "" {
			errs = append(errs, "EmployeeListURL is empty")
		}
		return "dormant-login-alert", d, problems(errs)
	case Unlocked:
		var errs []string
		if d.At.IsZero() {
			errs = append(errs, "At is zero")
		}
		return "unlocked", d, problems(errs)
	case AdminUnlocked:
		var errs []string
		if d.Deadline.IsZero() {
			errs = append(errs, "Deadline is zero")
		}
		return "admin-unlocked", d, problems(errs)
	case PrelockWarning:
		var errs []string
		if d.LockOn.IsZero() {
			errs = append(errs, "LockOn is zero")
		}
		if d.DaysLeft < 0 {
			errs = append(errs, fmt.Sprintf("DaysLeft %d is negative", d.DaysLeft))
		}
		return "prelock-warning", d, problems(errs)
	}
	return "", data, errors.New("unknown data type")
}

// DeviceLabel is how the alert names a device kind in locale. An unknown
// kind reads as "other", and an unknown locale as the default one, because a
// label is never worth failing an alert for.
func DeviceLabel(locale policy.Locale, k policy.DeviceKind) string {
	labels := deviceLabels[locale]
	if labels == nil {
		labels = deviceLabels[policy.DefaultLocale]
	}
	if l, ok := labels[k]; ok {
		return l
	}
	return labels[policy.DeviceOther]
}

var deviceLabels = map[policy.Locale]map[policy.DeviceKind]string{
	policy.LocaleJA: {
		policy.DevicePC:         "PC",
		policy.DeviceSmartphone: "スマホ",
		policy.DeviceTablet:     "タブレット",
		policy.DeviceOther:      "その他",
	},
	policy.LocaleEN: {
		policy.DevicePC:         "PC",
		policy.DeviceSmartphone: "Smartphone",
		policy.DeviceTablet:     "Tablet",
		policy.DeviceOther:      "Other",
	},
}

// localeFuncs are the template functions; their output differs by locale, so
// each locale's templates get their own.
func localeFuncs(loc policy.Locale) map[string]any {
	dateTime, date, day := "2006/01/02 15:04 MST", "2006年1月2日", "2006/01/02"
	if loc == policy.LocaleEN {
		dateTime, date, day = "2006-01-02 15:04 MST", "January 2, 2006", "2006-01-02"
	}
	return map[string]any{
		"lang":     func() string { return string(loc) },
		"line":     oneLine,
		"device":   func(k policy.DeviceKind) string { return DeviceLabel(loc, k) },
		"datetime": func(t time.Time) string { return t.Format(dateTime) },
		"date":     func(t time.Time) string { return t.Format(date) },
		// deadline shows a local midnight as 24:00 of the day that ends
		// there, with that day's zone abbreviation (it differs from the next
		// day's on the day summer time ends).
		"deadline": func(t time.Time) string {
			if h, m, s := t.Clock(); h == 0 && m == 0 && s == 0 && t.Nanosecond() == 0 {
				prev := t.Add(-time.Nanosecond)
				return prev.Format(day) + " 24:00 " + prev.Format("MST")
			}
			return t.Format(dateTime)
		},
		"duration": func(d time.Duration) string { return formatDuration(loc, d) },
	}
}

// formatDuration writes a link's lifetime the way the manual does ("24時間"),
// down to minutes; a lifetime is never set in seconds.
func formatDuration(loc policy.Locale, d time.Duration) string {
	h := int(d / time.Hour)
	m := int(d % time.Hour / time.Minute)
	if loc == policy.LocaleEN {
		unit := func(n int, one string) string {
			if n == 1 {
				return "1 " + one
			}
			return fmt.Sprintf("%d %ss", n, one)
		}
		switch {
		case m == 0:
			return unit(h, "hour")
		case h == 0:
			return unit(m, "minute")
		}
		return unit(h, "hour") + " " + unit(m, "minute")
	}
	switch {
	case m == 0:
		return fmt.Sprintf("%d時間", h)
	case h == 0:
		return fmt.Sprintf("%d分", m)
	}
	return fmt.Sprintf("%d時間%d分", h, m)
}
