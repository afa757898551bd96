package worker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// A dormant login is one trace: the host's span, its Postgres check and
// Redis enqueue, the worker's login:attempt span under it with its SQL,
// and the verification email's span under that, down to the request to
// Resend.
func TestDormantLoginIsOneTrace(t *testing.T) {
	b := setup(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.Background())
	})

	store, err := postgres.Open(b.ctx, testenv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	store.Trace()
	sender, err := mail.NewResend(mail.ResendConfig{APIKey: "re_test", BaseURL: b.resend.URL(), From: "dormancy <no-reply@example.com>",
		Timeout: 2 * time.Second, Transport: otelhttp.NewTransport(http.DefaultTransport)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.cfg
	cfg.Store, cfg.Sender, cfg.Trace = store, sender, true
	cfg.Concurrency, cfg.TaskCheckInterval, cfg.ShutdownTimeout = 4, 10*time.Millisecond, 5*time.Second
	b.serve(t, cfg)

	rc := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), DB: testenv.RedisOpt().DB})
	t.Cleanup(func() { rc.Close() })
	if err := redisotel.InstrumentTracing(rc); err != nil {
		t.Fatal(err)
	}
	host := tasks.NewClient(asynq.NewClientFromRedisClient(rc), store, b.clock.Now)

	login, _ := b.account(t, accountOpts{lastLogin: 100 * day})
	ctx, root := tp.Tracer("host").Start(b.ctx, "host login")
	res, err := host.Login(ctx, tasks.LoginAttempt{CompanyID: b.company, LoginID: login, Method: policy.MethodPassword})
	root.End()
	if err != nil || res.Decision.Outcome != policy.OutcomeVerifyByEmail {
		t.Fatalf("Login: %+v, %v", res, err)
	}
	wait, stop := context.WithTimeout(b.ctx, 20*time.Second)
	defer stop()
	if _, err := b.resend.WaitFor(wait, 1); err != nil {
		t.Fatalf("the verification email: %v", err)
	}
	// The attempt's span ends after the Resend request returns: the link
	// is sent by the attempt's task itself.
	var spans tracetest.SpanStubs
	for {
		spans = exp.GetSpans()
		if find(spans, tasks.TypeLoginAttempt) != nil || wait.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	traceID := root.SpanContext().TraceID()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		if s.SpanContext.TraceID() == traceID {
			byID[s.SpanContext.SpanID()] = s
		}
	}
	// under reports whether s descends from the span named parent.
	under := func(s *tracetest.SpanStub, parent string) bool {
		for p, ok := byID[s.Parent.SpanID()]; ok; p, ok = byID[p.Parent.SpanID()] {
			if p.Name == parent {
				return true
			}
		}
		return false
	}
	if attempt := find(spans, tasks.TypeLoginAttempt); attempt == nil || attempt.SpanContext.TraceID() != traceID || !under(attempt, "host login") {
		t.Fatalf("the login:attempt span is not in the host's trace: %v", names(spans))
	}
	var hostSQL, hostRedis, handlerSQL, resend bool
	for i := range spans {
		s := &spans[i]
		if s.SpanContext.TraceID() != traceID {
			continue
		}
		// bun's hook, or the store's own span for a prepared statement.
		sql := s.InstrumentationScope.Name == "github.com/uptrace/bun" || s.InstrumentationScope.Name == "github.com/dormancy/dormancy/postgres"
		switch {
		case s.Name == "CheckAccount" && s.Parent.SpanID() == root.SpanContext().SpanID():
			hostSQL = true
		case s.InstrumentationScope.Name == "github.com/redis/go-redis/extra/redisotel" && s.Parent.SpanID() == root.SpanContext().SpanID():
			hostRedis = true
		case sql && under(s, tasks.TypeLoginAttempt):
			handlerSQL = true
		case s.SpanKind == trace.SpanKindClient && under(s, tasks.TypeLoginAttempt) && s.Name != "" && !sql:
			resend = resend || s.InstrumentationScope.Name == "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
		}
	}
	if !hostSQL || !hostRedis || !handlerSQL || !resend {
		t.Errorf("span tree: host SQL %v, host Redis %v, handler SQL %v, Resend request %v; spans: %v", hostSQL, hostRedis, handlerSQL, resend, names(spans))
	}
}

func find(spans tracetest.SpanStubs, name string) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name+" ("+s.InstrumentationScope.Name+")")
	}
	return out
}
