package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

type webhookBundle struct {
	ctx   context.Context
	store *postgres.Store
	db    *sql.DB
	now   time.Time
}

// setupWebhooks gives each test a database of its own: the fan-out sends
// a platform-wide endpoint every company's events.
func setupWebhooks(t *testing.T) *webhookBundle {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.NewDatabase(t)
	store, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	t.Cleanup(func() { db.Close() })
	return &webhookBundle{ctx: ctx, store: store, db: db, now: time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)}
}

func (b *webhookBundle) company(t *testing.T, id string) {
	t.Helper()
	if err := b.store.UpsertCompany(b.ctx, postgres.CompanyRecord{ID: id}); err != nil {
		t.Fatal(err)
	}
}

func (b *webhookBundle) account(t *testing.T, company, login string, idle time.Duration, admin bool) int64 {
	t.Helper()
	id, err := b.store.UpsertAccount(b.ctx, postgres.AccountRecord{CompanyID: company, LoginID: login, IDKind: policy.IDKindEmail,
		Email: login, Name: login, CanManageEmployees: admin, CreatedAt: b.now.Add(-idle - time.Hour), LastLoginAt: b.now.Add(-idle)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *webhookBundle) endpoint(t *testing.T, company string, kinds ...postgres.EventKind) postgres.WebhookEndpoint {
	t.Helper()
	ep, err := b.store.CreateWebhookEndpoint(b.ctx, postgres.NewWebhookEndpoint{CompanyID: company, URL: "https://hooks.example.com/" + company,
		Kinds: kinds, Secret: []byte("0123456789abcdef0123456789abcdef")}, b.now)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func (b *webhookBundle) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	return testenv.Count(t, b.db, q, args...)
}

// TestWebhookOutboxFollowsTheTransaction: deliveries are written by the
// statement that writes the audit events, so a change that rolls back has
// none, and every insert path (one event, a sweep batch) fans out.
func TestWebhookOutboxFollowsTheTransaction(t *testing.T) {
	b := setupWebhooks(t)
	b.company(t, "a")
	b.company(t, "b")
	acct := b.account(t, "a", "u@a.example", time.Hour, false)
	// No endpoint yet: nothing to deliver.
	if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: "a", AccountID: acct, OccurredAt: b.now}); err != nil {
		t.Fatal(err)
	}
	epA := b.endpoint(t, "a", postgres.EventLocked, postgres.EventUnlocked)
	platform := b.endpoint(t, "", postgres.EventLocked)
	b.endpoint(t, "b", postgres.EventLocked)

	boom := errors.New("the change fails after its event")
	err := b.store.WithTx(b.ctx, func(tx *postgres.Tx) error {
		if err := tx.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: "a", AccountID: acct, OccurredAt: b.now}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if n := b.count(t, `SELECT count(*) FROM webhook_deliveries`); n != 0 {
		t.Fatalf("a rolled-back change left %d deliveries", n)
	}

	var eventID int64
	err = b.store.WithTx(b.ctx, func(tx *postgres.Tx) error {
		if err := tx.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: "a", AccountID: acct, OccurredAt: b.now}); err != nil {
			return err
		}
		// An event no endpoint of company a subscribes to.
		return tx.Audit(b.ctx, postgres.Event{Kind: postgres.EventTokenIssued, CompanyID: "a", AccountID: acct, OccurredAt: b.now})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.QueryRow(`SELECT max(id) FROM audit_events WHERE kind = 'locked'`).Scan(&eventID); err != nil {
		t.Fatal(err)
	}
	rows, err := b.db.Query(`SELECT endpoint_id, message_id FROM webhook_deliveries WHERE event_id = $1 ORDER BY endpoint_id`, eventID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var ep int64
		var msg string
		if err := rows.Scan(&ep, &msg); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", ep, msg))
	}
	want := []string{fmt.Sprintf("%d:msg_%d", epA.ID, eventID), fmt.Sprintf("%d:msg_%d", platform.ID, eventID)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deliveries = %v, want %v (company b's endpoint gets none)", got, want)
	}
	if n := b.count(t, `SELECT count(*) FROM webhook_deliveries`); n != 2 {
		t.Errorf("deliveries = %d, want 2: the unsubscribed kind fans out to nobody", n)
	}

	// The sweep inserts its events in one set-based statement per batch.
	for i := range 30 {
		b.account(t, "b", fmt.Sprintf("d%d@b.example", i), 200*24*time.Hour, false)
	}
	locked, _, err := b.store.SweepBatch(b.ctx, b.now, postgres.Cursor{}, 1000)
	if err != nil || locked != 30 {
		t.Fatalf("sweep locked %d, %v", locked, err)
	}
	// Company b's endpoint and the platform-wide one, 30 each.
	if n := b.count(t, `SELECT count(*) FROM webhook_deliveries d JOIN audit_events e ON e.id = d.event_id WHERE e.company_id = 'b'`); n != 60 {
		t.Errorf("sweep deliveries = %d, want 60", n)
	}
	// A disabled endpoint gets nothing new.
	off := false
	if _, err := b.store.UpdateWebhookEndpoint(b.ctx, epA.ID, postgres.WebhookChange{Enabled: &off}, b.now); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventUnlocked, CompanyID: "a", AccountID: acct, OccurredAt: b.now}); err != nil {
		t.Fatal(err)
	}
	if n := b.count(t, `SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1`, epA.ID); n != 1 {
		t.Errorf("the disabled endpoint has %d deliveries, want the 1 from before", n)
	}
}

