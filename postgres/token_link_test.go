package postgres_test

import (
	"crypto/rand"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// IssueLink writes, in one statement, the rows its four steps wrote:
// IssueToken, InsertMail under the token's key and the token_issued event
// by Audit. Two accounts get two links each, one account step by step and
// the other by IssueLink, and their rows must read the same with each id
// replaced by its rank: the second link supersedes the first, each mail
// names its token, each event names its token, attempt and mail.
func TestIssueLinkWritesWhatItsStepsWrote(t *testing.T) {
	b := adminSetup(t)
	steps, folded := b.account(t, acct{name: "一郎"}), b.account(t, acct{name: "二郎"})
	// A mail of another account first, so that no mail shares its id with
	// a token and an event naming one for the other is told apart.
	err := b.store.WithTx(b.ctx, func(tx *postgres.Tx) error {
		_, err := tx.InsertMail(b.ctx, postgres.NewMail{Kind: postgres.MailUnlocked, CompanyID: b.company, AccountID: b.account(t, acct{name: "三郎"}),
			To: "saburo@example.com", Locale: policy.LocaleJA, IdempotencyKey: testenv.UniqueID("k"), CreatedAt: adminNow})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	issues := []struct {
		attempt int64
		at      time.Time
		request string
	}{{0, adminNow, ""}, {42, adminNow.Add(time.Minute), "req-2"}}
	for i, is := range issues {
		for _, account := range []int64{steps, folded} {
			tok := postgres.Token{AccountID: account, Seed: make([]byte, 32), Email: "link@example.com",
				AttemptID: is.attempt, CreatedAt: is.at, ExpiresAt: is.at.Add(24 * time.Hour)}
			rand.Read(tok.Hash[:])
			err = b.store.WithTx(b.ctx, func(tx *postgres.Tx) error {
				if account == folded {
					_, _, err := tx.IssueLink(b.ctx, tok, b.company, policy.LocaleJA, is.request)
					return err
				}
				tokenID, err := tx.IssueToken(b.ctx, tok)
				if err != nil {
					return err
				}
				mailID, err := tx.InsertMail(b.ctx, postgres.NewMail{Kind: postgres.MailVerification, CompanyID: b.company, AccountID: account,
					To: tok.Email, Locale: policy.LocaleJA, AttemptID: is.attempt, TokenID: tokenID, CreatedAt: is.at,
					IdempotencyKey: "verification:" + strconv.FormatInt(tokenID, 10)})
				if err != nil {
					return err
				}
				return tx.Audit(b.ctx, postgres.Event{Kind: postgres.EventTokenIssued, CompanyID: b.company, AccountID: account, RequestID: is.request,
					OccurredAt: is.at, Detail: map[string]any{"token_id": tokenID, "attempt_id": is.attempt, "mail_id": mailID}})
			})
			if err != nil {
				t.Fatalf("link %d of account %d: %v", i+1, account, err)
			}
		}
	}
	want := b.linkRows(t, steps)
	if got := b.linkRows(t, folded); got != want {
		t.Errorf("IssueLink wrote\n%s\nits steps wrote\n%s", got, want)
	}
	if want == "" {
		t.Fatal("nothing written")
	}
}

// linkRows is an account's tokens, verification mails and token_issued
// events as text, each id replaced by its rank among the account's.
func (b *adminBundle) linkRows(t *testing.T, account int64) string {
	t.Helper()
	// Tokens and mails number their ids apart, so a rank is per table.
	rank := map[string]string{}
	ranked := func(table string, id *int64) string {
		if id == nil {
			return "-"
		}
		key := table + strconv.FormatInt(*id, 10)
		if _, ok := rank[key]; !ok {
			rank[key] = table + strconv.Itoa(len(rank)+1)
		}
		return rank[key]
	}
	out := ""
	rows, err := b.db.Query(`SELECT id, email, attempt_id, created_at, expires_at, revoked_at, coalesce(revoked_reason, ''), consumed_at IS NULL
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
		if err := rows.Scan(&id, &email, &attempt, &created, &expires, &revoked, &reason, &unused); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintln("token", ranked("t", &id), email, attempt != nil && *attempt == 42, created.UTC(), expires.UTC(), revoked != nil && revoked.Equal(adminNow.Add(time.Minute)), reason, unused)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = b.db.Query(`SELECT id, kind, company_id, recipient_account_id, to_address, locale, idempotency_key, attempt_id, token_id, status, created_at
		FROM mails WHERE account_id = $1 ORDER BY id`, account)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var recipient, attempt, token *int64
		var kind, company, to, locale, key, status string
		var created time.Time
		if err := rows.Scan(&id, &kind, &company, &recipient, &to, &locale, &key, &attempt, &token, &status, &created); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintln("mail", ranked("m", &id), kind, company == b.company, recipient == nil, to, locale,
			token != nil && key == "verification:"+strconv.FormatInt(*token, 10), attempt != nil && *attempt == 42, ranked("t", token), status, created.UTC())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = b.db.Query(`SELECT company_id, actor_account_id, kind, (detail->>'token_id')::bigint, (detail->>'mail_id')::bigint, detail->>'attempt_id',
			(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(detail) k)::text, request_id, occurred_at
		FROM audit_events WHERE account_id = $1 ORDER BY occurred_at, id`, account)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var token, mail int64
		var actor *int64
		var company, kind, attempt, keys, request string
		var at time.Time
		if err := rows.Scan(&company, &actor, &kind, &token, &mail, &attempt, &keys, &request, &at); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintln("event", company == b.company, actor == nil, kind, ranked("t", &token), ranked("m", &mail), attempt, keys, request, at.UTC())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
