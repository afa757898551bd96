package mail_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/mail/resendtest"
)

const testFrom = "dormancy <no-reply@example.com>"

type resendBundle struct {
	fake   *resendtest.Server
	sender *mail.Resend
}

func setupResend(t *testing.T, timeout time.Duration) resendBundle {
	t.Helper()
	fake := resendtest.New(t)
	sender, err := mail.NewResend(mail.ResendConfig{
		APIKey:  "re_test_key",
		BaseURL: fake.URL(),
		From:    testFrom,
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return resendBundle{fake: fake, sender: sender}
}

func testMessage(key string) mail.Message {
	return mail.Message{
		To:             "yamada@example.co.jp",
		Subject:        "【本人確認】アカウントロックの解除について",
		Text:           "text body",
		HTML:           "<p>html body</p>",
		IdempotencyKey: key,
		Tags:           map[string]string{"kind": "verification", "company": "42"},
	}
}

func TestResendSend(t *testing.T) {
	b := setupResend(t, 0)
	m := testMessage("verification/1001")
	id, err := b.sender.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	emails, err := b.fake.WaitFor(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	e := emails[0]
	if got, want := id, e.ID; got != want || id == "" {
		t.Errorf("Send returned id %q, fake delivered %q", got, want)
	}
	if got, want := e.From, testFrom; got != want {
		t.Errorf("From = %q, want %q", got, want)
	}
	if got, want := strings.Join(e.To, ","), m.To; got != want {
		t.Errorf("To = %q, want %q", got, want)
	}
	if got, want := e.Subject, m.Subject; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	if e.Text != m.Text || e.HTML != m.HTML {
		t.Errorf("bodies = %q, %q; want %q, %q", e.Text, e.HTML, m.Text, m.HTML)
	}
	if got, want := e.IdempotencyKey, m.IdempotencyKey; got != want {
		t.Errorf("IdempotencyKey = %q, want %q", got, want)
	}
	if got := e.Tags; len(got) != 2 || got["kind"] != "verification" || got["company"] != "42" {
		t.Errorf("Tags = %v, want %v", got, m.Tags)
	}
}

func TestResendSameKeyDeliversOnce(t *testing.T) {
	b := setupResend(t, 0)
	m := testMessage("alert/7/recipient/9")
	// Enough tags that a map-ordered payload would differ between sends.
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		m.Tags[k] = "v-" + k
	}
	first, err := b.sender.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := b.sender.Send(t.Context(), m)
		if err != nil {
			t.Fatalf("repeated Send: %v", err)
		}
		if again != first {
			t.Errorf("repeated Send returned id %q, want the first id %q", again, first)
		}
	}
	if got, want := b.fake.Count(), 1; got != want {
		t.Errorf("deliveries = %d, want %d", got, want)
	}
	if got, want := b.fake.Requests(), 6; got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
}

func TestResendSameKeyOtherPayload(t *testing.T) {
	b := setupResend(t, 0)
	m := testMessage("verification/1002")
	if _, err := b.sender.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	m.Text = "a different body"
	_, err := b.sender.Send(t.Context(), m)
	checkSendError(t, err, 409, true, 0)
}

func TestResendFailures(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		headers    map[string]string
		permanent  bool
		retryAfter time.Duration
	}{
		{"server error", 500, nil, false, 0},
		{"bad gateway", 502, nil, false, 0},
		{"unavailable with retry-after", 503, map[string]string{"retry-after": "3"}, false, 3 * time.Second},
		{"rate limited", 429, map[string]string{"retry-after": "7", "ratelimit-limit": "2", "ratelimit-remaining": "0", "ratelimit-reset": "7"}, false, 7 * time.Second},
		{"rate limited, reset only", 429, map[string]string{"ratelimit-reset": "2"}, false, 2 * time.Second},
		{"rate limited, no hint", 429, nil, false, 0},
		{"validation", 422, nil, true, 0},
		{"bad request", 400, nil, true, 0},
		{"missing key", 401, nil, true, 0},
		{"invalid key", 403, nil, true, 0},
		{"not found", 404, nil, true, 0},
		{"idempotency conflict", 409, nil, true, 0},
		{"other client error", 418, nil, true, 0},
		{"request timeout", 408, nil, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setupResend(t, 0)
			b.fake.FailNext(1, tt.status, tt.headers)
			m := testMessage("k/" + strconv.Itoa(tt.status))
			_, err := b.sender.Send(t.Context(), m)
			checkSendError(t, err, tt.status, tt.permanent, tt.retryAfter)
			if b.fake.Count() != 0 {
				t.Errorf("fake delivered %d emails on a failure", b.fake.Count())
			}
			if tt.permanent {
				return
			}
			// The fault is spent: the retry with the same key delivers.
			if _, err := b.sender.Send(t.Context(), m); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := b.fake.Count(); got != 1 {
				t.Errorf("deliveries after retry = %d, want 1", got)
			}
		})
	}
}

