package scheduler_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/scheduler"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// newScheduler is one scheduler process: its own Redis connection, the
// default jobs, a fixed clock.
func newScheduler(t *testing.T, now time.Time) *scheduler.Scheduler {
	t.Helper()
	q := asynq.NewClient(testenv.RedisOpt())
	t.Cleanup(func() { q.Close() })
	s, err := scheduler.New(scheduler.Config{Queue: q, Jobs: scheduler.DefaultJobs(), Logger: quiet, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// flush empties the low queue, so each test starts from nothing.
func flush(t *testing.T, insp *asynq.Inspector) {
	t.Helper()
	queues, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(queues, tasks.QueueLow) {
		return
	}
	for _, del := range []func(string) (int, error){insp.DeleteAllPendingTasks, insp.DeleteAllCompletedTasks, insp.DeleteAllArchivedTasks} {
		if _, err := del(tasks.QueueLow); err != nil {
			t.Fatal(err)
		}
	}
}

// Two scheduler processes fire in the same minute: each maintenance task
// is enqueued once, the worker runs it once, and each account gets one
// audit event.
func TestTwoSchedulersInTheSameMinuteRunEachJobOnce(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	db := testenv.DB(t)
	insp := asynq.NewInspector(testenv.RedisOpt())
	defer insp.Close()
	flush(t, insp)

	minute := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // the sweep's default 03:00
	co := testenv.UniqueID("co")
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: co}); err != nil {
		t.Fatal(err)
	}
	account := func(last time.Time) int64 {
		id, err := store.UpsertAccount(ctx, postgres.AccountRecord{
			CompanyID: co, LoginID: testenv.UniqueID("u"), IDKind: policy.IDKindPlatform, Name: "n",
			CreatedAt: last.AddDate(-1, 0, 0), LastLoginAt: last,
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for range 3 { // same-day unlocks whose deadline passed
		id := account(minute.AddDate(0, 0, -100))
		if _, err := db.Exec(`UPDATE accounts SET lock_state = 'unlocked_until', unlocked_until = $2 WHERE id = $1`, id, minute.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 { // dormant, never tried to log in
		account(minute.AddDate(0, 0, -91))
	}
	account(minute.AddDate(0, 0, -10)) // active and in use

	// Two processes, their clocks a second and a half apart, each firing
	// every job at once.
	procs := []*scheduler.Scheduler{newScheduler(t, minute.Add(200*time.Millisecond)), newScheduler(t, minute.Add(1700*time.Millisecond))}
	nows := []time.Time{minute.Add(200 * time.Millisecond), minute.Add(1700 * time.Millisecond)}
	var mu sync.Mutex
	enqueued := map[string]int{}
	var wg sync.WaitGroup
	for i, s := range procs {
		for _, typ := range tasks.MaintenanceTypes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.RunOnce(ctx, typ, nows[i])
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					enqueued[typ]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, typ := range tasks.MaintenanceTypes {
		if got := enqueued[typ]; got != 1 {
			t.Errorf("%s enqueued %d times, want 1", typ, got)
		}
	}
	pending, err := insp.ListPendingTasks(tasks.QueueLow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(pending), len(tasks.MaintenanceTypes); got != want {
		t.Fatalf("pending maintenance tasks = %d, want %d", got, want)
	}

	// A real worker runs them; each processed task is signalled.
	ran := make(chan string, 16)
	base, _ := url.Parse("https://platform.example.com/")
	h := worker.NewHandlers(worker.Config{TokenSecret: testenv.TokenSecret,
		Redis: testenv.RedisOpt(), Store: store, Sender: mail.NewDev(quiet), Links: worker.Links{Base: base},
		Logger: quiet, Now: func() time.Time { return minute.Add(2 * time.Second) },
	})
	defer h.Close()
	mux := asynq.NewServeMux()
	h.Register(mux)
	srv := asynq.NewServer(testenv.RedisOpt(), asynq.Config{
		Concurrency: 4, Queues: map[string]int{tasks.QueueLow: 1}, TaskCheckInterval: 10 * time.Millisecond,
		Logger: quietAsynq{}, ShutdownTimeout: 5 * time.Second,
	})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := mux.ProcessTask(ctx, t)
		if err == nil {
			ran <- t.Type()
		}
		return err
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	runs := map[string]int{}
	for range tasks.MaintenanceTypes {
		select {
		case typ := <-ran:
			runs[typ]++
		case <-wait.Done():
			t.Fatalf("maintenance tasks run: %v, want each of %v once", runs, tasks.MaintenanceTypes)
		}
	}
	for _, typ := range tasks.MaintenanceTypes {
		if runs[typ] != 1 {
			t.Errorf("%s ran %d times, want 1", typ, runs[typ])
		}
	}

	count := func(q string) int { return testenv.Count(t, db, q, co) }
	if got := count(`SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'relocked'`); got != 3 {
		t.Errorf("relocked events = %d, want 3", got)
	}
	if got := count(`SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'locked' AND detail->>'by' = 'sweep'`); got != 4 {
		t.Errorf("sweep lock events = %d, want 4", got)
	}
	if got := count(`SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'locked'`); got != 7 {
		t.Errorf("locked accounts = %d, want 7", got)
	}

	// A replica that fires late in the same minute finds the finished task
	// kept for the period, and enqueues nothing; the next minute is a new
	// period.
	if ok, err := procs[1].RunOnce(ctx, tasks.TypeMaintenanceRelock, minute.Add(59*time.Second)); ok || err != nil {
		t.Errorf("late replica: enqueued %v, %v; want false, nil", ok, err)
	}
	if ok, err := procs[1].RunOnce(ctx, tasks.TypeMaintenanceRelock, minute.Add(time.Minute)); !ok || err != nil {
		t.Errorf("next minute: enqueued %v, %v; want true, nil", ok, err)
	}
	select {
	case <-ran:
	case <-wait.Done():
		t.Fatal("the next minute's relock did not run")
	}
	if got := count(`SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'relocked'`); got != 3 {
		t.Errorf("relocked events after the next run = %d, want still 3", got)
	}
}

// Each task is kept in Redis for its job's period: a minute for the
// every-minute jobs, an hour for the hourly ones, a day for the sweep.
func TestRunOnceKeepsTheTaskForItsPeriod(t *testing.T) {
	insp := asynq.NewInspector(testenv.RedisOpt())
	defer insp.Close()
	flush(t, insp)
	at := time.Date(2026, 11, 26, 3, 0, 30, 0, time.UTC)
	s := newScheduler(t, at)
	want := map[string]time.Duration{
		tasks.TypeMaintenanceRelock:         time.Minute,
		tasks.TypeMaintenanceRequeueMail:    time.Minute,
		tasks.TypeMaintenancePurgeTokens:    time.Hour,
		tasks.TypeMaintenancePrelockWarning: time.Hour,
		tasks.TypeMaintenanceSweep:          24 * time.Hour,
	}
	for typ, keep := range want {
		if ok, err := s.RunOnce(context.Background(), typ, at); !ok || err != nil {
			t.Fatalf("%s: %v, %v", typ, ok, err)
		}
		info, err := insp.GetTaskInfo(tasks.QueueLow, tasks.MaintenanceTaskID(typ, at))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if info.Retention != keep || info.MaxRetry != 3 {
			t.Errorf("%s: retention %v, max retry %d; want %v, 3", typ, info.Retention, info.MaxRetry, keep)
		}
		var p tasks.Maintenance
		if p, err = tasks.DecodeMaintenance(info.Payload); err != nil || !p.Period.Equal(at.Truncate(time.Minute)) {
			t.Errorf("%s: payload %+v, %v", typ, p, err)
		}
	}
	flush(t, insp)
}

func TestParseSpec(t *testing.T) {
	for _, spec := range []string{"* * * * *", "0 * * * *", "0 3 * * *", "*/5 * * * *", "@hourly", "@daily", " 0 3 * * 1-5 "} {
		if _, err := scheduler.ParseSpec(spec); err != nil {
			t.Errorf("ParseSpec(%q): %v", spec, err)
		}
	}
	for _, spec := range []string{"", "TZ=Asia/Tokyo 0 3 * * *", "CRON_TZ=America/New_York * * * * *", "@every 1m", "61 * * * *", "* * * * * *", "often"} {
		if _, err := scheduler.ParseSpec(spec); err == nil {
			t.Errorf("ParseSpec(%q) accepted", spec)
		}
	}
}

func TestNewRefusesBadJobs(t *testing.T) {
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	good := scheduler.Job{Type: tasks.TypeMaintenanceSweep, Spec: "0 3 * * *"}
	for name, jobs := range map[string][]scheduler.Job{
		"not a maintenance type": {{Type: tasks.TypeLoginAttempt, Spec: "* * * * *"}},
		"twice":                  {good, good},
		"bad spec":               {{Type: tasks.TypeMaintenanceSweep, Spec: "0 25 * * *"}},
		"never runs":             {{Type: tasks.TypeMaintenanceSweep, Spec: "0 0 30 2 *"}},
		"negative retries":       {{Type: tasks.TypeMaintenanceSweep, Spec: "0 3 * * *", MaxRetry: -1}},
		"batch too large":        {{Type: tasks.TypeMaintenanceSweep, Spec: "0 3 * * *", BatchSize: tasks.MaxMaintenanceBatch + 1}},
	} {
		if _, err := scheduler.New(scheduler.Config{Queue: q, Jobs: jobs, Logger: quiet}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := scheduler.New(scheduler.Config{Jobs: []scheduler.Job{good}}); err == nil {
		t.Error("no queue: accepted")
	}
	s, err := scheduler.New(scheduler.Config{Queue: q, Logger: quiet, Jobs: []scheduler.Job{good, {Type: tasks.TypeMaintenanceRelock, Spec: "off"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunOnce(context.Background(), tasks.TypeMaintenanceRelock, time.Now()); err == nil {
		t.Error("RunOnce of a job that is off: no error")
	}
	if got := s.Next(tasks.TypeMaintenanceRelock, time.Now()); !got.IsZero() {
		t.Errorf("Next of a job that is off = %v", got)
	}
	at := time.Date(2026, 3, 8, 3, 0, 0, 0, time.UTC)
	if got, want := s.Next(tasks.TypeMaintenanceSweep, at), at.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("Next sweep after %v = %v, want %v (UTC, whatever the local zone)", at, got, want)
	}
}

// Run stops when its context ends.
func TestRunStopsWithItsContext(t *testing.T) {
	s := newScheduler(t, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-wait.Done():
		t.Fatal("Run did not return after its context ended")
	}
}

type quietAsynq struct{}

func (quietAsynq) Debug(...any) {}
func (quietAsynq) Info(...any)  {}
func (quietAsynq) Warn(...any)  {}
func (quietAsynq) Error(...any) {}
func (quietAsynq) Fatal(...any) {}

// LastRun hears of each job's successful run, whether this scheduler
// enqueued the period or found it enqueued by another.
func TestLastRunIsReported(t *testing.T) {
	insp := asynq.NewInspector(testenv.RedisOpt())
	t.Cleanup(func() { insp.Close() })
	flush(t, insp)
	now := time.Date(2031, 3, 4, 5, 6, 0, 0, time.UTC)
	runs := map[string]int{}
	var mk = func() *scheduler.Scheduler {
		q := asynq.NewClient(testenv.RedisOpt())
		t.Cleanup(func() { q.Close() })
		s, err := scheduler.New(scheduler.Config{Queue: q, Jobs: scheduler.DefaultJobs(), Logger: quiet, Now: func() time.Time { return now },
			LastRun: func(typ string, at time.Time) {
				if at.Equal(now) {
					runs[typ]++
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := mk(), mk()
	for _, s := range []*scheduler.Scheduler{a, b} {
		if _, err := s.RunOnce(context.Background(), tasks.TypeMaintenanceRelock, now); err != nil {
			t.Fatal(err)
		}
	}
	if runs[tasks.TypeMaintenanceRelock] != 2 {
		t.Errorf("last runs reported = %v, want 2 for the relock (enqueued once, found once)", runs)
	}
}
