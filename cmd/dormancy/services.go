package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/postgres"
)

// slogRedis routes go-redis's own log lines (pool dial failures, …) into
// the process's JSON log instead of plain text on stderr.
type slogRedis struct {
	log   *slog.Logger
	level slog.Level
}

func (l slogRedis) Printf(ctx context.Context, format string, v ...any) {
	l.log.Log(ctx, l.level, fmt.Sprintf(format, v...), slog.String("component", "go-redis"))
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

func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}
