package worker_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

const day = 24 * time.Hour

func TestEmailIDDormantLocksSendsOneLinkAndRedeems(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{lastLogin: 90 * day})

	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'locked' AND lock_reason = 'dormant'`, id); got != 1 {
		t.Fatalf("account not locked")
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND length(token_hash) = 32`, id); got != 1 {
		t.Fatalf("tokens = %d, want 1", got)
	}
	// The link goes out within the attempt's own task, with no mail task
	// of its own to wait for.
	if got := len(b.emailsTo(login)); got != 1 {
		t.Fatalf("emails to owner when the attempt's task returns = %d, want 1", got)
	}
	if n := b.drain(t); n != 0 {
		t.Fatalf("ran %d email tasks, want none", n)
	}
	emails := b.emailsTo(login)
	if len(emails) != 1 {
		t.Fatalf("emails to owner = %d, want 1", len(emails))
	}
	if got, want := emails[0].Subject, "【本人確認】アカウントロックの解除について"; got != want {
		t.Errorf("subject = %q, want %q", got, want)
	}
	token := tokenOf(t, emails[0])
	// Only the hash is stored: the token itself appears nowhere in the database.
	if got := b.count(t, `SELECT count(*) FROM mails WHERE body_text LIKE '%' || $1 || '%' OR subject LIKE '%' || $1 || '%'`, token); got != 0 {
		t.Errorf("raw token stored in mails")
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind IN ('locked', 'token_issued', 'mail_sent')`, id); got != 3 {
		t.Errorf("audit events = %d, want locked, token_issued, mail_sent", got)
	}

	// The link plus the password, 23 h 59 m later: unlocked, login date = now.
	b.clock.Add(24*time.Hour - time.Minute)
	res, err := b.client.Redeem(b.ctx, b.company, login, token, "req-1")
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if res.AccountID != id || !res.NoticeQueued {
		t.Errorf("Redeem = %+v", res)
	}
	var state string
	var last time.Time
	if err := b.db.QueryRow(`SELECT lock_state, last_login_at FROM accounts WHERE id = $1`, id).Scan(&state, &last); err != nil {
		t.Fatal(err)
	}
	if state != "active" || !last.Equal(b.clock.Now()) {
		t.Errorf("after redeem: state %s, login date %v, want active, %v", state, last, b.clock.Now())
	}
	// The owner is told of the unlock.
	b.drain(t)
	if got := len(b.emailsTo(login)); got != 2 {
		t.Errorf("emails to owner after unlock = %d, want 2 (link, unlock notice)", got)
	}
	// A link works once.
	if _, err := b.client.Redeem(b.ctx, b.company, login, token, ""); !errors.Is(err, policy.ErrTokenRefused) {
		t.Errorf("second Redeem: %v, want ErrTokenRefused", err)
	}
}

func TestVerificationLinkExpiresAndNewAttemptSupersedes(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{lastLogin: 120 * day})
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.drain(t)
	old := tokenOf(t, b.emailsTo(login)[0])

	b.clock.Add(24*time.Hour + time.Second)
	if _, err := b.client.Redeem(b.ctx, b.company, login, old, ""); !errors.Is(err, policy.ErrTokenRefused) {
		t.Fatalf("expired link: %v, want ErrTokenRefused", err)
	}
	// The user starts again from the login screen: a new email, a new link.
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.drain(t)
	emails := b.emailsTo(login)
	if len(emails) != 2 {
		t.Fatalf("emails = %d, want 2", len(emails))
	}
	fresh := tokenOf(t, emails[1])
	if fresh == old {
		t.Fatal("new email reuses the old token")
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND consumed_at IS NULL AND revoked_at IS NULL`, id); got != 1 {
		t.Errorf("live tokens = %d, want 1", got)
	}
	// Within the new link's life the old one is still refused; the new one works.
	b.clock.Add(time.Hour)
	if _, err := b.client.Redeem(b.ctx, b.company, login, old, ""); !errors.Is(err, policy.ErrTokenRefused) {
		t.Errorf("old link after a new email: %v, want ErrTokenRefused", err)
	}
	if _, err := b.client.Redeem(b.ctx, b.company, login, fresh, ""); err != nil {
		t.Errorf("new link: %v", err)
	}
}

