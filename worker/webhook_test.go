package worker_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/webhook"
	"github.com/dormancy/dormancy/worker"
)

// receiver is the local HTTP endpoint of the webhook tests: it answers
// with the statuses it is given, in turn (the last one repeats), and
// verifies every request's signature twice, with the specification's
// reference library and with webhook.Verify at the test's clock.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	secret  string
	now     func() time.Time
	mu      sync.Mutex
	answers []int
	got     []received
	arrived chan received
}

type received struct {
	id, timestamp string
	status        int
	body          []byte
	typ           string
}

func newReceiver(t *testing.T, now func() time.Time, answers ...int) *receiver {
	r := &receiver{t: t, now: now, answers: answers, arrived: make(chan received, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	secret := r.secret
	status := r.answers[min(len(r.got), len(r.answers)-1)]
	r.mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		r.t.Errorf("receiver: secret %q: %v", secret, err)
	} else if err := wh.VerifyIgnoringTimestamp(body, req.Header); err != nil {
		r.t.Errorf("receiver: the reference library refuses %s: %v", req.Header.Get(webhook.HeaderID), err)
	}
	key, _ := webhook.ParseSecret(secret)
	if err := webhook.Verify(key, req.Header.Get(webhook.HeaderID), req.Header.Get(webhook.HeaderTimestamp),
		req.Header.Get(webhook.HeaderSignature), body, r.now(), 5*time.Minute); err != nil {
		r.t.Errorf("receiver: webhook.Verify refuses %s: %v", req.Header.Get(webhook.HeaderID), err)
	}
	var head struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &head)
	rc := received{id: req.Header.Get(webhook.HeaderID), timestamp: req.Header.Get(webhook.HeaderTimestamp), status: status, body: body, typ: head.Type}
	r.mu.Lock()
	r.got = append(r.got, rc)
	r.mu.Unlock()
	w.WriteHeader(status)
	r.arrived <- rc
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// loopbackOnly lets the tests' endpoints on 127.0.0.1 through, over http.
var loopbackOnly = func() webhook.AddressPolicy {
	allow, err := webhook.ParseAllow("loopback")
	if err != nil {
		panic(err)
	}
	return webhook.AddressPolicy{Allow: allow, AllowHTTP: true}
}()

// webhookSetup is setup with handlers whose webhook client allows
// loopback, and an endpoint of the test's company at the receiver.
func webhookSetup(t *testing.T, disableAfter time.Duration, kinds []postgres.EventKind, answers ...int) (*testBundle, *receiver, postgres.WebhookEndpoint) {
	t.Helper()
	b := setup(t)
	b.cfg.Webhooks = worker.WebhookConfig{Policy: loopbackOnly, DisableAfter: disableAfter, DispatchInterval: -1, Timeout: 5 * time.Second}
	b.cfg.Metrics = worker.NewMetrics(prometheus.NewRegistry())
	b.h = worker.NewHandlers(b.cfg)
	t.Cleanup(b.h.Close)
	b.mux = asynq.NewServeMux()
	b.h.Register(b.mux)
	r := newReceiver(t, b.clock.Now, answers...)
	key, err := webhook.NewSecret(strings.NewReader(strings.Repeat("k", 64)))
	if err != nil {
		t.Fatal(err)
	}
	r.secret = webhook.FormatSecret(key)
	ep, err := b.store.CreateWebhookEndpoint(b.ctx, postgres.NewWebhookEndpoint{CompanyID: b.company, URL: r.srv.URL + "/hooks",
		Kinds: kinds, Secret: key}, b.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return b, r, ep
}

// runWebhooks dispatches the pending deliveries and runs each task once,
// as the worker would, returning the handlers' errors by task ID.
func (b *testBundle) runWebhooks(t *testing.T) map[string]error {
	t.Helper()
	if _, err := b.h.DispatchWebhooks(b.ctx); err != nil {
		t.Fatal(err)
	}
	out := map[string]error{}
	infos, err := b.inspect.ListPendingTasks(tasks.QueueWebhooks)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	for _, info := range infos {
		if err := b.inspect.DeleteTask(tasks.QueueWebhooks, info.ID); err != nil {
			t.Fatal(err)
		}
		out[info.ID] = b.process(asynq.NewTask(info.Type, info.Payload))
	}
	return out
}

// TestWebhookRetriedUntilDelivered runs a real asynq server: a dormant
// login locks the account, the dispatcher hands the event to asynq within
// its interval, the receiver answers 500 then 200, and the retry delivers
// the same message with the same webhook-id.
func TestWebhookRetriedUntilDelivered(t *testing.T) {
	b, r, ep := webhookSetup(t, 24*time.Hour, []postgres.EventKind{postgres.EventLocked}, 500, 200)
	login, id := b.account(t, accountOpts{lastLogin: 100 * day})

	cfg := b.cfg
	cfg.Concurrency, cfg.TaskCheckInterval, cfg.ShutdownTimeout = 4, 10*time.Millisecond, 5*time.Second
	cfg.Webhooks.DispatchInterval = 20 * time.Millisecond
	cfg.Retry = worker.RetryPolicy{ByType: []worker.TypeBackoff{{Prefix: "webhook:", Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}}}
	b.serve(t, cfg)

	b.run(t, b.attempt(t, b.company, login, policy.MethodPassword))
	var first, second received
	for i, dst := range []*received{&first, &second} {
		select {
		case *dst = <-r.arrived:
		case <-time.After(asynqForwarderEvery + loadMargin):
			t.Fatalf("request %d never arrived", i+1)
		}
	}
	if first.status != 500 || second.status != 200 || first.id != second.id || first.typ != "account.locked" || string(first.body) != string(second.body) {
		t.Fatalf("requests: %+v / %+v", first, second)
	}
	var eventID int64
	if err := b.db.QueryRow(`SELECT id FROM audit_events WHERE account_id = $1 AND kind = 'locked'`, id).Scan(&eventID); err != nil {
		t.Fatal(err)
	}
	if want := "msg_" + strconv.FormatInt(eventID, 10); first.id != want {
		t.Errorf("webhook-id %s, want %s", first.id, want)
	}
	waitFor(t, loadMargin, "the delivery recorded", func() bool {
		return b.count(t, `SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'delivered' AND attempts = 2
			AND last_status = 200 AND delivered_at IS NOT NULL`, ep.ID) == 1
	})
	if n := len(r.requests()); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
}

// The waits of the tests that run a real asynq server: asynq moves a task
// due for retry back to pending every asynqForwarderEvery (its
// DelayedTaskCheckInterval default), and loadMargin is what a loaded 2-core
// machine running other packages' tests adds to a step under way.
const (
	asynqForwarderEvery = 5 * time.Second
	loadMargin          = 30 * time.Second
)

// waitFor polls cond: for state a real server reaches on its own.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhookEndpointDisabledAfterTheLimit: an endpoint that fails from
// its first failure for DisableAfter is disabled by the attempt that finds
// it so; each administrator of the company gets one email, and nothing
// more is sent to the endpoint.
func TestWebhookEndpointDisabledAfterTheLimit(t *testing.T) {
	const limit = 6 * time.Hour
	b, r, ep := webhookSetup(t, limit, []postgres.EventKind{postgres.EventLocked, postgres.EventUnlocked}, 503)
	adminLogin, admin := b.account(t, accountOpts{admin: true})
	_, _ = b.account(t, accountOpts{admin: true, retired: true})
	_, acct := b.account(t, accountOpts{lastLogin: day})
	event := func() {
		t.Helper()
		if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: b.company, AccountID: acct, OccurredAt: b.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	event()
	for id, err := range b.runWebhooks(t) {
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("%s: %v, want a retryable failure", id, err)
		}
	}
	got, err := b.store.WebhookEndpoint(b.ctx, ep.ID)
	if err != nil || !got.Enabled || !got.FailingSince.Equal(start) {
		t.Fatalf("after the first failure: %+v, %v", got, err)
	}
	var next time.Time
	if err := b.db.QueryRow(`SELECT next_attempt_at FROM webhook_deliveries WHERE endpoint_id = $1`, ep.ID).Scan(&next); err != nil || !next.After(start) {
		t.Errorf("next attempt %v, %v", next, err)
	}

	// Just short of the limit, a new event fails again: still enabled.
	b.clock.Add(limit - time.Second)
	event()
	b.runWebhooks(t)
	if got, _ := b.store.WebhookEndpoint(b.ctx, ep.ID); !got.Enabled {
		t.Fatal("disabled before the limit")
	}
	// At the limit (the retry of the first one), disabled.
	b.clock.Add(time.Second)
	// The first retry disables the endpoint and fails its other pending
	// delivery, whose task then finds nothing to do.
	_, errs := b.retryAll(t)
	skipped := 0
	for id, err := range errs {
		switch {
		case errors.Is(err, asynq.SkipRetry):
			skipped++
		case err != nil:
			t.Errorf("%s: %v, want a permanent failure once disabled", id, err)
		}
	}
	if skipped != 1 {
		t.Errorf("%d tasks ended permanently at the limit, want 1: %v", skipped, errs)
	}
	got, _ = b.store.WebhookEndpoint(b.ctx, ep.ID)
	if got.Enabled || !got.DisabledAt.Equal(start.Add(limit)) {
		t.Fatalf("at the limit: %+v", got)
	}
	if n := b.count(t, `SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending'`, ep.ID); n != 0 {
		t.Errorf("%d deliveries still pending", n)
	}
	if got := testutil.ToFloat64(b.cfg.Metrics.Disabled("company")); got != 1 {
		t.Errorf("disabled endpoints counted %v, want 1", got)
	}
	before := len(r.requests())
	event()
	b.runWebhooks(t)
	b.clock.Add(limit)
	b.retryAll(t)
	if after := len(r.requests()); after != before {
		t.Errorf("a disabled endpoint got %d more requests", after-before)
	}
	if n := b.drain(t); n != 1 {
		t.Errorf("%d email tasks, want 1 (the one active administrator)", n)
	}
	mails := b.emailsTo(adminLogin)
	if len(mails) != 1 || mails[0].Subject != "【要対応】Webhook の送信を停止しました" || !strings.Contains(mails[0].Text, r.srv.URL+"/hooks") ||
		!strings.Contains(mails[0].Text, "6時間以上") {
		t.Fatalf("administrator's email: %+v", mails)
	}
	if n := len(b.resend.Emails()); n != 1 {
		t.Errorf("%d emails in all, want 1", n)
	}
	if n := b.count(t, `SELECT count(*) FROM mails WHERE kind = 'webhook_disabled' AND recipient_account_id = $1`, admin); n != 1 {
		t.Errorf("notices written = %d", n)
	}

	// Re-enabled, it gets the next event, and a replay of the missed range
	// sends the old messages with their ids.
	on := true
	if _, err := b.store.UpdateWebhookEndpoint(b.ctx, ep.ID, postgres.WebhookChange{Enabled: &on}, b.clock.Now()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.answers = []int{204}
	r.mu.Unlock()
	n, err := b.store.ReplayWebhook(b.ctx, ep.ID, 0, start, b.clock.Now(), b.clock.Now())
	if err != nil || n != 3 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	for id, err := range b.runWebhooks(t) {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	ids := map[string]int{}
	for _, rc := range r.requests() {
		ids[rc.id]++
	}
	if len(ids) != 3 {
		t.Errorf("message ids: %v, want the 3 events' ids", ids)
	}
	// The two events sent before the endpoint was disabled come again with
	// the ids they had; the one from while it was disabled comes once.
	twice := 0
	for _, n := range ids {
		if n >= 2 {
			twice++
		}
	}
	if twice != 2 {
		t.Errorf("ids sent again: %v, want the 2 sent before with their ids", ids)
	}
}

// retryAll runs every pending delivery again, as asynq would when its
// retry delay has passed: the tests run tasks by hand, so a failed one is
// not in asynq's retry set, and is found as a pending row instead.
func (b *testBundle) retryAll(t *testing.T) (int, map[string]error) {
	t.Helper()
	var ids []int64
	if _, err := b.store.DispatchWebhookDeliveries(b.ctx, b.clock.Now().Add(time.Hour), 0, 100, func(id int64, _ bool) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	errs := map[string]error{}
	for _, id := range ids {
		task, err := tasks.NewWebhookDeliveryTask(tasks.WebhookDelivery{DeliveryID: id})
		if err != nil {
			t.Fatal(err)
		}
		errs[tasks.WebhookTaskID(id)] = b.process(task)
	}
	return len(ids), errs
}

// TestWebhookDeliveryIgnoresWhatItCannotSend: a delivery whose endpoint
// is gone ends quietly, and a bad payload is rejected.
func TestWebhookDeliveryIgnoresWhatItCannotSend(t *testing.T) {
	b, _, _ := webhookSetup(t, time.Hour, []postgres.EventKind{postgres.EventLocked}, 200)
	task, err := tasks.NewWebhookDeliveryTask(tasks.WebhookDelivery{DeliveryID: 1 << 50})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.process(task); err != nil {
		t.Errorf("a delivery that is gone: %v", err)
	}
	if err := b.process(asynq.NewTask(tasks.TypeWebhookDeliver, []byte(`{"delivery_id":0}`))); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("a bad payload: %v, want SkipRetry", err)
	}
}

// TestWebhookBackoffLastsADay: the default backoff over the task's retries
// adds up to about a day, jitter included.
func TestWebhookBackoffLastsADay(t *testing.T) {
	p := worker.RetryPolicy{ByType: []worker.TypeBackoff{worker.DefaultWebhookBackoff}}
	task := asynq.NewTask(tasks.TypeWebhookDeliver, nil)
	var total time.Duration
	for n := range tasks.WebhookMaxRetry {
		total += p.Delay(n, errors.New("HTTP 500"), task)
	}
	if total < 20*time.Hour || total > 30*time.Hour {
		t.Errorf("%d retries span %v, want about a day", tasks.WebhookMaxRetry, total)
	}
}

// TestWebhookDeliveryRefusesWhatItMustNotReach: a redirect is a failure
// whose target sees nothing, and an endpoint that reaches a loopback
// address without the setting (registered before the name moved, say) is
// refused when the worker dials it.
func TestWebhookDeliveryRefusesWhatItMustNotReach(t *testing.T) {
	b, r, ep := webhookSetup(t, time.Hour, []postgres.EventKind{postgres.EventLocked}, 200)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, r.srv.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	url := redirector.URL + "/hooks"
	if _, err := b.store.UpdateWebhookEndpoint(b.ctx, ep.ID, postgres.WebhookChange{URL: &url}, b.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: b.company, OccurredAt: b.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	for id, err := range b.runWebhooks(t) {
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Errorf("%s: %v, want a retryable failure", id, err)
		}
	}
	var status int
	var lastErr string
	if err := b.db.QueryRow(`SELECT last_status, last_error FROM webhook_deliveries WHERE endpoint_id = $1`, ep.ID).Scan(&status, &lastErr); err != nil {
		t.Fatal(err)
	}
	if status != http.StatusTemporaryRedirect || !strings.Contains(lastErr, "not followed") {
		t.Errorf("recorded %d %q", status, lastErr)
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("the redirect's target got %d requests", n)
	}

	// The worker's own policy, without the setting: loopback is refused at
	// dial time whatever registration allowed.
	strict := b.cfg
	strict.Webhooks = worker.WebhookConfig{DispatchInterval: -1}
	h := worker.NewHandlers(strict)
	defer h.Close()
	direct := r.srv.URL + "/hooks"
	if _, err := b.store.UpdateWebhookEndpoint(b.ctx, ep.ID, postgres.WebhookChange{URL: &direct}, b.clock.Now()); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := b.db.QueryRow(`SELECT id FROM webhook_deliveries WHERE endpoint_id = $1`, ep.ID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewWebhookDeliveryTask(tasks.WebhookDelivery{DeliveryID: id})
	if err != nil {
		t.Fatal(err)
	}
	mux := asynq.NewServeMux()
	h.Register(mux)
	if err := mux.ProcessTask(b.ctx, task); err == nil {
		t.Error("delivered to loopback without the setting")
	}
	if err := b.db.QueryRow(`SELECT last_error FROM webhook_deliveries WHERE id = $1`, id).Scan(&lastErr); err != nil || !strings.Contains(lastErr, "not allowed") {
		t.Errorf("last error %q, %v", lastErr, err)
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
}

// TestWebhookDispatcherFailsAnArchivedDelivery: a delivery still pending
// whose task asynq archived (its retries ran out while Postgres could not
// record them) is failed by the dispatcher instead of waiting forever;
// one whose task merely waits is left alone.
func TestWebhookDispatcherFailsAnArchivedDelivery(t *testing.T) {
	b, _, ep := webhookSetup(t, time.Hour, []postgres.EventKind{postgres.EventLocked}, 200)
	for range 2 {
		if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: b.company, OccurredAt: b.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.h.DispatchWebhooks(b.ctx); err != nil || n != 2 {
		t.Fatalf("dispatched %d, %v", n, err)
	}
	ids := column[int64](t, b, `SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id`, ep.ID)
	if err := b.inspect.ArchiveTask(tasks.QueueWebhooks, tasks.WebhookTaskID(ids[0])); err != nil {
		t.Fatal(err)
	}
	b.clock.Add(5*time.Minute + time.Second) // past the default WEBHOOK_REQUEUE_AFTER
	if _, err := b.h.DispatchWebhooks(b.ctx); err != nil {
		t.Fatal(err)
	}
	got := column[string](t, b, `SELECT status FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id`, ep.ID)
	if len(got) != 2 || got[0] != "failed" || got[1] != "pending" {
		t.Errorf("statuses %v, want the archived one failed and the waiting one pending", got)
	}
}

// TestWebhookLatencyFollowsTheDispatchInterval: with the default
// WEBHOOK_DISPATCH_INTERVAL (1 s) an event reaches the receiver about a
// second after its commit. The bound adds a margin for a loaded machine;
// the measured latency is logged.
func TestWebhookLatencyFollowsTheDispatchInterval(t *testing.T) {
	b, r, _ := webhookSetup(t, time.Hour, []postgres.EventKind{postgres.EventLocked}, 204)
	cfg := b.cfg
	cfg.Concurrency, cfg.ShutdownTimeout = 4, 5*time.Second
	cfg.Webhooks.DispatchInterval = 0 // the default
	b.serve(t, cfg)
	const interval, margin = time.Second, loadMargin
	for i := range 3 {
		committed := time.Now()
		if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: b.company, OccurredAt: b.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.arrived:
			took := time.Since(committed)
			t.Logf("event %d: commit to receiver in %v", i, took.Round(time.Millisecond))
		case <-time.After(interval + margin):
			t.Fatalf("event %d not delivered within %v", i, interval+margin)
		}
	}
}
