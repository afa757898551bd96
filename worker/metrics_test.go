package worker_test

import (
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

// The worker's metrics count what its handlers did, by task type and kind
// of failure, and pass promlint.
func TestWorkerMetrics(t *testing.T) {
	b := setup(t)
	reg := prometheus.NewRegistry()
	cfg := b.cfg
	cfg.Metrics = worker.NewMetrics(reg)
	h := worker.NewHandlers(cfg)
	t.Cleanup(h.Close)
	mux := asynq.NewServeMux()
	h.Register(mux)

	login, _ := b.account(t, accountOpts{lastLogin: day})
	if err := mux.ProcessTask(b.ctx, b.attempt(t, b.company, login, policy.MethodPassword)); err != nil {
		t.Fatal(err)
	}
	if err := mux.ProcessTask(b.ctx, asynq.NewTask(tasks.TypeLoginAttempt, []byte(`{`))); err == nil {
		t.Fatal("a truncated payload was accepted")
	}
	if got := testutil.ToFloat64(cfg.Metrics.Processed(tasks.TypeLoginAttempt)); got != 2 {
		t.Errorf("processed login:attempt = %v, want 2", got)
	}
	if got := testutil.ToFloat64(cfg.Metrics.Failed(tasks.TypeLoginAttempt, "permanent")); got != 1 {
		t.Errorf("permanent failures = %v, want 1", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// The ordinary login went through the batcher: one statement of one.
	found := false
	for _, f := range mfs {
		if f.GetName() == "dormancy_worker_login_batch_attempts" {
			found = true
			if h := f.GetMetric()[0].GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 1 {
				t.Errorf("batch histogram: %d statements, %v attempts; want 1 and 1", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}
	if !found {
		t.Error("no dormancy_worker_login_batch_attempts")
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}
}
