package resendtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/resend/resend-go/v2"

	"github.com/dormancy/dormancy/mail/resendtest"
)

func client(t *testing.T, s *resendtest.Server) *resend.Client {
	t.Helper()
	c := resend.NewCustomClient(&http.Client{Timeout: 5 * time.Second}, "re_test")
	u, err := url.Parse(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	c.BaseURL = u
	return c
}

func request(to string) *resend.SendEmailRequest {
	return &resend.SendEmailRequest{
		From:    "from@example.com",
		To:      []string{to},
		Subject: "subject",
		Text:    "text",
		Tags:    []resend.Tag{{Name: "kind", Value: "test"}},
	}
}

func TestDeliveryThroughResendGo(t *testing.T) {
	s := resendtest.New(t)
	resp, err := client(t, s).Emails.SendWithOptions(t.Context(), request("a@example.com"), &resend.SendEmailOptions{IdempotencyKey: "key-1"})
	if err != nil {
		t.Fatal(err)
	}
	emails := s.Emails()
	if len(emails) != 1 {
		t.Fatalf("Emails() has %d entries, want 1", len(emails))
	}
	e := emails[0]
	if e.ID != resp.Id || e.From != "from@example.com" || len(e.To) != 1 || e.To[0] != "a@example.com" ||
		e.Subject != "subject" || e.Text != "text" || e.IdempotencyKey != "key-1" || e.Tags["kind"] != "test" || e.ReceivedAt.IsZero() {
		t.Errorf("delivered %+v, response id %q", e, resp.Id)
	}
	// The returned slice is a copy.
	emails[0].To[0] = "changed"
	if s.Emails()[0].To[0] != "a@example.com" {
		t.Error("Emails() shares memory with the server")
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := resendtest.New(t)
	c := client(t, s)
	opts := &resend.SendEmailOptions{IdempotencyKey: "key-1"}
	first, err := c.Emails.SendWithOptions(t.Context(), request("a@example.com"), opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Emails.SendWithOptions(t.Context(), request("a@example.com"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Id != first.Id {
		t.Errorf("repeat got id %q, want %q", again.Id, first.Id)
	}
	_, err = c.Emails.SendWithOptions(t.Context(), request("b@example.com"), opts)
	if err == nil || !strings.Contains(err.Error(), "different request payload") {
		t.Errorf("same key, other payload: err = %v, want the 409 message", err)
	}
	if s.Count() != 1 || s.Requests() != 3 {
		t.Errorf("Count() = %d, Requests() = %d; want 1, 3", s.Count(), s.Requests())
	}
}

func TestFailNext(t *testing.T) {
	s := resendtest.New(t)
	s.FailNext(2, http.StatusTooManyRequests, map[string]string{"retry-after": "7", "ratelimit-remaining": "0"})
	s.FailNext(1, http.StatusUnprocessableEntity, nil)

	for i := range 2 {
		resp := post(t, s, `{"from":"f@example.com","to":["a@example.com"],"subject":"s","text":"t"}`)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || resp.Header.Get("Ratelimit-Remaining") != "0" {
			t.Errorf("request %d: status %d, headers %v", i, resp.StatusCode, resp.Header)
		}
	}
	resp := post(t, s, `{"from":"f@example.com","to":["a@example.com"],"subject":"s","text":"t"}`)
	var body struct {
		StatusCode int    `json:"statusCode"`
		Name       string `json:"name"`
		Message    string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 422 || body.StatusCode != 422 || body.Name != "validation_error" || body.Message == "" {
		t.Errorf("status %d, body %+v", resp.StatusCode, body)
	}
	if resp := post(t, s, `{"from":"f@example.com","to":"a@example.com","subject":"s","text":"t"}`); resp.StatusCode != 200 {
		t.Errorf("after the faults: status %d, want 200", resp.StatusCode)
	}
	if s.Count() != 1 || s.Requests() != 4 {
		t.Errorf("Count() = %d, Requests() = %d; want 1, 4", s.Count(), s.Requests())
	}
}

func TestValidation(t *testing.T) {
	s := resendtest.New(t)
	tests := []struct {
		name   string
		path   string
		auth   string
		body   string
		key    *string
		status int
	}{
		{"no auth", "/emails", "", `{"from":"f@x.com","to":["a@x.com"],"subject":"s","text":"t"}`, nil, 401},
		{"unknown path", "/domains", "Bearer k", `{}`, nil, 404},
		{"bad json", "/emails", "Bearer k", `{`, nil, 422},
		{"no from", "/emails", "Bearer k", `{"to":["a@x.com"],"subject":"s","text":"t"}`, nil, 422},
		{"no to", "/emails", "Bearer k", `{"from":"f@x.com","subject":"s","text":"t"}`, nil, 422},
		{"no subject", "/emails", "Bearer k", `{"from":"f@x.com","to":["a@x.com"],"text":"t"}`, nil, 422},
		{"no body", "/emails", "Bearer k", `{"from":"f@x.com","to":["a@x.com"],"subject":"s"}`, nil, 422},
		{"empty key", "/emails", "Bearer k", `{"from":"f@x.com","to":["a@x.com"],"subject":"s","text":"t"}`, new(""), 400},
		{"long key", "/emails", "Bearer k", `{"from":"f@x.com","to":["a@x.com"],"subject":"s","text":"t"}`, new(strings.Repeat("k", 257)), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if tt.key != nil {
				req.Header["Idempotency-Key"] = []string{*tt.key}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	if s.Count() != 0 {
		t.Errorf("Count() = %d after invalid requests", s.Count())
	}
}

func TestHangNextEndsWhenClientGivesUp(t *testing.T) {
	s := resendtest.New(t)
	s.HangNext(1)
	c := resend.NewCustomClient(&http.Client{Timeout: 100 * time.Millisecond}, "re_test")
	c.BaseURL, _ = url.Parse(s.URL() + "/")
	_, err := c.Emails.SendWithOptions(t.Context(), request("a@example.com"), &resend.SendEmailOptions{})
	if err == nil {
		t.Fatal("a hanging request succeeded")
	}
	// The next request is served normally.
	if _, err := client(t, s).Emails.SendWithOptions(t.Context(), request("a@example.com"), &resend.SendEmailOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestHangNextEndsOnClose: a request still hanging when the test ends must
// not keep the server's Close, and so the test, from finishing.
func TestHangNextEndsOnClose(t *testing.T) {
	done := make(chan error, 1)
	t.Run("server", func(t *testing.T) {
		s := resendtest.New(t)
		s.HangNext(1)
		c := client(t, s)
		go func() {
			_, err := c.Emails.SendWithOptions(context.Background(), request("a@example.com"), &resend.SendEmailOptions{})
			done <- err
		}()
		// Wait until the request is inside the handler, then let the
		// subtest end with it hanging.
		waitCtx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		for s.Requests() == 0 {
			select {
			case <-waitCtx.Done():
				t.Fatal("the request never arrived")
			default:
				runtimeYield()
			}
		}
	})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "EOF") {
			t.Errorf("a request that hung until Close returned %v, want the connection dropped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hanging request did not end when the server closed")
	}
}

func TestWaitFor(t *testing.T) {
	s := resendtest.New(t)
	c := client(t, s)
	go func() {
		for _, to := range []string{"a@example.com", "b@example.com"} {
			if _, err := c.Emails.SendWithContext(context.Background(), request(to)); err != nil {
				t.Error(err)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	emails, err := s.WaitFor(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(emails) < 2 {
		t.Errorf("WaitFor(2) returned %d emails", len(emails))
	}
}

func TestWaitForGivesUp(t *testing.T) {
	s := resendtest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.WaitFor(ctx, 1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("WaitFor on a cancelled context = %v, want context.Canceled", err)
	}
}

func post(t *testing.T, s *resendtest.Server, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+"/emails", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer re_test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	return resp
}

func runtimeYield() { runtime.Gosched() }
