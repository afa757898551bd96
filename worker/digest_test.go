package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// The daily digest goes out in the company's 09:00 hour, once per company
// and day however often the job runs, to the administrators who can act;
// it lists the day's locks and who turns dormant in the coming week. A
// company that did not ask, or a day with nothing to say, gets no mail.
func TestDailyDigest(t *testing.T) {
	b := setup(t)
	company := func(digest string) string {
		return b.companyWithSettings(t, tasks.Company{TimeZone: "Asia/Tokyo", Digest: digest})
	}
	on, off, quiet := company("administrators"), company(""), company("administrators")
	admin, _ := b.account(t, accountOpts{company: on, admin: true, lastLogin: time.Hour, name: "管理 花子"})
	b.account(t, accountOpts{company: off, admin: true, lastLogin: time.Hour})
	b.account(t, accountOpts{company: quiet, admin: true, lastLogin: time.Hour})

	// 09:10 in Tokyo the next day; the day covered began at 09:00 today.
	at := time.Date(2026, 11, 27, 9, 10, 0, 0, b.tokyo)
	b.clock.Set(at)
	_, locked := b.account(t, accountOpts{company: on, kind: policy.IDKindPlatform, name: "山田 太郎", lastLogin: 100 * day})
	for _, co := range []string{on, off} {
		if _, err := b.db.Exec(`INSERT INTO audit_events (company_id, account_id, kind, detail, occurred_at) VALUES ($1, $2, 'locked', '{"by":"sweep"}', $3)`,
			co, locked, time.Date(2026, 11, 27, 3, 0, 0, 0, b.tokyo)); err != nil {
			t.Fatal(err)
		}
	}
	// Dormant in three days' time (the fixtures' clock is the bundle's start).
	b.account(t, accountOpts{company: on, kind: policy.IDKindPlatform, name: "田中 次郎", lastLogin: 87*day - at.Sub(start)})

	run := func() {
		t.Helper()
		b.run(t, maintenanceTask(t, tasks.TypeMaintenanceDigest, b.clock.Now()))
	}
	run()
	run() // a second run, or a second worker: nothing more
	if got := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'daily_digest' AND company_id = ANY($1::text[])`, array(on, off, quiet)); got != 1 {
		t.Fatalf("digest mails = %d, want 1 (the administrator of the company that asked and had news)", got)
	}
	if got := b.count(t, `SELECT count(*) FROM digest_days WHERE company_id = ANY($1::text[]) AND day = '2026-11-27'`, array(on, quiet)); got != 2 {
		t.Errorf("days recorded = %d, want the news day and the quiet one", got)
	}
	if n := b.drain(t); n != 1 {
		t.Fatalf("digest tasks run = %d, want 1", n)
	}
	got := b.emailsTo(admin)
	if len(got) != 1 || !strings.Contains(got[0].Subject, "【日次】") || !strings.Contains(got[0].Text, "ロック：1 件\n- 山田 太郎") ||
		!strings.Contains(got[0].Text, "今後7日以内にロックされる社員：1 名\n- 田中 次郎") {
		t.Fatalf("digest = %+v", got)
	}

	// Outside the 09:00 hour nothing is due.
	b.clock.Set(at.Add(2*time.Hour).AddDate(0, 0, 1))
	run()
	if got := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'daily_digest' AND company_id = $1`, on); got != 1 {
		t.Errorf("digest mails after a run at 11:10 = %d, want still 1", got)
	}
}
