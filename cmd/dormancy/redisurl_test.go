package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dormancy/dormancy/internal/testenv"
)

func startProcess(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// A master that needs a password behind Sentinels: REDIS_URL's password
// reaches the master (and the Sentinels), and REDIS_SENTINEL_PASSWORD
// gives the Sentinels their own, or none.
func TestRedisSentinelWithPassword(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	dir := t.TempDir()
	master := testenv.FreePort(t)
	startProcess(t, "redis-server", "--port", strconv.Itoa(master), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--requirepass", "master-secret", "--dir", dir)
	for _, c := range []struct {
		name, sentinelAuth, url, sentinelPassword string
	}{
		{"one password for both", "master-secret", "master-secret", ""},
		{"the Sentinels' own", "sentinel-secret", "master-secret", "sentinel-secret"},
		{"Sentinels without one", "", "master-secret", "none"},
	} {
		t.Run(c.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 %d 1\nsentinel auth-pass mymaster master-secret\n", port, master)
			if c.sentinelAuth != "" {
				conf += "requirepass " + c.sentinelAuth + "\n"
			}
			file := filepath.Join(t.TempDir(), "sentinel.conf")
			if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			startProcess(t, "redis-server", file, "--sentinel")
			getenv := env(map[string]string{
				"REDIS_URL":               fmt.Sprintf("redis-sentinel://:%s@127.0.0.1:%d/0?master=mymaster", c.url, port),
				"REDIS_SENTINEL_PASSWORD": c.sentinelPassword,
			})
			cfg, err := LoadConfig(getenv)
			if err != nil {
				t.Fatal(err)
			}
			rc := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
			defer rc.Close()
			// The Sentinel needs a moment to learn the master.
			var pingErr error
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				pingErr = rc.Ping(ctx).Err()
				cancel()
				if pingErr == nil {
					break
				}
			}
			if pingErr != nil {
				t.Fatalf("the master through the Sentinel: %v", pingErr)
			}
			q := asynq.NewClient(cfg.Redis)
			defer q.Close()
			if _, err := q.Enqueue(asynq.NewTask("probe", nil)); err != nil {
				t.Fatalf("enqueue through the Sentinel: %v", err)
			}
		})
	}
	if _, err := LoadConfig(env(map[string]string{"REDIS_SENTINEL_PASSWORD": "x"})); err == nil {
		t.Error("REDIS_SENTINEL_PASSWORD with a plain redis:// URL: accepted")
	}
}
