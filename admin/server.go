// Package admin is dormancy's HTTP server: Asynqmon behind operator
// authentication, a JSON API through which host platforms in any language
// use dormancy, the pages on which company administrators unlock their
// employees and choose who is alerted, /metrics and health checks.
//
// Every route is in one table (routes), which says how the route is
// authenticated; nothing reaches a handler without passing that check, and
// the tests walk the table. Handlers that act for an administrator read the
// actor afresh on every request and check company, permission and status
// themselves.
package admin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/dormancy/dormancy/cluster"
	"github.com/dormancy/dormancy/internal/outage"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// Config is everything the server needs; cmd/dormancy fills it from the
// environment.
type Config struct {
	Store *postgres.Store
	Redis asynq.RedisConnOpt
	// Queue takes the tasks the API enqueues; nil means an asynq client on
	// Redis.
	Queue tasks.Enqueuer
	// LinkSecret is the HMAC key shared with the host for signed links to
	// the administrators' pages; at least MinLinkSecret bytes.
	LinkSecret []byte
	// OperatorUser and OperatorPassword guard /monitoring/, /metrics and
	// the dev mailbox. Without them those routes answer 401 to everyone.
	OperatorUser     string
	OperatorPassword string
	// MonitoringReadOnly hides Asynqmon's buttons that change queues.
	MonitoringReadOnly bool
	// DevMailbox serves /dev/mailbox: mail is going to the dev mailbox.
	DevMailbox bool
	// SessionTTL is how long an administrator's session lasts (8 h when 0);
	// MaxLinkTTL is the longest lifetime a signed link may claim (15 min
	// when 0), so a host cannot mint a link that works for a day.
	SessionTTL time.Duration
	// SessionIdle ends a session unused for this long (30 min when 0).
	SessionIdle time.Duration
	// Throttle bounds failed operator logins, API keys and admin links
	// per client IP, and failed verification redeems per account
	// (DefaultThrottle when zero).
	Throttle Throttle
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client; from anyone else the header is ignored.
	TrustedProxies []netip.Prefix
	MaxLinkTTL     time.Duration
	// InsecureCookies drops the Secure attribute from the session cookie,
	// for plain-HTTP development on a host name browsers do not trust.
	InsecureCookies bool
	Logger          *slog.Logger
	// APIKeyCacheTTL is how long a verified API key is trusted without
	// asking Postgres: how long a revoked key may keep working. 0 means
	// DefaultAPIKeyCacheTTL; negative turns the cache off.
	APIKeyCacheTTL time.Duration
	// Trace records a span per request (otelhttp, continuing a caller's
	// traceparent) and per Redis command (redisotel); the caller turns the
	// store's on and sets the global tracer provider.
	Trace bool
	// RedisWatch, when set, is told of Redis failures and asked before
	// each throttle check: during an outage the throttles let requests
	// through at once instead of each waiting for Redis.
	RedisWatch *outage.Watch
	// Replication is what an enqueue waits for on a Redis Cluster
	// (cluster.Options); the zero value waits for nothing.
	Replication cluster.Options
	// Layout is where the API enqueues login attempts (CRITICAL_QUEUES)
	// and how long Redis keeps them done; the zero value is the
	// constructors' layout.
	Layout tasks.Layout
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// Random is the source of session tokens and keys; nil means crypto/rand.
	Random io.Reader
	// Webhooks are the rules of endpoint registration.
	Webhooks WebhookSettings
}

// MinLinkSecret is the shortest link secret accepted: 256 bits.
const MinLinkSecret = 32

// Server is the admin HTTP handler.
type Server struct {
	cfg       Config
	store     *postgres.Store
	queue     tasks.Enqueuer
	host      *tasks.Client
	inspector *asynq.Inspector
	redis     redis.UniversalClient
	throttles throttles
	apiKeys   *apiKeyCache
	monitor   *asynqmon.HTTPHandler
	metrics   *prometheus.Registry
	pages     *pageSet
	mux       *http.ServeMux
	routes    []route
	log       *slog.Logger
	now       func() time.Time
	random    io.Reader
	closers   []func() error
}

