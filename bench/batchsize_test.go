package bench

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/dormancy/dormancy/device"
	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/postgres"
)

// BenchmarkLoginBatchStatement runs the batcher's statement alone, one
// batch after another, at sizes from 1 to 64 attempts: the time per
// attempt beside a batch of one says how much of a small batch is the
// statement's fixed cost, which is what the busy batcher's linger buys
// back.
func BenchmarkLoginBatchStatement(b *testing.B) {
	store := testenv.Store(b)
	f := newFixture(b, 5000, 1, false)
	mix := f.loginMix(10000, mixDormantPercent())
	n := envInt("BENCH_BATCH_STATEMENTS", 500)
	// Every attempt of the mix has the same User-Agent; classifying it
	// once keeps the parser out of the statement's time.
	kind := device.Classify(mix[0].UserAgent)
	next := 0
	batchOf := func(size int) []postgres.Attempt {
		batch := make([]postgres.Attempt, size)
		now := time.Now()
		for j := range batch {
			p := mix[next%len(mix)]
			next++
			batch[j] = postgres.Attempt{Key: "b" + strconv.Itoa(next), CompanyID: p.CompanyID, LoginID: p.LoginID, Method: p.Method,
				UserAgent: p.UserAgent, Device: kind, AttemptedAt: now, DecidedAt: now, RecordedAt: now}
		}
		return batch
	}
	// The first statements on a connection prepare it.
	for range 20 {
		if _, err := store.RecordAllowedLogins(context.Background(), batchOf(1)); err != nil {
			b.Fatal(err)
		}
	}
	var single float64
	for _, size := range []int{1, 4, 8, 16, 64} {
		// The batches are built before the clock starts: only the
		// statements are timed.
		batches := make([][]postgres.Attempt, n)
		for i := range batches {
			batches[i] = batchOf(size)
		}
		start := time.Now()
		for _, batch := range batches {
			if _, err := store.RecordAllowedLogins(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		per := float64(time.Since(start).Microseconds()) / float64(n*size)
		if size == 1 {
			single = per
		}
		b.ReportMetric(per, fmt.Sprintf("µs/attempt@%d", size))
		record(row{
			name:  fmt.Sprintf("batcher statement of %d attempts, time per attempt (%d statements)", size, n),
			value: fmt.Sprintf("%.0f µs", per), baseline: fmt.Sprintf("%.0f µs a batch of one", single),
			ratio: fmt.Sprintf("%.2f", per/single), target: "reported",
		})
	}
}
