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
)

// When the sweep locks accounts of a company that asked for lock notices,
// each owner with an address is told how to get back in, once, the
// notices paced at the provider's rate; a company that did not ask gets
// none, and neither does one whose import paused them, until that sweep.
func TestLockNoticesArePacedAndSentOnce(t *testing.T) {
	b := setup(t)
	company := func(notice bool) string {
		return b.companyWithSettings(t, tasks.Company{NoticeOnLock: notice})
	}
	on, off, paused := company(true), company(false), company(true)
	var emailIDs []string
	for range 5 {
		login, _ := b.account(t, accountOpts{company: on, lastLogin: 100 * day})
		emailIDs = append(emailIDs, login)
	}
	platform, _ := b.account(t, accountOpts{company: on, kind: policy.IDKindPlatform, email: "contact@example.com", lastLogin: 100 * day})
	b.account(t, accountOpts{company: on, kind: policy.IDKindPlatform, lastLogin: 100 * day}) // no address
	offLogin, _ := b.account(t, accountOpts{company: off, lastLogin: 100 * day})
	pausedLogin, _ := b.account(t, accountOpts{company: paused, lastLogin: 100 * day})
	if err := b.store.PauseLockNotices(b.ctx, []string{paused}); err != nil {
		t.Fatal(err)
	}

	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceSweep, b.clock.Now()))
	if got := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'lock_notice' AND company_id = ANY($1::text[])`, array(on, off, paused)); got != 6 {
		t.Fatalf("lock notices = %d, want 6 (5 email IDs, 1 platform ID with an address)", got)
	}
	if got := b.count(t, `SELECT count(*) FROM companies WHERE id = $1 AND lock_notices_paused`, paused); got != 0 {
		t.Error("the import's pause outlived the sweep")
	}
	// Paced: two a second, the first at once.
	scheduled, err := b.inspect.ListScheduledTasks(tasks.QueueDefault, asynq.PageSize(100))
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, info := range scheduled {
		at = append(at, info.NextProcessAt)
	}
	pending, _ := b.inspect.ListPendingTasks(tasks.QueueDefault)
	if len(at)+len(pending) != 6 || len(pending) > 1 {
		t.Fatalf("%d scheduled and %d pending notices, want 6 with at most the first pending", len(at), len(pending))
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	if span := at[len(at)-1].Sub(at[0]); span < 1900*time.Millisecond || span > 3*time.Second {
		t.Errorf("the notices span %v, want about 2.5 s at 2 a second", span)
	}
	// A worker sends them when due: run them now.
	for _, info := range append(scheduled, pending...) {
		b.run(t, asynq.NewTask(info.Type, info.Payload))
	}
	for _, login := range emailIDs {
		got := b.emailsTo(login)
		if len(got) != 1 || !strings.Contains(got[0].Subject, "ロックしました") || !strings.Contains(got[0].Text, "本人確認のためのURL") {
			t.Errorf("notice to %s: %+v", login, got)
		}
	}
	if got := b.emailsTo("contact@example.com"); len(got) != 1 || !strings.Contains(got[0].Text, "管理者にロックの解除を依頼") {
		t.Errorf("notice to the platform ID %s: %+v", platform, got)
	}
	for _, login := range []string{offLogin, pausedLogin} {
		if got := b.emailsTo(login); len(got) != 0 {
			t.Errorf("%s was sent %d notices", login, len(got))
		}
	}
	// The next sweep locks nobody new and sends nothing again.
	b.clock.Add(time.Hour)
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceSweep, b.clock.Now()))
	if got := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'lock_notice' AND company_id = ANY($1::text[])`, array(on, off, paused)); got != 6 {
		t.Errorf("lock notices after a second sweep = %d, want still 6", got)
	}
}

// A sweep that crashed after its batches locked accounts is retried at a
// later instant: the retry sends the notices its first try owed, once.
func TestLockNoticesOfACrashedSweepAreSentByItsRetry(t *testing.T) {
	b := setup(t)
	on := b.companyWithSettings(t, tasks.Company{NoticeOnLock: true})
	login, id := b.account(t, accountOpts{company: on, lastLogin: 100 * day})
	// The first try: its batch commits, then the worker dies.
	first := b.clock.Now()
	if _, _, err := b.store.SweepBatch(b.ctx, first, postgres.Cursor{}, 1000); err != nil {
		t.Fatal(err)
	}
	b.clock.Add(10 * time.Minute)
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceSweep, b.clock.Now()))
	if n := b.drain(t); n != 1 {
		t.Fatalf("%d tasks queued by the retry, want its one notice", n)
	}
	if got := b.emailsTo(login); len(got) != 1 || !strings.Contains(got[0].Subject, "ロックしました") {
		t.Fatalf("notice to %s: %+v", login, got)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'lock_notice' AND company_id = $1 AND idempotency_key = $2`,
		on, postgres.LockNoticeKey(id, first)); got != 1 {
		t.Errorf("%d notices keyed by the first try's lock, want 1", got)
	}
}
