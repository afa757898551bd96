package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/resend/resend-go/v2"
)

// ResendConfig configures a Resend sender.
type ResendConfig struct {
	APIKey string
	// BaseURL is the API's address; empty means resend-go's default, which
	// is https://api.resend.com/ unless RESEND_BASE_URL was set when the
	// program started. Tests point it at a resendtest server.
	BaseURL string
	// From is the sender, an address or "Name <address>".
	From string
	// Timeout bounds one Send, connection and response included; 0 means
	// 10 seconds. A task waiting minutes on a stuck connection would hold a
	// worker that other emails need.
	Timeout time.Duration
	// Transport carries the requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
}

const defaultTimeout = 10 * time.Second

// Resend sends email through the Resend API. It is safe for concurrent use.
type Resend struct {
	client *resend.Client
	from   string
}

// NewResend checks cfg and builds a sender. Nothing is sent until Send.
func NewResend(cfg ResendConfig) (*Resend, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, errors.New("mail.NewResend: APIKey is empty")
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("mail.NewResend: From %q: %w", cfg.From, err)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("mail.NewResend: Timeout %v is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	base := cfg.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	client := resend.NewCustomClient(&http.Client{
		Timeout:   cfg.Timeout,
		Transport: recordingTransport{base: base},
	}, strings.TrimSpace(cfg.APIKey))
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("mail.NewResend: BaseURL: %w", err)
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("mail.NewResend: BaseURL %q: want an http or https URL with a host", cfg.BaseURL)
		}
		// resend-go resolves "emails" against BaseURL; without the slash a
		// path prefix such as /resend would be dropped.
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		client.BaseURL = u
	}
	return &Resend{client: client, from: cfg.From}, nil
}

// Send sends m and returns Resend's id for it. A failure is a *SendError
// saying whether a retry can help; a retry with the same m.IdempotencyKey
// delivers at most once.
func (r *Resend) Send(ctx context.Context, m Message) (providerID string, err error) {
	op := fmt.Sprintf("mail.Resend.Send(%q)", m.IdempotencyKey)
	if err := m.validate(); err != nil {
		return "", &SendError{Permanent: true, Err: fmt.Errorf("%s: %w", op, err)}
	}
	rec := &responseRecord{}
	ctx = context.WithValue(ctx, responseRecordKey{}, rec)
	resp, err := r.client.Emails.SendWithOptions(ctx, &resend.SendEmailRequest{
		From:    r.from,
		To:      []string{m.To},
		Subject: oneLine(m.Subject),
		Text:    m.Text,
		Html:    m.HTML,
		Tags:    resendTags(m.Tags),
	}, &resend.SendEmailOptions{IdempotencyKey: m.IdempotencyKey})
	if err == nil && resp.Id == "" {
		err = errors.New("response has no email id")
	}
	if err != nil {
		return "", classify(op, err, rec.get())
	}
	return resp.Id, nil
}

// classify turns what resend-go returned, and what the transport saw, into a
// SendError.
func classify(op string, err error, seen response) *SendError {
	se := &SendError{Status: seen.status, Name: seen.name, Err: fmt.Errorf("%s: %w", op, err)}
	if seen.status == 0 {
		// No response at all: timeout, refused connection, cancelled
		// context. Resend may or may not have the email; the key makes the
		// retry safe either way.
		return se
	}
	se.Permanent = permanentStatus(seen.status, seen.name)
	se.RetryAfter = parseRetryAfter(seen.retryAfter)
	var rl *resend.RateLimitError
	if se.RetryAfter == 0 && errors.As(err, &rl) {
		se.RetryAfter = parseRetryAfter(rl.RetryAfter)
	}
	if se.RetryAfter == 0 && seen.status == http.StatusTooManyRequests {
		// ratelimit-reset is the seconds until the window resets.
		se.RetryAfter = parseRetryAfter(seen.rateLimitReset)
	}
	return se
}

// response is what the transport saw of the last response to one Send.
type response struct {
	status         int
	name           string
	retryAfter     string
	rateLimitReset string
}

// responseRecord carries a response from the transport back to Send. It
// travels in the request's context, so concurrent Sends never see each
// other's.
type responseRecord struct {
	mu sync.Mutex
	r  response
}

func (rec *responseRecord) set(r response) {
	rec.mu.Lock()
	rec.r = r
	rec.mu.Unlock()
}

func (rec *responseRecord) get() response {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.r
}

type responseRecordKey struct{}

// maxErrorBody bounds how much of an error response is kept to read Resend's
// error name from; Resend's are well under a kilobyte.
const maxErrorBody = 64 << 10

// recordingTransport exists because resend-go turns every status except 429
// into a plain error with the message only, and whether to retry depends on
// the status and the error name.
type recordingTransport struct {
	base http.RoundTripper
}

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	rec, _ := req.Context().Value(responseRecordKey{}).(*responseRecord)
	if err != nil || rec == nil {
		return resp, err
	}
	r := response{
		status:         resp.StatusCode,
		retryAfter:     resp.Header.Get("Retry-After"),
		rateLimitReset: resp.Header.Get("Ratelimit-Reset"),
	}
	if resp.StatusCode >= 400 {
		// Read the error body here for its name and hand resend-go a copy.
		body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if readErr == nil {
			var e struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(body, &e) == nil {
				r.name = e.Name
			}
		}
	}
	rec.set(r)
	return resp, nil
}
