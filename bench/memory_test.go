package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail/resendtest"
	"github.com/dormancy/dormancy/tasks"
)

// peakRSS reads a process's high-water resident set from /proc.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// startWorker runs `dormancy worker` as its own process on the benchmark's
// database and Redis DB.
func startWorker(b *testing.B, bin, resendURL string, concurrency int) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(bin, "worker")
	cmd.Env = serviceEnv(
		"RESEND_API_KEY=re_bench", "RESEND_BASE_URL="+resendURL, "VERIFICATION_SECRET="+string(testenv.TokenSecret),
		"WORKER_CONCURRENCY="+strconv.Itoa(concurrency),
	)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// BenchmarkWorkerMemory measures the worker process's peak resident memory
// at concurrency 1,000 with BENCH_MEMORY_ACCOUNTS accounts (1M by default)
// after a burst of login attempts, beside the same binary idle at its
// default concurrency on the same database.
func BenchmarkWorkerMemory(b *testing.B) {
	accounts := envInt("BENCH_MEMORY_ACCOUNTS", 1_000_000)
	burst := envInt("BENCH_MEMORY_TASKS", 20000)
	bin := build(b, "./cmd/dormancy")
	fake := resendtest.New(b)
	f := newFixture(b, accounts, burst/50+1, true)
	ctx := context.Background()
	inspector := asynq.NewInspector(testenv.RedisOpt())
	defer inspector.Close()

	idle := startWorker(b, bin, fake.URL(), 20)
	// Let it connect and settle: memory is read, nothing waits on it.
	time.Sleep(2 * time.Second)
	idleRSS, err := peakRSS(idle.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	idle.Process.Kill()
	idle.Wait()

	w := startWorker(b, bin, fake.URL(), 1000)
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	for _, t := range attemptTasks(b, f, burst, mixDormantPercent()) {
		if _, err := q.EnqueueContext(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		info, err := inspector.GetQueueInfo(tasks.QueueCritical)
		if err == nil && info.Pending == 0 && info.Active == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("burst not drained in 10 minutes")
		}
	}
	busyRSS, err := peakRSS(w.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(busyRSS)/(1<<20), "peak-MiB")
	record(row{
		name:     fmt.Sprintf("worker peak RSS, concurrency 1000, %d accounts, burst of %d attempts", accounts, burst),
		value:    fmt.Sprintf("%.0f MiB", float64(busyRSS)/(1<<20)),
		baseline: fmt.Sprintf("%.0f MiB idle at concurrency 20", float64(idleRSS)/(1<<20)),
		ratio:    fmt.Sprintf("%.1f", float64(busyRSS)/float64(idleRSS)),
		target:   "bounded (reported)",
	})
}