// New builds the server; Run serves it, or use it as an http.Handler.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Redis == nil {
		return nil, errors.New("admin.New: Store and Redis are required")
	}
	if len(cfg.LinkSecret) < MinLinkSecret {
		return nil, fmt.Errorf("admin.New: LinkSecret must be at least %d bytes", MinLinkSecret)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.MaxLinkTTL <= 0 {
		cfg.MaxLinkTTL = 15 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Random == nil {
		cfg.Random = rand.Reader
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Now, random: cfg.Random}
	rc, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("admin.New: Redis option does not make a go-redis client")
	}
	s.redis = rc
	s.closers = append(s.closers, rc.Close)
	if cfg.Trace {
		if err := redisotel.InstrumentTracing(rc); err != nil {
			cfg.Logger.Warn("admin: Redis commands not traced", slog.String("error", err.Error()))
		}
	}
	// The queue shares the throttles' Redis client (and its tracing).
	s.queue = cfg.Queue
	if s.queue == nil {
		q := cluster.NewQueue(rc, cfg.Replication)
		s.queue = q
		s.closers = append(s.closers, q.Close)
	}
	s.host = tasks.NewClient(s.queue, cfg.Store, cfg.Now, tasks.WithLayout(cfg.Layout))
	s.inspector = asynq.NewInspector(cfg.Redis)
	s.closers = append(s.closers, s.inspector.Close)
	if cfg.Throttle.Attempts <= 0 || cfg.Throttle.Window <= 0 {
		cfg.Throttle = DefaultThrottle
		s.cfg.Throttle = cfg.Throttle
	}
	lim := redis_rate.NewLimiter(rc)
	if cfg.APIKeyCacheTTL == 0 {
		cfg.APIKeyCacheTTL = DefaultAPIKeyCacheTTL
	}
	s.apiKeys = newAPIKeyCache(cfg.APIKeyCacheTTL)
	s.throttles = throttles{
		operator: newThrottle(lim, cfg.Throttle, "operator", cfg.Logger, cfg.RedisWatch),
		apiKey:   newThrottle(lim, cfg.Throttle, "api_key", cfg.Logger, cfg.RedisWatch),
		link:     newThrottle(lim, cfg.Throttle, "admin_link", cfg.Logger, cfg.RedisWatch),
		redeem:   newThrottle(lim, cfg.Throttle, "redeem", cfg.Logger, cfg.RedisWatch),
	}
	s.monitor = asynqmon.New(asynqmon.Options{
		RootPath: monitoringRoot, RedisConnOpt: cfg.Redis, ReadOnly: cfg.MonitoringReadOnly,
	})
	s.closers = append(s.closers, s.monitor.Close)
	s.metrics = newMetrics(s)
	pages, err := parsePages()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.pages = pages
	s.routes = s.routeTable()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern, s.guard(rt))
	}
	return s, nil
}

// Close releases the server's Redis connections.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
	s.closers = nil
}

const monitoringRoot = "/monitoring"

// monitoringGuard puts Asynqmon behind what the administrators' pages
// already have: basic auth alone lets any site the operator visits drive
// the dashboard's buttons (pause a queue, delete tasks) with the browser's
// remembered credentials, so a state-changing request that is not
// same-origin is refused (403), and no other site may frame the dashboard
// to trick a click.
func monitoringGuard(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	guarded := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		guarded.ServeHTTP(w, r)
	})
}

// authKind says what a route demands before its handler runs.
type authKind int

const (
	// authNone: health checks, the OpenAPI document, static assets.
	authNone authKind = iota
	// authLink: the signed-link entry, which checks the link itself.
	authLink
	// authAPIKey: a host platform's API key.
	authAPIKey
	// authAPIActor: an API key and an acting administrator, named by the
	// X-Actor-Account-ID header, whom the handler checks against the
	// company it touches.
	authAPIActor
	// authSession: an administrator's session cookie; unsafe methods need
	// the CSRF token too.
	authSession
	// authOperator: the operator's HTTP basic credentials.
	authOperator
)

func (k authKind) String() string {
	return [...]string{"none", "link", "api_key", "api_key+actor", "session", "operator"}[k]
}

// route is one entry of the routing table.
type route struct {
	pattern string // net/http pattern: "METHOD /path/{wildcard}"
	auth    authKind
	handler http.Handler
}

