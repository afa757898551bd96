package mail

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SendError is why a send failed, classified so that the task queue retries
// what may succeed later and archives what never will.
type SendError struct {
	// Status is the HTTP status Resend answered, or 0 when no answer came
	// (timeout, refused connection) or the message was refused before sending.
	Status int
	// Name is Resend's error name from the response body, such as
	// "validation_error" or "concurrent_idempotent_requests", when it sent one.
	Name string
	// RetryAfter is how long Resend asked the caller to wait; 0 when it did
	// not say.
	RetryAfter time.Duration
	// Permanent failures fail the same way however often they are retried.
	Permanent bool
	Err       error
}

func (e *SendError) Error() string {
	var b strings.Builder
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("mail: send failed")
	}
	if e.Status != 0 || e.Name != "" {
		b.WriteString(" (")
		if e.Status != 0 {
			fmt.Fprintf(&b, "HTTP %d", e.Status)
		}
		if e.Name != "" {
			if e.Status != 0 {
				b.WriteByte(' ')
			}
			b.WriteString(e.Name)
		}
		b.WriteByte(')')
	}
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a send failure that retrying cannot fix,
// such as a message Resend refused as invalid or a wrong API key.
func IsPermanent(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Permanent
}

// RetryAfter reports how long the provider asked to wait before the next
// attempt, if it said.
func RetryAfter(err error) (time.Duration, bool) {
	var se *SendError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return se.RetryAfter, true
	}
	return 0, false
}

// permanentStatus reports whether Resend's answer will be the same on a
// retry. Client errors are, with three exceptions: 429 asks to slow down,
// 408 is a timeout by another name, and a 409 concurrent_idempotent_requests
// means an earlier attempt with the same key is still in flight and a retry
// will get its answer. Everything else (5xx, or a status Resend does not
// document) is treated as transient, which the idempotency key makes safe.
func permanentStatus(status int, name string) bool {
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return false
	case status == http.StatusConflict && name == "concurrent_idempotent_requests":
		return false
	}
	return status >= 400 && status < 500
}

// parseRetryAfter reads a delay in seconds, the form Resend sends in
// retry-after and ratelimit-reset. The HTTP-date form is not used by Resend
// and would need a clock, so it reads as "not said".
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs <= 0 || secs > 24*60*60 {
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}
