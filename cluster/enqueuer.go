// Package cluster makes an enqueue on a Redis Cluster survive the loss of
// the master that took it.
//
// Redis replicates asynchronously: a master acknowledges a write before
// any replica has it, so a master killed in that moment takes the write
// with it when its replica is promoted. For most of dormancy's tasks that
// is harmless, since Postgres holds their work and a maintenance job
// queues it again (mail, maintenance runs). A login attempt exists nowhere
// else until its task runs, so its enqueue counts only once a replica
// holds it; otherwise the host holds the attempt in Postgres
// (tasks.Client.ReportLoginAttempt) until Redis takes it for good.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Options say what an enqueue waits for.
type Options struct {
	// Replicas is how many replicas must hold a task before the enqueue
	// succeeds; 0 waits for none (the plain asynq client).
	Replicas int
	// Timeout bounds the wait for them (DefaultTimeout when 0). A master
	// without enough replicas in sync fails every enqueue after it, so
	// the tasks are held elsewhere until the cluster has them again.
	Timeout time.Duration
}

// DefaultTimeout is how long an enqueue waits for its replicas: a replica
// in sync acknowledges within a round trip, and a host's login must not
// wait long for one that is not (tasks.HoldAfter bounds the whole enqueue).
const DefaultTimeout = 500 * time.Millisecond

// Enqueuer is an asynq client whose enqueues succeed only once
// Options.Replicas replicas of the master owning the queue hold the task.
type Enqueuer struct {
	q        *asynq.Client
	rc       *redis.ClusterClient
	replicas int
	timeout  time.Duration
}

// NewEnqueuer returns an Enqueuer on rc, which stays the caller's to
// close.
func NewEnqueuer(rc *redis.ClusterClient, o Options) *Enqueuer {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Enqueuer{q: asynq.NewClientFromRedisClient(rc), rc: rc, replicas: o.Replicas, timeout: o.Timeout}
}

// ErrNotReplicated is returned when a master took a task but too few of
// its replicas acknowledged it in time: the task may be lost if that
// master fails now, so the caller must keep it elsewhere too. Enqueueing
// it again under the same task ID is safe.
var ErrNotReplicated = errors.New("cluster: task not replicated in time")

// EnqueueContext enqueues as asynq.Client.EnqueueContext does, then waits
// for the replicas. A task ID conflict waits too, when opts name the
// queue: the earlier enqueue may itself not have reached a replica yet.
func (e *Enqueuer) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := e.q.EnqueueContext(ctx, t, opts...)
	if e.replicas <= 0 || (err != nil && !errors.Is(err, asynq.ErrTaskIDConflict)) {
		return info, err
	}
	queue := ""
	if info != nil {
		queue = info.Queue
	}
	for _, o := range opts {
		if o.Type() == asynq.QueueOpt && queue == "" {
			queue, _ = o.Value().(string)
		}
	}
	if queue == "" {
		return info, err
	}
	if werr := e.wait(ctx, queue); werr != nil {
		return nil, fmt.Errorf("cluster: enqueue %s: %w", t.Type(), werr)
	}
	return info, err
}

// wait asks the master owning queue's hash slot to wait for the replicas.
// WAIT counts the writes of its own connection, so it follows a write of
// the same connection in the queue's slot; the replication stream is
// ordered, so a replica that has that write has the task too.
func (e *Enqueuer) wait(ctx context.Context, queue string) error {
	key := "dormancy:{" + queue + "}:replicated"
	node, err := e.rc.MasterForKey(ctx, key)
	if err != nil {
		return err
	}
	var acked *redis.Cmd
	_, err = node.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, 1, time.Minute)
		acked = p.Do(ctx, "WAIT", e.replicas, e.timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return err
	}
	n, err := acked.Int()
	if err != nil {
		return err
	}
	if n < e.replicas {
		return fmt.Errorf("%w: %d of %d replicas of %s", ErrNotReplicated, n, e.replicas, node.Options().Addr)
	}
	return nil
}

// Close closes the asynq client; the Redis client stays the caller's.
func (e *Enqueuer) Close() error { return e.q.Close() }

// Queue is what enqueues a process's tasks: an Enqueuer on a cluster,
// asynq's client elsewhere.
type Queue interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
	Close() error
}

// NewQueue is the Queue on rc: an Enqueuer waiting for o.Replicas when rc
// is a cluster client, asynq's own client otherwise (a single node has no
// replica to wait for; Sentinel's failover is the operator's to make
// safe, SCALING.md). rc stays the caller's to close.
func NewQueue(rc redis.UniversalClient, o Options) Queue {
	if cc, ok := rc.(*redis.ClusterClient); ok && o.Replicas > 0 {
		return NewEnqueuer(cc, o)
	}
	return asynq.NewClientFromRedisClient(rc)
}
