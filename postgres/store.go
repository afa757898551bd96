// Package postgres is the only package that speaks SQL. It keeps dormancy's
// state in Postgres through bun, and every rule about concurrency lives in
// its statements: row locks serialise the attempts of one account, unique
// constraints make redelivered tasks find their earlier work.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/extra/bunotel"

	"github.com/dormancy/dormancy/policy"
)

// ErrNotFound is returned when a row the caller named does not exist.
var ErrNotFound = policy.ErrNotFound

// Store is dormancy's database.
type Store struct {
	db        *bun.DB
	companies *companyCache
	// prepared holds the declared statements (newStatement), shared by
	// copies of the store.
	prepared *preparedSet
}

// DefaultMaxConns is the connection pool of one process: enough for a
// worker at its default concurrency with room for the batcher and the
// maintenance jobs. Postgres allows 100 by default, so a fleet of processes
// sets DATABASE_MAX_CONNS lower.
const DefaultMaxConns = 32

// Open connects to dsn and checks that the database answers. maxConns
// bounds the pool; 0 means DefaultMaxConns.
func Open(ctx context.Context, dsn string, maxConns ...int) (*Store, error) {
	n := DefaultMaxConns
	if len(maxConns) > 0 && maxConns[0] > 0 {
		n = maxConns[0]
	}
	connector := pgdriver.NewConnector(pgdriver.WithDSN(dsn), pgdriver.WithTimeout(10*time.Second))
	sqldb := sql.OpenDB(connector)
	sqldb.SetMaxOpenConns(n)
	sqldb.SetMaxIdleConns(n)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := bun.NewDB(sqldb, pgdialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres.Open: %w", err)
	}
	return &Store{db: db, prepared: newPreparedSet()}, nil
}

// Trace records a span for every statement (bunotel), under the span of
// the statement's context; dormancy calls it, before the store is shared,
// when tracing is on.
func (s *Store) Trace() {
	s.db = s.db.WithQueryHook(bunotel.NewQueryHook(bunotel.WithDBName("dormancy")))
}

// Close releases the connections.
func (s *Store) Close() error {
	s.prepared.close()
	return s.db.Close()
}

// scanOne runs st in the transaction and scans its one row into dest
// (Store.scanOne).
func (t *Tx) scanOne(ctx context.Context, st *statement, args []any, dest ...any) error {
	return t.s.scanOne(ctx, t.tx.Tx, st, args, dest...)
}

// scanAll runs st in the transaction and scans its rows into dest.
func (t *Tx) scanAll(ctx context.Context, st *statement, dest any, args ...any) error {
	return t.s.scanAll(ctx, t.tx.Tx, st, dest, args...)
}

// exec runs st in the transaction.
func (t *Tx) exec(ctx context.Context, st *statement, args ...any) error {
	return t.s.exec(ctx, t.tx.Tx, st, args...)
}

// Ping reports whether the database answers; /readyz uses it.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Tx is one transaction. Its methods are the steps a handler composes; the
// handler decides, the Tx only reads and writes.
type Tx struct {
	tx bun.Tx
	s  *Store
}

// WithTx runs fn in a transaction and commits when fn returns nil.
func (s *Store) WithTx(ctx context.Context, fn func(*Tx) error) error {
	s.prepared.prepareAll(ctx, s.db.DB)
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return fn(&Tx{tx: tx, s: s})
	})
}

// Unavailable reports whether err says the database could not be reached
// or would not serve (a refused or broken connection, a timeout, a server
// shutting down or out of connections), as opposed to refusing the
// statement: a caller answers "try again later", not "internal error".
func Unavailable(err error) bool {
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		code := pgErr.Field('C')
		return len(code) == 5 && (code[:2] == "08" || code[:2] == "53" || code[:2] == "57")
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// Retryable reports whether err is a database failure worth retrying: a
// lost connection, a serialisation failure or deadlock, a server shutting
// down. Constraint violations and bad input are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	// Refusals of the input: the same task fails the same way every time.
	var fe *policy.FieldError
	if errors.Is(err, ErrNotFound) || errors.Is(err, policy.ErrForbidden) || errors.As(err, &fe) {
		return false
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		code := pgErr.Field('C')
		switch {
		case code == "40001", code == "40P01": // serialization_failure, deadlock_detected
			return true
		case len(code) == 2+3 && (code[:2] == "08" || code[:2] == "53" || code[:2] == "57"):
			// connection exceptions, insufficient resources, operator intervention
			return true
		}
		return false
	}
	// Anything that is not a server error (network, timeout, pool) is transient.
	return true
}
