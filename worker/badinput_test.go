package worker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// badCase is one payload a handler must refuse.
type badCase struct {
	name    string
	typ     string
	payload []byte
	// field is what the task_rejected event's reason starts with: the
	// payload field at fault.
	field string
	// mentions, for a payload that is well formed but names nothing real,
	// is what the reason must contain instead: the lookup that failed and
	// the values it looked for.
	mentions []string
	// retry marks the one refusal that is not permanent at once: an
	// account event naming a company dormancy has not seen yet is retried
	// until its last try, since the company's own event may still be on
	// its way (see worker/directory.go).
	retry bool
}

func bad(name, typ string, payload []byte, field string) badCase {
	return badCase{name: name, typ: typ, payload: payload, field: field}
}

func unknown(name, typ string, payload []byte, mentions ...string) badCase {
	return badCase{name: name, typ: typ, payload: payload, mentions: mentions}
}

func waits(name, typ string, payload []byte) badCase {
	return badCase{name: name, typ: typ, payload: payload, retry: true}
}

// badRows are the rows a refused task must leave as they were.
var badRows = map[string]string{
	"companies":      `SELECT count(*), coalesce(md5(string_agg(c::text, ',' ORDER BY id)), '') FROM companies c`,
	"accounts":       `SELECT count(*), coalesce(md5(string_agg(a::text, ',' ORDER BY id)), '') FROM accounts a`,
	"login_attempts": `SELECT count(*), coalesce(md5(string_agg(l::text, ',' ORDER BY id)), '') FROM login_attempts l`,
	"tokens":         `SELECT count(*), coalesce(md5(string_agg(v::text, ',' ORDER BY id)), '') FROM verification_tokens v`,
	"mails":          `SELECT count(*), coalesce(md5(string_agg(m::text, ',' ORDER BY id)), '') FROM mails m`,
	"recipients":     `SELECT count(*), coalesce(md5(string_agg(r::text, ',' ORDER BY company_id, account_id)), '') FROM login_notification_recipients r`,
	"prelock":        `SELECT count(*), coalesce(md5(string_agg(p::text, ',' ORDER BY account_id, cycle, days_before)), '') FROM prelock_warnings p`,
	"audit_events":   `SELECT count(*), coalesce(md5(string_agg(e::text, ',' ORDER BY id)), '') FROM audit_events e`,
}

// state is every table's row count and a digest of its rows, and the
// tasks waiting in Redis.
func (b *testBundle) state(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, q := range badRows {
		var n int
		var digest string
		if err := b.db.QueryRow(q).Scan(&n, &digest); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = fmt.Sprintf("%d rows, %s", n, digest)
	}
	for _, q := range []string{tasks.QueueCritical, tasks.QueueDefault, tasks.QueueLow} {
		pending, _ := b.inspect.ListPendingTasks(q)
		out["queue "+q] = fmt.Sprint(len(pending))
	}
	return out
}

