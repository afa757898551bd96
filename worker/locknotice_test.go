package worker_test

import (
	"maps"
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

// A sweep that locks 10,000 accounts of a company that asked for notices
// writes 10,000 notices and queues each exactly once, paced at the
// provider's rate (two a second: the last is due about 83 minutes after
// the first); a second sweep adds neither a notice nor a task.
func TestLockNoticesFor10000AccountsArePacedOnceEach(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 accounts")
	}
	const n = 10_000
	b := setup(t)
	on := b.companyWithSettings(t, tasks.Company{NoticeOnLock: true})
	// The package's other tests share the database and queue: their sweeps
	// must not meet these 10,000 notices.
	t.Cleanup(func() {
		_, _ = b.db.Exec(`UPDATE mails SET status = 'dropped' WHERE company_id = $1 AND status = 'pending'`, on)
		_, _ = b.inspect.DeleteAllScheduledTasks(tasks.QueueDefault)
		_, _ = b.inspect.DeleteAllPendingTasks(tasks.QueueDefault)
	})
	now := b.clock.Now()
	if _, err := b.db.Exec(`INSERT INTO accounts (company_id, login_id, id_kind, email, name, created_at, last_login_at)
		SELECT $1, 'n-' || g || '@example.com', 'email', 'n-' || g || '@example.com', 'N ' || g, $2::timestamptz - interval '400 days', $2::timestamptz - interval '200 days'
		FROM generate_series(1, $3) g`, on, now, n); err != nil {
		t.Fatal(err)
	}
	queued := func(t *testing.T) map[int64]time.Time {
		t.Helper()
		mine := map[int64]bool{}
		rows, err := b.db.Query(`SELECT id FROM mails WHERE kind = 'lock_notice' AND company_id = $1`, on)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			mine[id] = true
		}
		rows.Close()
		if len(mine) != n {
			t.Fatalf("%d lock notices written, want %d", len(mine), n)
		}
		due := map[int64]time.Time{}
		for page := 1; ; page++ {
			scheduled, err := b.inspect.ListScheduledTasks(tasks.QueueDefault, asynq.PageSize(5000), asynq.Page(page))
			if err != nil {
				t.Fatal(err)
			}
			pending, _ := b.inspect.ListPendingTasks(tasks.QueueDefault, asynq.PageSize(5000), asynq.Page(page))
			for i, info := range append(scheduled, pending...) {
				e, err := tasks.DecodeEmail(info.Type, info.Payload)
				if err != nil || !mine[e.MailID] {
					continue
				}
				if _, twice := due[e.MailID]; twice {
					t.Errorf("mail %d is queued twice", e.MailID)
				}
				// A pending task (the first notice, due at once) is listed
				// as due whenever it is listed: it counts, untimed.
				due[e.MailID] = info.NextProcessAt
				if i >= len(scheduled) {
					due[e.MailID] = time.Time{}
				}
			}
			if len(scheduled) < 5000 && len(pending) < 5000 {
				break
			}
		}
		if len(due) != n {
			t.Fatalf("%d of the %d notices are queued", len(due), n)
		}
		return due
	}

	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceSweep, now))
	due := queued(t)
	at := slices.SortedFunc(maps.Values(due), func(a, b time.Time) int { return a.Compare(b) })
	at = slices.DeleteFunc(at, time.Time.IsZero)
	// Two a second: every twenty consecutive notices span ten seconds or
	// more (less a second for the enqueue's own time), and the whole run
	// about (n-1)/2 seconds.
	for i := 20; i < len(at); i++ {
		if gap := at[i].Sub(at[i-20]); gap < 9*time.Second {
			t.Fatalf("notices %d to %d are due within %v: faster than two a second", i-20, i, gap)
		}
	}
	want := time.Duration(len(at)-1) * time.Second / 2
	if span := at[len(at)-1].Sub(at[0]); span < want-time.Second || span > want+time.Minute {
		t.Errorf("the notices span %v, want about %v", span, want)
	}

	b.clock.Add(time.Hour)
	b.run(t, maintenanceTask(t, tasks.TypeMaintenanceSweep, b.clock.Now()))
	moved := 0
	for id, at := range queued(t) {
		if !at.Equal(due[id]) {
			moved++
		}
	}
	if moved > 0 {
		t.Errorf("the second sweep queued %d notices again at other times", moved)
	}
}
