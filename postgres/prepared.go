package postgres

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// prepared is a statement prepared once for the pool; database/sql
// prepares it again on each connection that runs it, so each connection
// parses and plans it once. For the few hot statements whose planning
// costs as much as running them; bun formats every other statement on the
// client.
type prepared struct {
	// name names the statement's span; query is its SQL.
	name, query string

	mu   sync.Mutex
	stmt *sql.Stmt
}

func (p *prepared) get(ctx context.Context, db *sql.DB) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stmt != nil {
		return p.stmt, nil
	}
	stmt, err := db.PrepareContext(ctx, p.query)
	if err != nil {
		return nil, err
	}
	p.stmt = stmt
	return stmt, nil
}

func (p *prepared) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stmt != nil {
		_ = p.stmt.Close()
		p.stmt = nil
	}
}

// tracer names the spans of the prepared statements. bun's query hook,
// which gives every other statement its span, never sees them; without
// these, a traced login would show no SQL for its check. With tracing off
// the global provider is a no-op and so is the span.
var tracer = otel.Tracer("github.com/dormancy/dormancy/postgres")

// trace starts the span of one run of the statement; end closes it with
// the run's error (a missing row is not one).
func (p *prepared) trace(ctx context.Context) (_ context.Context, end func(error)) {
	ctx, span := tracer.Start(ctx, p.name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.name", "dormancy"),
			attribute.String("db.statement", p.query)))
	return ctx, func(err error) {
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