// refuse runs each case through the handlers as registered for asynq, and
// holds each to: a permanent error (asynq.SkipRetry), one task_rejected
// event whose reason names the field, and nothing else changed.
func (b *testBundle) refuse(t *testing.T, cases []badCase) {
	t.Helper()
	mux := asynq.NewServeMux()
	b.h.Register(mux)
	for _, c := range cases {
		t.Run(c.typ+"/"+c.name, func(t *testing.T) {
			before := b.state(t)
			var lastEvent int64
			b.db.QueryRow(`SELECT coalesce(max(id), 0) FROM audit_events`).Scan(&lastEvent)

			err := mux.ProcessTask(b.ctx, asynq.NewTask(c.typ, c.payload))
			if c.retry {
				if err == nil || errors.Is(err, asynq.SkipRetry) {
					t.Fatalf("err = %v, want a retryable error", err)
				}
			} else if !errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("err = %v, want SkipRetry", err)
			}

			after := b.state(t)
			if !c.retry {
				rows, err := b.db.Query(`SELECT kind, detail->>'task_type', detail->>'reason' FROM audit_events WHERE id > $1`, lastEvent)
				if err != nil {
					t.Fatal(err)
				}
				var events []string
				for rows.Next() {
					var kind, typ, reason string
					if err := rows.Scan(&kind, &typ, &reason); err != nil {
						t.Fatal(err)
					}
					events = append(events, kind)
					if kind != "task_rejected" || typ != c.typ {
						t.Errorf("event %s for %s, want task_rejected for %s", kind, typ, c.typ)
					}
					if c.field != "" && !strings.HasPrefix(reason, c.field+": ") {
						t.Errorf("reason %.200q does not name the field %q", reason, c.field)
					}
					for _, m := range c.mentions {
						if !strings.Contains(reason, m) {
							t.Errorf("reason %.200q does not mention %q", reason, m)
						}
					}
				}
				rows.Close()
				if len(events) != 1 {
					t.Errorf("new audit events %v, want one task_rejected", events)
				}
				delete(before, "audit_events")
				delete(after, "audit_events")
			}
			for k := range maps.Keys(before) {
				if before[k] != after[k] {
					t.Errorf("%s changed: %s → %s", k, before[k], after[k])
				}
			}
		})
	}
}

// jsonWith is base with changes applied; a nil value removes the field.
func jsonWith(base map[string]any, changes map[string]any) []byte {
	m := maps.Clone(base)
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return out
}

// rawWith is base with field set to raw JSON text, for values encoding/json
// would not write: invalid UTF-8.
func rawWith(base map[string]any, field, raw string) []byte {
	m := maps.Clone(base)
	m[field] = "\x00marker\x00"
	out, _ := json.Marshal(m)
	return []byte(strings.Replace(string(out), `"\u0000marker\u0000"`, raw, 1))
}

func truncated(b []byte) []byte { return b[:len(b)/2] }

