package postgres_test

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// A link is issued, with its mail and its event, by one statement, and a
// pending mail is re-pointed at a new link by another: each new link
// revokes the one before it, each mail is keyed by its first token, and
// each event names its token, attempt and mail. A mail no longer pending
// is not re-linked: no token, no revocation, no event.
func TestIssueLinkAndRelinkMail(t *testing.T) {
	b := adminSetup(t)
	account := b.account(t, acct{name: "一郎"})
	// A mail of another account first, so that no mail shares its id with
	// a token and an event naming one for the other is told apart.
	if _, err := b.db.Exec(`INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, created_at)
		VALUES ('unlocked', $1, $2, 'x@example.com', 'ja', $3, $4)`, b.company, b.account(t, acct{name: "二郎"}), testenv.UniqueID("k"), adminNow); err != nil {
		t.Fatal(err)
	}
	var tokens, mails [4]int64
	var relinked [2]bool
	steps := []func(tx *postgres.Tx) (err error){
		func(tx *postgres.Tx) (err error) {
			tokens[0], mails[0], err = tx.IssueLink(b.ctx, linkToken(account, 0, 0), b.company, policy.LocaleJA, "")
			return err
		},
		func(tx *postgres.Tx) (err error) {
			tokens[1], mails[1], err = tx.IssueLink(b.ctx, linkToken(account, 1, 42), b.company, policy.LocaleJA, "req-2")
			return err
		},
		func(tx *postgres.Tx) (err error) {
			tokens[2], relinked[0], err = tx.RelinkMail(b.ctx, linkToken(account, 2, 42), mails[1], b.company, "req-3")
			return err
		},
		func(tx *postgres.Tx) (err error) {
			// The first mail went out meanwhile: it keeps its token.
			if _, err := b.db.Exec(`UPDATE mails SET status = 'sent' WHERE id = $1`, mails[0]); err != nil {
				return err
			}
			tokens[3], relinked[1], err = tx.RelinkMail(b.ctx, linkToken(account, 3, 0), mails[0], b.company, "req-4")
			return err
		},
	}
	for i, step := range steps {
		if err := b.store.WithTx(b.ctx, step); err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
	}
	if relinked != [2]bool{true, false} || tokens[3] != 0 {
		t.Errorf("relinked %v, the sent mail's token %d; want [true false] and 0", relinked, tokens[3])
	}
	// Tokens and mails number their ids apart: a name is per table.
	type key struct {
		mail bool
		id   int64
	}
	name := map[key]string{}
	for i := range tokens {
		name[key{false, tokens[i]}] = fmt.Sprintf("t%d", i+1)
		if mails[i] != 0 {
			name[key{true, mails[i]}] = fmt.Sprintf("m%d", i+1)
		}
	}
	named := func(id *int64, mail bool) string {
		if id == nil {
			return "-"
		}
		if n, ok := name[key{mail, *id}]; ok {
			return n
		}
		return fmt.Sprint("unknown ", *id)
	}
	var got []string
	rows, err := b.db.Query(`SELECT id, attempt_id, email, created_at, expires_at, revoked_at, coalesce(revoked_reason, ''), consumed_at IS NULL
		FROM verification_tokens WHERE account_id = $1 ORDER BY id`, account)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var attempt *int64
		var email, reason string
		var created, expires time.Time
		var revoked *time.Time
		var unused bool
		if err := rows.Scan(&id, &attempt, &email, &created, &expires, &revoked, &reason, &unused); err != nil {
			t.Fatal(err)
		}
		r := "live"
		if revoked != nil {
			r = fmt.Sprintf("%s at %s", reason, revoked.UTC().Format("15:04"))
		}
		got = append(got, fmt.Sprintf("token %s attempt %s %s %s–%s %s unused=%v", named(&id, false), deref(attempt), email,
			created.UTC().Format("15:04"), expires.UTC().Format("01-02 15:04"), r, unused))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = b.db.Query(`SELECT id, kind, company_id = $2, recipient_account_id, to_address, locale, idempotency_key, attempt_id, token_id, status, created_at
		FROM mails WHERE account_id = $1 ORDER BY id`, account, b.company)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var recipient, attempt, tok *int64
		var kind, to, locale, key, status string
		var company bool
		var created time.Time
		if err := rows.Scan(&id, &kind, &company, &recipient, &to, &locale, &key, &attempt, &tok, &status, &created); err != nil {
			t.Fatal(err)
		}
		if i := strings.LastIndex(key, ":"); i >= 0 {
			var keyed int64
			fmt.Sscan(key[i+1:], &keyed)
			key = key[:i+1] + named(&keyed, false)
		}
		got = append(got, fmt.Sprintf("mail %s %s company=%v recipient %s %s %s %s attempt %s token %s %s %s", named(&id, true), kind, company,
			deref(recipient), to, locale, key, deref(attempt), named(tok, false), status, created.UTC().Format("15:04")))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = b.db.Query(`SELECT company_id = $2, actor_account_id, kind, (detail->>'token_id')::bigint, (detail->>'mail_id')::bigint, detail->>'attempt_id',
			(SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(detail) k), request_id, occurred_at
		FROM audit_events WHERE account_id = $1 ORDER BY occurred_at`, account, b.company)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tok, mail int64
		var actor *int64
		var company bool
		var kind, attempt, keys, request string
		var occurred time.Time
		if err := rows.Scan(&company, &actor, &kind, &tok, &mail, &attempt, &keys, &request, &occurred); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("event %s company=%v actor %s token %s mail %s attempt %s {%s} %q %s", kind, company, deref(actor),
			named(&tok, false), named(&mail, true), attempt, keys, request, occurred.UTC().Format("15:04")))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"token t1 attempt - link@example.com 01:00–11-27 01:00 superseded at 01:01 unused=true",
		"token t2 attempt 42 link@example.com 01:01–11-27 01:01 superseded at 01:02 unused=true",
		"token t3 attempt 42 link@example.com 01:02–11-27 01:02 live unused=true",
		"mail m1 verification company=true recipient - link@example.com ja verification:t1 attempt - token t1 sent 01:00",
		"mail m2 verification company=true recipient - link@example.com ja verification:t2 attempt 42 token t3 pending 01:01",
		`event token_issued company=true actor - token t1 mail m1 attempt 0 {attempt_id,mail_id,token_id} "" 01:00`,
		`event token_issued company=true actor - token t2 mail m2 attempt 42 {attempt_id,mail_id,token_id} "req-2" 01:01`,
		`event token_issued company=true actor - token t3 mail m2 attempt 42 {attempt_id,mail_id,token_id} "req-3" 01:02`,
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("rows:\n%s\nwant:\n%s", g, w)
	}
}

