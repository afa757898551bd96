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
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}
}
