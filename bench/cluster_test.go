package bench

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail/resendtest"
	"github.com/dormancy/dormancy/tasks"
)

// fleetRun is one drain of the login mix by worker processes.
type fleetRun struct {
	redisURL string
	opt      asynq.RedisConnOpt
	workers  int
	queues   int // CRITICAL_QUEUES of the host
}

// drainByProcesses enqueues n attempts of the login mix into paused
// queues, starts r.workers `dormancy worker` processes and waits until
// each says it started, then resumes the queues and times the drain: the
// rate leaves out the processes' start.
func drainByProcesses(b *testing.B, bin, resendURL string, r fleetRun, n int) float64 {
	b.Helper()
	layout := tasks.Layout{CriticalQueues: r.queues}
	served := []string{tasks.QueueCritical}
	if r.queues > 1 {
		served = nil
		for i := range r.queues {
			served = append(served, tasks.QueueCritical+"-"+strconv.Itoa(i))
		}
	}
	insp := asynq.NewInspector(r.opt)
	defer insp.Close()
	q := asynq.NewClient(r.opt)
	defer q.Close()
	for _, name := range served {
		if err := insp.PauseQueue(name); err != nil {
			b.Fatal(err)
		}
	}
	for _, t := range spreadAttempts(b, n) {
		if _, err := q.Enqueue(t, layout.Options(t)...); err != nil {
			b.Fatal(err)
		}
	}
	var procs []*exec.Cmd
	defer func() {
		for _, cmd := range procs {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	for i := range r.workers {
		cmd := exec.Command(bin, "worker")
		cmd.Env = serviceEnv(
			"REDIS_URL="+r.redisURL, "LOG_LEVEL=info", "RESEND_API_KEY=re_bench", "RESEND_BASE_URL="+resendURL,
			"VERIFICATION_SECRET="+string(testenv.TokenSecret), "CRITICAL_QUEUES="+strconv.Itoa(max(r.queues, 1)),
			"DATABASE_MAX_CONNS=24",
		)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, cmd)
		started := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			once := false
			for sc.Scan() {
				if !once && strings.Contains(sc.Text(), `"worker started"`) {
					once = true
					close(started)
				}
			}
		}()
		select {
		case <-started:
		case <-time.After(2 * time.Minute):
			b.Fatalf("worker %d did not start", i)
		}
	}
	start := time.Now()
	for _, name := range served {
		if err := insp.UnpauseQueue(name); err != nil {
			b.Fatal(err)
		}
	}
	deadline := start.Add(10 * time.Minute)
	for {
		left := 0
		for _, name := range served {
			info, err := insp.GetQueueInfo(name)
			if err != nil {
				b.Fatal(err)
			}
			left += info.Pending + info.Active + info.Retry
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d attempts left after 10 minutes", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return float64(n/3*3) / time.Since(start).Seconds()
}

// spreadAttempts is n attempts of the login mix, a third each from three
// companies that CRITICAL_QUEUES=3 puts on three different queues, the
// same shape for every run whatever its N.
func spreadAttempts(b *testing.B, n int) []*asynq.Task {
	b.Helper()
	var fs []fixture
	for seen := map[string]bool{}; len(fs) < 3; {
		f := newFixture(b, 2000, n/150+1, true)
		if q := tasks.CriticalQueue(f.company, 3); !seen[q] {
			seen[q] = true
			fs = append(fs, f)
		}
	}
	var parts [][]*asynq.Task
	for _, f := range fs {
		parts = append(parts, attemptTasks(b, f, n/3, mixDormantPercent()))
	}
	var out []*asynq.Task
	for i := range n / 3 {
		for _, p := range parts {
			out = append(out, p[i])
		}
	}
	return out
}

// BenchmarkWorkerProcesses is the login mix drained by one, two and three
// `dormancy worker` processes on one Redis node: whether a node takes more
// than one process's fetch loop before sharding is worth it.
func BenchmarkWorkerProcesses(b *testing.B) {
	n := envInt("BENCH_TASKS", 20000)
	bin := build(b, "./cmd/dormancy")
	fake := resendtest.New(b)
	var one float64
	for _, k := range []int{1, 2, 3} {
		rate := drainByProcesses(b, bin, fake.URL(), fleetRun{redisURL: testenv.RedisURL(), opt: testenv.RedisOpt(), workers: k, queues: 1}, n)
		if k == 1 {
			one = rate
		}
		b.ReportMetric(rate, fmt.Sprintf("attempts/s-%dproc", k))
		record(rateRow(fmt.Sprintf("login:attempt mix, %d worker process(es), one Redis node (%d tasks)", k, n),
			rate, one, "one process", "reported (2 cores)"))
	}
}

// BenchmarkClusterQueues is the login mix drained by two worker processes
// on one Redis node with one queue, on a Redis Cluster of three masters
// with one queue, and on the cluster with the attempts spread over three
// queues (one per shard), in the same run.
func BenchmarkClusterQueues(b *testing.B) {
	n := envInt("BENCH_TASKS", 20000)
	bin := build(b, "./cmd/dormancy")
	fake := resendtest.New(b)
	cl := testenv.StartCluster(b, 0)
	node := drainByProcesses(b, bin, fake.URL(), fleetRun{redisURL: testenv.RedisURL(), opt: testenv.RedisOpt(), workers: 2, queues: 1}, n)
	for _, queues := range []int{1, 3} {
		rate := drainByProcesses(b, bin, fake.URL(), fleetRun{redisURL: cl.URL(), opt: cl.Opt(), workers: 2, queues: queues}, n)
		b.ReportMetric(rate, fmt.Sprintf("attempts/s-cluster-N%d", queues))
		record(rateRow(fmt.Sprintf("login:attempt mix on a 3-master cluster, N = %d queue(s), 2 worker processes (%d tasks)", queues, n),
			rate, node, "one node, N = 1", "reported (2 cores)"))
	}
}

// BenchmarkRetainedTaskMemory measures what a completed login:attempt
// kept in Redis costs: used_memory of the queue's master before the
// tasks and after they ran, with TASK_RETENTION_LOGIN_ATTEMPTS' default
// and with 0, on a cluster of the benchmark's own (nothing else writes
// there), cross-checked with MEMORY USAGE of one task's hash.
func BenchmarkRetainedTaskMemory(b *testing.B) {
	n := envInt("BENCH_RETAINED_TASKS", 5000)
	cl := testenv.StartCluster(b, 0)
	ctx := context.Background()
	f := newFixture(b, 5000, n/50+1, false)
	master, err := cl.MasterOf(ctx, "asynq:{critical}:pending")
	if err != nil {
		b.Fatal(err)
	}
	node := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer node.Close()
	used := func() int64 {
		info, err := node.Info(ctx, "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no used_memory")
		return 0
	}
	srv := asynq.NewServer(cl.Opt(), asynq.Config{
		Concurrency: 20, Queues: tasks.ServedQueues(0), TaskCheckInterval: 10 * time.Millisecond,
		Logger: quietAsynq{}, LogLevel: asynq.ErrorLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeLoginAttempt, func(context.Context, *asynq.Task) error { return nil })
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	q := asynq.NewClient(cl.Opt())
	defer q.Close()
	insp := asynq.NewInspector(cl.Opt())
	defer insp.Close()
	perTask := map[time.Duration]float64{}
	var lastID string
	// The first pass fills what any writes fill (the replication backlog,
	// the day's stats keys) and is not counted.
	for _, keep := range []time.Duration{0, tasks.KeepNone, 10 * time.Minute} {
		layout := tasks.Layout{Retention: tasks.TaskRetention{LoginAttempts: cmp.Or(keep, tasks.KeepNone)}}
		before := used()
		for _, t := range attemptTasks(b, f, n, mixDormantPercent()) {
			info, err := q.Enqueue(t, layout.Options(t)...)
			if err != nil {
				b.Fatal(err)
			}
			lastID = info.ID
		}
		for {
			info, err := insp.GetQueueInfo(tasks.QueueCritical)
			if err != nil {
				b.Fatal(err)
			}
			if info.Pending+info.Active == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		perTask[keep] = float64(used()-before) / float64(n)
	}
	hash, err := node.MemoryUsage(ctx, "asynq:{critical}:t:"+lastID).Result()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(perTask[10*time.Minute], "bytes/retained-task")
	record(row{
		name:     fmt.Sprintf("Redis memory per completed login:attempt kept (%d tasks; MEMORY USAGE of one task hash: %d bytes)", n, hash),
		value:    fmt.Sprintf("%.0f bytes", perTask[10*time.Minute]),
		baseline: fmt.Sprintf("%.0f bytes with TASK_RETENTION_LOGIN_ATTEMPTS=0", perTask[tasks.KeepNone]),
		ratio:    "",
		target:   "reported",
	})
}
