package postgres_test

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// Migrations 000019 and 000020 turn a filled login_attempts and
// audit_events into partitioned tables while logins go on being recorded
// through the worker's batch statement, audited and read back by account:
// none fails, none is lost, and every row is still there.
// DORMANCY_TEST_PARTITION_ROWS sets the table's size (200,000; the
// figure in SCALING.md is from 1,000,000).
func TestPartitionMigrationKeepsLoginsGoing(t *testing.T) {
	rows := 200_000
	if n, err := strconv.Atoi(os.Getenv("DORMANCY_TEST_PARTITION_ROWS")); err == nil && n > 0 {
		rows = n
	}
	ctx := context.Background()
	u, _ := url.Parse(testenv.DSN())
	u.Path = "/" + strings.ReplaceAll(testenv.UniqueID("dormancy_part"), "-", "_")
	dsn := u.String()
	t.Cleanup(func() { dropDB(t, u.Path[1:]) })
	if err := postgres.MigrateThrough(ctx, dsn, "up", "000018", io.Discard); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: "co"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var logins []string
	var first int64
	for i := range 50 {
		login := fmt.Sprintf("u%d@example.com", i)
		id, err := store.UpsertAccount(ctx, postgres.AccountRecord{CompanyID: "co", LoginID: login, IDKind: policy.IDKindEmail,
			Email: login, Name: "n", CreatedAt: now.AddDate(-1, 0, 0), LastLoginAt: now.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		first = cmp.Or(first, id)
		logins = append(logins, login)
	}
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn), pgdriver.WithReadTimeout(0)))
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO login_attempts (attempt_key, company_id, account_id, method, outcome, attempted_at, recorded_at)
		SELECT 'old-' || g, 'co', (SELECT min(id) FROM accounts), 'password', 'allow', $1::timestamptz - g * interval '30 seconds', $1
		FROM generate_series(1, $2) g`, now, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO audit_events (company_id, kind, occurred_at)
		SELECT 'co', 'locked', $1::timestamptz - g * interval '30 seconds' FROM generate_series(1, $2) g`, now, rows); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var recorded, reads atomic.Int64
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				a := postgres.Attempt{Key: fmt.Sprintf("live-%d-%d", w, i), CompanyID: "co", LoginID: logins[i%len(logins)],
					Method: policy.MethodPassword, Device: policy.DevicePC, AttemptedAt: time.Now(), DecidedAt: time.Now(), RecordedAt: time.Now()}
				handled, err := store.RecordAllowedLogins(ctx, []postgres.Attempt{a})
				if err == nil && !handled[0] {
					err = fmt.Errorf("%s not recorded", a.Key)
				}
				if err == nil {
					// An audit event for each, as a lock would write.
					err = store.Audit(ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: "co", RequestID: a.Key, OccurredAt: time.Now()})
				}
				if err == nil {
					recorded.Add(1)
					var n int
					err = db.QueryRowContext(ctx, `SELECT count(*) FROM login_attempts WHERE account_id = $1 AND attempted_at > $2`, first, now.Add(-time.Hour)).Scan(&n)
					reads.Add(1)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	start := time.Now()
	err = postgres.Migrate(ctx, dsn, "up", io.Discard)
	took := time.Since(start)
	during := recorded.Load()
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("migrations 000019 and 000020 on %d rows each: %v (%.1f s per million rows); %d logins recorded and %d reads meanwhile",
		rows, took, took.Seconds()*1e6/float64(rows), during, reads.Load())
	for _, err := range errs {
		t.Error(err)
	}
	if during == 0 {
		t.Error("no login was recorded while the table migrated")
	}
	var kind string
	var total, live int
	if err := db.QueryRowContext(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'login_attempts'::regclass`).Scan(&kind); err != nil || kind != "p" {
		t.Fatalf("login_attempts is %q (%v), want a partitioned table", kind, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE attempt_key LIKE 'live-%') FROM login_attempts`).Scan(&total, &live); err != nil {
		t.Fatal(err)
	}
	if live != int(recorded.Load()) || total != rows+live {
		t.Errorf("%d rows (%d live) after the migration, want %d old and %d live", total, live, rows, recorded.Load())
	}
	if err := db.QueryRowContext(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'audit_events'::regclass`).Scan(&kind); err != nil || kind != "p" {
		t.Fatalf("audit_events is %q (%v), want a partitioned table", kind, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE request_id LIKE 'live-%') FROM audit_events`).Scan(&total, &live); err != nil {
		t.Fatal(err)
	}
	if live != int(recorded.Load()) || total != rows+live {
		t.Errorf("%d events (%d live) after the migration, want %d old and %d live", total, live, rows, recorded.Load())
	}
}
