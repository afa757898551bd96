package faults

import "time"

// The suite's waits are derived from here and nowhere else: from the
// settings it gives its processes (procEnv) and from the intervals asynq
// v0.26 fixes in its code. A wait fails when the state it watches has not
// moved for longer than the slowest step that can legitimately come next
// (waitUntil), so a loaded machine makes the suite slower, never red.

// Settings of the processes the suite starts.
const (
	retryBase     = 100 * time.Millisecond // RETRY_BASE
	retryMax      = time.Second            // RETRY_MAX: the longest backoff between two runs of a task
	checkInterval = 20 * time.Millisecond  // WORKER_TASK_CHECK_INTERVAL
	shutdownAfter = 5 * time.Second        // WORKER_SHUTDOWN_TIMEOUT
)

// asynq v0.26's own intervals, which its Config does not expose.
const (
	// asynqLease is how long a task stays leased to a worker that has
	// stopped extending it (killed, or cut from Redis).
	asynqLease = 30 * time.Second
	// The recoverer looks every asynqRecovererEvery for leases that expired
	// more than asynqRecovererCutoff ago and hands their tasks back.
	asynqRecovererEvery  = time.Minute
	asynqRecovererCutoff = 30 * time.Second
	// asynqForwarderEvery is Config.DelayedTaskCheckInterval's default: how
	// often a task waiting for its retry is moved back to pending.
	asynqForwarderEvery = 5 * time.Second
)

// resendTimeout is mail.Resend's default bound on one request.
const resendTimeout = 10 * time.Second

// margin is what a loaded machine adds to a step that is under way: a
// process starting, a burst of statements, a commit. It is the only
// figure here not read off a setting; CI's two cores shared with the other
// packages' tests were seen to take up to ten seconds for one such step.
const margin = 30 * time.Second

var (
	// started bounds a process's start: dialling Postgres and Redis.
	started = margin
	// retried bounds the time until a task that failed transiently runs
	// again: its backoff, then the forwarder's next pass.
	retried = retryMax + asynqForwarderEvery + margin
	// orphaned bounds the time until a task that a dead worker held, or
	// that a Redis outage left "active", runs again: its lease expires, the
	// recoverer waits out its cutoff and comes by on its next pass, and the
	// task is retried.
	orphaned = asynqLease + asynqRecovererCutoff + asynqRecovererEvery + retried
)

// Settings of the cluster test (TestClusterFailoverUnderBurst).
const (
	// clusterNodeTimeout is cluster-node-timeout: how long a master is
	// unreachable before the others mark it failed.
	clusterNodeTimeout = time.Second
	// redisElectionDelay is the longest a replica waits, once its master
	// is marked failed, before it asks to be promoted: Redis's fixed
	// 500 ms, up to 500 ms at random, and 1 s per rank (one replica each).
	redisElectionDelay = time.Second
	// requeueEvery is SCHEDULE_REQUEUE_MAIL's period ("* * * * *"): how
	// often the held attempts and the mails whose task was lost are
	// queued again.
	requeueEvery = time.Minute
)

var (
	// failedOver bounds a failover: the failure detected, the FAIL flag
	// spread, the election.
	failedOver = 2*clusterNodeTimeout + redisElectionDelay + margin
	// requeued bounds the time until an attempt held in Postgres, or a
	// mail whose task the failover lost, is queued again and has run.
	requeued = requeueEvery + retried + margin
)
