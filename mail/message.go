// Package mail is the only package that speaks to Resend. It renders
// dormancy's emails from embedded templates (Japanese by default, English),
// sends them through Resend with an idempotency key so a retried task delivers
// once, and tells the caller whether a failure is worth retrying.
//
// Without an API key, Dev stands in for Resend and only logs; the caller keeps
// the rendered message as the dev mailbox, so mail never goes silently nowhere.
package mail

import (
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"

	"github.com/resend/resend-go/v2"
)

// Message is one rendered email to one recipient.
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
	// IdempotencyKey makes a retry of the same task deliver once: Resend
	// answers a repeated key with the first email's id for 24 hours.
	IdempotencyKey string
	// Tags label the email in Resend's dashboard and webhooks. Names and
	// values may use only ASCII letters, digits, '_' and '-'.
	Tags map[string]string
}

// Resend's documented limits, checked before sending so that a message
// Resend would refuse fails the same way under Dev.
const (
	maxIdempotencyKey = 256
	maxTag            = 256
)

// validate refuses what Resend would answer with a validation error, so the
// mistake surfaces in development and is never retried in production.
func (m Message) validate() error {
	var errs []string
	if m.To == "" {
		errs = append(errs, "To is empty")
	} else if strings.ContainsAny(m.To, "\r\n") {
		errs = append(errs, "To contains a line break")
	} else if _, err := mail.ParseAddress(m.To); err != nil {
		errs = append(errs, "To: "+err.Error())
	}
	if oneLine(m.Subject) == "" {
		errs = append(errs, "Subject is empty")
	}
	if m.Text == "" && m.HTML == "" {
		errs = append(errs, "both Text and HTML are empty")
	}
	if len(m.IdempotencyKey) > maxIdempotencyKey {
		errs = append(errs, fmt.Sprintf("IdempotencyKey is %d bytes, more than %d", len(m.IdempotencyKey), maxIdempotencyKey))
	}
	for name, value := range m.Tags {
		if !validTag(name, false) {
			errs = append(errs, fmt.Sprintf("tag name %q: want 1-%d ASCII letters, digits, '_' or '-'", name, maxTag))
		}
		if !validTag(value, true) {
			errs = append(errs, fmt.Sprintf("tag %s value %q: want at most %d ASCII letters, digits, '_' or '-'", name, value, maxTag))
		}
	}
	return problems(errs)
}

// problems joins what is wrong into one error on one line, so a log line or
// an archived task shows all of it.
func problems(ps []string) error {
	if len(ps) == 0 {
		return nil
	}
	return errors.New(strings.Join(ps, "; "))
}

func validTag(s string, emptyOK bool) bool {
	if len(s) > maxTag || (s == "" && !emptyOK) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// resendTags orders the tags by name. Resend compares the payload of a
// repeated idempotency key, and map order changes from run to run: unsorted,
// a retried task would be refused as a different request.
func resendTags(tags map[string]string) []resend.Tag {
	if len(tags) == 0 {
		return nil
	}
	out := make([]resend.Tag, 0, len(tags))
	for name, value := range tags {
		out = append(out, resend.Tag{Name: name, Value: value})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// oneLine keeps a header value on one line: a line break in a name or a
// subject could otherwise start a header of its own somewhere between here
// and the recipient. Control characters and Unicode line separators become
// spaces, runs of spaces collapse, and the ends are trimmed.
func oneLine(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\u0085' || r == '\u2028' || r == '\u2029' || r == ' ' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}
