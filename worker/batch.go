package worker

import (
	"context"
	"sync"
	"time"

	"github.com/dormancy/dormancy/postgres"
)

// loginBatcher records ordinary logins in batches: while one statement
// runs, the attempts that arrive meanwhile queue up and go together in the
// next. An idle worker sends a batch of one at once, so a quiet hour's
// logins never wait for company. A busy one (its last batch carried more
// than one) lingers a moment for more before it sends: the statement's
// fixed cost (a round trip, a commit, the executor's start) is most of a
// small batch's, so eight attempts cost little more than three, and the
// moment spent waiting is less than the Postgres time the larger batch
// saves the other tasks. This is the group commit of databases, applied
// to the 90 % of attempts that only move a login date.
type loginBatcher struct {
	store   *postgres.Store
	metrics *Metrics
	max     int
	linger  time.Duration
	in      chan batchItem
	stop    chan struct{}
	wg      sync.WaitGroup
}

type batchItem struct {
	a    postgres.Attempt
	done chan batchResult
}

type batchResult struct {
	handled bool
	err     error
}

// newLoginBatcher starts lanes goroutines, each running one statement at a
// time with up to max attempts, lingering up to linger for them when busy.
func newLoginBatcher(store *postgres.Store, metrics *Metrics, lanes, max int, linger time.Duration) *loginBatcher {
	b := &loginBatcher{store: store, metrics: metrics, max: max, linger: linger, in: make(chan batchItem, lanes*max), stop: make(chan struct{})}
	b.start(lanes)
	return b
}

func (b *loginBatcher) start(lanes int) {
	for range lanes {
		b.wg.Add(1)
		go b.lane()
	}
}

// record hands one attempt to the batcher and waits for its batch. It
// reports false when the attempt needs the full decision.
func (b *loginBatcher) record(ctx context.Context, a postgres.Attempt) (bool, error) {
	done := make(chan batchResult, 1)
	select {
	case b.in <- batchItem{a: a, done: done}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case r := <-done:
		return r.handled, r.err
	case <-ctx.Done():
		// The batch may still commit; a redelivery then finds the attempt.
		return false, ctx.Err()
	}
}

func (b *loginBatcher) lane() {
	defer b.wg.Done()
	items := make([]batchItem, 0, b.max)
	// Since Go 1.23 a stopped or reset timer delivers no stale tick.
	linger := time.NewTimer(b.linger)
	linger.Stop()
	busy := false
	for {
		select {
		case <-b.stop:
			return
		case first := <-b.in:
			items = append(items[:0], first)
			var until <-chan time.Time // nil: take only what is waiting
			if busy && b.linger > 0 {
				linger.Reset(b.linger)
				until = linger.C
			}
		fill:
			for len(items) < b.max {
				if until == nil {
					select {
					case it := <-b.in:
						items = append(items, it)
						continue
					default:
						break fill
					}
				}
				select {
				case it := <-b.in:
					items = append(items, it)
				case <-until:
					break fill
				}
			}
			linger.Stop()
			busy = len(items) > 1
			b.flush(items)
		}
	}
}

func (b *loginBatcher) flush(items []batchItem) {
	attempts := make([]postgres.Attempt, len(items))
	for i, it := range items {
		attempts[i] = it.a
	}
	// The batch outlives any one task's context: its statement serves all.
	handled, err := b.store.RecordAllowedLogins(context.Background(), attempts)
	b.metrics.observeBatch(len(items))
	for i, it := range items {
		r := batchResult{err: err}
		if err == nil {
			r.handled = handled[i]
		}
		it.done <- r
	}
}

func (b *loginBatcher) close() {
	close(b.stop)
	b.wg.Wait()
}
