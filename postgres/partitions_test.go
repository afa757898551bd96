package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// ownDatabase is a fresh database of the test's own, for tests that act on
// every row of a table, opened through the store and for assertions.
func ownDatabase(t *testing.T) (*postgres.Store, *sql.DB) {
	dsn := testenv.NewDatabase(t)
	store, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	t.Cleanup(func() { db.Close() })
	return store, db
}

// The retention job at an injected instant two years on drops exactly the
// months of login attempts older than the retention whole, deletes the
// older rows of the month the cutoff falls in, and keeps everything
// younger, including rows that waited in the default partition until
// their month was created.
func TestPartitionRetention(t *testing.T) {
	ctx := context.Background()
	store, db := ownDatabase(t)
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: "co"}); err != nil {
		t.Fatal(err)
	}
	month := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC) }
	migrated := month(time.Now().UTC()) // the migration's month, held in the legacy partition
	now := migrated.AddDate(2, 0, 14).Add(3 * time.Hour)
	acct, err := store.UpsertAccount(ctx, postgres.AccountRecord{CompanyID: "co", LoginID: "u@example.com", IDKind: policy.IDKindEmail,
		Email: "u@example.com", Name: "n", CreatedAt: migrated.AddDate(-1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	r := postgres.Retention{LoginAttempts: 400 * 24 * time.Hour, AuditEvents: 400 * 24 * time.Hour}
	cutoff := now.Add(-r.LoginAttempts)
	rows := map[string]time.Time{}
	insert := func(key string, at time.Time) {
		t.Helper()
		rows[key] = at
		if _, err := db.Exec(`INSERT INTO login_attempts (attempt_key, company_id, account_id, method, outcome, attempted_at, recorded_at)
			VALUES ($1, 'co', $2, 'password', 'allow', $3, $3)`, key, acct, at); err != nil {
			t.Fatalf("insert %s at %v: %v", key, at, err)
		}
		// The audit trail gets the same instants, its request ID the key.
		if _, err := db.Exec(`INSERT INTO audit_events (company_id, account_id, kind, request_id, occurred_at)
			VALUES ('co', $2, 'locked', $1, $3)`, key, acct, at); err != nil {
			t.Fatalf("insert event %s at %v: %v", key, at, err)
		}
	}
	// A month whose partition is not there yet: its row waits in the
	// default partition. The months before now are created with their
	// PartitionsAhead below, which stops short of this one.
	late := month(now).AddDate(0, postgres.PartitionsAhead, 0)
	insert("waited", late.Add(time.Hour))
	insert("far future", now.AddDate(5, 0, 0))
	for m := migrated; m.Before(month(now)); m = m.AddDate(0, 1, 0) {
		if _, err := store.EnsurePartitions(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	insert("legacy", migrated.Add(-time.Hour))
	for m := migrated; m.Before(now); m = m.AddDate(0, 1, 0) {
		insert(fmt.Sprintf("month %s", m.Format("2006-01")), m.Add(time.Microsecond))
	}
	insert("just expired", cutoff.Add(-time.Microsecond))
	insert("just kept", cutoff.Add(time.Microsecond))
	if got := testenv.Count(t, db, `SELECT count(*) FROM login_attempts_default WHERE attempt_key = 'waited'`); got != 1 {
		t.Fatalf("the row of the missing month is not in the default partition (%d)", got)
	}

	created, err := store.EnsurePartitions(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if created != len(postgres.PartitionedTables) {
		t.Errorf("created %d partitions at the instant, want %d (each table's last month ahead)", created, len(postgres.PartitionedTables))
	}
	if got := testenv.Count(t, db, `SELECT count(*) FROM `+postgres.PartitionName("login_attempts", late)+` WHERE attempt_key = 'waited'`); got != 1 {
		t.Fatalf("the waiting row did not move into its month's partition")
	}
	if got := testenv.Count(t, db, `SELECT count(*) FROM `+postgres.PartitionName("audit_events", late)+` WHERE request_id = 'waited'`); got != 1 {
		t.Fatalf("the waiting event did not move into its month's partition")
	}
	if again, err := store.EnsurePartitions(ctx, now); err != nil || again != 0 {
		t.Errorf("a second run created %d (%v), want 0", again, err)
	}

	wantDropped := 0
	for _, table := range postgres.PartitionedTables {
		before, err := store.Partitions(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range rows {
			for _, p := range before {
				if !p.Default && !at.Before(p.From) && at.Before(p.To) && !p.To.After(cutoff) {
					wantDropped++
				}
			}
		}
	}
	dropped, err := store.DropExpiredPartitions(ctx, r, now)
	if err != nil {
		t.Fatal(err)
	}
	if dropped != wantDropped || wantDropped < 2 {
		t.Errorf("dropped %d rows with their partitions, want %d (at least the legacy month and one more)", dropped, wantDropped)
	}
	for _, step := range store.RetentionSteps(r) {
		for {
			n, err := step.Batch(ctx, now, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
	for _, table := range postgres.PartitionedTables {
		after, err := store.Partitions(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range after {
			if !p.Default && !p.To.After(cutoff) {
				t.Errorf("partition %s (to %v) outlived the cutoff %v", p.Name, p.To, cutoff)
			}
		}
	}
	for key, at := range rows {
		want := map[bool]int{true: 1, false: 0}[!at.Before(cutoff)]
		if got := testenv.Count(t, db, `SELECT count(*) FROM login_attempts WHERE attempt_key = $1`, key); got != want {
			t.Errorf("%s at %v: %d attempts, want %d (cutoff %v)", key, at, got, want, cutoff)
		}
		if got := testenv.Count(t, db, `SELECT count(*) FROM audit_events WHERE request_id = $1`, key); got != want {
			t.Errorf("%s at %v: %d events, want %d (cutoff %v)", key, at, got, want, cutoff)
		}
	}
}
