package worker

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's own measures per task type, beside asynq's queue
// gauges that the admin server exports: what was processed, what failed
// (retryable or permanent) and how long handlers took.
type Metrics struct {
	processed *prometheus.CounterVec
	failed    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	// batch is how many ordinary logins each statement of the batcher
	// carried: near 1 means the batching buys nothing at this load.
	batch prometheus.Histogram
	// disabled counts webhook endpoints this worker disabled, by scope:
	// how an operator's alert hears of a platform-wide one.
	disabled *prometheus.CounterVec
}

// NewMetrics registers the worker's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dormancy_worker_tasks_processed_total", Help: "Tasks the worker's handlers finished, by task type, failed or not.",
		}, []string{"task_type"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dormancy_worker_tasks_failed_total", Help: "Tasks whose handler failed, by task type and kind (retryable: asynq retries it; permanent: archived).",
		}, []string{"task_type", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dormancy_worker_task_duration_seconds", Help: "Time the handler took, by task type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"task_type"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dormancy_worker_login_batch_attempts", Help: "Ordinary logins recorded per statement by the worker's batcher.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dormancy_worker_webhook_endpoints_disabled_total", Help: "Webhook endpoints disabled after failing too long or answering 410, by scope (company or platform).",
		}, []string{"scope"}),
	}
	reg.MustRegister(m.processed, m.failed, m.duration, m.batch, m.disabled)
	return m
}

// middleware measures every task the handlers run.
func (m *Metrics) middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		m.duration.WithLabelValues(t.Type()).Observe(time.Since(start).Seconds())
		m.processed.WithLabelValues(t.Type()).Inc()
		if err != nil {
			kind := "retryable"
			if errors.Is(err, asynq.SkipRetry) {
				kind = "permanent"
			}
			m.failed.WithLabelValues(t.Type(), kind).Inc()
		}
		return err
	})
}

// observeBatch records one batcher statement of n attempts; a nil m
// records nothing.
func (m *Metrics) observeBatch(n int) {
	if m != nil {
		m.batch.Observe(float64(n))
	}
}

// Disabled is the counter of webhook endpoints disabled in scope
// ("company" or "platform").
func (m *Metrics) Disabled(scope string) prometheus.Counter { return m.disabled.WithLabelValues(scope) }

// Processed is the counter of task type typ, for tests and dashboards'
// documentation.
func (m *Metrics) Processed(typ string) prometheus.Counter { return m.processed.WithLabelValues(typ) }

// Failed is the failure counter of task type typ and kind ("retryable" or
// "permanent").
func (m *Metrics) Failed(typ, kind string) prometheus.Counter {
	return m.failed.WithLabelValues(typ, kind)
}
