package worker_test

import (
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// An exemption whose end has come ends by itself: the relock job clears
// it with an exemption_expired event keeping its terms, and the next sweep
// locks the account if it is dormant. An exemption still running keeps its
// account unlocked.
func TestExpiredExemptionEndsAndTheSweepLocks(t *testing.T) {
	b := setup(t)
	now := b.clock.Now()
	var ids [2]int64
	for i, until := range []time.Time{now.Add(-time.Minute), now.Add(24 * time.Hour)} {
		a := tasks.Account{CompanyID: b.company, LoginID: []string{"svc-old", "svc-running"}[i], Version: 1, IDKind: string(policy.IDKindPlatform),
			Name: "バッチ", Exempt: true, ExemptReason: "nightly batch account", ExemptGrantedBy: "CISO", ExemptUntil: &until,
			CreatedAt: now.AddDate(-1, 0, 0)}
		res, err := b.client.UpsertAccount(b.ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.AccountID
	}
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceRelock, now))
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND NOT exempt AND exempt_reason = '' AND exempt_until IS NULL`, ids[0]); got != 1 {
		t.Error("the expired exemption was not ended")
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'exemption_expired'
		AND detail->>'reason' = 'nightly batch account' AND detail->>'granted_by' = 'CISO'`, ids[0]); got != 1 {
		t.Error("no exemption_expired event with the terms")
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND exempt AND exempt_granted_by = 'CISO'`, ids[1]); got != 1 {
		t.Error("the running exemption was ended")
	}
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceSweep, now))
	for i, want := range []string{"locked", "active"} {
		if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = $2`, ids[i], want); got != 1 {
			t.Errorf("account %d: want %s after the sweep", ids[i], want)
		}
	}
	// Terms without an exemption are refused.
	bad := tasks.Account{CompanyID: b.company, LoginID: "x", Version: 1, IDKind: "platform", Name: "x", ExemptReason: "why", CreatedAt: now}
	if _, err := b.client.UpsertAccount(b.ctx, bad); err == nil {
		t.Error("exemption terms without exempt: accepted")
	}
}
