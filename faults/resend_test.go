package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// retryAfter is the Retry-After the fake Resend answers its 429 with.
const retryAfter = 7 * time.Second

// Resend failing in each way it can, seen by a real worker process: what
// may succeed later is retried (429 after the time Resend asked for, 5xx,
// a request that hangs past the client's timeout) and delivered exactly
// once; what never will (422) is not retried, and the mail, its link and
// the task are closed with the reason on record. The first try is the
// attempt's task's own, right after its commit; a failure there counts as
// the link's first, logged as "mail send failed", except a refusal, which
// the link's task meets again and records.
func TestResendFailuresThroughTheWorker(t *testing.T) {
	type outcome struct {
		requests  int  // requests Resend saw
		delivered bool // the verification email arrived (once)
		failures  int  // "task failed" lines of the worker
		permanent bool // the failure was classified permanent
	}
	cases := []struct {
		name   string
		script func(e *env)
		want   outcome
		// minGap is the least time between the first, failed request and
		// the delivery.
		minGap time.Duration
		// failure is what the worker's failure log says.
		failure string
	}{
		{"429 with Retry-After", func(e *env) {
			e.resend.FailNext(1, 429, map[string]string{"retry-after": fmt.Sprint(retryAfter.Seconds())})
		},
			outcome{requests: 2, delivered: true, failures: 1}, retryAfter, "HTTP 429"},
		{"500 twice", func(e *env) { e.resend.FailNext(2, 500, nil) },
			outcome{requests: 3, delivered: true, failures: 2}, 0, "HTTP 500"},
		{"422", func(e *env) { e.resend.FailNext(2, 422, nil) },
			outcome{requests: 2, failures: 1, permanent: true}, 0, "HTTP 422 validation_error"},
		{"hang past the timeout", func(e *env) { e.resend.HangNext(1) },
			outcome{requests: 2, delivered: true, failures: 1}, resendTimeout, "exceeded"}, // Client.Timeout or the context's deadline, whichever fires first
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// A Redis of its own: the cases run at once, each worker with
			// its own fake Resend, and none may take another's email task.
			e := newEnv(t, envOpts{redis: startRedis(t, false)})
			co := e.company(t)
			login, id := e.account(t, co, acct{idle: 120 * day})
			c.script(e)
			w := e.worker(t, "worker", nil)
			task, _ := attempt(t, co, login, policy.MethodPassword)
			e.enqueue(t, task)

			var firstRequest time.Time
			waitUntil(t, started, "the first request to Resend", func() (bool, error) {
				firstRequest = time.Now()
				return e.resend.Requests() > 0, nil
			})
			var mailID, tokenID int64
			var status string
			waitUntil(t, max(retryAfter, resendTimeout)+retried, "the mail settled", func() (bool, error) {
				err := e.db.QueryRow(`SELECT id, token_id, status FROM mails WHERE account_id = $1 AND kind = 'verification'`, id).Scan(&mailID, &tokenID, &status)
				return err == nil && status != "pending", err
			})
			taskID := fmt.Sprintf("mail:%d:%d", mailID, tokenID)
			t.Logf("settled %v after the first request", time.Since(firstRequest))

			if c.want.delivered {
				ctx, cancel := context.WithTimeout(context.Background(), margin)
				defer cancel()
				emails, err := e.resend.WaitFor(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				if status != "sent" {
					t.Errorf("mail status = %s, want sent", status)
				}
				if gap := emails[0].ReceivedAt.Sub(firstRequest); gap < c.minGap-100*time.Millisecond {
					t.Errorf("delivered %v after the failed request, want at least %v", gap, c.minGap)
				}
				if got, want := emails[0].IdempotencyKey, fmt.Sprintf("verification:%d:%d", tokenID, tokenID); got != want {
					t.Errorf("idempotency key %q, want %q: the retry sent another link", got, want)
				}
			} else {
				if status != "failed" {
					t.Errorf("mail status = %s, want failed", status)
				}
				if got := e.count(t, `SELECT count(*) FROM verification_tokens WHERE id = $1 AND revoked_reason = 'undelivered'`, tokenID); got != 1 {
					t.Error("the undelivered link was not revoked")
				}
				if got := e.count(t, `SELECT count(*) FROM audit_events WHERE kind = 'mail_failed' AND detail->>'mail_id' = $1`, fmt.Sprint(mailID)); got != 1 {
					t.Errorf("mail_failed events = %d, want 1", got)
				}
				var info *asynq.TaskInfo
				waitUntil(t, margin, "the task archived", func() (bool, error) {
					var err error
					info, err = e.inspect.GetTaskInfo(tasks.QueueDefault, taskID)
					return err == nil && info.State == asynq.TaskStateArchived, err
				})
				if !strings.Contains(info.LastErr, "HTTP 422") {
					t.Errorf("archived with %q, want the 422 named", info.LastErr)
				}
			}
			waitUntil(t, retried, "the queues drained", e.queuesIdle)
			if got := e.resend.Requests(); got != c.want.requests {
				t.Errorf("Resend saw %d requests, want %d", got, c.want.requests)
			}
			if got, want := e.resend.Count(), map[bool]int{true: 1}[c.want.delivered]; got != want {
				t.Errorf("delivered %d emails, want %d", got, want)
			}
			// A permanent failure is one "task rejected" line with its
			// reason; a retryable one a "task failed" line per try.
			msg, field, other := "task failed", "error", "task rejected"
			if c.want.permanent {
				msg, field, other = "task rejected", "reason", "task failed"
			}
			failed := w.Lines(msg)
			if c.want.permanent {
				if first := w.Lines("mail send failed"); len(first) != 0 {
					t.Errorf("a refusal logged as a failure to retry: %v", first)
				}
			} else {
				failed = append(w.Lines("mail send failed"), failed...)
			}
			if len(failed) != c.want.failures {
				t.Fatalf("%d %q lines logged, want %d: %v", len(failed), msg, c.want.failures, failed)
			}
			for _, l := range failed {
				if !strings.Contains(l.str(field), c.failure) {
					t.Errorf("failure logged as %v, want %s naming %q", l, field, c.failure)
				}
			}
			if also := w.Lines(other); len(also) != 0 {
				t.Errorf("the failure was also logged as %q: %v", other, also)
			}
			if got := done(w, taskID); got != map[bool]int{true: 1}[c.want.delivered] {
				t.Errorf("email task ran to success %d times", got)
			}
		})
	}
}

// done is how often the process ran task id to success.
func done(p *proc, id string) int { return tasksDone(p)[id] }
