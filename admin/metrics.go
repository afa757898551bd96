package admin

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dormancy/dormancy/postgres"
)

// eventFamilies name the counters /metrics derives from the audit trail:
// the work happens in the workers, and the audit events are its one
// complete record, whichever process did it.
var eventFamilies = map[postgres.EventKind]string{
	postgres.EventLocked:           "dormancy_locks_total",
	postgres.EventRelocked:         "dormancy_relocks_total",
	postgres.EventVerificationUsed: "dormancy_unlocks_total",
	postgres.EventUnlocked:         "dormancy_unlocks_total",
	postgres.EventMailSent:         "dormancy_emails_sent_total",
	postgres.EventAlertSent:        "dormancy_emails_sent_total",
	postgres.EventMailFailed:       "dormancy_emails_failed_total",
}

var familyHelp = map[string]string{
	"dormancy_locks_total":         "Accounts locked for dormancy.",
	"dormancy_relocks_total":       "Accounts locked again because an administrator's same-day unlock passed unused.",
	"dormancy_unlocks_total":       "Accounts unlocked, by a verification link or an administrator.",
	"dormancy_emails_sent_total":   "Emails handed to the provider (or the dev mailbox).",
	"dormancy_emails_failed_total": "Emails that failed for good.",
	"dormancy_events_total":        "Audit events by kind.",
}

// eventCollector turns audit event counts into Prometheus counters at
// scrape time.
type eventCollector struct {
	mu      sync.Mutex
	counter *postgres.EventCounter
	now     func() time.Time
	log     *slog.Logger
	descs   map[string]*prometheus.Desc
}

func newEventCollector(s *Server) *eventCollector {
	c := &eventCollector{counter: s.store.NewEventCounter(time.Minute), now: s.now, log: s.log, descs: map[string]*prometheus.Desc{}}
	for name, help := range familyHelp {
		var labels []string
		if name == "dormancy_events_total" {
			labels = []string{"kind"}
		}
		c.descs[name] = prometheus.NewDesc(name, help, labels, nil)
	}
	return c
}

func (c *eventCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *eventCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.counter.Counts(ctx, c.now())
	if err != nil {
		c.log.Warn("metrics: audit event counts", slog.String("error", err.Error()))
		return
	}
	families := map[string]float64{}
	for name := range familyHelp {
		families[name] = 0
	}
	for _, ec := range counts {
		ch <- prometheus.MustNewConstMetric(c.descs["dormancy_events_total"], prometheus.CounterValue, float64(ec.Count), string(ec.Kind))
		if f, ok := eventFamilies[ec.Kind]; ok {
			families[f] += float64(ec.Count)
		}
	}
	for name, v := range families {
		if name != "dormancy_events_total" {
			ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, v)
		}
	}
}

// oldestRowCollector shows how far back the tables retention trims reach,
// so an operator sees retention working (or a job that stopped).
type oldestRowCollector struct {
	store *postgres.Store
	now   func() time.Time
	log   *slog.Logger
	desc  *prometheus.Desc
}

func (c *oldestRowCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *oldestRowCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	oldest, err := c.store.OldestRows(ctx)
	if err != nil {
		c.log.Warn("metrics: oldest rows", slog.String("error", err.Error()))
		return
	}
	for table, at := range oldest {
		age := 0.0
		if !at.IsZero() {
			age = c.now().Sub(at).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, age, table)
	}
}

func newMetrics(s *Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		metrics.NewQueueMetricsCollector(s.inspector),
		newEventCollector(s),
		&oldestRowCollector{store: s.store, now: s.now, log: s.log, desc: prometheus.NewDesc("dormancy_table_oldest_row_age_seconds",
			"Age of the oldest row of each table the retention job trims (0 when empty).", []string{"table"}, nil)},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
}
