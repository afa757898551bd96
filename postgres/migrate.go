package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/migrate"

	"github.com/dormancy/dormancy/migrations"
)

// migrateLockKey is the advisory lock that makes `migrate` safe to run from
// two processes at once. bun's own lock is a row that a crash leaves held;
// an advisory lock dies with its session.
const migrateLockKey = 0x646f726d616e6379 // "dormancy"

// Migration is one migration's status.
type Migration struct {
	Name    string
	Applied bool
}

// Migrate runs the named direction ("up", "down", "status") against dsn,
// creating the database first if it does not exist. It writes progress to
// out.
func Migrate(ctx context.Context, dsn, direction string, out io.Writer) error {
	return MigrateThrough(ctx, dsn, direction, "", out)
}

// MigrateThrough is Migrate with the migrations after last (a number such
// as "000016") left out, so a slow one can be applied on its own later;
// an empty last means all of them.
func MigrateThrough(ctx context.Context, dsn, direction, last string, out io.Writer) error {
	if direction == "up" {
		if err := createDatabase(ctx, dsn); err != nil {
			return err
		}
	}
	// A migration's statement (an index built on a large table) may run
	// for minutes: no read timeout but the context's.
	db := bun.NewDB(sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn), pgdriver.WithReadTimeout(0))), pgdialect.New())
	defer db.Close()

	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("postgres.Migrate: %w", err)
	}
	defer conn.Close()
	// Polled rather than waited for: a session waiting inside
	// pg_advisory_lock holds a snapshot, and CREATE INDEX CONCURRENTLY in
	// the other process's migration would wait for it to end, forever.
	for {
		var got bool
		if err := conn.NewRaw("SELECT pg_try_advisory_lock(?)", int64(migrateLockKey)).Scan(ctx, &got); err != nil {
			return fmt.Errorf("postgres.Migrate: advisory lock: %w", err)
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres.Migrate: advisory lock: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", int64(migrateLockKey))

	set, err := migrations.New()
	if err != nil {
		return fmt.Errorf("postgres.Migrate: %w", err)
	}
	if last != "" {
		some := migrate.NewMigrations()
		for _, mg := range set.Sorted() {
			if mg.Name <= last {
				some.Add(mg)
			}
		}
		set = some
	}
	m := migrate.NewMigrator(db, set, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("postgres.Migrate: init: %w", err)
	}
	switch direction {
	case "up":
		g, err := m.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("postgres.Migrate up: %w", err)
		}
		if g.IsZero() {
			fmt.Fprintln(out, "migrate: database is up to date")
			return nil
		}
		fmt.Fprintf(out, "migrate: applied %s\n", g)
	case "down":
		g, err := m.Rollback(ctx)
		if err != nil {
			return fmt.Errorf("postgres.Migrate down: %w", err)
		}
		if g.IsZero() {
			fmt.Fprintln(out, "migrate: nothing to roll back")
			return nil
		}
		fmt.Fprintf(out, "migrate: rolled back %s\n", g)
	case "status":
		ms, err := m.MigrationsWithStatus(ctx)
		if err != nil {
			return fmt.Errorf("postgres.Migrate status: %w", err)
		}
		for _, mg := range ms {
			state := "pending"
			if mg.IsApplied() {
				state = "applied"
			}
			fmt.Fprintf(out, "%-8s %s_%s\n", state, mg.Name, mg.Comment)
		}
	default:
		return fmt.Errorf("postgres.Migrate: unknown direction %q (want up, down or status)", direction)
	}
	return nil
}

// createDatabase creates the database dsn names when it is missing, by way
// of the maintenance database "postgres" on the same server.
func createDatabase(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("postgres.createDatabase: DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	admin := *u
	admin.Path = "/postgres"
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(admin.String())))
	defer db.Close()
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("postgres.createDatabase(%q): %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = db.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name))
	var pgErr pgdriver.Error
	// duplicate_database, or the catalog's unique index when two CREATEs race: another process won.
	if errors.As(err, &pgErr) && (pgErr.Field('C') == "42P04" || pgErr.Field('C') == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres.createDatabase(%q): %w", name, err)
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
