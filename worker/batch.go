package worker

import (
	"context"
	"sync"

	"github.com/dormancy/dormancy/postgres"
)

// loginBatcher records ordinary logins in batches: while one statement
// runs, the attempts that arrive meanwhile queue up and go together in the
// next. An idle worker sends a batch of one at once, so a batch never waits
// for company; a busy one pays one round trip for many attempts. This is
// the group commit of databases, applied to the 90 % of attempts that
// only move a login date.
type loginBatcher struct {
	store   *postgres.Store
	metrics *Metrics
	max     int
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
// time with up to max attempts.
func newLoginBatcher(store *postgres.Store, metrics *Metrics, lanes, max int) *loginBatcher {
	b := &loginBatcher{store: store, metrics: metrics, max: max, in: make(chan batchItem, lanes*max), stop: make(chan struct{})}
	for range lanes {
		b.wg.Add(1)
		go b.lane()
	}
	return b
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
	for {
		select {
		case <-b.stop:
			return
		case first := <-b.in:
			items = append(items[:0], first)
		fill:
			for len(items) < b.max {
				select {
				case it := <-b.in:
					items = append(items, it)
				default:
					break fill
				}
			}
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
