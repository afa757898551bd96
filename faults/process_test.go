package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dormancy/dormancy/internal/testenv"
)

// binDir holds the dormancy binary of this run; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	// go-redis logs every failed dial of the clients in this process; the
	// tests that take Redis away expect those failures and check them.
	redis.SetLogger(quietRedisLog{})
	testenv.MainThen(m, func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	})
}

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/dormancy once per run, the way the Procfile runs it.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "dormancy-faults-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "dormancy")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/dormancy/dormancy/cmd/dormancy").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/dormancy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one dormancy process. Its JSON log lines are kept in memory, so
// a test can count what the process did ("task done" per task ID) and a
// failing test can show what it said.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, set before done closes

	mu    sync.Mutex
	lines []logLine
	raw   []string
	wake  chan struct{} // closed and replaced on every new line
}

// logLine is one JSON log line of a process.
type logLine map[string]any

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }

// startProc runs `dormancy args...` with exactly the variables in env (plus
// PATH and HOME), and kills it when the test ends.
func startProc(t *testing.T, name string, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), wake: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.add(sc.Text())
		}
	}()
	go func() {
		<-read // Wait closes the pipe; read it to the end first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill(t)
		if t.Failed() {
			p.dump(t, 40)
		}
		if dir := os.Getenv("FAULTS_LOG_DIR"); dir != "" {
			p.save(t, dir)
		}
	})
	return p
}

// save writes the process's whole log to dir, named after the test and
// the process: FAULTS_LOG_DIR=dir keeps them for reading after the run.
func (p *proc) save(t *testing.T, dir string) {
	p.mu.Lock()
	body := strings.Join(p.raw, "\n") + "\n"
	p.mu.Unlock()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "." + p.name + ".log"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Errorf("save the log of %s: %v", p.name, err)
	}
}

func (p *proc) add(s string) {
	var l logLine
	if json.Unmarshal([]byte(s), &l) != nil {
		l = logLine{"msg": s}
	}
	p.mu.Lock()
	p.lines = append(p.lines, l)
	p.raw = append(p.raw, s)
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
}

// Lines returns the log lines whose msg is msg.
func (p *proc) Lines(msg string) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.lines {
		if l.str("msg") == msg {
			out = append(out, l)
		}
	}
	return out
}

// WaitLog waits until the process logged msg, or fails the test.
func (p *proc) WaitLog(t *testing.T, msg string, within time.Duration) {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		p.mu.Lock()
		wake := p.wake
		p.mu.Unlock()
		if len(p.Lines(msg)) > 0 {
			return
		}
		select {
		case <-wake:
		case <-p.done:
			if len(p.Lines(msg)) > 0 {
				return
			}
			t.Fatalf("%s exited (%v) before logging %q", p.name, p.err, msg)
		case <-timer.C:
			t.Fatalf("%s did not log %q within %v", p.name, msg, within)
		}
	}
}

// Kill sends SIGKILL, as a crash or the OOM killer would, and waits for
// the process to be gone.
func (p *proc) Kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) dump(t *testing.T, n int) {
	p.mu.Lock()
	raw := p.raw[max(0, len(p.raw)-n):]
	p.mu.Unlock()
	t.Logf("last %d log lines of %s:\n%s", len(raw), p.name, strings.Join(raw, "\n"))
}

// tasksDone counts, per task ID, the "task done" lines of the processes:
// how often each task ran to success, whichever worker ran it.
func tasksDone(ps ...*proc) map[string]int {
	n := map[string]int{}
	for _, p := range ps {
		for _, l := range p.Lines("task done") {
			n[l.str("task_id")]++
		}
	}
	return n
}

// waitUntil polls cond until it holds. It is how the tests wait on other
// processes: by watching the state they change, never by sleeping a
// guessed time. What cond returns with false says where things stand, and
// the wait fails when that has not changed for still: when the processes
// stop making progress, not when a loaded machine makes them slow. still
// comes from timing_test.go. A state that keeps changing without arriving
// fails after ten times still.
func waitUntil(t *testing.T, still time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	began := time.Now()
	moved := began
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	state := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	for {
		ok, err := cond()
		if ok {
			return
		}
		now := time.Now()
		if state(err) != state(last) {
			moved = now
		}
		last = err
		switch {
		case now.Sub(moved) > still:
			t.Fatalf("waited for %s: no change for %v (%v in all): %v", what, still, now.Sub(began).Round(time.Second), last)
		case now.Sub(began) > 10*still:
			t.Fatalf("waited %v for %s, still changing: %v", now.Sub(began).Round(time.Second), what, last)
		}
		<-tick.C
	}
}
