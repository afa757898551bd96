package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// A company's settings change reaches CheckAccount within the cache's ttl
// and not before; the account's own row is read fresh every time.
func TestCheckAccountCachesCompanySettings(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	clock := testenv.NewClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	store.CacheCompanies(5*time.Second, clock.Now)
	db := testenv.DB(t)
	company := testenv.UniqueID("cache")
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: company}); err != nil {
		t.Fatal(err)
	}
	rec := postgres.AccountRecord{CompanyID: company, LoginID: "u@example.com", IDKind: policy.IDKindEmail, Email: "u@example.com",
		Name: "U", CreatedAt: clock.Now().Add(-400 * 24 * time.Hour)}
	if _, err := store.UpsertAccount(ctx, rec); err != nil {
		t.Fatal(err)
	}
	check := func() (policy.Employee, policy.Company) {
		t.Helper()
		e, co, err := store.CheckAccount(ctx, company, rec.LoginID)
		if err != nil {
			t.Fatal(err)
		}
		return e, co
	}
	if _, co := check(); co.Policy.InactivityPeriod != policy.DefaultInactivityPeriod {
		t.Fatalf("inactivity period %v, want the default", co.Policy.InactivityPeriod)
	}
	if _, err := db.Exec(`UPDATE companies SET inactivity_days = 30 WHERE id = $1`, company); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = now() WHERE company_id = $1`, company); err != nil {
		t.Fatal(err)
	}
	clock.Add(5*time.Second - time.Nanosecond)
	e, co := check()
	if co.Policy.InactivityPeriod != policy.DefaultInactivityPeriod {
		t.Errorf("within the ttl: inactivity period %v, want the cached default", co.Policy.InactivityPeriod)
	}
	if e.State != policy.StateLocked {
		t.Errorf("the account's state %q was cached; want it read fresh (locked)", e.State)
	}
	clock.Add(time.Nanosecond)
	if _, co = check(); co.Policy.InactivityPeriod != 30*24*time.Hour {
		t.Errorf("after the ttl: inactivity period %v, want 30 days", co.Policy.InactivityPeriod)
	}

	// A change made through this store is seen at once.
	co.Policy.InactivityPeriod = 60 * 24 * time.Hour
	if _, err := store.SyncCompany(ctx, co, 1, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, co := check(); co.Policy.InactivityPeriod != 60*24*time.Hour {
		t.Errorf("after SyncCompany: inactivity period %v, want 60 days", co.Policy.InactivityPeriod)
	}

	// Neither an unknown company nor an unknown account is cached as found.
	if _, _, err := store.CheckAccount(ctx, company, "nobody"); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("unknown account: %v, want ErrNotFound", err)
	}
	if _, _, err := store.CheckAccount(ctx, testenv.UniqueID("none"), rec.LoginID); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("unknown company: %v, want ErrNotFound", err)
	}
}
