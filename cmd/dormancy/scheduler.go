package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dormancy/dormancy/scheduler"
	"github.com/dormancy/dormancy/tasks"
)

// scheduleVars names the variable holding each job's cron spec.
var scheduleVars = []struct{ name, typ string }{
	{"SCHEDULE_RELOCK", tasks.TypeMaintenanceRelock},
	{"SCHEDULE_REQUEUE_MAIL", tasks.TypeMaintenanceRequeueMail},
	{"SCHEDULE_PURGE_TOKENS", tasks.TypeMaintenancePurgeTokens},
	{"SCHEDULE_SWEEP", tasks.TypeMaintenanceSweep},
	{"SCHEDULE_PRELOCK_WARNING", tasks.TypeMaintenancePrelockWarning},
	{"SCHEDULE_RETENTION", tasks.TypeMaintenanceRetention},
	{"SCHEDULE_DIGEST", tasks.TypeMaintenanceDigest},
}

// defaultSpec is job typ's spec in scheduler.DefaultJobs, so the
// documented default and the running one cannot drift apart.
func defaultSpec(typ string) string {
	for _, j := range scheduler.DefaultJobs() {
		if j.Type == typ {
			return j.Spec
		}
	}
	return ""
}

// loadJobs reads the scheduler's variables into its jobs, reporting each bad
// value by name.
func loadJobs(get func(string) string, bad func(string, error)) []scheduler.Job {
	retry, err := strconv.Atoi(get("MAINTENANCE_MAX_RETRY"))
	if err != nil || retry < 0 || retry > 100 {
		bad("MAINTENANCE_MAX_RETRY", fmt.Errorf("want a number from 0 to 100, got %q", get("MAINTENANCE_MAX_RETRY")))
	}
	batch, err := strconv.Atoi(get("MAINTENANCE_BATCH_SIZE"))
	if err != nil || batch < 1 || batch > tasks.MaxMaintenanceBatch {
		bad("MAINTENANCE_BATCH_SIZE", fmt.Errorf("want a number from 1 to %d, got %q", tasks.MaxMaintenanceBatch, get("MAINTENANCE_BATCH_SIZE")))
	}
	age := map[string]time.Duration{}
	for _, v := range []struct{ name, typ string }{
		{"TOKEN_RETENTION", tasks.TypeMaintenancePurgeTokens},
		{"MAIL_REQUEUE_AFTER", tasks.TypeMaintenanceRequeueMail},
	} {
		d, err := time.ParseDuration(get(v.name))
		if err != nil || d < time.Second {
			bad(v.name, fmt.Errorf("want a duration of a second or more, such as 2m or 168h, got %q", get(v.name)))
			continue
		}
		age[v.typ] = d
	}
	var jobs []scheduler.Job
	for _, v := range scheduleVars {
		spec := get(v.name)
		if !strings.EqualFold(spec, scheduler.Off) {
			if _, err := tasks.ParseSchedule(spec); err != nil {
				bad(v.name, fmt.Errorf("want a cron spec in UTC (minute hour day-of-month month day-of-week, such as 30 18 * * *) or off, got %q: %v", spec, err))
			}
		}
		jobs = append(jobs, scheduler.Job{Type: v.typ, Spec: spec, MaxRetry: retry, BatchSize: batch, MinAge: age[v.typ]})
	}
	return jobs
}

func runScheduler(ctx context.Context, cfg *Config, log *slog.Logger, watch watches) error {
	reg := processRegistry()
	last := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dormancy_scheduler_last_success_timestamp_seconds",
		Help: "When this scheduler last enqueued each maintenance job, as Unix time.",
	}, []string{"task_type"})
	reg.MustRegister(last)
	if err := serveMetrics(ctx, cfg, log, reg); err != nil {
		return err
	}
	s, err := scheduler.New(scheduler.Config{Redis: cfg.Redis, Jobs: cfg.Jobs, Logger: log, RedisWatch: watch.redis,
		LastRun: func(typ string, at time.Time) { last.WithLabelValues(typ).Set(float64(at.Unix())) }})
	if err != nil {
		return err
	}
	watch.probe(ctx, cfg, nil)
	log.Info("scheduler started")
	return s.Run(ctx)
}