func TestRedeemRefusesAnotherAccountsLink(t *testing.T) {
	b := setup(t)
	victim, _ := b.account(t, accountOpts{lastLogin: 100 * day})
	other, _ := b.account(t, accountOpts{lastLogin: 1 * day})
	b.run(t, b.attempt(t, b.company, victim, policy.MethodPassword))
	b.drain(t)
	token := tokenOf(t, b.emailsTo(victim)[0])
	if _, err := b.client.Redeem(b.ctx, b.company, other, token, ""); !errors.Is(err, policy.ErrTokenRefused) {
		t.Errorf("link used with another account's password: %v", err)
	}
	if _, err := b.client.Redeem(b.ctx, b.company, victim, "not-a-token", ""); !errors.Is(err, policy.ErrTokenRefused) {
		t.Errorf("malformed token: %v", err)
	}
}

func TestLoginDateMovesOnlyOnInteractiveLogins(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{lastLogin: 89*day + 23*time.Hour})
	before := start.Add(-(89*day + 23*time.Hour))

	b.run(t, b.attempt(t, b.company, login, policy.MethodRemembered))
	var last time.Time
	b.db.QueryRow(`SELECT last_login_at FROM accounts WHERE id = $1`, id).Scan(&last)
	if !last.Equal(before) {
		t.Errorf("remembered login moved the login date to %v", last)
	}
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.db.QueryRow(`SELECT last_login_at FROM accounts WHERE id = $1`, id).Scan(&last)
	if !last.Equal(start) {
		t.Errorf("password login: login date %v, want %v", last, start)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'active'`, id); got != 1 {
		t.Error("89 days 23 hours locked the account")
	}
	if got := b.count(t, `SELECT count(*) FROM login_attempts WHERE account_id = $1`, id); got != 2 {
		t.Errorf("attempts recorded = %d, want 2", got)
	}
	if b.drain(t) != 0 || b.resend.Count() != 0 {
		t.Error("an allowed login sent mail")
	}
}

func TestPlatformIDDormantListsAdministratorsAndMailsNobodyButRecipients(t *testing.T) {
	b := setup(t)
	_, a1 := b.account(t, accountOpts{kind: policy.IDKindPlatform, name: "総務 花子", dept: "総務部", admin: true, lastLogin: day, email: "soumu@example.com"})
	b.account(t, accountOpts{kind: policy.IDKindPlatform, name: "管理 次郎", dept: "管理部", admin: true, lastLogin: day})
	b.account(t, accountOpts{kind: policy.IDKindPlatform, name: "退職 三郎", dept: "管理部", admin: true, retired: true})
	login, id := b.account(t, accountOpts{kind: policy.IDKindPlatform, name: "佐藤 一郎", email: "sato@example.com", lastLogin: 95 * day})
	b.recipients(t, b.company, a1)

	res, err := b.client.Check(b.ctx, b.company, login, policy.MethodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision.Outcome != policy.OutcomeAskAdministrator || !strings.Contains(res.Message, "ロックしました") {
		t.Errorf("Check = %+v", res)
	}
	var names []string
	for _, a := range res.Administrators {
		names = append(names, a.Department+" "+a.Name)
	}
	if got, want := strings.Join(names, ","), "管理部 管理 次郎,総務部 総務 花子"; got != want {
		t.Errorf("administrators = %q, want %q", got, want)
	}
	// Check changes nothing; the attempt does.
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'active'`, id); got != 1 {
		t.Error("Check changed the account")
	}
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.drain(t)
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'locked'`, id); got != 1 {
		t.Error("platform ID not locked")
	}
	if got := len(b.emailsTo("sato@example.com")); got != 0 {
		t.Errorf("locked platform-ID user got %d emails", got)
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, id); got != 0 {
		t.Error("token issued for a platform ID")
	}
	if got := len(b.emailsTo("soumu@example.com")); got != 1 {
		t.Errorf("recipient got %d alerts, want 1", got)
	}
}

func TestAlertsGoToEachRecipientOnceWithTheAttempt(t *testing.T) {
	b := setup(t)
	_, r1 := b.account(t, accountOpts{name: "通知 一", admin: true, lastLogin: day})
	r2Login, r2 := b.account(t, accountOpts{name: "通知 二", lastLogin: day})
	_, gone := b.account(t, accountOpts{name: "退職者", lastLogin: day})
	login, _ := b.account(t, accountOpts{name: "<script>alert(1)</script>", dept: "営業部", lastLogin: 200 * day})
	b.recipients(t, b.company, r1, r2, gone)
	// A recipient whose account retired without the directory's cleanup
	// (a row left behind) is still never alerted.
	if _, err := b.db.Exec(`UPDATE accounts SET status = 'retired' WHERE id = $1`, gone); err != nil {
		t.Fatal(err)
	}

	// Another company with its own recipient and the same kind of attempt.
	other := b.newCompany(t)
	otherRecipientLogin, otherR := b.account(t, accountOpts{company: other, lastLogin: day})
	b.recipients(t, other, otherR)

	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	// A second attempt within the hour alerts nobody again.
	b.clock.Add(30 * time.Minute)
	b.run(t, b.attempt(t, b.company, login, policy.MethodRemembered))
	b.drain(t)

	alerts := b.emailsTo(r2Login)
	if len(alerts) != 1 {
		t.Fatalf("alerts to recipient 2 = %d, want 1", len(alerts))
	}
	a := alerts[0]
	if got, want := a.Subject, "一定期間ログインをしていない社員がログインを試みました。"; got != want {
		t.Errorf("subject = %q", got)
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "2026/11/26 10:00", "203.0.113.7", "PC"} {
		if !strings.Contains(a.HTML, want) {
			t.Errorf("alert HTML lacks %q:\n%s", want, a.HTML)
		}
	}
	if strings.Contains(a.HTML, "<script>") {
		t.Error("alert HTML carries an unescaped name")
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'dormant_login_alert' AND status = 'sent' AND company_id = $1`, b.company); got != 2 {
		t.Errorf("alerts sent = %d, want 2 (one per active recipient)", got)
	}
	if got := len(b.emailsTo(otherRecipientLogin)); got != 0 {
		t.Errorf("company B's recipient got %d alerts about company A", got)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'alert_sent'`, b.company); got != 2 {
		t.Errorf("alert_sent events = %d, want 2", got)
	}
	// After the window, a new attempt alerts again.
	b.clock.Add(31 * time.Minute)
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	b.drain(t)
	if got := len(b.emailsTo(r2Login)); got != 2 {
		t.Errorf("alerts after the window = %d, want 2", got)
	}
}

func TestRetiredAccountIsNeverLockedOrAlerted(t *testing.T) {
	b := setup(t)
	_, r := b.account(t, accountOpts{lastLogin: day})
	login, id := b.account(t, accountOpts{retired: true, lastLogin: 300 * day})
	b.recipients(t, b.company, r)
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	if b.drain(t) != 0 {
		t.Error("mail queued for a retired account")
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'active'`, id); got != 1 {
		t.Error("retired account locked")
	}
}