// Every field of a login attempt, refused one way after another, on an
// account the untouched payload would lock.
func TestBadLoginAttemptsAreRefusedAndChangeNothing(t *testing.T) {
	b := setup(t)
	other := b.newCompany(t)
	_, r := b.account(t, accountOpts{lastLogin: day})
	b.recipients(t, b.company, r)
	login, id := b.account(t, accountOpts{lastLogin: 120 * day})
	theirs, _ := b.account(t, accountOpts{company: other, lastLogin: 120 * day})
	active, _ := b.account(t, accountOpts{lastLogin: day})

	typ := tasks.TypeLoginAttempt
	base := map[string]any{
		"attempt_key": testenv.UniqueID("bad-input"), "company_id": b.company, "login_id": login, "method": "password",
		"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
		"at": start.Format(time.RFC3339), "request_id": "req-1",
	}
	with := func(ch map[string]any) []byte { return jsonWith(base, ch) }
	good := with(nil)
	b.refuse(t, []badCase{
		bad("truncated JSON", typ, truncated(good), "payload"),
		bad("not an object", typ, []byte(`["login"]`), "payload"),
		bad("null", typ, []byte(`null`), "attempt_key"),
		bad("trailing data", typ, append(append([]byte{}, good...), `{}`...), "payload"),
		bad("company_id a number", typ, with(map[string]any{"company_id": 7}), "company_id"),
		bad("ip a number", typ, with(map[string]any{"ip": 3405803783}), "ip"),
		bad("at a number", typ, with(map[string]any{"at": 1764118800}), "at"),
		bad("at not a time", typ, with(map[string]any{"at": "yesterday"}), "at"),
		bad("unknown field", typ, with(map[string]any{"admin": true}), "admin"),
		bad("missing attempt_key", typ, with(map[string]any{"attempt_key": nil}), "attempt_key"),
		bad("missing company_id", typ, with(map[string]any{"company_id": nil}), "company_id"),
		bad("missing login_id", typ, with(map[string]any{"login_id": nil}), "login_id"),
		bad("missing at", typ, with(map[string]any{"at": nil}), "at"),
		bad("unknown method", typ, with(map[string]any{"method": "magic"}), "method"),
		unknown("login ID of another company", typ, with(map[string]any{"company_id": other}), "LockAccount", other, login, "not found"),
		unknown("account of another company named with ours", typ, with(map[string]any{"login_id": theirs}), "LockAccount", b.company, theirs, "not found"),
		unknown("company that does not exist", typ, with(map[string]any{"company_id": "no-such-company"}), "LockAccount", "no-such-company", "not found"),
		bad("company_id with a space", typ, with(map[string]any{"company_id": "acme corp"}), "company_id"),
		bad("1 MB User-Agent", typ, with(map[string]any{"user_agent": strings.Repeat("A", 1<<20)}), "payload"),
		bad("User-Agent over 1024 bytes", typ, with(map[string]any{"user_agent": strings.Repeat("A", 1025)}), "user_agent"),
		bad("invalid IP", typ, with(map[string]any{"ip": "999.1.1.1"}), "ip"),
		bad("IP with a port", typ, with(map[string]any{"ip": "203.0.113.7:443"}), "ip"),
		bad("non-UTF-8 login_id", typ, rawWith(base, "login_id", "\"tanaka\xff\xfe@example.com\""), "login_id"),
		bad("CRLF in login_id", typ, with(map[string]any{"login_id": login + "\r\nBcc: x@example.com"}), "login_id"),
		bad("CRLF in user_agent", typ, with(map[string]any{"user_agent": "Mozilla/5.0\r\nX-Evil: 1"}), "user_agent"),
		bad("CRLF in request_id", typ, with(map[string]any{"request_id": "req\r\n1"}), "request_id"),
		bad("at in 1999", typ, with(map[string]any{"at": "1999-12-31T23:59:59Z"}), "at"),
		bad("at in 2500", typ, with(map[string]any{"at": "2500-01-01T00:00:00Z"}), "at"),
		bad("at a day ahead of the worker", typ, with(map[string]any{"at": start.Add(day).Format(time.RFC3339)}), "at"),
		bad("at 80 days ahead, within the inactivity period", typ, with(map[string]any{"at": start.Add(80 * day).Format(time.RFC3339)}), "at"),
		bad("at 80 days ahead on an active account", typ, with(map[string]any{"login_id": active, "at": start.Add(80 * day).Format(time.RFC3339)}), "at"),
		bad("at a month ago", typ, with(map[string]any{"at": start.Add(-30 * day).Format(time.RFC3339)}), "at"),
		bad("attempt_key over 128 bytes", typ, with(map[string]any{"attempt_key": strings.Repeat("k", 129)}), "attempt_key"),
	})

	// The same payload untouched does lock the account: the refusals above
	// changed nothing because they were refused, not because nothing would.
	if err := b.process(asynq.NewTask(typ, good)); err != nil {
		t.Fatal(err)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'locked'`, id); got != 1 {
		t.Error("the good payload did not lock the account")
	}
}

// The email tasks carry ids of rows the worker wrote; a task that names a
// mail of another kind is refused without touching the mail, which its own
// task still sends.
func TestBadEmailTasksAreRefusedAndChangeNothing(t *testing.T) {
	b := setup(t)
	_, r := b.account(t, accountOpts{lastLogin: day})
	b.recipients(t, b.company, r)
	login, _ := b.account(t, accountOpts{lastLogin: 120 * day})
	b.resend.FailNext(1, 422, nil) // Resend refuses the link's first try: it is left to its task
	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	pending, err := b.inspect.ListPendingTasks(tasks.QueueDefault)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending email tasks: %d, %v; want the verification and the alert", len(pending), err)
	}
	var verification, alert tasks.Email
	for _, info := range pending {
		var p tasks.Email
		if err := json.Unmarshal(info.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if info.Type == tasks.TypeEmailVerification {
			verification = p
		} else {
			alert = p
		}
	}
	if verification.MailID == 0 || alert.MailID == 0 {
		t.Fatalf("tasks: %+v", pending)
	}
	if verification.Token != "" {
		t.Fatalf("the verification task carries its token: %+v", verification)
	}
	wellFormed := strings.Repeat("A", 43)
	vbase := map[string]any{"mail_id": verification.MailID, "token_id": verification.TokenID}
	v := func(ch map[string]any) []byte { return jsonWith(vbase, ch) }
	abase := map[string]any{"mail_id": alert.MailID}
	a := func(ch map[string]any) []byte { return jsonWith(abase, ch) }
	V, A, N := tasks.TypeEmailVerification, tasks.TypeEmailAlert, tasks.TypeEmailNotice
	b.refuse(t, []badCase{
		bad("truncated JSON", V, truncated(v(nil)), "payload"),
		bad("mail_id a string", V, v(map[string]any{"mail_id": "1"}), "mail_id"),
		bad("token_id a float", V, v(map[string]any{"token_id": 1.5}), "token_id"),
		bad("unknown field", A, a(map[string]any{"to": "x@example.com"}), "to"),
		bad("missing mail_id", A, a(map[string]any{"mail_id": nil}), "mail_id"),
		bad("negative mail_id", N, a(map[string]any{"mail_id": -1}), "mail_id"),
		unknown("mail that does not exist", A, a(map[string]any{"mail_id": 1 << 60}), "LockMail(1152921504606846976)", "not found"),
		bad("missing token_id", V, v(map[string]any{"token_id": nil}), "token_id"),
		bad("malformed token", V, v(map[string]any{"token": "short"}), "token"),
		bad("non-UTF-8 token", V, rawWith(vbase, "token", "\"\xff\xfe\""), "token"),
		bad("CRLF in token", V, v(map[string]any{"token": wellFormed[:40] + "\r\n1"}), "token"),
		bad("1 MB token", V, v(map[string]any{"token": strings.Repeat("A", 1<<20)}), "payload"),
		bad("token on an alert", A, a(map[string]any{"token_id": verification.TokenID, "token": wellFormed}), "token"),
		bad("an alert task naming the verification mail", A, a(map[string]any{"mail_id": verification.MailID}), "mail_id"),
		bad("a notice task naming the alert mail", N, a(nil), "mail_id"),
	})

	// A task for a link the mail no longer carries is stale, not bad: a
	// redelivered attempt gave the mail a fresh link and its own task. It
	// does nothing and is not an error.
	if err := b.process(asynq.NewTask(V, v(map[string]any{"token_id": verification.TokenID + 1000}))); err != nil {
		t.Errorf("stale verification task: %v, want nil", err)
	}
	if got := b.count(t, `SELECT count(*) FROM mails WHERE id = $1 AND status = 'pending'`, verification.MailID); got != 1 {
		t.Error("a stale task changed the mail")
	}
	// The real tasks still deliver both emails.
	if got := b.drain(t); got != 2 {
		t.Errorf("drained %d tasks, want 2", got)
	}
	if got := b.resend.Count(); got != 2 {
		t.Errorf("delivered %d, want the verification and the alert", got)
	}
}

// An unlock refused for its payload, its actor or an account of another
// company leaves every lock as it was.
func TestBadUnlocksAreRefusedAndChangeNothing(t *testing.T) {
	b := setup(t)
	other := b.newCompany(t)
	_, admin := b.account(t, accountOpts{kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	_, theirAdmin := b.account(t, accountOpts{company: other, kind: policy.IDKindPlatform, admin: true, lastLogin: day})
	_, mine := b.account(t, accountOpts{kind: policy.IDKindPlatform, email: "mine@example.com", lastLogin: 120 * day})
	_, theirs := b.account(t, accountOpts{company: other, kind: policy.IDKindPlatform, email: "theirs@example.com", lastLogin: 120 * day})
	for _, id := range []int64{mine, theirs} {
		if _, err := b.db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = $2 WHERE id = $1`, id, start.Add(-day)); err != nil {
			t.Fatal(err)
		}
	}
	typ := tasks.TypeAccountUnlock
	base := map[string]any{"company_id": b.company, "actor_account_id": admin, "account_ids": []int64{mine}, "request_id": "form-1"}
	with := func(ch map[string]any) []byte { return jsonWith(base, ch) }
	many := make([]int64, tasks.MaxUnlockAccounts+1)
	for i := range many {
		many[i] = int64(i + 1)
	}
	b.refuse(t, []badCase{
		bad("truncated JSON", typ, truncated(with(nil)), "payload"),
		bad("actor a string", typ, with(map[string]any{"actor_account_id": fmt.Sprint(admin)}), "actor_account_id"),
		bad("account_ids a string", typ, with(map[string]any{"account_ids": "1,2"}), "account_ids"),
		bad("all a string", typ, with(map[string]any{"account_ids": nil, "all": "yes"}), "all"),
		bad("unknown field", typ, with(map[string]any{"force": true}), "force"),
		bad("missing company_id", typ, with(map[string]any{"company_id": nil}), "company_id"),
		bad("missing actor", typ, with(map[string]any{"actor_account_id": nil}), "actor_account_id"),
		bad("neither accounts nor all", typ, with(map[string]any{"account_ids": nil}), "account_ids"),
		bad("accounts and all", typ, with(map[string]any{"all": true}), "account_ids"),
		bad("a negative id", typ, with(map[string]any{"account_ids": []int64{-1}}), "account_ids"),
		bad("more than the limit", typ, with(map[string]any{"account_ids": many}), "account_ids"),
		unknown("an account of another company", typ, with(map[string]any{"account_ids": []int64{mine, theirs}}), "1 of 2 accounts are not of the company", "not found"),
		unknown("an account that does not exist", typ, with(map[string]any{"account_ids": []int64{1 << 60}}), "1 of 1 accounts are not of the company", "not found"),
		unknown("an actor of another company", typ, with(map[string]any{"actor_account_id": theirAdmin}), fmt.Sprintf("actor %d is not an active administrator of the company", theirAdmin), "forbidden"),
		unknown("a company that does not exist", typ, with(map[string]any{"company_id": "no-such-company", "all": true, "account_ids": nil}), "no-such-company", "company: not found"),
		bad("non-UTF-8 request_id", typ, rawWith(base, "request_id", "\"form\xff\""), "request_id"),
		bad("CRLF in request_id", typ, with(map[string]any{"request_id": "form\r\n1"}), "request_id"),
	})
	if err := b.process(asynq.NewTask(typ, with(nil))); err != nil {
		t.Fatal(err)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND lock_state = 'unlocked_until'`, mine); got != 1 {
		t.Error("the good payload did not unlock the account")
	}
}

// Every maintenance type refuses a payload it cannot trust, whatever the
// job would do with a good one.
func TestBadMaintenanceTasksAreRefusedAndChangeNothing(t *testing.T) {
	b := setup(t)
	var cases []badCase
	for _, typ := range tasks.MaintenanceTypes {
		base := map[string]any{"period": start.Format(time.RFC3339), "batch_size": 100}
		with := func(ch map[string]any) []byte { return jsonWith(base, ch) }
		cases = append(cases,
			bad("truncated JSON", typ, truncated(with(nil)), "payload"),
			bad("period a number", typ, with(map[string]any{"period": 202611260100}), "period"),
			bad("period not a time", typ, with(map[string]any{"period": "now"}), "period"),
			bad("batch_size a string", typ, with(map[string]any{"batch_size": "100"}), "batch_size"),
			bad("unknown field", typ, with(map[string]any{"company_id": b.company}), "company_id"),
			bad("missing period", typ, with(map[string]any{"period": nil}), "period"),
			bad("period in 1999", typ, with(map[string]any{"period": "1999-12-31T23:59:00Z"}), "period"),
			bad("period past year 9999", typ, with(map[string]any{"period": "10000-01-01T00:00:00Z"}), "period"),
			bad("negative batch", typ, with(map[string]any{"batch_size": -1}), "batch_size"),
			bad("batch over the limit", typ, with(map[string]any{"batch_size": tasks.MaxMaintenanceBatch + 1}), "batch_size"),
			bad("negative age", typ, with(map[string]any{"min_age_seconds": -1}), "min_age_seconds"),
			bad("non-UTF-8 period", typ, rawWith(base, "period", "\"2026\xff\""), "period"),
		)
	}
	b.refuse(t, cases)
}

// The host's directory events: refused field by field, except an account
// of a company dormancy has not heard of, which waits for the company.
func TestBadDirectoryEventsAreRefusedAndChangeNothing(t *testing.T) {
	b := setup(t)
	login, _ := b.account(t, accountOpts{lastLogin: day})
	C, A, R := tasks.TypeUpsertCompany, tasks.TypeUpsertAccount, tasks.TypeRetireAccount
	cbase := map[string]any{"company_id": b.company, "version": 5, "name": "Example", "time_zone": "Asia/Tokyo", "inactivity_days": 90}
	c := func(ch map[string]any) []byte { return jsonWith(cbase, ch) }
	abase := map[string]any{
		"company_id": b.company, "login_id": "new@example.com", "version": 1, "id_kind": "email", "name": "新入 社員",
		"department": "営業部", "can_manage_employees": false, "exempt": false, "created_at": start.Add(-day).Format(time.RFC3339),
	}
	a := func(ch map[string]any) []byte { return jsonWith(abase, ch) }
	rbase := map[string]any{"company_id": b.company, "login_id": login, "version": 1}
	r := func(ch map[string]any) []byte { return jsonWith(rbase, ch) }
	b.refuse(t, []badCase{
		bad("truncated JSON", C, truncated(c(nil)), "payload"),
		bad("version a string", C, c(map[string]any{"version": "5"}), "version"),
		bad("unknown field", C, c(map[string]any{"alert_window_seconds": 1}), "alert_window_seconds"),
		bad("missing company_id", C, c(map[string]any{"company_id": nil}), "company_id"),
		bad("missing version", C, c(map[string]any{"version": nil}), "version"),
		bad("unknown time zone", C, c(map[string]any{"time_zone": "Mars/Olympus_Mons"}), "time_zone"),
		bad("inactivity of zero days", C, c(map[string]any{"inactivity_days": 0}), "inactivity_days"),
		bad("CRLF in name", C, c(map[string]any{"name": "Example\r\nBcc: x@example.com"}), "name"),
		bad("non-UTF-8 name", C, rawWith(cbase, "name", "\"Ex\xffample\""), "name"),

		bad("truncated JSON", A, truncated(a(nil)), "payload"),
		bad("can_manage_employees a string", A, a(map[string]any{"can_manage_employees": "yes"}), "can_manage_employees"),
		bad("unknown field", A, a(map[string]any{"password": "x"}), "password"),
		bad("missing login_id", A, a(map[string]any{"login_id": nil}), "login_id"),
		bad("unknown ID kind", A, a(map[string]any{"id_kind": "robot"}), "id_kind"),
		bad("email ID that is no address", A, a(map[string]any{"login_id": "tanaka"}), "login_id"),
		bad("CRLF in name", A, a(map[string]any{"name": "山田\r\nBcc: x@example.com"}), "name"),
		bad("non-UTF-8 department", A, rawWith(abase, "department", "\"\xff\xfe\""), "department"),
		bad("created_at in 1900", A, a(map[string]any{"created_at": "1900-01-01T00:00:00Z"}), "created_at"),
		bad("created_at past year 9999", A, a(map[string]any{"created_at": "10000-01-01T00:00:00Z"}), "created_at"),
		bad("last_login_at not a time", A, a(map[string]any{"last_login_at": "last week"}), "last_login_at"),
		bad("1 MB name", A, a(map[string]any{"name": strings.Repeat("名", 1<<18)}), "payload"),
		waits("a company dormancy does not know", A, a(map[string]any{"company_id": "no-such-company"})),

		bad("truncated JSON", R, truncated(r(nil)), "payload"),
		bad("missing version", R, r(map[string]any{"version": nil}), "version"),
		bad("CRLF in login_id", R, r(map[string]any{"login_id": login + "\r\n"}), "login_id"),
	})
}
