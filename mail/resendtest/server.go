// Package resendtest is a fake Resend API for tests. Code under test talks to
// it through the real resend-go client, so request encoding, headers and
// error decoding are exercised as they are against Resend; the fake records
// what would have been delivered and can be told to fail or hang.
package resendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Email is one delivery the fake accepted.
type Email struct {
	ID             string
	From           string
	To             []string
	Subject        string
	HTML           string
	Text           string
	IdempotencyKey string
	Tags           map[string]string
	ReceivedAt     time.Time
}

// Server is a fake Resend API on a local port. It is safe for concurrent use.
type Server struct {
	srv     *httptest.Server
	closing chan struct{}

	mu       sync.Mutex
	emails   []Email
	requests int
	byKey    map[string]keyed
	faults   []fault
	// delivered is closed and replaced on every delivery, waking WaitFor.
	delivered chan struct{}
}

// keyed is what the fake remembers of an idempotency key: Resend answers a
// repeat of the same payload with the first id and refuses a different one.
type keyed struct {
	id      string
	payload []byte
}

type fault struct {
	hang    bool
	status  int
	headers map[string]string
}

// New starts a fake Resend API that is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		closing:   make(chan struct{}),
		byKey:     make(map[string]keyed),
		delivered: make(chan struct{}),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(func() {
		// Release hanging requests first: httptest.Server.Close waits for
		// every handler to return.
		close(s.closing)
		s.srv.Close()
	})
	return s
}

// URL is the base URL to give the client (mail.ResendConfig.BaseURL).
func (s *Server) URL() string { return s.srv.URL }

// Emails returns the deliveries so far, oldest first.
func (s *Server) Emails() []Email {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneEmails(s.emails)
}

// Count is the number of deliveries so far; repeats of an idempotency key
// and failed requests are not deliveries.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.emails)
}

// Requests is the number of requests received, failed and repeated ones
// included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// FailNext makes the next n requests fail with status, the given response
// headers (for example "retry-after"), and a JSON error body shaped like
// Resend's. Faults queue in the order they were scripted.
func (s *Server) FailNext(n int, status int, headers map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{status: status, headers: headers})
	}
}

// HangNext makes the next n requests wait without answering until the
// client gives up or the server closes, as a stuck connection would.
func (s *Server) HangNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{hang: true})
	}
}

// WaitFor blocks until at least n emails were delivered, and returns them,
// or until ctx ends.
func (s *Server) WaitFor(ctx context.Context, n int) ([]Email, error) {
	for {
		s.mu.Lock()
		if len(s.emails) >= n {
			out := cloneEmails(s.emails)
			s.mu.Unlock()
			return out, nil
		}
		got, wake := len(s.emails), s.delivered
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("resendtest.WaitFor(%d): %d delivered: %w", n, got, ctx.Err())
		}
	}
}

