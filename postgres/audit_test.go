package postgres_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// A mail's outcome and the event that records it are written by one
// statement: the change with its own parameters, the event with the ones
// after them, each column where it belongs. Without an event the mail is
// finished and nothing is audited.
func TestFinishMailWritesItsEventInTheSameStatement(t *testing.T) {
	b := adminSetup(t)
	account := b.account(t, acct{name: "太郎"})
	mailIDs := make([]int64, 2)
	for i := range mailIDs {
		err := b.store.WithTx(b.ctx, func(tx *postgres.Tx) error {
			id, err := tx.InsertMail(b.ctx, postgres.NewMail{Kind: postgres.MailUnlocked, CompanyID: b.company, AccountID: account,
				To: "taro@example.com", Locale: policy.LocaleJA, IdempotencyKey: testenv.UniqueID("k"), CreatedAt: adminNow})
			mailIDs[i] = id
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sentAt := adminNow.Add(time.Minute)
	err := b.store.WithTx(b.ctx, func(tx *postgres.Tx) error {
		if err := tx.FinishMail(b.ctx, mailIDs[0], postgres.Delivery{Status: postgres.MailSent, Subject: "件名", ProviderID: "re_1", At: sentAt,
			Audit: &postgres.Event{Kind: postgres.EventMailSent, CompanyID: b.company, AccountID: account, ActorAccountID: account,
				RequestID: "req-1", OccurredAt: sentAt, Detail: map[string]any{"mail_id": mailIDs[0], "provider_id": "re_1"}}}); err != nil {
			return err
		}
		return tx.FinishMail(b.ctx, mailIDs[1], postgres.Delivery{Status: postgres.MailDropped, Error: "retired", At: sentAt})
	})
	if err != nil {
		t.Fatal(err)
	}
	var status, provider string
	var at time.Time
	if err := b.db.QueryRow(`SELECT status, provider_id, sent_at FROM mails WHERE id = $1`, mailIDs[0]).Scan(&status, &provider, &at); err != nil {
		t.Fatal(err)
	}
	if status != "sent" || provider != "re_1" || !at.Equal(sentAt) {
		t.Errorf("mail = %s, %s, %v; want sent, re_1, %v", status, provider, at, sentAt)
	}
	rows, err := b.db.Query(`SELECT company_id, account_id, actor_account_id, kind, detail, request_id, occurred_at
		FROM audit_events WHERE company_id = $1 AND kind IN ('mail_sent', 'mail_failed')`, b.company)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		var company, kind, request string
		var acc, actor int64
		var detail []byte
		var occurred time.Time
		if err := rows.Scan(&company, &acc, &actor, &kind, &detail, &request, &occurred); err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(detail, &d); err != nil {
			t.Fatal(err)
		}
		if company != b.company || acc != account || actor != account || kind != "mail_sent" || request != "req-1" ||
			!occurred.Equal(sentAt) || d["provider_id"] != "re_1" || d["mail_id"] != float64(mailIDs[0]) {
			t.Errorf("event = %s %d %d %s %s %s %v", company, acc, actor, kind, detail, request, occurred)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d events, want the sent mail's one (the dropped mail had none to write)", n)
	}
}
