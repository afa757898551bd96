package postgres

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// statement is SQL that a hot path runs prepared, so that each connection
// parses and plans it once. bun formats every other statement on the
// client, and Postgres plans it on every call: for the statements of a
// login and its mail that planning cost as much as running them (a mail's
// read, which joins the partitioned attempts, 0.6 ms to plan, 0.2 ms to
// run). Its SQL takes $n parameters.
type statement struct {
	id int
	// name names the statement's span; query is its SQL.
	name, query string
}

// statements are every statement declared, in declaration order; a
// store prepares statement id on first use.
var statements []*statement

// newStatement declares a prepared statement; package-level variables
// call it, so the list is complete before any store opens.
func newStatement(name, query string) *statement {
	st := &statement{id: len(statements), name: name, query: query}
	statements = append(statements, st)
	return st
}

// prepared is one statement prepared for the pool; database/sql prepares
// it again on each connection that runs it.
type prepared struct {
	st   *statement
	mu   sync.Mutex
	stmt *sql.Stmt
}

func (p *prepared) get(ctx context.Context, db *sql.DB) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stmt != nil {
		return p.stmt, nil
	}
	stmt, err := db.PrepareContext(ctx, p.st.query)
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

// ready is the statement if it is prepared for the pool, else nil.
func (p *prepared) ready() *sql.Stmt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stmt
}

// preparedSet is a store's statements, one entry per declared one; copies
// of a store share it.
type preparedSet struct {
	list []*prepared
	// all is set once every statement is prepared for the pool.
	all atomic.Bool
}

func newPreparedSet() *preparedSet {
	ps := &preparedSet{list: make([]*prepared, len(statements))}
	for i, st := range statements {
		ps.list[i] = &prepared{st: st}
	}
	return ps
}

// prepareAll prepares for the pool every statement not prepared yet. A
// transaction calls it before it takes its connection: preparing for the
// pool takes a connection of its own, and a transaction that waited for
// one while holding a row lock would wait for ever once the others,
// queued behind that lock, held the rest of the pool. A statement that
// does not prepare (a schema older than it) is tried again next time.
func (ps *preparedSet) prepareAll(ctx context.Context, db *sql.DB) {
	if ps.all.Load() {
		return
	}
	ok := true
	for _, p := range ps.list {
		if _, err := p.get(ctx, db); err != nil {
			ok = false
		}
	}
	ps.all.Store(ok)
}

func (ps *preparedSet) close() {
	for _, p := range ps.list {
		p.close()
	}
}

// stmt is st prepared for the pool, or, in tx, for tx's connection. In tx
// it never asks the pool for a connection (prepareAll): a statement the
// pool could not prepare is prepared for tx alone.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, st *statement) (*sql.Stmt, error) {
	p := s.prepared.list[st.id]
	if tx == nil {
		return p.get(ctx, s.db.DB)
	}
	if stmt := p.ready(); stmt != nil {
		return tx.StmtContext(ctx, stmt), nil
	}
	return tx.PrepareContext(ctx, st.query)
}

// query runs st and returns its rows; done ends the statement's span with
// the caller's error, after the rows are read.
func (s *Store) query(ctx context.Context, tx *sql.Tx, st *statement, args ...any) (rows *sql.Rows, done func(error), err error) {
	stmt, err := s.stmt(ctx, tx, st)
	if err != nil {
		return nil, nil, err
	}
	ctx, end := st.trace(ctx)
	rows, err = stmt.QueryContext(ctx, args...)
	if err != nil {
		end(err)
		return nil, nil, err
	}
	return rows, func(err error) {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		end(err)
	}, nil
}

// scanOne runs st and scans its one row into dest: plain values, or one
// struct whose fields bun maps by column name. No row is sql.ErrNoRows.
func (s *Store) scanOne(ctx context.Context, tx *sql.Tx, st *statement, args []any, dest ...any) (err error) {
	rows, done, err := s.query(ctx, tx, st, args...)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if len(dest) == 1 {
		if err := s.db.ScanRow(ctx, rows, dest[0]); err != nil {
			return err
		}
	} else if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Err()
}

// scanAll runs st and scans every row into dest, a pointer to a slice.
func (s *Store) scanAll(ctx context.Context, tx *sql.Tx, st *statement, dest any, args ...any) (err error) {
	rows, done, err := s.query(ctx, tx, st, args...)
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	return s.db.ScanRows(ctx, rows, dest)
}

// exec runs st for its effect.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, st *statement, args ...any) error {
	stmt, err := s.stmt(ctx, tx, st)
	if err != nil {
		return err
	}
	ctx, end := st.trace(ctx)
	_, err = stmt.ExecContext(ctx, args...)
	end(err)
	return err
}

// tracer names the spans of the prepared statements. bun's query hook,
// which gives every other statement its span, never sees them; without
// these, a traced login would show no SQL for its check. With tracing off
// the global provider is a no-op and so is the span.
var tracer = otel.Tracer("github.com/dormancy/dormancy/postgres")

// trace starts the span of one run of the statement; end closes it with
// the run's error (a missing row is not one).
func (st *statement) trace(ctx context.Context) (_ context.Context, end func(error)) {
	ctx, span := tracer.Start(ctx, st.name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.name", "dormancy"),
			attribute.String("db.statement", st.query)))
	return ctx, func(err error) {
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
