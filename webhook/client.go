package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Message is one delivery of one event to one endpoint. ID stays the same
// across retries and replays, so a receiver can drop a message it has seen.
type Message struct {
	ID   string
	At   time.Time
	Body []byte
	// Keys sign the message; two during a secret rotation.
	Keys [][]byte
}

// Client delivers messages. It follows no redirect (a 3xx is a failure:
// a redirect could lead past the address checks, and a receiver that
// moved should be re-registered), reads at most MaxResponseBytes of an
// answer, and gives up after its timeout.
type Client struct {
	hc *http.Client
}

// MaxResponseBytes is how much of a receiver's answer is read: the status
// decides, the body is only kept as a hint in the delivery log.
const MaxResponseBytes = 4 << 10

// NewClient is a client whose every connection the policy checks.
func NewClient(p AddressPolicy, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := p.dialer()
	d.Timeout = timeout
	tr := &http.Transport{
		// No proxy from the environment: the policy checks the address
		// dialled, which through a proxy would be the proxy's.
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &Client{hc: &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Failure is a delivery that did not succeed, sorted for the caller.
type Failure struct {
	// Status is the receiver's HTTP status; 0 when none came.
	Status int
	Reason string
	// Gone: the receiver answered 410, asking to be sent nothing more.
	Gone bool
	// Permanent: trying again cannot succeed (the URL itself is wrong).
	Permanent bool
	// RetryAfter is the receiver's Retry-After on a 429 or 503, if any.
	RetryAfter time.Duration
}

func (f *Failure) Error() string {
	if f.Status != 0 {
		return fmt.Sprintf("webhook: HTTP %d: %s", f.Status, f.Reason)
	}
	return "webhook: " + f.Reason
}

// Send posts m to url and returns the receiver's status, or a *Failure:
// any answer but 2xx, a timeout, a refused address, a connection that
// failed.
func (c *Client) Send(ctx context.Context, url string, m Message) (int, error) {
	if _, err := ParseURL(url, true); err != nil {
		return 0, &Failure{Reason: err.Error(), Permanent: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Body))
	if err != nil {
		return 0, &Failure{Reason: err.Error(), Permanent: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dormancy-webhooks")
	req.Header.Set(HeaderID, m.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(m.At.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(m.ID, m.At, m.Body, m.Keys...))
	resp, err := c.hc.Do(req)
	if err != nil {
		reason := err.Error()
		if errors.Is(err, ErrAddressRefused) {
			reason = "the endpoint's address is not allowed: " + reason
		}
		return 0, &Failure{Reason: reason}
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	f := &Failure{Status: resp.StatusCode, Reason: firstLine(head)}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		f.Reason = "redirect to " + strconv.Quote(resp.Header.Get("Location")) + " not followed"
	case resp.StatusCode == http.StatusGone:
		f.Gone = true
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			f.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return resp.StatusCode, f
}

func firstLine(b []byte) string {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}
