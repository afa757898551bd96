package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

func TestRedisClusterURL(t *testing.T) {
	for _, c := range []struct {
		raw   string
		addrs []string
		user  string
		pass  string
	}{
		{"redis-cluster://127.0.0.1:7000", []string{"127.0.0.1:7000"}, "", ""},
		{"redis-cluster://10.0.0.1:7000,10.0.0.2:7001/0", []string{"10.0.0.1:7000", "10.0.0.2:7001"}, "", ""},
		{"redis-cluster://:s%40cret@a:1,b:2,c:3", []string{"a:1", "b:2", "c:3"}, "", "s@cret"},
		{"redis-cluster://dormancy:pw@[::1]:7000", []string{"[::1]:7000"}, "dormancy", "pw"},
	} {
		opt, err := parseRedisURL(c.raw, "")
		if err != nil {
			t.Errorf("%s: %v", c.raw, err)
			continue
		}
		got, ok := opt.(asynq.RedisClusterClientOpt)
		if !ok {
			t.Errorf("%s: %T, want a cluster option", c.raw, opt)
			continue
		}
		if fmt.Sprint(got.Addrs) != fmt.Sprint(c.addrs) || got.Username != c.user || got.Password != c.pass {
			t.Errorf("%s: %v %q %q, want %v %q %q", c.raw, got.Addrs, got.Username, got.Password, c.addrs, c.user, c.pass)
		}
	}
	for _, raw := range []string{
		"redis-cluster://", "redis-cluster://a", "redis-cluster://a:1,", "redis-cluster://a:1/3", "redis-cluster://a:1?pool=2",
	} {
		if _, err := parseRedisURL(raw, ""); err == nil {
			t.Errorf("%s: accepted", raw)
		}
	}
	if _, err := parseRedisURL("redis-cluster://a:1", "x"); err == nil {
		t.Error("REDIS_SENTINEL_PASSWORD with a cluster: accepted")
	}
	if got := redacted("redis-cluster://:secret@a:1,b:2"); strings.Contains(got, "secret") {
		t.Errorf("redacted: %s", got)
	}
}

// REDIS_URL naming a cluster gives every Redis user of a process a
// cluster client: go-redis for the watches and throttles, asynq for the
// queues, with tasks of several queues landing on different shards.
func TestRedisCluster(t *testing.T) {
	cl := testenv.StartCluster(t, 0)
	cfg, err := LoadConfig(env(map[string]string{"REDIS_URL": cl.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	rc, ok := cfg.Redis.MakeRedisClient().(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client %T, want *redis.ClusterClient", cfg.Redis.MakeRedisClient())
	}
	defer rc.Close()
	ctx := context.Background()
	if err := awaitServices(ctx, cfg, slog.New(slog.DiscardHandler), false); err != nil {
		t.Fatal(err)
	}
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	q := asynq.NewClient(cfg.Redis)
	defer q.Close()
	insp := asynq.NewInspector(cfg.Redis)
	defer insp.Close()
	masters := map[string]bool{}
	for _, queue := range []string{"critical-0", "critical-1", "critical-2"} {
		if _, err := q.Enqueue(asynq.NewTask("probe", nil), asynq.Queue(queue)); err != nil {
			t.Fatalf("enqueue on %s: %v", queue, err)
		}
		info, err := insp.GetQueueInfo(queue)
		if err != nil || info.Pending != 1 {
			t.Fatalf("%s: %+v, %v", queue, info, err)
		}
		m, err := cl.MasterOf(ctx, "asynq:{"+queue+"}:pending")
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr()] = true
	}
	if len(masters) != 3 {
		t.Errorf("three queues on %d shards, want 3", len(masters))
	}
}