func TestSameAttemptTwiceAndRacingIsOneLockOneTokenOneEmailEach(t *testing.T) {
	for _, mode := range []string{"sequential", "racing"} {
		t.Run(mode, func(t *testing.T) {
			b := setup(t)
			_, r1 := b.account(t, accountOpts{lastLogin: day})
			_, r2 := b.account(t, accountOpts{lastLogin: day})
			login, id := b.account(t, accountOpts{lastLogin: 100 * day})
			b.recipients(t, b.company, r1, r2)
			task := b.attempt(t, b.company, login, policy.MethodPassword)
			if mode == "sequential" {
				b.run(t, task)
				b.run(t, task)
			} else {
				var wg sync.WaitGroup
				errs := make([]error, 8)
				for i := range errs {
					wg.Add(1)
					go func() { defer wg.Done(); errs[i] = b.process(task) }()
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			b.drain(t)
			if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'locked'`, id); got != 1 {
				t.Errorf("lock events = %d, want 1", got)
			}
			if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, id); got != 1 {
				t.Errorf("tokens = %d, want 1", got)
			}
			if got := b.count(t, `SELECT count(*) FROM login_attempts WHERE account_id = $1`, id); got != 1 {
				t.Errorf("attempts = %d, want 1", got)
			}
			if got := len(b.emailsTo(login)); got != 1 {
				t.Errorf("verification emails = %d, want 1", got)
			}
			if got := b.resend.Count(); got != 3 {
				t.Errorf("emails delivered = %d, want 3 (1 link + 2 alerts)", got)
			}
		})
	}
}

// Distinct attempts racing on one dormant account: one lock, one live
// token, one verification email, one alert per recipient.
func TestManyAttemptsOnOneAccount(t *testing.T) {
	b := setup(t)
	_, r1 := b.account(t, accountOpts{lastLogin: day})
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	b.recipients(t, b.company, r1)
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		task := b.attempt(t, b.company, login, policy.MethodPassword)
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = b.process(task) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b.drain(t)
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'locked'`, id); got != 1 {
		t.Errorf("lock events = %d", got)
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1`, id); got != 1 {
		t.Errorf("tokens = %d", got)
	}
	if got := b.resend.Count(); got != 2 {
		t.Errorf("emails = %d, want 2 (1 link + 1 alert)", got)
	}
}

// The worker died after committing an attempt and before sending or
// queueing its mail: the redelivered task sends the mail, with a fresh
// link.
func TestRedeliveryAfterLostEnqueueSendsTheMail(t *testing.T) {
	b := setup(t)
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})
	task := b.attempt(t, b.company, login, policy.MethodPassword)
	b.resend.FailNext(1, 422, nil)
	b.run(t, task)
	// Lose the queued email, as if the process died before enqueueing.
	if n, err := b.inspect.DeleteAllPendingTasks(tasks.QueueDefault); err != nil || n != 1 {
		t.Fatalf("delete pending: %d, %v", n, err)
	}
	b.run(t, task)
	b.drain(t)
	emails := b.emailsTo(login)
	if len(emails) != 1 {
		t.Fatalf("emails = %d, want 1", len(emails))
	}
	b.clock.Add(time.Minute)
	if _, err := b.client.Redeem(b.ctx, b.company, login, tokenOf(t, emails[0]), ""); err != nil {
		t.Errorf("link from the re-sent email: %v", err)
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'locked'`, id); got != 1 {
		t.Errorf("lock events = %d, want 1", got)
	}
}

func TestBadTasksAreArchivedWithTheReason(t *testing.T) {
	b := setup(t)
	login, _ := b.account(t, accountOpts{lastLogin: day})
	unknown := b.attempt(t, b.company, "nobody@example.com", policy.MethodPassword)
	_ = login
	cases := map[string]*asynq.Task{
		"truncated JSON":  asynq.NewTask(tasks.TypeLoginAttempt, []byte(`{"attempt_key":"k","company_id":`)),
		"wrong type":      asynq.NewTask(tasks.TypeLoginAttempt, []byte(`{"attempt_key":"k","company_id":7}`)),
		"unknown field":   asynq.NewTask(tasks.TypeLoginAttempt, []byte(`{"attempt_key":"k","company_id":"c","login_id":"x","method":"password","at":"2026-11-26T00:00:00Z","admin":true}`)),
		"bad method":      asynq.NewTask(tasks.TypeLoginAttempt, []byte(`{"attempt_key":"k","company_id":"c","login_id":"x","method":"magic","at":"2026-11-26T00:00:00Z"}`)),
		"unknown account": unknown,
		"email no mail":   asynq.NewTask(tasks.TypeEmailAlert, []byte(`{"mail_id":999999999}`)),
		"email bad token": asynq.NewTask(tasks.TypeEmailVerification, []byte(`{"mail_id":1,"token_id":1,"token":"short"}`)),
	}
	before := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'`)
	for name, task := range cases {
		err := b.process(task)
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("%s: err = %v, want SkipRetry", name, err)
		}
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'task_rejected'`) - before; got != len(cases) {
		t.Errorf("task_rejected events = %d, want %d", got, len(cases))
	}
	var reason string
	b.db.QueryRow(`SELECT detail->>'reason' FROM audit_events WHERE kind = 'task_rejected' AND detail->>'reason' LIKE 'method%'`).Scan(&reason)
	if !strings.Contains(reason, `unknown method "magic"`) {
		t.Errorf("recorded reason = %q", reason)
	}
}