func TestResendTimeout(t *testing.T) {
	b := setupResend(t, 200*time.Millisecond)
	b.fake.HangNext(1)
	m := testMessage("verification/1003")
	_, err := b.sender.Send(t.Context(), m)
	checkSendError(t, err, 0, false, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if _, err := b.sender.Send(t.Context(), m); err != nil {
		t.Fatalf("retry after the timeout: %v", err)
	}
	if got, want := b.fake.Requests(), 2; got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
}

func TestResendCancelled(t *testing.T) {
	b := setupResend(t, 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.sender.Send(ctx, testMessage("verification/1004"))
	checkSendError(t, err, 0, false, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
}

func TestResendConnectionRefused(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	sender, err := mail.NewResend(mail.ResendConfig{APIKey: "re_test", BaseURL: closed.URL, From: testFrom})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sender.Send(t.Context(), testMessage("verification/1005"))
	checkSendError(t, err, 0, false, 0)
}

func TestResendInvalidMessage(t *testing.T) {
	b := setupResend(t, 0)
	tests := []struct {
		name string
		edit func(*mail.Message)
	}{
		{"no recipient", func(m *mail.Message) { m.To = "" }},
		{"bad recipient", func(m *mail.Message) { m.To = "not an address" }},
		{"header in recipient", func(m *mail.Message) { m.To = "a@example.com\r\nBcc: b@example.com" }},
		{"no subject", func(m *mail.Message) { m.Subject = " \r\n" }},
		{"no body", func(m *mail.Message) { m.Text, m.HTML = "", "" }},
		{"long key", func(m *mail.Message) { m.IdempotencyKey = strings.Repeat("k", 257) }},
		{"bad tag name", func(m *mail.Message) { m.Tags["task:type"] = "x" }},
		{"bad tag value", func(m *mail.Message) { m.Tags["kind"] = "login attempt" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage("k")
			tt.edit(&m)
			_, err := b.sender.Send(t.Context(), m)
			checkSendError(t, err, 0, true, 0)
		})
	}
	if got := b.fake.Requests(); got != 0 {
		t.Errorf("invalid messages made %d requests, want 0", got)
	}
}

func TestResendSubjectLineBreak(t *testing.T) {
	b := setupResend(t, 0)
	m := testMessage("verification/1006")
	m.Subject = "Hello\r\nBcc: victim@example.com"
	if _, err := b.sender.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if got, want := b.fake.Emails()[0].Subject, "Hello Bcc: victim@example.com"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
}

// TestResendBaseURLPath checks that a base URL with a path keeps it, and
// that a custom Transport carries the request.
func TestResendBaseURLPath(t *testing.T) {
	var got *http.Request
	sender, err := mail.NewResend(mail.ResendConfig{
		APIKey:  "re_test",
		BaseURL: "https://proxy.example.com/resend",
		From:    testFrom,
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			got = r
			return jsonResponse(r, 200, `{"id":"abc"}`, nil), nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := sender.Send(t.Context(), testMessage("k"))
	if err != nil {
		t.Fatal(err)
	}
	if id != "abc" {
		t.Errorf("id = %q, want abc", id)
	}
	if want := "https://proxy.example.com/resend/emails"; got.URL.String() != want {
		t.Errorf("request URL = %s, want %s", got.URL, want)
	}
	if auth := got.Header.Get("Authorization"); auth != "Bearer re_test" {
		t.Errorf("Authorization = %q", auth)
	}
}

// TestResendConcurrentKey: Resend answers 409 while an earlier request with
// the same key is still in flight; that one will finish, so a retry helps.
func TestResendConcurrentKey(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		permanent bool
	}{
		{"in flight", `{"statusCode":409,"name":"concurrent_idempotent_requests","message":"Same idempotency key used while original request is still in progress."}`, false},
		{"other payload", `{"statusCode":409,"name":"invalid_idempotent_request","message":"Same idempotency key used with a different request payload."}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sender, err := mail.NewResend(mail.ResendConfig{APIKey: "re_test", From: testFrom,
				Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					return jsonResponse(r, 409, tt.body, nil), nil
				})})
			if err != nil {
				t.Fatal(err)
			}
			_, err = sender.Send(t.Context(), testMessage("k"))
			checkSendError(t, err, 409, tt.permanent, 0)
		})
	}
}

func TestResendSuccessWithoutID(t *testing.T) {
	sender, err := mail.NewResend(mail.ResendConfig{APIKey: "re_test", From: testFrom,
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return jsonResponse(r, 200, `{}`, nil), nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sender.Send(t.Context(), testMessage("k"))
	checkSendError(t, err, 200, false, 0)
}

func TestNewResendErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  mail.ResendConfig
		want string
	}{
		{"no key", mail.ResendConfig{From: testFrom}, "APIKey"},
		{"no from", mail.ResendConfig{APIKey: "k"}, "From"},
		{"bad from", mail.ResendConfig{APIKey: "k", From: "nobody"}, "From"},
		{"negative timeout", mail.ResendConfig{APIKey: "k", From: testFrom, Timeout: -time.Second}, "Timeout"},
		{"unparsable base URL", mail.ResendConfig{APIKey: "k", From: testFrom, BaseURL: "http://[::1"}, "BaseURL"},
		{"relative base URL", mail.ResendConfig{APIKey: "k", From: testFrom, BaseURL: "/emails"}, "BaseURL"},
		{"other scheme", mail.ResendConfig{APIKey: "k", From: testFrom, BaseURL: "ftp://example.com/"}, "BaseURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mail.NewResend(tt.cfg)
			if err == nil {
				t.Fatal("NewResend succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "mail.NewResend") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name mail.NewResend and %s", err, tt.want)
			}
		})
	}
}

func TestErrorHelpersOnOtherErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("plain"), context.Canceled} {
		if mail.IsPermanent(err) {
			t.Errorf("IsPermanent(%v) = true", err)
		}
		if d, ok := mail.RetryAfter(err); ok {
			t.Errorf("RetryAfter(%v) = %v, true", err, d)
		}
	}
	wrapped := errors.Join(errors.New("task failed"), &mail.SendError{Status: 429, RetryAfter: time.Second, Err: errors.New("x")})
	if d, ok := mail.RetryAfter(wrapped); !ok || d != time.Second {
		t.Errorf("RetryAfter(wrapped) = %v, %v; want 1s, true", d, ok)
	}
}

func checkSendError(t *testing.T, err error, status int, permanent bool, retryAfter time.Duration) {
	t.Helper()
	if err == nil {
		t.Fatal("Send succeeded, want an error")
	}
	var se *mail.SendError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *mail.SendError", err, err)
	}
	if se.Status != status {
		t.Errorf("Status = %d, want %d (%v)", se.Status, status, err)
	}
	if se.Permanent != permanent || mail.IsPermanent(err) != permanent {
		t.Errorf("Permanent = %v, IsPermanent = %v, want %v (%v)", se.Permanent, mail.IsPermanent(err), permanent, err)
	}
	d, ok := mail.RetryAfter(err)
	if d != retryAfter || ok != (retryAfter > 0) {
		t.Errorf("RetryAfter = %v, %v; want %v (%v)", d, ok, retryAfter, err)
	}
	if !strings.HasPrefix(err.Error(), "mail.Resend.Send(") {
		t.Errorf("error %q does not name its operation", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func jsonResponse(r *http.Request, status int, body string, header http.Header) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	return &http.Response{
		StatusCode: status,
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		Header:     header,
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    r,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
}
