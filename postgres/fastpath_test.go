package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// The batch statement and policy.Decide must agree on every account: the
// SQL predicate is the policy's dormancy rule written for the database.
func TestRecordAllowedLoginsAgreesWithPolicy(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	company := testenv.UniqueID("fast")
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: company}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	period := policy.DefaultInactivityPeriod
	// The host's time of the attempt, two days earlier: it dates the record
	// and must not move the threshold, which goes by the decision's time.
	backdated := at.Add(-48 * time.Hour)
	cases := []struct {
		name    string
		last    time.Time
		retired bool
		exempt  bool
	}{
		{"recent", at.Add(-24 * time.Hour), false, false},
		{"one microsecond inside", at.Add(-period + time.Microsecond), false, false},
		{"exactly at the threshold", at.Add(-period), false, false},
		{"one hour past", at.Add(-period - time.Hour), false, false},
		{"never logged in, created long ago", time.Time{}, false, false},
		{"retired", at.Add(-time.Hour), true, false},
		{"exempt and dormant", at.Add(-2 * period), false, true},
	}
	var batch []postgres.Attempt
	want := map[string]bool{}
	for i, c := range cases {
		login := fmt.Sprintf("u%d@example.com", i)
		rec := postgres.AccountRecord{CompanyID: company, LoginID: login, IDKind: policy.IDKindEmail, Email: login,
			Name: c.name, Retired: c.retired, Exempt: c.exempt, CreatedAt: at.Add(-400 * 24 * time.Hour), LastLoginAt: c.last}
		if _, err := store.UpsertAccount(ctx, rec); err != nil {
			t.Fatal(err)
		}
		acct := policy.Account{IDKind: policy.IDKindEmail, Retired: c.retired, Exempt: c.exempt, CreatedAt: rec.CreatedAt, LastLoginAt: c.last, State: policy.StateActive}
		d := policy.Decide(acct, policy.DefaultPolicy(), policy.MethodPassword, at)
		want[c.name] = d.Outcome == policy.OutcomeAllow && d.Transition == policy.TransitionNone
		batch = append(batch, postgres.Attempt{Key: testenv.UniqueID("k"), CompanyID: company, LoginID: login,
			Method: policy.MethodPassword, Device: policy.DevicePC, AttemptedAt: backdated, DecidedAt: at, RecordedAt: at})
	}
	// One attempt names nobody: it is left to the full decision.
	batch = append(batch, postgres.Attempt{Key: testenv.UniqueID("k"), CompanyID: company, LoginID: "nobody", Method: policy.MethodPassword, AttemptedAt: at, DecidedAt: at, RecordedAt: at})
	got, err := store.RecordAllowedLogins(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if got[i] != want[c.name] {
			t.Errorf("%s: batch handled = %v, policy allows = %v", c.name, got[i], want[c.name])
		}
	}
	if got[len(got)-1] {
		t.Error("an unknown account was handled by the batch")
	}
	db := testenv.DB(t)
	if n := testenv.Count(t, db, `SELECT count(*) FROM accounts WHERE company_id = $1 AND last_login_at = $2`, company, at); n != 3 {
		t.Errorf("login dates moved = %d, want 3 (recent, inside, exempt)", n)
	}
	// The same batch again (a redelivery) records nothing twice.
	if _, err := store.RecordAllowedLogins(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if n := testenv.Count(t, db, `SELECT count(*) FROM login_attempts WHERE company_id = $1`, company); n != 3 {
		t.Errorf("attempts recorded = %d, want 3", n)
	}
}

// An attempt the batch recorded, delivered again when its account has
// meanwhile been locked, reaches the one-attempt transaction: that finds
// it recorded, since both write its time (part of its key) to the same
// microsecond, whatever finer time the host sent.
func TestBatchAndTransactionRecordAnAttemptOnce(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	company := testenv.UniqueID("fast")
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: company}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 1, 12, 0, 0, 123456789, time.FixedZone("JST", 9*3600))
	rec := postgres.AccountRecord{CompanyID: company, LoginID: "u@example.com", IDKind: policy.IDKindEmail, Email: "u@example.com",
		Name: "u", CreatedAt: at.Add(-400 * 24 * time.Hour), LastLoginAt: at.Add(-time.Hour)}
	if _, err := store.UpsertAccount(ctx, rec); err != nil {
		t.Fatal(err)
	}
	a := postgres.Attempt{Key: testenv.UniqueID("k"), CompanyID: company, LoginID: rec.LoginID, Method: policy.MethodPassword,
		UserAgent: "Mozilla/5.0 \"quoted\" \\ 日本語", Device: policy.DevicePC, AttemptedAt: at, DecidedAt: at, RecordedAt: at}
	if got, err := store.RecordAllowedLogins(ctx, []postgres.Attempt{a}); err != nil || !got[0] {
		t.Fatalf("batch: %v, %v", got, err)
	}
	err := store.WithTx(ctx, func(tx *postgres.Tx) error {
		_, fresh, err := tx.InsertAttempt(ctx, a)
		if err == nil && fresh {
			t.Error("the transaction recorded the attempt the batch had recorded")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db := testenv.DB(t)
	if n := testenv.Count(t, db, `SELECT count(*) FROM login_attempts WHERE company_id = $1 AND user_agent = $2`, company, a.UserAgent); n != 1 {
		t.Errorf("attempts recorded with their User-Agent intact = %d, want 1", n)
	}
}
