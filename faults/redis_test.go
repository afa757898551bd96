package faults

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dormancy/dormancy/internal/testenv"
)

// redisServer is a redis-server of the test's own on a free port of
// 127.0.0.1, for tests that restart Redis (never the shared one on 6379,
// which other test binaries are using) or that run beside another test
// and must not share its queues.
type redisServer struct {
	port    int
	args    []string
	cmd     *exec.Cmd
	done    chan struct{}
	persist bool
}

// startRedis starts a private redis-server. With persist, it writes an
// append-only file in a directory of the test and fsyncs it before it
// answers each write (appendfsync always): what Redis acknowledged
// survives a SIGKILL, which is what at-least-once delivery needs from it.
// Without persist it keeps nothing on disk, like the shared test server.
func startRedis(t *testing.T, persist bool) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	dir := t.TempDir()
	for try := 0; ; try++ {
		port := testenv.FreePort(t)
		r := &redisServer{port: port, persist: persist, args: []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--daemonize", "no", "--logfile", "", "--loglevel", "warning",
		}}
		if persist {
			r.args = append(r.args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			r.args = append(r.args, "--appendonly", "no")
		}
		err := r.start()
		if err == nil {
			t.Cleanup(func() { r.Kill() })
			return r
		}
		if try == 2 {
			t.Fatal(err)
		}
	}
}

func (r *redisServer) start() error {
	r.cmd = exec.Command("redis-server", r.args...)
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	return r.waitReady()
}

// waitReady polls PING until the server answers (after loading its
// append-only file) or exits.
func (r *redisServer) waitReady() error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), started)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-r.done:
			return fmt.Errorf("redis-server on port %d exited: %v", r.port, err)
		case <-ctx.Done():
			r.Kill()
			return fmt.Errorf("redis-server on port %d did not answer: %v", r.port, err)
		case <-tick.C:
		}
	}
}

// Addr is host:port of the server.
func (r *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the server's DB 0 as a REDIS_URL.
func (r *redisServer) URL() string { return "redis://" + r.Addr() + "/0" }

// Kill ends the server with SIGKILL: no shutdown save, open connections
// reset, as a crash or a lost machine would.
func (r *redisServer) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// Restart starts the server again on the same port and directory; with
// persist it reloads what it acknowledged before it died.
func (r *redisServer) Restart(t *testing.T) {
	t.Helper()
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
}
