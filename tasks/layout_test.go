package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/tasks"
)

// The queue function is part of the host contract: hosts in other
// languages compute it themselves (README), so its outputs are pinned
// here, README's worked example among them.
func TestCriticalQueueIsPinned(t *testing.T) {
	for _, c := range []struct {
		company string
		n       int
		want    string
	}{
		{"acme", 0, "critical"},
		{"acme", 1, "critical"},
		{"acme", 3, "critical-1"}, // FNV-1a 0x45fd71af = 1174237615; mod 3 = 1
		{"acme", 4, "critical-3"},
		{"acme", 8, "critical-7"},
		{"co-1", 3, "critical-0"},   // 0xb0a473fd = 2963567613
		{"globex", 3, "critical-1"}, // 0x0a09748e = 168391822
		{"globex", 4, "critical-2"},
		{"株式会社ドーマンシー", 3, "critical-2"}, // UTF-8 bytes; 0x0291c854 = 43108436
		{"", 3, "critical-1"},           // the FNV-1a offset basis 0x811c9dc5
	} {
		if got := tasks.CriticalQueue(c.company, c.n); got != c.want {
			t.Errorf("CriticalQueue(%q, %d) = %q, want %q", c.company, c.n, got, c.want)
		}
	}
}

// A worker serves critical and every spread queue up to its maximum, at
// critical's weight, so a host with any n up to it is served, and tasks
// queued before n changed are too.
func TestServedQueues(t *testing.T) {
	qs := tasks.ServedQueues(3)
	for q, w := range map[string]int{"critical": 6, "critical-0": 6, "critical-1": 6, "critical-2": 6, "default": 3, "webhooks": 2, "low": 1} {
		if qs[q] != w {
			t.Errorf("weight of %s = %d, want %d", q, qs[q], w)
		}
	}
	if len(qs) != 7 {
		t.Errorf("served %v", qs)
	}
	for n := 1; n <= 3; n++ {
		for _, co := range []string{"acme", "globex", "co-1", "initech"} {
			if _, ok := qs[tasks.CriticalQueue(co, n)]; !ok {
				t.Errorf("n = %d: %s's queue is not served", n, co)
			}
		}
	}
	for q, want := range map[string]bool{"critical": true, "critical-0": true, "critical-12": true, "critical-": false, "critical-x": false, "default": false} {
		if got := tasks.IsCriticalQueue(q); got != want {
			t.Errorf("IsCriticalQueue(%q) = %v", q, got)
		}
	}
}

// The client puts login attempts and directory events on the company's
// queue, with each family's retention; N = 1 keeps today's layout.
func TestClientLayout(t *testing.T) {
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	insp := asynq.NewInspector(testenv.RedisOpt())
	defer insp.Close()
	ctx := context.Background()
	layout := tasks.Layout{CriticalQueues: 3, Retention: tasks.TaskRetention{LoginAttempts: 10 * time.Minute, Directory: tasks.KeepNone, Emails: time.Hour}}
	spread := tasks.NewClient(q, nil, atClock, tasks.WithLayout(layout))
	plain := tasks.NewClient(q, nil, atClock)

	p := validAttempt()
	p.AttemptKey = testenv.UniqueID("layout")
	if err := spread.ReportLoginAttempt(ctx, p); err != nil {
		t.Fatal(err)
	}
	info, err := insp.GetTaskInfo("critical-1", tasks.LoginAttemptTaskID(p.AttemptKey))
	if err != nil {
		t.Fatalf("acme's attempt on critical-1: %v", err)
	}
	if info.Retention != 10*time.Minute {
		t.Errorf("attempt retention %s", info.Retention)
	}
	p.AttemptKey = testenv.UniqueID("layout")
	if err := plain.ReportLoginAttempt(ctx, p); err != nil {
		t.Fatal(err)
	}
	if info, err := insp.GetTaskInfo(tasks.QueueCritical, tasks.LoginAttemptTaskID(p.AttemptKey)); err != nil || info.Retention != 24*time.Hour {
		t.Errorf("default layout: %v, %v", info, err)
	}

	task, err := tasks.NewRetireAccountTask(tasks.Retirement{CompanyID: "globex", LoginID: testenv.UniqueID("u"), Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	opts := layout.Options(task)
	info, err = q.Enqueue(task, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != "critical-1" || info.Retention != 0 {
		t.Errorf("directory event: queue %s, retention %s", info.Queue, info.Retention)
	}
	mail, err := tasks.NewEmailTask(tasks.TypeEmailNotice, tasks.Email{MailID: 424242})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := q.Enqueue(mail, layout.Options(mail)...); err != nil || info.Queue != tasks.QueueDefault || info.Retention != time.Hour {
		t.Errorf("email: %v, %v", info, err)
	}
}
