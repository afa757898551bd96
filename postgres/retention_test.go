package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// Retention at an injected instant deletes exactly the login attempts,
// audit events and mail rows past their keep and nothing younger, and
// clears the personal fields of old mails that are no longer pending while
// their rows stay as evidence.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	store, db := ownDatabase(t) // retention acts on every row
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	now := time.Date(2027, 6, 1, 3, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: "co"}); err != nil {
		t.Fatal(err)
	}
	acct, err := store.UpsertAccount(ctx, postgres.AccountRecord{CompanyID: "co", LoginID: "u@example.com", IDKind: policy.IDKindEmail, Email: "u@example.com", Name: "n", CreatedAt: now.Add(-900 * day)})
	if err != nil {
		t.Fatal(err)
	}
	r := postgres.DefaultRetention // 400 days, 90 days for mail addresses
	edge := time.Microsecond
	for i, at := range []time.Time{now.Add(-r.LoginAttempts - edge), now.Add(-r.LoginAttempts + edge), now.Add(-day)} {
		exec(`INSERT INTO login_attempts (attempt_key, company_id, account_id, method, outcome, ip, user_agent, attempted_at, recorded_at)
			VALUES ($1, 'co', $2, 'password', 'allow', '203.0.113.7', 'UA', $3, $3)`, []string{"old", "edge", "new"}[i], acct, at)
	}
	for _, at := range []time.Time{now.Add(-r.AuditEvents - edge), now.Add(-r.AuditEvents + edge), now} {
		exec(`INSERT INTO audit_events (company_id, account_id, kind, occurred_at) VALUES ('co', $1, 'locked', $2)`, acct, at)
	}
	mail := func(key, status string, at time.Time) {
		exec(`INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, status, subject, body_text, created_at)
			VALUES ('unlocked', 'co', $1, 'u@example.com', 'ja', $2, $3, '件名', '本文', $4)`, acct, key, status, at)
	}
	mail("gone", "sent", now.Add(-r.AuditEvents-edge))
	mail("cleared", "sent", now.Add(-r.MailPersonal-edge))
	mail("kept", "sent", now.Add(-r.MailPersonal+edge))
	mail("pending", "pending", now.Add(-200*day))
	exec(`INSERT INTO webhook_endpoints (company_id, url, event_kinds, secret, created_at, updated_at)
		VALUES ('co', 'https://hooks.example.com/', '{locked}', '0123456789abcdef', $1, $1)`, now)
	for _, d := range []struct {
		status string
		at     time.Time
	}{{"delivered", now.Add(-r.WebhookDeliveries - edge)}, {"pending", now.Add(-r.WebhookDeliveries - edge)}, {"failed", now.Add(-r.WebhookDeliveries + edge)}} {
		exec(`INSERT INTO webhook_deliveries (endpoint_id, event_id, message_id, status, created_at)
			SELECT id, 1, 'msg_1', $1, $2 FROM webhook_endpoints`, d.status, d.at)
	}

	total := 0
	for _, step := range store.RetentionSteps(r) {
		for {
			n, err := step.Batch(ctx, now, 1) // one row per batch: the loop is exercised
			if err != nil {
				t.Fatalf("%s: %v", step.Name, err)
			}
			total += n
			if n == 0 {
				break
			}
		}
	}
	count := func(q string, args ...any) int { return testenv.Count(t, db, q, args...) }
	if got := count(`SELECT count(*) FROM login_attempts WHERE attempt_key IN ('edge', 'new')`); got != 2 || count(`SELECT count(*) FROM login_attempts`) != 2 {
		t.Errorf("login attempts left: %d of the 2 younger, %d in all", got, count(`SELECT count(*) FROM login_attempts`))
	}
	if got := count(`SELECT count(*) FROM audit_events WHERE occurred_at >= $1`, now.Add(-r.AuditEvents)); got != 2 || count(`SELECT count(*) FROM audit_events`) != 2 {
		t.Errorf("audit events left: %d of the 2 younger, %d in all", got, count(`SELECT count(*) FROM audit_events`))
	}
	if count(`SELECT count(*) FROM mails WHERE idempotency_key = 'gone'`) != 0 {
		t.Error("a mail row past the audit retention is still there")
	}
	if count(`SELECT count(*) FROM mails WHERE idempotency_key = 'cleared' AND to_address = '' AND subject = '' AND body_text IS NULL AND status = 'sent'`) != 1 {
		t.Error("an old sent mail's personal fields are not cleared, or its row is gone")
	}
	if count(`SELECT count(*) FROM mails WHERE idempotency_key IN ('kept', 'pending') AND to_address = 'u@example.com' AND body_text = '本文'`) != 2 {
		t.Error("a younger or a pending mail was cleared")
	}
	var left string
	if err := db.QueryRow(`SELECT string_agg(status, ',' ORDER BY id) FROM webhook_deliveries`).Scan(&left); err != nil || left != "pending,failed" {
		t.Errorf("webhook deliveries left: %q, %v; want the pending one and the younger one", left, err)
	}
	// 1 attempt + 1 event + 1 mail + 1 delivery deleted, 1 mail cleared.
	if total != 5 {
		t.Errorf("rows changed = %d, want 5", total)
	}
	oldest, err := store.OldestRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !oldest["login_attempts"].Equal(now.Add(-r.LoginAttempts+edge)) || !oldest["audit_events"].Equal(now.Add(-r.AuditEvents+edge)) {
		t.Errorf("oldest rows = %v", oldest)
	}
	if got := store.RetentionSteps(postgres.Retention{}); len(got) != 0 {
		t.Errorf("keeping everything still has %d steps", len(got))
	}
}