// request is the body of POST /emails as far as the fake reads it.
type request struct {
	From    string          `json:"from"`
	To      json.RawMessage `json:"to"`
	Subject string          `json:"subject"`
	HTML    string          `json:"html"`
	Text    string          `json:"text"`
	Tags    []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"tags"`
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Reading the whole body first also lets net/http notice a client that
	// hangs up, which is what ends a hanging request.
	body, err := io.ReadAll(r.Body)

	s.mu.Lock()
	s.requests++
	var f *fault
	if len(s.faults) > 0 {
		next := s.faults[0]
		s.faults = s.faults[1:]
		f = &next
	}
	s.mu.Unlock()

	switch {
	case f != nil && f.hang:
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			// Drop the connection without an answer, as a dying server
			// would; a plain return would send an empty 200.
			panic(http.ErrAbortHandler)
		}
	case f != nil:
		for k, v := range f.headers {
			w.Header().Set(k, v)
		}
		writeError(w, f.status, errorName(f.status), "scripted failure")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "validation_error", "cannot read body: "+err.Error())
		return
	case r.URL.Path != "/emails":
		writeError(w, http.StatusNotFound, "not_found", "The requested endpoint does not exist.")
		return
	case r.Method != http.MethodPost:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method is not allowed for the requested path.")
		return
	}
	if key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || strings.TrimSpace(key) == "" {
		writeError(w, http.StatusUnauthorized, "missing_api_key", "Missing API key in the authorization header.")
		return
	}

	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "validation_error", "Invalid JSON: "+err.Error())
		return
	}
	to, ok := recipients(req.To)
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "validation_error", "The `to` field must be a string or an array of strings.")
		return
	}
	switch {
	case req.From == "":
		writeError(w, http.StatusUnprocessableEntity, "validation_error", "The `from` field is required.")
		return
	case len(to) == 0:
		writeError(w, http.StatusUnprocessableEntity, "validation_error", "The `to` field is required.")
		return
	case req.Subject == "":
		writeError(w, http.StatusUnprocessableEntity, "validation_error", "The `subject` field is required.")
		return
	case req.HTML == "" && req.Text == "":
		writeError(w, http.StatusUnprocessableEntity, "validation_error", "Either `html` or `text` is required.")
		return
	}

	idemKey := r.Header.Get("Idempotency-Key")
	if _, set := r.Header["Idempotency-Key"]; set && (idemKey == "" || len(idemKey) > 256) {
		writeError(w, http.StatusBadRequest, "invalid_idempotency_key", "The key must be between 1-256 chars.")
		return
	}
	payload := canonical(body)

	s.mu.Lock()
	if idemKey != "" {
		if prev, ok := s.byKey[idemKey]; ok {
			s.mu.Unlock()
			if !bytes.Equal(prev.payload, payload) {
				writeError(w, http.StatusConflict, "invalid_idempotent_request", "Same idempotency key used with a different request payload.")
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"id": prev.id})
			return
		}
	}
	e := Email{
		ID:             newID(),
		From:           req.From,
		To:             to,
		Subject:        req.Subject,
		HTML:           req.HTML,
		Text:           req.Text,
		IdempotencyKey: idemKey,
		ReceivedAt:     time.Now(),
	}
	if len(req.Tags) > 0 {
		e.Tags = make(map[string]string, len(req.Tags))
		for _, t := range req.Tags {
			e.Tags[t.Name] = t.Value
		}
	}
	if idemKey != "" {
		s.byKey[idemKey] = keyed{id: e.ID, payload: payload}
	}
	s.emails = append(s.emails, e)
	close(s.delivered)
	s.delivered = make(chan struct{})
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, map[string]string{"id": e.ID})
}

// recipients accepts "to" as Resend does: one address or a list.
func recipients(raw json.RawMessage) ([]string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, true
	}
	var one string
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, false
	}
	if one == "" {
		return nil, true
	}
	return []string{one}, true
}

// canonical is the payload with whitespace and key order removed, so that
// only a real change counts as a different request. The order within arrays,
// tags included, still counts.
func canonical(body []byte) []byte {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return body
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

// errorName is the name Resend gives an error of that status.
func errorName(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "validation_error"
	case http.StatusUnauthorized:
		return "missing_api_key"
	case http.StatusForbidden:
		return "invalid_api_key"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusConflict:
		return "invalid_idempotent_request"
	case http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	}
	if status >= 500 {
		return "internal_server_error"
	}
	return "application_error"
}

func writeError(w http.ResponseWriter, status int, name, message string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "name": name, "message": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// newID returns a UUID-shaped id, like Resend's.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cloneEmails(in []Email) []Email {
	out := make([]Email, len(in))
	for i, e := range in {
		e.To = append([]string(nil), e.To...)
		if e.Tags != nil {
			tags := make(map[string]string, len(e.Tags))
			for k, v := range e.Tags {
				tags[k] = v
			}
			e.Tags = tags
		}
		out[i] = e
	}
	return out
}
