package worker_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

// A company whose inactivity period is mistyped as one day: the next sweep
// locks nobody there, its administrators are mailed once however often the
// sweep runs, the dry run lists who would be locked, and a confirmation
// lets the next sweep lock exactly those.
func TestSweepGuardHoldsAMassLock(t *testing.T) {
	b := setup(t)
	cfg := b.cfg
	cfg.SweepGuard = policy.DefaultSweepGuard // more than 25 % and more than 50
	h := worker.NewHandlers(cfg)
	t.Cleanup(h.Close)
	mux := asynq.NewServeMux()
	h.Register(mux)
	sweep := func() {
		t.Helper()
		if err := mux.ProcessTask(b.ctx, maintenanceTask(t, tasks.TypeMaintenanceSweep, b.clock.Now())); err != nil {
			t.Fatalf("sweep: %v", err)
		}
	}

	co := b.newCompany(t)
	for range 60 {
		b.account(t, accountOpts{company: co, kind: policy.IDKindPlatform, lastLogin: 10 * day})
	}
	var admins []string
	for range 2 {
		login, _ := b.account(t, accountOpts{company: co, admin: true, lastLogin: time.Hour})
		admins = append(admins, login)
	}
	// The mistake.
	if _, err := b.db.Exec(`UPDATE companies SET inactivity_days = 1 WHERE id = $1`, co); err != nil {
		t.Fatal(err)
	}
	locked := func() int {
		return b.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'locked'`, co)
	}

	sweep()
	sweep() // the next day's run, still unconfirmed
	if got := locked(); got != 0 {
		t.Fatalf("the held sweep locked %d accounts", got)
	}
	if got := b.count(t, `SELECT count(*) FROM sweep_holds WHERE company_id = $1 AND would_lock = 60 AND confirmed_at IS NULL`, co); got != 1 {
		t.Fatalf("holds = %d, want 1 for 60 accounts", got)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'sweep_held'`, co); got != 1 {
		t.Errorf("sweep_held events = %d, want 1", got)
	}
	// Other tests' companies share the database and the sweep: the notices
	// counted are this company's.
	if got := b.count(t, `SELECT count(*) FROM mails WHERE company_id = $1 AND kind = 'sweep_held'`, co); got != 2 {
		t.Errorf("hold notices written = %d, want one per administrator", got)
	}
	b.drain(t)
	for _, a := range admins {
		got := b.emailsTo(a)
		if len(got) != 1 || !strings.Contains(got[0].Subject, "一括ロックを保留") || !strings.Contains(got[0].Text, "在籍 62 名のうち 60 名") {
			t.Errorf("notice to %s: %+v", a, got)
		}
	}

	// The dry run lists the 60, held.
	var preview []string
	if err := b.store.SweepPreview(b.ctx, b.clock.Now(), co, func(c postgres.SweepCandidate) error {
		if !c.Held {
			t.Errorf("%s not shown as held", c.LoginID)
		}
		preview = append(preview, c.LoginID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(preview) != 60 {
		t.Fatalf("dry run lists %d accounts, want 60", len(preview))
	}

	if _, err := b.store.ConfirmSweep(b.ctx, co, "test", b.clock.Now()); err != nil {
		t.Fatal(err)
	}
	sweep()
	got := column[string](t, b, `SELECT login_id FROM accounts WHERE company_id = $1 AND lock_state = 'locked' ORDER BY login_id`, co)
	slices.Sort(preview)
	slices.Sort(got)
	if !slices.Equal(got, preview) {
		t.Errorf("the confirmed sweep locked %d accounts, the dry run listed %d; they differ", len(got), len(preview))
	}
	if got := b.count(t, `SELECT count(*) FROM sweep_holds WHERE company_id = $1`, co); got != 0 {
		t.Errorf("the confirmed hold is still there after its sweep")
	}
	if _, err := b.store.ConfirmSweep(b.ctx, co, "test", b.clock.Now()); err == nil {
		t.Error("confirming with no hold: no error")
	}
}
