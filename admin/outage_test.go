package admin

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/postgres"
)

// outageServer is an admin server like setup's whose Redis is an address
// where nothing listens and whose Postgres is reached through a proxy the
// test can cut.
func outageServer(t *testing.T, b *testBundle) (*Server, func()) {
	t.Helper()
	u, err := url.Parse(testenv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr()
	store, err := postgres.Open(b.ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := New(Config{
		Store: store, Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond}, LinkSecret: testSecret,
		OperatorUser: operatorUser, OperatorPassword: operatorPass,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: b.clock.Now,
		Throttle: Throttle{Attempts: 1 << 20, Window: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, proxy.cut
}

// With Redis down, POST /api/v1/login-attempts still answers the decision
// and holds the attempt in Postgres; with Postgres down as well it answers
// 503 unavailable with Retry-After, and decides nothing.
func TestLoginAttemptAPIDuringOutages(t *testing.T) {
	b := setup(t)
	srv, cutPostgres := outageServer(t, b)
	b.srv = srv
	body := fmt.Sprintf(`{"company_id":%q,"login_id":%q,"method":"password","attempt_key":"outage-1"}`, b.a.id, loginIDOf(t, b, b.a.member))

	began := time.Now()
	w := b.api("POST", "/api/v1/login-attempts", body, 0)
	t.Logf("answered in %v with Redis down", time.Since(began))
	if w.Code != http.StatusOK {
		t.Fatalf("Redis down: %d %s, want 200 with the decision", w.Code, w.Body.String())
	}
	var r loginAttemptResponse
	mustJSON(t, w, &r)
	if r.Outcome != "ask_administrator" || !r.Locked {
		t.Errorf("Redis down: decision %+v, want the dormant member refused", r)
	}
	if got := testenv.Count(t, b.db, `SELECT count(*) FROM task_outbox WHERE task_id = 'login:attempt:outage-1'`); got != 1 {
		t.Errorf("held attempts = %d, want 1", got)
	}

	cutPostgres()
	body2 := fmt.Sprintf(`{"company_id":%q,"login_id":%q,"method":"password","attempt_key":"outage-2"}`, b.a.id, loginIDOf(t, b, b.a.active))
	w = b.api("POST", "/api/v1/login-attempts", body2, 0)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("Postgres down: %d (Retry-After %q) %s, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	if e := apiErrorOf(t, w); e.Code != codeUnavailable {
		t.Errorf("Postgres down: code %q, want %q", e.Code, codeUnavailable)
	}
	if got := testenv.Count(t, b.db, `SELECT count(*) FROM task_outbox WHERE task_id = 'login:attempt:outage-2'`); got != 0 {
		t.Errorf("an attempt answered 503 was held")
	}
}

// tcpProxy forwards connections to a target until cut, which closes the
// listener and every connection.
type tcpProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	t.Cleanup(p.cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