// linkToken is the i-th link of account: issued i minutes after adminNow,
// live for a day, with a random hash.
func linkToken(account int64, i int, attempt int64) postgres.Token {
	at := adminNow.Add(time.Duration(i) * time.Minute)
	tok := postgres.Token{AccountID: account, Seed: make([]byte, 32), Email: "link@example.com", AttemptID: attempt,
		CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour)}
	rand.Read(tok.Hash[:])
	return tok
}

func deref(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// A re-link waits for the mail's row: while the mail's task holds it to
// send, the re-link blocks, and once the send is committed it finds the
// mail sent and writes nothing. Read without the lock, the mail would
// still look pending, and the person's link would be superseded by a
// token no mail carries.
func TestRelinkMailWaitsForTheSend(t *testing.T) {
	b := adminSetup(t)
	account := b.account(t, acct{name: "三郎"})
	var first, mail int64
	if err := b.store.WithTx(b.ctx, func(tx *postgres.Tx) (err error) {
		first, mail, err = tx.IssueLink(b.ctx, linkToken(account, 0, 0), b.company, policy.LocaleJA, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The mail's task, mid-send: the row locked and marked sent, not yet
	// committed.
	send, err := b.db.BeginTx(b.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer send.Rollback()
	if _, err := send.Exec(`SELECT id FROM mails WHERE id = $1 FOR UPDATE`, mail); err != nil {
		t.Fatal(err)
	}
	if _, err := send.Exec(`UPDATE mails SET status = 'sent' WHERE id = $1`, mail); err != nil {
		t.Fatal(err)
	}
	type result struct {
		token    int64
		relinked bool
		err      error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = b.store.WithTx(b.ctx, func(tx *postgres.Tx) (err error) {
			r.token, r.relinked, err = tx.RelinkMail(b.ctx, linkToken(account, 1, 0), mail, b.company, "req-relink")
			return err
		})
		done <- r
	}()
	// Commit the send only once the re-link waits for the mail's lock.
	for waiting := false; !waiting; {
		select {
		case r := <-done:
			t.Fatalf("the re-link did not wait for the mail's lock: %+v", r)
		default:
		}
		if err := b.db.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%pending AS%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := send.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.relinked || r.token != 0 {
		t.Fatalf("re-link of a mail sent meanwhile: %+v; want nothing written", r)
	}
	var tokens, events int
	var live int64
	if err := b.db.QueryRow(`SELECT count(*), max(id) FILTER (WHERE revoked_at IS NULL) FROM verification_tokens WHERE account_id = $1`, account).Scan(&tokens, &live); err != nil {
		t.Fatal(err)
	}
	if err := b.db.QueryRow(`SELECT count(*) FROM audit_events WHERE account_id = $1 AND kind = 'token_issued'`, account).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if tokens != 1 || live != first || events != 1 {
		t.Errorf("%d tokens (live %d), %d token_issued events; want the first token alone, live (%d), and its one event", tokens, live, events, first)
	}
}
