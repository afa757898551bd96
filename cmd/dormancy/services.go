package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/internal/outage"
	"github.com/dormancy/dormancy/postgres"
)

// slogRedis routes go-redis's own log lines (pool dial failures, …) into
// the process's JSON log instead of plain text on stderr; with a watch,
// those about reaching Redis become the outage's one line.
type slogRedis struct {
	log   *slog.Logger
	level slog.Level
	watch *outage.Watch
}

func (l slogRedis) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if l.watch != nil && outage.IsConnectionFailure(msg) {
		l.watch.Down(msg)
		return
	}
	l.log.Log(ctx, l.level, msg, slog.String("component", "go-redis"))
}

// watches follow the process's services once it has started: each outage
// and each recovery is logged once (internal/outage).
type watches struct {
	redis, postgres *outage.Watch
}

func newWatches(log *slog.Logger) watches {
	return watches{redis: outage.New("redis", "REDIS_URL", log), postgres: outage.New("postgres", "DATABASE_URL", log)}
}

// probeEvery is how often a running process pings its services: how soon
// after an outage ends its recovery is logged.
const probeEvery = time.Second

// probe pings Redis, and Postgres when the process has a store, until ctx
// ends.
func (w watches) probe(ctx context.Context, cfg *Config, store *postgres.Store) {
	if c, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient); ok {
		go func() {
			defer c.Close()
			w.redis.Probe(ctx, probeEvery, func(ctx context.Context) error { return c.Ping(ctx).Err() })
		}()
	}
	if store != nil {
		go w.postgres.Probe(ctx, probeEvery, store.Ping)
	}
}

// awaitServices checks, before a process says it started, that Postgres
// (DATABASE_URL) and, when needed, Redis (REDIS_URL) answer, retrying for
// up to STARTUP_TIMEOUT; it gives up naming the variable of the one that
// does not.
func awaitServices(ctx context.Context, cfg *Config, log *slog.Logger, needRedis bool) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	wait := func(name, where string, ping func(context.Context) error) error {
		var last error
		logged := false
		for {
			attempt, stop := context.WithTimeout(ctx, 3*time.Second)
			last = ping(attempt)
			stop()
			if last == nil {
				return nil
			}
			if !logged {
				log.Warn("waiting for "+name, slog.String("variable", name), slog.String("error", last.Error()),
					slog.Duration("timeout", cfg.StartupTimeout))
				logged = true
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s (%s): not answering after %s (STARTUP_TIMEOUT): %w", name, where, cfg.StartupTimeout, last)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	err := wait("DATABASE_URL", redacted(cfg.DatabaseURL), func(ctx context.Context) error {
		s, err := postgres.Open(ctx, cfg.DatabaseURL, 2)
		var pgErr pgdriver.Error
		if errors.As(err, &pgErr) && pgErr.Field('C') == "3D000" {
			// The server answers; the database is missing, which
			// migrate (and dormancy dev) create, and waiting will not.
			return nil
		}
		if err != nil {
			return err
		}
		return s.Close()
	})
	if err != nil || !needRedis {
		return err
	}
	return wait("REDIS_URL", redacted(cfg.RedisURL), func(ctx context.Context) error {
		c, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			return fmt.Errorf("unsupported Redis option %T", cfg.Redis)
		}
		defer c.Close()
		return c.Ping(ctx).Err()
	})
}

// redacted is a service URL fit for a log or an error: the password hidden.
func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}

// serveMetrics serves reg's metrics at METRICS_ADDR/metrics until ctx
// ends; an empty address turns them off. The address is bound before the
// process says it started.
func serveMetrics(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry) error {
	if cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", slog.String("error", err.Error()))
		}
	}()
	log.Info("metrics served", slog.String("addr", ln.Addr().String()))
	return nil
}

// processRegistry is a registry with the Go runtime's and the process's
// collectors.
func processRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
