package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of a test's own: three masters with one
// replica each, on free ports of 127.0.0.1, in a directory of the test. A
// cluster has only database 0, so tests cannot share one the way they
// share the Redis on 6379; each run starts its own.
type Cluster struct {
	// NodeTimeout is cluster-node-timeout: how long a master must be
	// unreachable before its replica is promoted.
	NodeTimeout time.Duration
	Nodes       []*ClusterNode
}

// ClusterNode is one redis-server of a Cluster.
type ClusterNode struct {
	Port int
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is the node's host:port.
func (n *ClusterNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// Kill ends the node with SIGKILL, as a lost machine would.
func (n *ClusterNode) Kill() {
	if n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// Restart starts a killed node again on its port and directory. Its
// nodes.conf names it, so it rejoins the cluster; a master whose replica
// was promoted meanwhile comes back as that one's replica, empty, and
// syncs from it.
func (n *ClusterNode) Restart() error {
	n.done = make(chan struct{})
	n.cmd = nodeCommand(n.args)
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(n.cmd, n.done)
	return waitPing(n)
}

// DefaultNodeTimeout keeps a failover in a test to a few seconds.
const DefaultNodeTimeout = time.Second

// StartCluster starts six redis-server processes, joins them into a
// cluster of three masters and three replicas, waits until every node
// reports cluster_state:ok with every master's replica in sync, and kills
// them when t ends. It skips t where redis-server is not installed.
func StartCluster(t testing.TB, nodeTimeout time.Duration) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli is not installed")
	}
	if nodeTimeout <= 0 {
		nodeTimeout = DefaultNodeTimeout
	}
	c := &Cluster{NodeTimeout: nodeTimeout}
	dir := t.TempDir()
	for i := range 6 {
		n, err := startNode(t, filepath.Join(dir, strconv.Itoa(i)), nodeTimeout)
		if err != nil {
			t.Fatalf("testenv.StartCluster: %v", err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv.StartCluster: redis-cli --cluster create: %v\n%s", err, out)
	}
	// Creation and the replicas' first sync take a few seconds; on a
	// loaded machine several times that.
	if err := c.WaitHealthy(context.Background(), 60*time.Second); err != nil {
		t.Fatalf("testenv.StartCluster: %v", err)
	}
	return c
}

func startNode(t testing.TB, dir string, nodeTimeout time.Duration) (*ClusterNode, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var last error
	for range 3 {
		port, bus := FreePort(t), FreePort(t)
		n := &ClusterNode{Port: port, done: make(chan struct{})}
		n.args = []string{
			"--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(bus), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
			// A replica may always take over, however long its link was
			// down: a test kills a master to see exactly that.
			"--cluster-replica-validity-factor", "0",
			"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
			"--logfile", filepath.Join(dir, "redis.log"), "--loglevel", "warning"}
		n.cmd = nodeCommand(n.args)
		if err := n.cmd.Start(); err != nil {
			return nil, fmt.Errorf("redis-server: %w", err)
		}
		go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(n.cmd, n.done)
		t.Cleanup(n.Kill)
		if last = waitPing(n); last == nil {
			return n, nil
		}
		n.Kill()
	}
	return nil, last
}

func waitPing(n *ClusterNode) error {
	c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("redis-server on port %d exited: %v", n.Port, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d did not answer: %v", n.Port, err)
		}
	}
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// URL is the cluster as a REDIS_URL.
func (c *Cluster) URL() string { return "redis-cluster://" + strings.Join(c.Addrs(), ",") }

// Opt is the cluster for asynq.
func (c *Cluster) Opt() asynq.RedisClusterClientOpt {
	return asynq.RedisClusterClientOpt{Addrs: c.Addrs()}
}

// Client is a go-redis client of the cluster, closed when t ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// Alive are the nodes not killed.
func (c *Cluster) Alive() []*ClusterNode {
	var out []*ClusterNode
	for _, n := range c.Nodes {
		select {
		case <-n.done:
		default:
			out = append(out, n)
		}
	}
	return out
}

// MasterOf is the live node that serves key's slot as master, by the
// cluster's own account (CLUSTER SHARDS on a live node).
func (c *Cluster) MasterOf(ctx context.Context, key string) (*ClusterNode, error) {
	for _, n := range c.Alive() {
		rc := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		slot, err := rc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			rc.Close()
			continue
		}
		shards, err := rc.ClusterShards(ctx).Result()
		rc.Close()
		if err != nil {
			continue
		}
		for _, s := range shards {
			for _, r := range s.Slots {
				if slot < r.Start || slot > r.End {
					continue
				}
				for _, sn := range s.Nodes {
					if sn.Role != "master" || sn.Health != "online" {
						continue
					}
					for _, m := range c.Nodes {
						if int64(m.Port) == sn.Port {
							return m, nil
						}
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("testenv: no live node says who serves %q", key)
}

// WaitHealthy waits until every live node reports cluster_state:ok and
// every master with a live replica has it connected and in sync, or
// within fails.
func (c *Cluster) WaitHealthy(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy after %s: %v", within, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	alive := c.Alive()
	masters := 0
	for _, n := range alive {
		rc := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		info, err := rc.ClusterInfo(ctx).Result()
		if err != nil {
			rc.Close()
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			rc.Close()
			return fmt.Errorf("%s: cluster_state not ok", n.Addr())
		}
		repl, err := rc.Info(ctx, "replication").Result()
		rc.Close()
		if err != nil {
			return err
		}
		switch {
		case strings.Contains(repl, "role:master"):
			masters++
		case !strings.Contains(repl, "master_link_status:up") || strings.Contains(repl, "master_sync_in_progress:1"):
			return fmt.Errorf("%s: replica not in sync", n.Addr())
		}
	}
	if masters != 3 {
		return fmt.Errorf("%d masters, want 3", masters)
	}
	// Every live replica must be attached to a live master, which then
	// counts it: a master promoted moments ago may not have it yet.
	replicas := len(alive) - masters
	attached := 0
	for _, n := range alive {
		rc := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		repl, err := rc.Info(ctx, "replication").Result()
		rc.Close()
		if err != nil {
			return err
		}
		if strings.Contains(repl, "role:master") {
			for _, l := range strings.Split(repl, "\n") {
				if strings.HasPrefix(l, "connected_slaves:") {
					k, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l, "connected_slaves:")))
					attached += k
				}
			}
		}
	}
	if attached != replicas {
		return fmt.Errorf("%d of %d replicas attached", attached, replicas)
	}
	return nil
}
