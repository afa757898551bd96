package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dormancy/dormancy/cluster"
	"github.com/dormancy/dormancy/internal/testenv"
)

// An enqueue succeeds once a replica of the queue's master holds the
// task; when too few replicas answer it fails with ErrNotReplicated, and
// enqueueing the task again (its ID conflicting) waits again.
func TestEnqueuerWaitsForReplicas(t *testing.T) {
	cl := testenv.StartCluster(t, 0)
	rc := cl.Client(t)
	ctx := context.Background()

	// WAIT returns as soon as the replica acknowledges; the long timeout
	// only keeps a replica slowed by a loaded machine from failing the
	// test (it acknowledged 0 of 1 within 500 ms once, beside a full
	// make test).
	q := cluster.NewEnqueuer(rc, cluster.Options{Replicas: 1, Timeout: 30 * time.Second})
	info, err := q.EnqueueContext(ctx, asynq.NewTask("probe", nil), asynq.Queue("critical-2"), asynq.TaskID("one"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != "critical-2" {
		t.Errorf("queue %s", info.Queue)
	}
	if !onReplica(t, cl, "asynq:{critical-2}:t:one") {
		t.Error("the enqueue returned before the replica held the task")
	}
	if _, err := q.EnqueueContext(ctx, asynq.NewTask("probe", nil), asynq.Queue("critical-2"), asynq.TaskID("one")); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("second enqueue: %v, want ErrTaskIDConflict", err)
	}

	// Each master has one replica: waiting for two always falls short.
	strict := cluster.NewEnqueuer(rc, cluster.Options{Replicas: 2, Timeout: 50 * time.Millisecond})
	for _, id := range []string{"two", "two"} {
		if _, err := strict.EnqueueContext(ctx, asynq.NewTask("probe", nil), asynq.Queue("critical-0"), asynq.TaskID(id)); !errors.Is(err, cluster.ErrNotReplicated) {
			t.Errorf("enqueue %s with too few replicas: %v, want ErrNotReplicated", id, err)
		}
	}

	// Anything but a cluster gets asynq's own client.
	if _, ok := cluster.NewQueue(rc, cluster.Options{}).(*asynq.Client); !ok {
		t.Error("Replicas 0: not asynq's client")
	}
	if _, ok := cluster.NewQueue(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), cluster.Options{Replicas: 1}).(*asynq.Client); !ok {
		t.Error("a single node: not asynq's client")
	}
}

// onReplica says whether a replica of key's master holds key.
func onReplica(t *testing.T, cl *testenv.Cluster, key string) bool {
	t.Helper()
	ctx := context.Background()
	for _, n := range cl.Alive() {
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		conn := c.Conn()
		role, err := conn.Do(ctx, "ROLE").Slice()
		if err != nil || role[0] != "slave" {
			conn.Close()
			c.Close()
			continue
		}
		_ = conn.ReadOnly(ctx).Err()
		n, err := conn.Exists(ctx, key).Result()
		conn.Close()
		c.Close()
		if err == nil && n == 1 {
			return true
		}
	}
	return false
}
