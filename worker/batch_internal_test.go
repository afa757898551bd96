package worker

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dormancy/dormancy/device"
	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// batchLane is a lane over the test database that has not started, so a
// test can queue attempts before its first batch.
type batchLane struct {
	*loginBatcher
	t       *testing.T
	company string
	results chan error
	n       int
}

func newBatchLane(t *testing.T, max int, linger time.Duration) *batchLane {
	t.Helper()
	db := testenv.DB(t)
	company := testenv.UniqueID("batch")
	if _, err := db.Exec(`INSERT INTO companies (id) VALUES ($1)`, company); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO accounts (company_id, login_id, id_kind, email, name, created_at, last_login_at)
		SELECT $1, 'u' || g, 'platform', NULL, 'u' || g, now() - interval '400 days', now() - interval '1 day'
		FROM generate_series(1, 20) g`, company); err != nil {
		t.Fatal(err)
	}
	b := &loginBatcher{store: testenv.Store(t), metrics: NewMetrics(prometheus.NewRegistry()), max: max, linger: linger,
		in: make(chan batchItem, 2*max), stop: make(chan struct{})}
	t.Cleanup(b.close)
	return &batchLane{loginBatcher: b, t: t, company: company, results: make(chan error, 20)}
}

// send records one more attempt in the background; its outcome arrives
// on results.
func (l *batchLane) send() {
	l.n++
	now := time.Now()
	a := postgres.Attempt{
		Key: testenv.UniqueID("k"), CompanyID: l.company, LoginID: fmt.Sprintf("u%d", l.n), Method: policy.MethodPassword,
		Device: device.Classify(""), AttemptedAt: now, DecidedAt: now, RecordedAt: now,
	}
	go func() {
		handled, err := l.record(context.Background(), a)
		if err == nil && !handled {
			err = fmt.Errorf("attempt of %s not recorded", a.LoginID)
		}
		l.results <- err
	}()
}

// queued waits until n attempts wait in the lane's queue.
func (l *batchLane) queued(n int) {
	for len(l.in) < n {
		runtime.Gosched()
	}
}

// done waits for n recorded attempts; the minute is only a guard against
// a lane that never sends.
func (l *batchLane) done(n int) {
	l.t.Helper()
	for range n {
		select {
		case err := <-l.results:
			if err != nil {
				l.t.Fatal(err)
			}
		case <-time.After(time.Minute):
			l.t.Fatal("an attempt was still waiting for its batch a minute later")
		}
	}
}

// batches reads the lane's statements and the attempts they carried.
func (l *batchLane) batches() (uint64, float64) {
	var m dto.Metric
	if err := l.metrics.batch.Write(&m); err != nil {
		l.t.Fatal(err)
	}
	h := m.GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}

// busyLane is a lane that has sent one batch of the two attempts that
// waited when it started: it is busy now.
func busyLane(t *testing.T, max int, linger time.Duration) *batchLane {
	l := newBatchLane(t, max, linger)
	l.send()
	l.send()
	l.queued(2)
	l.start(1)
	l.done(2)
	return l
}

// An idle lane sends what is waiting at once; a busy one (its last batch
// carried more than one) waits for company, up to its linger, so that
// under load one statement carries many attempts.
func TestBatcherLingersOnlyWhenBusy(t *testing.T) {
	// Idle at its start: the two go together without waiting out the hour.
	l := busyLane(t, 3, time.Hour)
	if n, sum := l.batches(); n != 1 || sum != 2 {
		t.Fatalf("first batch: %d statements of %v attempts, want 1 of 2", n, sum)
	}
	// Busy: a lone attempt waits for two more to fill the batch.
	l.send()
	l.send()
	l.send()
	l.done(3)
	if n, sum := l.batches(); n != 2 || sum != 5 {
		t.Fatalf("after a busy lane's batch: %d statements of %v attempts, want 2 of 5", n, sum)
	}
}

// A busy lane's linger ends: an attempt that finds no company is sent
// alone once the linger has passed.
func TestBatcherLingerEnds(t *testing.T) {
	l := busyLane(t, 8, time.Millisecond)
	l.send()
	l.done(1)
	if n, sum := l.batches(); n != 2 || sum != 3 {
		t.Fatalf("%d statements of %v attempts, want 2 of 3", n, sum)
	}
}
