package policy

import "time"

// Digest says who receives a company's daily digest.
type Digest string

const (
	DigestOff            Digest = "off"
	DigestAdministrators Digest = "administrators"
	DigestRecipients     Digest = "recipients"
)

// Valid reports whether d is one of the Digest values.
func (d Digest) Valid() bool {
	return d == DigestOff || d == DigestAdministrators || d == DigestRecipients
}

// DigestHour is the company-local hour the daily digest goes out.
const DigestHour = 9

// DigestDue reports whether now falls in the digest hour of loc, and the
// local start of that hour: the end of the day the digest covers, which
// began 24 hours earlier, and the name of its day.
func DigestDue(now time.Time, loc *time.Location) (time.Time, bool) {
	l := now.In(loc)
	if l.Hour() != DigestHour {
		return time.Time{}, false
	}
	return time.Date(l.Year(), l.Month(), l.Day(), DigestHour, 0, 0, 0, loc), true
}

// DigestLookahead is how far ahead the digest lists the accounts that will
// turn dormant.
const DigestLookahead = 7 * 24 * time.Hour
