package faults

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/webhook"
)

// hookReceiver is the host's webhook endpoint: it checks every request's
// signature with the specification's reference library, and either
// answers 200 or, while hang is set, holds the request until the caller
// goes away.
type hookReceiver struct {
	t      *testing.T
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	hang   bool
	seen   map[string]int // webhook-id → requests
	ok     map[string]int // webhook-id → requests answered 200
	hungAt int            // requests held so far
	bodies map[string]string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := h.wh.Verify(body, r.Header); err != nil {
		h.t.Errorf("receiver: signature refused: %v", err)
	}
	id := r.Header.Get(webhook.HeaderID)
	h.mu.Lock()
	h.seen[id]++
	if prev, ok := h.bodies[id]; ok && prev != string(body) {
		h.t.Errorf("receiver: %s came with two bodies", id)
	}
	h.bodies[id] = string(body)
	hang := h.hang
	if hang {
		h.hungAt++
	}
	h.mu.Unlock()
	if hang {
		<-r.Context().Done() // the worker died, or gave up
		return
	}
	h.mu.Lock()
	h.ok[id]++
	h.mu.Unlock()
}

func (h *hookReceiver) counts() (seen, ok, hung int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen), len(h.ok), h.hungAt
}

// A worker is killed with SIGKILL while deliveries hang at the receiver.
// The delivery rows were written with the locks that caused them, so the
// kill loses none: asynq hands the dead worker's tasks to the next worker
// once their lease expires (orphaned), and events written while no worker
// ran wait in Postgres for the next one's dispatcher. Every event reaches
// the receiver under its one webhook-id, signed.
func TestWebhookWorkerKilledMidDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about a minute for asynq to recover the dead worker's tasks")
	}
	t.Parallel()
	// A Redis of its own: the tests running beside it share the binary's
	// Redis DB, and a worker of one would take the other's tasks.
	e := newEnv(t, envOpts{ownDatabase: true, redis: startRedis(t, false)})
	key, err := webhook.NewSecret(strings.NewReader(strings.Repeat("s", 64)))
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(webhook.FormatSecret(key))
	if err != nil {
		t.Fatal(err)
	}
	rcv := &hookReceiver{t: t, wh: wh, seen: map[string]int{}, ok: map[string]int{}, bodies: map[string]string{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	co := e.company(t)
	ep, err := e.store.CreateWebhookEndpoint(e.ctx, postgres.NewWebhookEndpoint{CompanyID: co, URL: srv.URL + "/dormancy",
		Kinds: []postgres.EventKind{postgres.EventLocked}, Secret: key}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hooks := map[string]string{
		"WORKER_CONCURRENCY":        "4",
		"WEBHOOK_ALLOW_PRIVATE":     "loopback",
		"WEBHOOK_ALLOW_HTTP":        "true",
		"WEBHOOK_TIMEOUT":           "50s", // the longest allowed: a held request stays in flight until the kill
		"WEBHOOK_DISPATCH_INTERVAL": "50ms",
	}
	lockAll := func(n int) []string {
		var keys []string
		for range n {
			login, _ := e.account(t, co, acct{kind: policy.IDKindPlatform, idle: 120 * day})
			task, key := attempt(t, co, login, policy.MethodPassword)
			e.enqueue(t, task)
			keys = append(keys, key)
		}
		return keys
	}

	// The first events are delivered; then the receiver holds requests,
	// and the worker is killed with some in flight.
	w1 := e.worker(t, "worker-1", hooks)
	keys := lockAll(5)
	waitUntil(t, retried, "the first deliveries", func() (bool, error) {
		_, ok, _ := rcv.counts()
		return ok == 5, nil
	})
	rcv.mu.Lock()
	rcv.hang = true
	rcv.mu.Unlock()
	keys = append(keys, lockAll(10)...)
	waitUntil(t, retried, "deliveries held at the receiver", func() (bool, error) {
		_, _, hung := rcv.counts()
		return hung >= 3, nil
	})
	w1.Kill(t)
	rcv.mu.Lock()
	rcv.hang = false
	rcv.mu.Unlock()
	// Written while no worker runs: they wait in the outbox.
	for range 5 {
		if err := e.store.Audit(e.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: co, OccurredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	_, okAtKill, hungAtKill := rcv.counts()
	t.Logf("killed with %d delivered and %d held", okAtKill, hungAtKill)

	w2 := e.worker(t, "worker-2", hooks)
	e.waitRecorded(t, keys, orphaned)
	events := e.count(t, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'locked'`, co)
	if events != 20 {
		t.Fatalf("%d lock events, want 20", events)
	}
	waitUntil(t, orphaned, "every delivery made", func() (bool, error) {
		var pending int
		err := e.db.QueryRow(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status <> 'delivered'`, ep.ID).Scan(&pending)
		_, ok, _ := rcv.counts()
		return err == nil && pending == 0 && ok == events, err
	})

	// One delivery per event, each with its event's id; the receiver got
	// every one, answered, under that id and with one body.
	rows, err := e.db.QueryContext(context.Background(), `SELECT 'msg_' || e.id, d.message_id, d.attempts FROM audit_events e
		LEFT JOIN webhook_deliveries d ON d.event_id = e.id AND d.endpoint_id = $1 WHERE e.company_id = $2 AND e.kind = 'locked'`, ep.ID, co)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var want string
		var got *string
		var attempts *int
		if err := rows.Scan(&want, &got, &attempts); err != nil {
			t.Fatal(err)
		}
		n++
		if got == nil || *got != want {
			t.Errorf("event %s: delivery %v", want, got)
			continue
		}
		rcv.mu.Lock()
		ok := rcv.ok[want]
		rcv.mu.Unlock()
		if ok < 1 {
			t.Errorf("%s never answered 200 at the receiver", want)
		}
	}
	if n != events {
		t.Errorf("%d events read, want %d", n, events)
	}
	seen, ok, _ := rcv.counts()
	if seen != events || ok != events {
		t.Errorf("receiver saw %d ids and answered %d, want %d each: no id but the events'", seen, ok, events)
	}
	if got := e.count(t, `SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1`, ep.ID); got != events {
		t.Errorf("%d delivery rows, want one per event (%d)", got, events)
	}
	if n := len(w2.Lines("webhook delivered")); n < events-okAtKill {
		t.Errorf("the new worker delivered %d, want at least the %d left at the kill", n, events-okAtKill)
	}
}