func (s *Server) routeTable() []route {
	api := func(pattern string, auth authKind, h apiHandler) route {
		return route{pattern, auth, s.apiHandler(h)}
	}
	page := func(pattern string, h pageHandler) route {
		return route{pattern, authSession, s.pageHandler(h)}
	}
	rs := []route{
		{"GET /healthz", authNone, http.HandlerFunc(s.healthz)},
		{"GET /readyz", authNone, http.HandlerFunc(s.readyz)},
		{"GET /api/v1/openapi.json", authNone, http.HandlerFunc(serveOpenAPI)},
		{"GET /admin/static/", authNone, staticHandler()},

		api("POST /api/v1/login-attempts", authAPIKey, s.apiLoginAttempt),
		api("POST /api/v1/verifications/redeem", authAPIKey, s.apiRedeem),
		api("GET /api/v1/companies/{id}/accounts", authAPIActor, s.apiListAccounts),
		api("POST /api/v1/companies/{id}/unlocks", authAPIActor, s.apiUnlock),
		api("GET /api/v1/companies/{id}/unlocks/{task_id}", authAPIActor, s.apiUnlockStatus),
		api("GET /api/v1/companies/{id}/login-notification-recipients", authAPIActor, s.apiGetRecipients),
		api("PUT /api/v1/companies/{id}/login-notification-recipients", authAPIActor, s.apiPutRecipients),
		api("GET /api/v1/accounts/{id}", authAPIActor, s.apiAccount),
		api("GET /api/v1/companies/{id}/events", authAPIActor, s.apiCompanyEvents),
		api("GET /api/v1/accounts/{id}/events", authAPIActor, s.apiAccountEvents),
		api("GET /api/v1/accounts/{id}/export", authAPIActor, s.apiExportAccount),
		api("POST /api/v1/accounts/{id}/erasure", authAPIActor, s.apiEraseAccount),
		{"GET /api/v1/companies/{id}/report", authAPIActor, http.HandlerFunc(s.apiReport)},
		api("POST /api/v1/companies/{id}/sweep-confirmations", authAPIActor, s.apiConfirmSweep),
		{"/api/v1/", authNone, http.HandlerFunc(s.apiFallback)},

		{"GET /admin/login", authLink, http.HandlerFunc(s.pageLogin)},
		page("POST /admin/logout", s.pageLogout),
		page("GET /admin/employees", s.pageEmployees),
		page("GET /admin/employees/{id}/history", s.pageHistory),
		page("POST /admin/unlocks", s.pageUnlock),
		page("GET /admin/unlocks/{task_id}", s.pageUnlockStatus),
		page("GET /admin/recipients", s.pageRecipients),
		page("POST /admin/recipients/confirm", s.pageRecipientsConfirm),
		page("POST /admin/recipients", s.pageRecipientsSave),

		{monitoringRoot + "/", authOperator, monitoringGuard(s.monitor)},
		{"GET /metrics", authOperator, s.metricsHandler()},
		// Go's profiles of this process, for the operator: where the host
		// API's time goes under load (BENCHMARKS.md).
		{"GET /debug/pprof/", authOperator, http.HandlerFunc(pprof.Index)},
		{"GET /debug/pprof/profile", authOperator, http.HandlerFunc(pprof.Profile)},
	}
	rs = append(rs, s.directoryRoutes()...)
	rs = append(rs, s.webhookRoutes()...)
	if s.cfg.DevMailbox {
		rs = append(rs, route{"GET /dev/mailbox", authOperator, http.HandlerFunc(s.devMailbox)})
	}
	return rs
}

// guard runs the route's authentication before its handler, so a handler
// never sees an unauthenticated request.
func (s *Server) guard(rt route) http.Handler {
	switch rt.auth {
	case authAPIKey, authAPIActor:
		return s.requireAPIKey(rt.auth == authAPIActor, rt.handler)
	case authSession:
		return s.requireSession(rt.handler)
	case authOperator:
		return s.requireOperator(rt.handler)
	}
	return rt.handler
}

// ServeHTTP serves one request with a request id, a log line and panic
// recovery.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	rid := r.Header.Get("X-Request-ID")
	if !validRequestID(rid) {
		rid = tasks.NewKey()
	}
	w.Header().Set("X-Request-ID", rid)
	sw := &statusWriter{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, rid))
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.ErrorContext(r.Context(), "admin: panic", slog.Any("panic", p), slog.String("path", r.URL.Path))
			if !sw.wrote {
				http.Error(sw, "internal error", http.StatusInternalServerError)
			}
		}
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
			slog.String("request_id", rid), slog.Duration("took", s.now().Sub(start)))
	}()
	s.mux.ServeHTTP(sw, r)
}

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Asynqmon
// streams nothing, but flushes are cheap to keep working).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// apiFallback answers an /api/v1 request no route took, in JSON: 405 with
// the Allow header when the path exists for other methods, 404 otherwise.
func (s *Server) apiFallback(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/api/v1/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed here"})
		return
	}
	writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint"})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// readyz answers 200 when Postgres and Redis both answer within two seconds.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var failed []string
	if err := s.store.Ping(ctx); err != nil {
		failed = append(failed, "postgres")
		s.log.WarnContext(ctx, "readyz: postgres", slog.String("error", err.Error()))
	}
	if err := s.redis.Ping(ctx).Err(); err != nil {
		failed = append(failed, "redis")
		s.log.WarnContext(ctx, "readyz: redis", slog.String("error", err.Error()))
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", strings.Join(failed, ", "))
		return
	}
	io.WriteString(w, "ok\n")
}

// Run serves on addr until ctx is cancelled, then finishes the requests in
// flight (up to 10 s) and returns.
func (s *Server) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin.Run: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var h http.Handler = s
	if s.cfg.Trace {
		// Named by method alone: paths carry ids, and a span name must not.
		h = otelhttp.NewHandler(s, "dormancy admin", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return "HTTP " + r.Method
		}))
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("admin.Serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("admin.Serve: shutdown: %w", err)
	}
	<-done
	return nil
}

// throttles are the server's failure counters, one per kind of credential.
type throttles struct {
	operator, apiKey, link, redeem throttle
}
