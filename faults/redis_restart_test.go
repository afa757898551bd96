package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
)

// hostLoad is a host reporting login attempts as fast as a busy login page
// would, remembering which enqueues it was told succeeded and which failed.
type hostLoad struct {
	mu     sync.Mutex
	ok     []string      // keys of attempts whose enqueue succeeded
	failed []*asynq.Task // attempts whose enqueue returned an error
	errs   []error
}

func (h *hostLoad) counts() (ok, failed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ok), len(h.failed)
}

// Redis is killed (SIGKILL) and started again while a host is enqueueing
// and a worker is processing. Redis persists every write before it answers
// (appendonly, appendfsync always), so every enqueue the host was told
// succeeded survives and is processed, once; every enqueue that failed
// returned an error naming the task type and the cause, and enqueueing the
// same attempt again when Redis is back is safe: it either queues it or
// finds it already there (an enqueue whose reply was lost). SCALING.md
// says why the persistence settings are a requirement.
//
// Two kinds of task are left "active" in Redis by the outage: one whose
// dequeue Redis carried out but whose answer never reached the worker, and
// one that finished while Redis was gone (asynq v0.26 retries recording
// the completion with a context it has already cancelled, so that retry
// never succeeds). The recoverer runs both again once their lease has
// expired, about a minute later; the idempotent handlers make the second
// run of a finished task change nothing, which the test checks.
func TestRedisRestartedUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about a minute for asynq to run again the tasks it lost track of")
	}
	t.Parallel()
	rs := startRedis(t, true)
	e := newEnv(t, envOpts{redis: rs})
	co := e.company(t)
	_, r1 := e.account(t, co, acct{})
	_, r2 := e.account(t, co, acct{})
	e.recipients(t, co, r1, r2)
	var logins []string
	for i := range 60 {
		o := acct{}
		if i%6 == 0 {
			o.idle = 120 * day // every sixth is dormant: lock, link, alerts
		}
		login, _ := e.account(t, co, o)
		logins = append(logins, login)
	}
	w := e.worker(t, "worker", nil)
	w.WaitLog(t, "worker started", started)

	h := &hostLoad{}
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		// A steady pace rather than a tight loop, so that the outage is a
		// stretch of failures between stretches of successes.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			task, key, err := newAttempt(co, logins[i%len(logins)], []policy.Method{policy.MethodPassword, policy.MethodRemembered}[i%2])
			if err != nil {
				panic(err) // the fixtures are valid; this is a bug in the test
			}
			ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
			err = e.host.Enqueue(ctx, task)
			cancel()
			h.mu.Lock()
			if err != nil {
				h.failed = append(h.failed, task)
				h.errs = append(h.errs, err)
			} else {
				h.ok = append(h.ok, key)
			}
			h.mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loadDone
	}()

	waitUntil(t, margin, "the host under way", func() (bool, error) {
		ok, failed := h.counts()
		return ok >= 150, fmt.Errorf("%d enqueued, %d failed", ok, failed)
	})
	rs.Kill()
	okAtKill, _ := h.counts()
	waitUntil(t, margin, "the host to see Redis gone", func() (bool, error) {
		ok, failed := h.counts()
		return failed >= 20, fmt.Errorf("%d enqueued, %d failed", ok, failed)
	})
	rs.Restart(t)
	// A second worker, started now, looks for orphaned tasks a minute from
	// now, by when any task the outage orphaned is past its lease and the
	// recoverer's margin; the first worker's minute may fall just short and
	// wait another. The tasks go through at about the same time either
	// way; this bounds the test to one minute of waiting.
	w2 := e.worker(t, "worker-2", nil)
	waitUntil(t, started, "the host to enqueue again", func() (bool, error) {
		ok, failed := h.counts()
		return ok >= okAtKill+150, fmt.Errorf("%d enqueued, %d failed", ok, failed)
	})
	close(stop)
	<-loadDone

	ok, failed := h.counts()
	t.Logf("host: %d enqueues succeeded, %d failed", ok, failed)
	seen := map[string]bool{}
	for _, err := range h.errs {
		msg := err.Error()
		if !strings.HasPrefix(msg, "tasks: enqueue login:attempt: ") || errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Errorf("unclear enqueue error: %v", err)
		}
		if len(seen) < 5 && !seen[msg] {
			seen[msg] = true
			t.Logf("host saw: %v", err)
		}
	}
	// The host enqueues the failed attempts again, as its retry would.
	keys := append([]string(nil), h.ok...)
	var stored int
	for _, task := range h.failed {
		_, err := e.queue.EnqueueContext(e.ctx, task)
		switch {
		case errors.Is(err, asynq.ErrTaskIDConflict):
			stored++ // the first enqueue reached Redis; its reply did not reach the host
		case err != nil:
			t.Fatalf("enqueue again after the restart: %v", err)
		}
		var p struct {
			Key string `json:"attempt_key"`
		}
		if err := json.Unmarshal(task.Payload(), &p); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, p.Key)
	}
	t.Logf("of the failed enqueues, %d had reached Redis anyway", stored)

	// A task whose dequeue reached Redis just before it died, or whose
	// completion could not be recorded, waits in "active" for the recoverer:
	// its lease (30 s), the recoverer's margin (30 s), and its next run.
	e.waitRecorded(t, keys, orphaned)
	var mails int
	waitUntil(t, orphaned, "the outbox drained", func() (bool, error) {
		err := e.db.QueryRow(`SELECT count(*) FROM mails WHERE company_id = $1 AND status = 'pending'`, co).Scan(&mails)
		return err == nil && mails == 0, fmt.Errorf("%d pending: %v", mails, err)
	})
	waitUntil(t, orphaned, "the queues drained", e.queuesIdle)
	var twice []string
	for id, n := range tasksDone(w, w2) {
		if n > 1 {
			twice = append(twice, id)
		}
	}
	t.Logf("%d tasks ran again after their lease expired: %v", len(twice), twice)
	if got := e.count(t, `SELECT count(*) FROM login_attempts WHERE company_id = $1`, co); got != len(keys) {
		t.Errorf("attempts recorded = %d, want %d", got, len(keys))
	}
	e.check(t, co, lockInvariants)
	e.check(t, co, mailInvariants)
	e.checkDelivered(t, co)
	if got, want := e.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'locked'`, co), 10; got != want {
		t.Errorf("locked accounts = %d, want %d", got, want)
	}
	if got := e.rejectedSince(t); got != 0 {
		t.Errorf("%d tasks rejected", got)
	}
	checkOutageLoggedOnce(t, w)
}

// checkOutageLoggedOnce checks that a process that lived through one Redis
// outage logged it once and its end once, and that asynq's and go-redis's
// complaints about reaching Redis stayed out of its warnings and errors.
func checkOutageLoggedOnce(t *testing.T, p *proc) {
	t.Helper()
	for _, msg := range []string{"redis unavailable", "redis available again"} {
		if got := len(p.Lines(msg)); got != 1 {
			t.Errorf("%s logged %q %d times, want once", p.name, msg, got)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	noisy := 0
	for _, l := range p.lines {
		if c := l.str("component"); (c == "asynq" || c == "go-redis") && l.str("level") != "DEBUG" && l.str("level") != "INFO" {
			if noisy++; noisy <= 3 {
				t.Errorf("%s: %s said at %s: %s", p.name, c, l.str("level"), l.str("msg"))
			}
		}
		if l.str("level") == "" {
			t.Errorf("%s: a line not in the JSON log: %s", p.name, l.str("msg"))
		}
	}
}
