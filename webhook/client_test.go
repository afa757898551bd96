package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckURLRefusesInternalAddresses(t *testing.T) {
	ctx := context.Background()
	r := StaticResolver{
		"hooks.example.com":   {netip.MustParseAddr("93.184.215.14")},
		"internal.example":    {netip.MustParseAddr("10.1.2.3")},
		"metadata.example":    {netip.MustParseAddr("169.254.169.254")},
		"dual.example":        {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("::1")},
		"mapped.example":      {netip.MustParseAddr("::ffff:127.0.0.1")},
		"carrier.example":     {netip.MustParseAddr("100.64.0.7")},
		"localhost.example":   {netip.MustParseAddr("127.0.0.1")},
		"ula.example":         {netip.MustParseAddr("fd00::1")},
		"multicast.example":   {netip.MustParseAddr("224.0.0.1")},
		"unspecified.example": {netip.MustParseAddr("0.0.0.0")},
	}
	strict := AddressPolicy{}
	for _, raw := range []string{
		"https://127.0.0.1/hook", "https://[::1]/hook", "https://10.0.0.1/", "https://172.16.5.4/", "https://192.168.1.1/",
		"https://169.254.169.254/latest/meta-data", "https://[fe80::1]/", "https://100.64.0.1/", "https://0.0.0.0/",
		"https://224.0.0.1/", "https://internal.example/", "https://metadata.example/", "https://dual.example/",
		"https://mapped.example/", "https://carrier.example/", "https://localhost.example/", "https://ula.example/",
		"https://multicast.example/", "https://unspecified.example/", "https://[::ffff:10.0.0.1]/",
	} {
		if _, err := strict.CheckURL(ctx, raw, r); !errors.Is(err, ErrAddressRefused) {
			t.Errorf("%s: %v, want the address refused", raw, err)
		}
	}
	for _, raw := range []string{"http://hooks.example.com/x", "ftp://hooks.example.com/", "https://user:pw@hooks.example.com/",
		"https://hooks.example.com/#frag", "/relative", "https://", "https://nowhere.example/", "https://" + strings.Repeat("a", 3000)} {
		if _, err := strict.CheckURL(ctx, raw, r); err == nil {
			t.Errorf("%s: accepted", raw)
		}
	}
	if _, err := strict.CheckURL(ctx, "https://hooks.example.com/dormancy", r); err != nil {
		t.Errorf("a public https URL: %v", err)
	}

	allow, err := ParseAllow("loopback, 10.1.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	loose := AddressPolicy{Allow: allow, AllowHTTP: true}
	for _, raw := range []string{"http://127.0.0.1:8080/hook", "https://[::1]/", "https://localhost.example/", "https://internal.example/"} {
		if _, err := loose.CheckURL(ctx, raw, r); err != nil {
			t.Errorf("%s with loopback and 10.1/16 allowed: %v", raw, err)
		}
	}
	for _, raw := range []string{"https://10.2.0.1/", "https://metadata.example/"} {
		if _, err := loose.CheckURL(ctx, raw, r); !errors.Is(err, ErrAddressRefused) {
			t.Errorf("%s with loopback and 10.1/16 allowed: %v, want refused", raw, err)
		}
	}
	if _, err := ParseAllow("loopback,everything"); err == nil {
		t.Error("ParseAllow took an unknown name")
	}
}

// TestClientRefusesAtDialTime: the check runs on the address dialled, so
// a URL that passed registration (or a name that now resolves elsewhere)
// cannot reach a refused address.
func TestClientRefusesAtDialTime(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := NewClient(AddressPolicy{AllowHTTP: true}, 5*time.Second)
	m := Message{ID: "msg_1", At: time.Now(), Body: []byte(`{}`), Keys: [][]byte{[]byte("k")}}
	for _, u := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		_, err := c.Send(context.Background(), u, m)
		var f *Failure
		if !errors.As(err, &f) || !errors.Is(err, ErrAddressRefused) && !strings.Contains(f.Reason, "not allowed") {
			t.Errorf("%s: %v, want the address refused", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the receiver was reached %d times", hits.Load())
	}
	allowed := NewClient(AddressPolicy{Allow: refused["loopback"], AllowHTTP: true}, 5*time.Second)
	if status, err := allowed.Send(context.Background(), srv.URL, m); err != nil || status != 200 {
		t.Errorf("loopback allowed: %d %v", status, err)
	}
}

// TestClientFollowsNoRedirect: a 3xx is a failure, and its target sees
// nothing.
func TestClientFollowsNoRedirect(t *testing.T) {
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	defer target.Close()
	for _, code := range []int{301, 302, 307, 308} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/stolen", code)
		}))
		c := NewClient(AddressPolicy{Allow: refused["loopback"], AllowHTTP: true}, 5*time.Second)
		status, err := c.Send(context.Background(), redirector.URL, Message{ID: "msg_1", At: time.Now(), Body: []byte(`{}`), Keys: [][]byte{[]byte("k")}})
		var f *Failure
		if !errors.As(err, &f) || status != code || f.Permanent || !strings.Contains(f.Reason, "not followed") {
			t.Errorf("%d: status %d, %v", code, status, err)
		}
		redirector.Close()
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

func TestClientClassifiesAnswers(t *testing.T) {
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, strings.Repeat("x", 1<<20))
	}))
	defer srv.Close()
	c := NewClient(AddressPolicy{Allow: refused["loopback"], AllowHTTP: true}, 5*time.Second)
	m := Message{ID: "msg_1", At: time.Now(), Body: []byte(`{}`), Keys: [][]byte{[]byte("k")}}
	for _, tc := range []struct {
		status     int
		ok, gone   bool
		retryAfter time.Duration
	}{{200, true, false, 0}, {204, true, false, 0}, {400, false, false, 0}, {410, false, true, 0},
		{429, false, false, 7 * time.Second}, {500, false, false, 0}, {503, false, false, 7 * time.Second}} {
		status.Store(int32(tc.status))
		got, err := c.Send(context.Background(), srv.URL, m)
		var f *Failure
		if got != tc.status || (err == nil) != tc.ok {
			t.Errorf("%d: got %d, %v", tc.status, got, err)
			continue
		}
		if err != nil && (!errors.As(err, &f) || f.Gone != tc.gone || f.RetryAfter != tc.retryAfter || f.Permanent || len(f.Reason) > 200) {
			t.Errorf("%d: %+v", tc.status, f)
		}
	}
	// A receiver that does not answer in time.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	quick := NewClient(AddressPolicy{Allow: refused["loopback"], AllowHTTP: true}, 100*time.Millisecond)
	if _, err := quick.Send(context.Background(), slow.URL, m); err == nil {
		t.Error("a receiver that never answers: no error")
	}
	if _, err := c.Send(context.Background(), "gopher://x", m); err == nil || !err.(*Failure).Permanent {
		t.Errorf("a bad URL: %v, want permanent", err)
	}
}