func TestWebhookDispatchRecordDisableReplay(t *testing.T) {
	b := setupWebhooks(t)
	b.company(t, "a")
	admin1 := b.account(t, "a", "admin1@a.example", time.Hour, true)
	admin2 := b.account(t, "a", "admin2@a.example", time.Hour, true)
	ep := b.endpoint(t, "a", postgres.EventLocked)
	for range 3 {
		if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: "a", AccountID: admin1, OccurredAt: b.now,
			Detail: map[string]any{"reason": "dormant"}}); err != nil {
			t.Fatal(err)
		}
	}
	dispatch := func(now time.Time) []int64 {
		t.Helper()
		var ids []int64
		if _, err := b.store.DispatchWebhookDeliveries(b.ctx, now, time.Minute, 100, func(id int64, _ bool) error { ids = append(ids, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	first := dispatch(b.now)
	if len(first) != 3 {
		t.Fatalf("dispatched %v, want 3", first)
	}
	if again := dispatch(b.now.Add(30 * time.Second)); len(again) != 0 {
		t.Errorf("dispatched again before the requeue age: %v", again)
	}
	if again := dispatch(b.now.Add(61 * time.Second)); len(again) != 3 {
		t.Errorf("past the requeue age: %v, want the 3 pending again", again)
	}

	m, err := b.store.WebhookMessage(b.ctx, first[0], b.now)
	if err != nil || m.Event == nil || len(m.Keys) != 1 || m.Endpoint.URL != ep.URL {
		t.Fatalf("WebhookMessage = %+v, %v", m, err)
	}
	body, err := postgres.WebhookBody(*m.Event)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Type string `json:"type"`
		Data struct {
			EventID   int64          `json:"event_id"`
			CompanyID string         `json:"company_id"`
			Detail    map[string]any `json:"detail"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &parsed); err != nil || parsed.Type != "account.locked" || parsed.Data.CompanyID != "a" ||
		parsed.Data.EventID != m.Event.ID || parsed.Data.Detail["reason"] != "dormant" || m.Delivery.MessageID != fmt.Sprintf("msg_%d", m.Event.ID) {
		t.Errorf("body %s, message id %s", body, m.Delivery.MessageID)
	}

	// Delivered: the endpoint is healthy.
	out, err := b.store.RecordWebhookAttempt(b.ctx, first[0], postgres.WebhookAttempt{At: b.now, Delivered: true, Status: 200}, time.Hour)
	if err != nil || out.Disabled {
		t.Fatal(out, err)
	}
	// Failures: the first sets failing_since; within the limit nothing is
	// disabled; at the limit the endpoint is, once.
	fail := func(id int64, at time.Time) postgres.WebhookOutcome {
		t.Helper()
		out, err := b.store.RecordWebhookAttempt(b.ctx, id, postgres.WebhookAttempt{At: at, Status: 500, Error: "HTTP 500", NextAt: at.Add(time.Minute)}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := fail(first[1], b.now.Add(time.Minute)); out.Disabled || !out.Endpoint.FailingSince.Equal(b.now.Add(time.Minute)) {
		t.Fatalf("first failure: %+v", out)
	}
	if out := fail(first[1], b.now.Add(time.Hour)); out.Disabled {
		t.Fatalf("disabled before the limit: %+v", out)
	}
	out = fail(first[2], b.now.Add(time.Hour+time.Minute))
	if !out.Disabled || len(out.Mails) != 2 || out.Endpoint.Enabled {
		t.Fatalf("at the limit: %+v, want disabled with 2 notices", out)
	}
	if again := fail(first[2], b.now.Add(2*time.Hour)); again.Disabled || len(again.Mails) != 0 {
		t.Errorf("a later failure disabled again: %+v", again)
	}
	if n := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'webhook_disabled' AND recipient_account_id IN ($1, $2)`, admin1, admin2); n != 2 {
		t.Errorf("notices = %d, want one per administrator", n)
	}
	if n := b.count(t, `SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`); n != 0 {
		t.Errorf("%d deliveries still pending on a disabled endpoint", n)
	}
	if n := b.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'webhook_disabled'`); n != 1 {
		t.Errorf("webhook_disabled events = %d, want 1", n)
	}

	// Re-enabled, the failure record starts again; a replay of one event
	// writes a new delivery with the same message id.
	on := true
	back, err := b.store.UpdateWebhookEndpoint(b.ctx, ep.ID, postgres.WebhookChange{Enabled: &on}, b.now.Add(3*time.Hour))
	if err != nil || !back.Enabled || !back.FailingSince.IsZero() || !back.DisabledAt.IsZero() {
		t.Fatalf("re-enabled: %+v, %v", back, err)
	}
	n, err := b.store.ReplayWebhook(b.ctx, ep.ID, m.Event.ID, time.Time{}, time.Time{}, b.now.Add(3*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("replay of one event: %d, %v", n, err)
	}
	if got := b.count(t, `SELECT count(*) FROM webhook_deliveries WHERE message_id = $1`, m.Delivery.MessageID); got != 2 {
		t.Errorf("deliveries with %s = %d, want the first and the replay", m.Delivery.MessageID, got)
	}
	n, err = b.store.ReplayWebhook(b.ctx, ep.ID, 0, b.now.Add(-time.Minute), b.now.Add(time.Minute), b.now.Add(3*time.Hour))
	if err != nil || n != 3 {
		t.Errorf("replay of a range: %d, %v, want 3", n, err)
	}
	if ids := dispatch(b.now.Add(3 * time.Hour)); len(ids) != 4 {
		t.Errorf("dispatched after the replays: %v, want 4", ids)
	}

	// The log pages newest first without repeats.
	seen := map[int64]bool{}
	var cursor postgres.EventCursor
	for page := 0; ; page++ {
		ds, next, err := b.store.WebhookDeliveries(b.ctx, ep.ID, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if seen[d.ID] {
				t.Errorf("delivery %d twice", d.ID)
			}
			seen[d.ID] = true
		}
		if next.ID == 0 {
			break
		}
		cursor = next
	}
	if len(seen) != 7 {
		t.Errorf("log has %d deliveries, want 7", len(seen))
	}
	// Rotation: both keys sign until the overlap ends.
	if _, err := b.store.RotateWebhookSecret(b.ctx, ep.ID, []byte("fedcba9876543210fedcba9876543210"), b.now.Add(4*time.Hour), b.now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if m, err := b.store.WebhookMessage(b.ctx, first[0], b.now.Add(3*time.Hour)); err != nil || len(m.Keys) != 2 || string(m.Keys[0]) != "fedcba9876543210fedcba9876543210" {
		t.Errorf("during the overlap: %d keys, %v", len(m.Keys), err)
	}
	if m, err := b.store.WebhookMessage(b.ctx, first[0], b.now.Add(4*time.Hour)); err != nil || len(m.Keys) != 1 {
		t.Errorf("after the overlap: %d keys, %v", len(m.Keys), err)
	}
	if err := b.store.DeleteWebhookEndpoint(b.ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.WebhookMessage(b.ctx, first[0], b.now); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("after removal: %v, want not found", err)
	}
}

// TestWebhookGoneDisablesAtOnce: a receiver's 410 asks for nothing more;
// a platform-wide endpoint has no administrators to email.
func TestWebhookGoneDisablesAtOnce(t *testing.T) {
	b := setupWebhooks(t)
	b.company(t, "a")
	b.account(t, "a", "admin@a.example", time.Hour, true)
	ep := b.endpoint(t, "", postgres.EventLocked)
	if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: "a", OccurredAt: b.now}); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := b.db.QueryRow(`SELECT id FROM webhook_deliveries WHERE endpoint_id = $1`, ep.ID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	out, err := b.store.RecordWebhookAttempt(b.ctx, id, postgres.WebhookAttempt{At: b.now, Status: 410, Gone: true, Error: "HTTP 410"}, 24*time.Hour)
	if err != nil || !out.Disabled || len(out.Mails) != 0 || out.Endpoint.DisabledReason != "the endpoint answered 410 Gone" {
		t.Fatalf("%+v, %v", out, err)
	}
	if n := b.count(t, `SELECT count(*) FROM webhook_deliveries WHERE id = $1 AND status = 'failed' AND last_status = 410`, id); n != 1 {
		t.Error("the delivery is not failed with its 410")
	}
}

func TestWebhookTypesMapBothWays(t *testing.T) {
	for _, name := range postgres.WebhookTypes() {
		k, ok := postgres.WebhookKind(name)
		if !ok || postgres.WebhookType(k) != name {
			t.Errorf("%s → %s → %s", name, k, postgres.WebhookType(k))
		}
	}
	if postgres.WebhookType(postgres.EventTaskRejected) != "" || postgres.WebhookType(postgres.EventWebhookDisabled) != "" {
		t.Error("an internal kind has a public name")
	}
}
