package admin

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
)

// throttledServer allows ten failures in window, then one more each tenth
// of it. The window must be long enough that ten failures fit in a tenth of
// it on a slow machine (under -race), or the eleventh finds a failure
// already forgiven.
func throttledServer(t *testing.T, b *testBundle, window time.Duration) *Server {
	t.Helper()
	srv, err := New(Config{Store: b.store, Redis: testenv.RedisOpt(), LinkSecret: testSecret,
		OperatorUser: operatorUser, OperatorPassword: operatorPass, Now: b.clock.Now,
		Logger:         slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Throttle:       Throttle{Attempts: 10, Window: window},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

var ipSeq atomic.Uint32

// uniqueIP is an address no other test of this binary counts under (each
// run has a Redis DB of its own).
func uniqueIP() string {
	n := ipSeq.Add(1)
	return fmt.Sprintf("198.18.%d.%d", (n>>8)&0xff, n&0xff)
}

// eventually retries call until it gives want, for at most 30 seconds of
// the wall clock: the throttle runs on Redis's clock, not the test's.
func eventually(t *testing.T, what string, want int, call func() int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for got := call(); got != want; got = call() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d", what, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOperatorLoginThrottled(t *testing.T) {
	b := setup(t)
	// Ten seconds: ten failures must land within one second, and the
	// right password works again a second after.
	srv := throttledServer(t, b, 10*time.Second)
	ip := uniqueIP()
	try := func(pass string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = ip + ":5000"
		r.SetBasicAuth(operatorUser, pass)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	for i := range 10 {
		if w := try("wrong"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i+1, w.Code)
		}
	}
	w := try(operatorPass)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("the right password after ten wrong ones: %d (Retry-After %q), want 429", w.Code, w.Header().Get("Retry-After"))
	}
	// Another address is not held back.
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.RemoteAddr = uniqueIP() + ":5000"
	r.SetBasicAuth(operatorUser, operatorPass)
	if w := httptest.NewRecorder(); func() int { srv.ServeHTTP(w, r); return w.Code }() != http.StatusOK {
		t.Errorf("another address: %d", w.Code)
	}
	eventually(t, "the right password a tenth of the window later", http.StatusOK, func() int { return try(operatorPass).Code })
}

func TestAPIKeyAndLinkThrottledPerAddress(t *testing.T) {
	b := setup(t)
	srv := throttledServer(t, b, 10*time.Minute)
	ip := uniqueIP()
	api := func(key, remote, forwarded string) int {
		r := httptest.NewRequest("POST", "/api/v1/login-attempts", strings.NewReader(`{}`))
		r.RemoteAddr = remote + ":5000"
		if forwarded != "" {
			r.Header.Set("X-Forwarded-For", forwarded)
		}
		r.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code
	}
	// Behind the trusted proxy, the client is the forwarded address.
	for range 10 {
		if got := api("dmy_wrong", "10.1.2.3", ip); got != http.StatusUnauthorized {
			t.Fatalf("unknown key: %d", got)
		}
	}
	if got := api(b.apiKey, "10.1.2.3", ip); got != http.StatusTooManyRequests {
		t.Errorf("the right key from the throttled client: %d, want 429", got)
	}
	if got := api(b.apiKey, "10.1.2.3", uniqueIP()); got == http.StatusTooManyRequests {
		t.Error("another client behind the same proxy is throttled")
	}
	// From an untrusted peer the header is ignored: the peer is counted.
	if got := api(b.apiKey, uniqueIP(), ip); got == http.StatusTooManyRequests {
		t.Error("a forged X-Forwarded-For moved the count")
	}

	linkIP := uniqueIP()
	link := func(target string) int {
		r := linkRequest(target)
		r.RemoteAddr = linkIP + ":5000"
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code
	}
	bad := strings.Replace(b.link(t, b.a.id, b.a.admin, time.Minute), "sig=", "sig=00", 1)
	for range 10 {
		if got := link(bad); got != http.StatusForbidden {
			t.Fatalf("tampered link: %d", got)
		}
	}
	if got := link(b.link(t, b.a.id, b.a.admin, time.Minute)); got != http.StatusTooManyRequests {
		t.Errorf("a good link from the throttled address: %d, want 429", got)
	}
}

// Redeem is throttled per account, not per host: host servers call it for
// everyone, so one guesser must not block a whole host, and a guesser
// spread over several hosts is still counted once.
func TestRedeemThrottledPerAccount(t *testing.T) {
	b := setup(t)
	srv := throttledServer(t, b, 10*time.Minute)
	redeem := func(login, remote string) int {
		body := fmt.Sprintf(`{"company_id":%q,"login_id":%q,"token":%q}`, b.a.id, login, strings.Repeat("A", 43))
		r := httptest.NewRequest("POST", "/api/v1/verifications/redeem", strings.NewReader(body))
		r.RemoteAddr = remote + ":5000"
		r.Header.Set("Authorization", "Bearer "+b.apiKey)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code
	}
	target, other := loginIDOf(t, b, b.a.lockedEmail), loginIDOf(t, b, b.a.active)
	for i := range 10 {
		host := []string{"203.0.113.1", "203.0.113.2"}[i%2] // two hosts
		if got := redeem(target, host); got != http.StatusUnprocessableEntity {
			t.Fatalf("wrong token %d: %d", i+1, got)
		}
	}
	if got := redeem(target, uniqueIP()); got != http.StatusTooManyRequests {
		t.Errorf("the account after ten wrong tokens, from a third host: %d, want 429", got)
	}
	if got := redeem(other, uniqueIP()); got != http.StatusUnprocessableEntity {
		t.Errorf("another account: %d, want 422 (not throttled)", got)
	}
}
