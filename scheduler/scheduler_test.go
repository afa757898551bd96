package scheduler_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

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

// scheduledTask is the task a scheduler replica enqueues for job j: the
// same on every replica and every period.
func scheduledTask(t *testing.T, j scheduler.Job) *asynq.Task {
	t.Helper()
	task, err := tasks.NewMaintenanceTask(j.Type, tasks.Maintenance{Spec: j.Spec, MinAgeSeconds: int64(j.MinAge / time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	return task
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

	// Two replicas each enqueue every job's task for the minute.
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	ids := map[string]string{}
	for range 2 {
		for _, j := range scheduler.DefaultJobs() {
			info, err := q.EnqueueContext(ctx, scheduledTask(t, j))
			if err != nil {
				t.Fatal(err)
			}
			ids[info.ID] = j.Type
		}
	}
	// A real worker runs them; each processed task is signalled.
	ran := make(chan string, 16)
	clock := testenv.NewClock(minute.Add(2 * time.Second))
	base, _ := url.Parse("https://platform.example.com/")
	h := worker.NewHandlers(worker.Config{TokenSecret: testenv.TokenSecret,
		Redis: testenv.RedisOpt(), Store: store, Sender: mail.NewDev(quiet), Links: worker.Links{Base: base},
		Logger: quiet, Now: clock.Now,
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
			id, _ := asynq.GetTaskID(ctx)
			ran <- id
		}
		return err
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for range ids {
		select {
		case <-ran:
		case <-wait.Done():
			t.Fatalf("not every maintenance task was processed")
		}
	}
	// Each job's period (03:00 for the jobs due then, the latest run of
	// its spec for the others) was claimed by one of its two tasks, and run.
	for _, j := range scheduler.DefaultJobs() {
		var holder string
		var finished bool
		period := tasks.Maintenance{Spec: j.Spec}.RunPeriod(clock.Now())
		if err := db.QueryRow(`SELECT task_id, finished_at IS NOT NULL FROM maintenance_runs WHERE task_type = $1 AND period = $2`, j.Type, period).Scan(&holder, &finished); err != nil {
			t.Fatalf("%s: %v", j.Type, err)
		}
		if ids[holder] != j.Type || !finished {
			t.Errorf("%s: period claimed by %q (a task of %q), finished %v", j.Type, holder, ids[holder], finished)
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

	// A replica that fires late in the same minute finds the period
	// claimed; the next minute is a new period.
	enqueueRelock := func() {
		t.Helper()
		if _, err := q.EnqueueContext(ctx, scheduledTask(t, scheduler.DefaultJobs()[0])); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ran:
		case <-wait.Done():
			t.Fatal("the relock did not run")
		}
	}
	clock.Set(minute.Add(59 * time.Second))
	enqueueRelock()
	if got := testenv.Count(t, db, `SELECT count(*) FROM maintenance_runs WHERE task_type = 'maintenance:relock' AND period >= $1`, minute); got != 1 {
		t.Errorf("relock periods claimed after a late replica = %d, want 1", got)
	}
	clock.Set(minute.Add(time.Minute + time.Second))
	enqueueRelock()
	if got := testenv.Count(t, db, `SELECT count(*) FROM maintenance_runs WHERE task_type = 'maintenance:relock' AND period = $1 AND finished_at IS NOT NULL`, minute.Add(time.Minute)); got != 1 {
		t.Errorf("next minute's relock runs = %d, want 1", got)
	}
	if got := count(`SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'relocked'`); got != 3 {
		t.Errorf("relocked events after the next run = %d, want still 3", got)
	}
}

func TestNewRefusesBadJobs(t *testing.T) {
	good := scheduler.Job{Type: tasks.TypeMaintenanceSweep, Spec: "0 3 * * *"}
	for name, jobs := range map[string][]scheduler.Job{
		"not a maintenance type": {{Type: tasks.TypeLoginAttempt, Spec: "* * * * *"}},
		"twice":                  {good, good},
		"bad spec":               {{Type: tasks.TypeMaintenanceSweep, Spec: "0 25 * * *"}},
		"never runs":             {{Type: tasks.TypeMaintenanceSweep, Spec: "0 0 30 2 *"}},
		"negative retries":       {{Type: tasks.TypeMaintenanceSweep, Spec: "0 3 * * *", MaxRetry: -1}},
		"batch too large":        {{Type: tasks.TypeMaintenanceSweep, Spec: "0 3 * * *", BatchSize: tasks.MaxMaintenanceBatch + 1}},
	} {
		if _, err := scheduler.New(scheduler.Config{Redis: testenv.RedisOpt(), Jobs: jobs, Logger: quiet}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := scheduler.New(scheduler.Config{Jobs: []scheduler.Job{good}}); err == nil {
		t.Error("no Redis: accepted")
	}
	s, err := scheduler.New(scheduler.Config{Redis: testenv.RedisOpt(), Logger: quiet, Jobs: []scheduler.Job{good, {Type: tasks.TypeMaintenanceRelock, Spec: "off"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(tasks.TypeMaintenanceRelock, time.Now()); !got.IsZero() {
		t.Errorf("Next of a job that is off = %v", got)
	}
	at := time.Date(2026, 3, 8, 3, 0, 0, 0, time.UTC)
	if got, want := s.Next(tasks.TypeMaintenanceSweep, at), at.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("Next sweep after %v = %v, want %v (UTC, whatever the local zone)", at, got, want)
	}
}

type quietAsynq struct{}

func (quietAsynq) Debug(...any) {}
func (quietAsynq) Info(...any)  {}
func (quietAsynq) Warn(...any)  {}
func (quietAsynq) Error(...any) {}
func (quietAsynq) Fatal(...any) {}

// The running scheduler's jobs are listed in Asynqmon's Schedulers tab,
// read through Asynqmon's own API, with their specs and next runs; they
// leave it when the scheduler stops.
func TestSchedulersTabListsTheJobs(t *testing.T) {
	s, err := scheduler.New(scheduler.Config{Redis: testenv.RedisOpt(), Jobs: scheduler.DefaultJobs(), Logger: quiet, Heartbeat: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: testenv.RedisOpt(), ReadOnly: true})
	defer mon.Close()
	srv := httptest.NewServer(mon)
	defer srv.Close()

	type entry struct {
		Spec     string `json:"spec"`
		TaskType string `json:"task_type"`
		Next     string `json:"next_enqueue_at"`
	}
	// Other tests' schedulers may be listed too; ours are the ones with
	// every default job.
	listed := func() map[string]entry {
		resp, err := http.Get(srv.URL + "/monitoring/api/scheduler_entries")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Entries []entry `json:"entries"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		got := map[string]entry{}
		for _, e := range body.Entries {
			got[e.TaskType+" "+e.Spec] = e
		}
		return got
	}
	want := scheduler.DefaultJobs()
	all := func(got map[string]entry) bool {
		for _, j := range want {
			if _, ok := got[j.Type+" "+j.Spec]; !ok {
				return false
			}
		}
		return true
	}
	// The entries are written by asynq's heartbeat; wait for the first.
	deadline := time.Now().Add(10 * time.Second)
	got := listed()
	for !all(got) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got = listed()
	}
	for _, j := range want {
		e, ok := got[j.Type+" "+j.Spec]
		if !ok {
			t.Errorf("%s (%s) not in the Schedulers tab: %v", j.Type, j.Spec, got)
			continue
		}
		next, err := time.Parse(time.RFC3339, e.Next)
		if err != nil || !next.After(time.Now().Add(-time.Second)) || next.After(time.Now().Add(24*time.Hour)) {
			t.Errorf("%s: next run %q, want within the next day", j.Type, e.Next)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := listed(); all(got) {
		t.Errorf("the stopped scheduler's entries are still listed: %v", got)
	}
}
