package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

func TestPrelockWarningKeyRoundTrips(t *testing.T) {
	lockAt := time.Date(2026, 12, 26, 1, 0, 0, 123456000, time.UTC)
	key := postgres.PrelockWarningKey(42, 14, lockAt)
	got, err := postgres.ParsePrelockWarningKey(key)
	if err != nil || !got.Equal(lockAt) {
		t.Errorf("ParsePrelockWarningKey(%q) = %v, %v; want %v", key, got, err, lockAt)
	}
	for _, bad := range []string{"", "admin_unlocked:1:2", "prelock_warning:1:14", "prelock_warning:1:14:soon", "verification:1:2:3"} {
		if _, err := postgres.ParsePrelockWarningKey(bad); err == nil {
			t.Errorf("ParsePrelockWarningKey(%q) accepted", bad)
		}
	}
}

// A warning decided on a stale read writes no mail: the owner logged in
// meanwhile (another cycle), or the account was locked; and a warning
// recorded once is not recorded again.
func TestRecordPrelockWarningsWritesOncePerCycleAndOnlyForTheCurrentOne(t *testing.T) {
	ctx := context.Background()
	s := testenv.Store(t)
	db := testenv.DB(t)
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	co := testenv.UniqueID("co")
	if err := s.UpsertCompany(ctx, postgres.CompanyRecord{ID: co, PrelockWarningDays: []int{30}}); err != nil {
		t.Fatal(err)
	}
	last := now.Add(-60 * 24 * time.Hour)
	login := testenv.UniqueID("u") + "@example.com"
	id, err := s.UpsertAccount(ctx, postgres.AccountRecord{
		CompanyID: co, LoginID: login, IDKind: policy.IDKindEmail, Email: login, Name: "n",
		CreatedAt: last.AddDate(-1, 0, 0), LastLoginAt: last,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := func(cycle time.Time) []postgres.PrelockWarningDue {
		return []postgres.PrelockWarningDue{{AccountID: id, PrelockWarning: policy.PrelockWarning{
			DaysBefore: 30, DaysLeft: 30, Cycle: cycle, LockAt: cycle.Add(90 * 24 * time.Hour),
		}}}
	}
	record := func(ws []postgres.PrelockWarningDue) int {
		t.Helper()
		ids, err := s.RecordPrelockWarnings(ctx, ws, now)
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	if got := record(w(last.Add(-time.Microsecond))); got != 0 {
		t.Errorf("stale cycle: %d mails, want 0", got)
	}
	if got := record(w(last)); got != 1 {
		t.Errorf("current cycle: %d mails, want 1", got)
	}
	if got := record(w(last)); got != 0 {
		t.Errorf("again: %d mails, want 0", got)
	}
	if got := testenv.Count(t, db, `SELECT count(*) FROM mails WHERE account_id = $1 AND kind = 'prelock_warning' AND idempotency_key = $2`,
		id, postgres.PrelockWarningKey(id, 30, last.Add(90*24*time.Hour))); got != 1 {
		t.Errorf("mails with the warning's key = %d, want 1", got)
	}
	if _, err := db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	ws := w(last)
	ws[0].DaysBefore = 14
	if got := record(ws); got != 0 {
		t.Errorf("locked account: %d mails, want 0", got)
	}
	if got := record(nil); got != 0 {
		t.Errorf("no warnings: %d mails", got)
	}
}

// A period is claimed by the first task; a retry of that task may run it
// again, another task may not; the next period is free; old claims are
// purged.
func TestClaimMaintenanceRun(t *testing.T) {
	ctx := context.Background()
	s := testenv.Store(t)
	typ := testenv.UniqueID("maintenance:test")
	p := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		period time.Time
		task   string
		want   bool
	}{
		{p, "a", true}, {p, "a", true}, {p, "b", false}, {p.Add(time.Minute), "b", true}, {p.Add(time.Minute), "a", false},
	} {
		got, err := s.ClaimMaintenanceRun(ctx, typ, c.period, c.task, p)
		if err != nil || got != c.want {
			t.Errorf("claim %s by %s = %v, %v; want %v", c.period.Format("15:04"), c.task, got, err, c.want)
		}
	}
	if err := s.FinishMaintenanceRun(ctx, typ, p, 7, p.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	db := testenv.DB(t)
	if got := testenv.Count(t, db, `SELECT rows FROM maintenance_runs WHERE task_type = $1 AND period = $2 AND finished_at IS NOT NULL`, typ, p); got != 7 {
		t.Errorf("finished run's rows = %d, want 7", got)
	}
	if _, err := s.PurgeMaintenanceRuns(ctx, p.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := testenv.Count(t, db, `SELECT count(*) FROM maintenance_runs WHERE task_type = $1`, typ); got != 1 {
		t.Errorf("claims left after the purge = %d, want the younger 1", got)
	}
}
