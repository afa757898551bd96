package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// The maintenance handlers run the scheduler's jobs. Each works through its
// rows in batches, one statement per batch, and logs every batch; none
// holds a transaction across the table. Each is safe to run twice or
// concurrently: a second run finds nothing left to do, and rows one run
// holds are skipped by the other.

// maintenance decodes a maintenance payload, claims its period and runs
// job, classifying its failure: a bad payload or a constraint violation is
// permanent, a database that is unreachable or busy is retried (a run that
// changed some batches before failing resumes where the rows say it
// stopped). A period another task claimed (another scheduler replica's
// enqueue of the same run) is done without running.
func (h *Handlers) maintenance(ctx context.Context, t *asynq.Task, job func(context.Context, tasks.Maintenance) (int, error)) error {
	p, err := tasks.DecodeMaintenance(t.Payload())
	if err != nil {
		return h.reject(ctx, t, "", err)
	}
	period := p.RunPeriod(h.now())
	id, _ := asynq.GetTaskID(ctx)
	mine, err := h.store.ClaimMaintenanceRun(ctx, t.Type(), period, id, h.now())
	if err != nil {
		return h.classifyMaintenance(ctx, t, err)
	}
	if !mine {
		h.logger(ctx).Debug("maintenance period already claimed", slog.Time("period", period))
		return nil
	}
	n, err := job(ctx, p)
	if err == nil {
		err = h.store.FinishMaintenanceRun(ctx, t.Type(), period, n, h.now())
	}
	if err != nil {
		return h.classifyMaintenance(ctx, t, err)
	}
	// Most runs of the every-minute jobs find nothing; only work is news.
	level := slog.LevelDebug
	if n > 0 {
		level = slog.LevelInfo
	}
	h.logger(ctx).Log(ctx, level, "maintenance done", slog.Time("period", period), slog.Int("rows", n))
	return nil
}

func (h *Handlers) classifyMaintenance(ctx context.Context, t *asynq.Task, err error) error {
	if ctx.Err() != nil || !errors.Is(err, policy.ErrNotFound) && postgres.Retryable(err) {
		return err
	}
	return h.reject(ctx, t, "", err)
}

// batches calls batch until it reports fewer rows than limit, logging each
// batch, and returns the total.
func (h *Handlers) batches(ctx context.Context, what string, limit int, batch func() (int, error)) (int, error) {
	total := 0
	for i := 1; ; i++ {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := batch()
		if err != nil {
			return total, err
		}
		total += n
		if n > 0 {
			h.logger(ctx).Info(what, slog.Int("batch", i), slog.Int("rows", n), slog.Int("total", total))
		}
		if n < limit {
			return total, nil
		}
	}
}

// Relock locks again the accounts whose same-day unlock passed without a
// login. Decide already refuses them at their deadline; this makes the
// administrators' list show them locked.
//
// It also ends the exemptions whose end has come, so an expired exemption
// stops protecting its account within a minute.
func (h *Handlers) Relock(ctx context.Context, t *asynq.Task) error {
	return h.maintenance(ctx, t, func(ctx context.Context, p tasks.Maintenance) (int, error) {
		now := h.now()
		ended, err := h.batches(ctx, "expired exemption batch", p.Batch(), func() (int, error) {
			return h.store.EndExpiredExemptions(ctx, now, p.Batch())
		})
		if err != nil {
			return ended, err
		}
		n, err := h.batches(ctx, "relock batch", p.Batch(), func() (int, error) {
			return h.store.RelockBatch(ctx, now, p.Batch())
		})
		return ended + n, err
	})
}

// SweepDormant locks the accounts that turned dormant without trying to
// log in, so the administrators' list shows them as locked. It sends no
// mail: the owner meets the lock at the next login, on the usual path.
//
// First the guard (Config.SweepGuard): a company where the sweep would
// lock too large a share of its employees is held and locks nothing, its
// administrators are mailed and the operator told once per hold, until
// someone confirms (postgres.ConfirmSweep).
func (h *Handlers) SweepDormant(ctx context.Context, t *asynq.Task) error {
	return h.maintenance(ctx, t, func(ctx context.Context, p tasks.Maintenance) (int, error) {
		now := h.now()
		held, err := h.guardSweep(ctx, now)
		if err != nil {
			return 0, err
		}
		var cur postgres.Cursor
		n, err := h.batches(ctx, "sweep batch", p.Batch(), func() (int, error) {
			n, next, err := h.store.SweepBatch(ctx, now, cur, p.Batch())
			cur = next
			return n, err
		})
		if err != nil {
			return n, err
		}
		if err := h.lockNotices(ctx, p.Batch()); err != nil {
			return n, err
		}
		return n, h.store.EndSweepHolds(ctx, held)
	})
}

// lockNotices queues the notices the sweep wrote (in the companies that
// asked), paced at Config.LockNoticeRate, the mail provider's rate: on
// adoption day thousands may lock at once. A retried sweep queues those of
// its first try too. The pauses an import set end with this sweep.
func (h *Handlers) lockNotices(ctx context.Context, limit int) error {
	interval := time.Second / time.Duration(h.lockNoticeRate)
	total := 0
	for after := int64(0); ; {
		ids, err := h.store.PendingLockNotices(ctx, after, limit)
		if err != nil {
			return err
		}
		out := make([]outgoing, len(ids))
		for i, id := range ids {
			out[i] = outgoing{typ: tasks.TypeEmailNotice, email: tasks.Email{MailID: id}, after: time.Duration(total+i) * interval}
		}
		if err := h.enqueue(ctx, out); err != nil {
			return err
		}
		total += len(ids)
		if len(ids) < limit {
			break
		}
		after = ids[len(ids)-1]
	}
	if total > 0 {
		h.logger(ctx).Info("lock notices scheduled", slog.Int("mails", total),
			slog.Duration("over", time.Duration(total)*interval), slog.Int("per_second", h.lockNoticeRate))
	}
	return h.store.ResumeLockNotices(ctx)
}

// guardSweep holds the companies the guard stops and returns those still
// held; a confirmed hold lets its company's sweep run.
func (h *Handlers) guardSweep(ctx context.Context, now time.Time) ([]string, error) {
	counts, err := h.store.SweepCounts(ctx, now)
	if err != nil {
		return nil, err
	}
	held := []string{}
	for _, c := range counts {
		if !h.sweepGuard.Holds(c.WouldLock, c.Employed) {
			continue
		}
		hold, fresh, err := h.store.HoldSweep(ctx, c, now)
		if err != nil {
			return nil, err
		}
		held = append(held, c.CompanyID)
		if !hold.ConfirmedAt.IsZero() {
			h.logger(ctx).Info("sweep proceeds: confirmed", slog.String("company_id", c.CompanyID), slog.Int("would_lock", c.WouldLock))
			continue
		}
		if !fresh {
			continue
		}
		h.logger(ctx).Error("sweep held: it would lock too many accounts; confirm with dormancy sweep confirm or the API",
			slog.String("company_id", c.CompanyID), slog.Int("would_lock", c.WouldLock), slog.Int("employed", c.Employed))
		ids, err := h.store.RecordSweepHeld(ctx, hold, now)
		if err != nil {
			return nil, err
		}
		if err := h.enqueueNotices(ctx, ids); err != nil {
			return nil, err
		}
	}
	return held, nil
}

// PurgeTokens deletes verification links dead for longer than the
// retention (Maintenance.MinAge, default tasks.DefaultTokenRetention), and
// the maintenance jobs' claims older than postgres.MaintenanceRunRetention.
func (h *Handlers) PurgeTokens(ctx context.Context, t *asynq.Task) error {
	return h.maintenance(ctx, t, func(ctx context.Context, p tasks.Maintenance) (int, error) {
		before := h.now().Add(-p.MinAge(tasks.DefaultTokenRetention))
		n, err := h.batches(ctx, "token purge batch", p.Batch(), func() (int, error) {
			return h.store.PurgeTokensBatch(ctx, before, p.Batch())
		})
		if err != nil {
			return n, err
		}
		runs, err := h.store.PurgeMaintenanceRuns(ctx, h.now().Add(-postgres.MaintenanceRunRetention))
		return n + runs, err
	})
}

// Retention keeps the partitioned tables' coming months ready
// (postgres.PartitionsAhead) and applies the retention settings
// (Config.Retention): months of login attempts past them dropped whole,
// then old login attempts, audit events and mail rows deleted and old
// mails' personal fields cleared, a batch at a time, each kind logged with
// its count.
func (h *Handlers) Retention(ctx context.Context, t *asynq.Task) error {
	return h.maintenance(ctx, t, func(ctx context.Context, p tasks.Maintenance) (int, error) {
		now := h.now()
		created, err := h.store.EnsurePartitions(ctx, now)
		if err != nil {
			return 0, err
		}
		if created > 0 {
			h.logger(ctx).Info("partitions created", slog.Int("partitions", created))
		}
		total, err := h.store.DropExpiredPartitions(ctx, h.retention, now)
		if err != nil {
			return total, err
		}
		if total > 0 {
			h.logger(ctx).Info("retention applied", slog.String("step", "partitions dropped"), slog.Int("rows", total))
		}
		for _, step := range h.store.RetentionSteps(h.retention) {
			n, err := h.batches(ctx, step.Name, p.Batch(), func() (int, error) {
				return step.Batch(ctx, now, p.Batch())
			})
			total += n
			if err != nil {
				return total, err
			}
			if n > 0 {
				h.logger(ctx).Info("retention applied", slog.String("step", step.Name), slog.Int("rows", n))
			}
		}
		return total, nil
	})
}

// DailyDigest writes the daily digest of each company that asked for it
// and whose 09:00 hour it is (policy.DigestDue), once per company and day:
// the last 24 hours' locks, unlocks, relocks and alerts and who turns
// dormant in the coming week, to its administrators or its login
// notification recipients. A day with nothing to say sends nothing.
func (h *Handlers) DailyDigest(ctx context.Context, t *asynq.Task) error {
	return h.maintenance(ctx, t, func(ctx context.Context, p tasks.Maintenance) (int, error) {
		now := h.now()
		companies, err := h.store.DigestCompanies(ctx)
		if err != nil {
			return 0, err
		}
		sent := 0
		for _, dc := range companies {
			end, due := policy.DigestDue(now, dc.Location)
			if !due {
				continue
			}
			// Done days are skipped; an unfinished one (a crash, a replica
			// beside this one) is written again, and the mails' keys keep
			// each recipient's digest to one.
			done, err := h.store.DigestDone(ctx, dc.ID, end, dc.Location)
			if err != nil {
				return sent, err
			}
			if done {
				continue
			}
			content, err := h.store.Digest(ctx, dc.ID, end)
			if err != nil {
				return sent, err
			}
			var ids []int64
			if !content.Empty() {
				if ids, err = h.store.RecordDigestMails(ctx, dc, end, now); err != nil {
					return sent, err
				}
				if err := h.enqueueNotices(ctx, ids); err != nil {
					return sent, err
				}
			}
			if err := h.store.FinishDigestDay(ctx, dc.ID, end, dc.Location, len(ids), now); err != nil {
				return sent, err
			}
			sent += len(ids)
		}
		return sent, nil
	})
}

// PrelockWarnings mails the owners whose account is a configured number of
// days from its lock (policy.PrelockWarningDue decides), once per stage and
// dormancy cycle. The mails are written to the outbox with their warning
// records in one statement per batch and queued after it.
func (h *Handlers) PrelockWarnings(ctx context.Context, t *asynq.Task) error {
	return h.maintenance(ctx, t, func(ctx context.Context, p tasks.Maintenance) (int, error) {
		now := h.now()
		var cur postgres.Cursor
		return h.batches(ctx, "prelock warning batch", p.Batch(), func() (int, error) {
			subs, next, err := h.store.PrelockCandidates(ctx, now, cur, p.Batch())
			if err != nil {
				return 0, err
			}
			cur = next
			var due []postgres.PrelockWarningDue
			for _, s := range subs {
				if w, ok := policy.PrelockWarningDue(s.Employee, s.Company, now); ok {
					due = append(due, postgres.PrelockWarningDue{AccountID: s.Employee.ID, PrelockWarning: w})
				}
			}
			ids, err := h.store.RecordPrelockWarnings(ctx, due, now)
			if err != nil {
				return 0, err
			}
			if err := h.enqueueNotices(ctx, ids); err != nil {
				return 0, err
			}
			if len(ids) > 0 {
				h.logger(ctx).Info("prelock warnings written", slog.Int("candidates", len(subs)), slog.Int("mails", len(ids)))
			}
			// The batch is full when the candidates were, however few were due.
			return len(subs), nil
		})
	})
}

// RequeueMail hands to the queue the login attempts held in Postgres
// while Redis was down (tasks.Client.ReportLoginAttempt), and again the
// pending mails older than
// Maintenance.MinAge (default tasks.DefaultMailRequeueAfter) whose task was
// lost: a process that died between its commit and its enqueue, a Redis
// that lost data, or an unlock made synchronously by the admin server.
//
// An alert or a notice is simply enqueued again; its task ID is the mail's,
// so a task still queued or retrying makes that a no-op. A verification
// mail goes through the same path as a redelivered login attempt: queued
// again with its link, rebuilt from the token's seed. A verification mail
// whose link died meanwhile is dropped instead, so that it does not
// supersede a newer email's link.
func (h *Handlers) RequeueMail(ctx context.Context, t *asynq.Task) error {
	return h.maintenance(ctx, t, func(ctx context.Context, p tasks.Maintenance) (int, error) {
		now := h.now()
		before := now.Add(-p.MinAge(tasks.DefaultMailRequeueAfter))
		dropped, err := h.batches(ctx, "dead verification mail batch", p.Batch(), func() (int, error) {
			return h.store.DropDeadVerificationMails(ctx, before, now, p.Batch())
		})
		if err != nil {
			return dropped, err
		}
		var after int64
		n, err := h.batches(ctx, "requeue mail batch", p.Batch(), func() (int, error) {
			ms, err := h.store.StaleMails(ctx, before, after, p.Batch())
			if err != nil || len(ms) == 0 {
				return 0, err
			}
			after = ms[len(ms)-1].ID
			return len(ms), h.requeueStale(ctx, ms)
		})
		if err != nil {
			return dropped + n, err
		}
		held, err := h.batches(ctx, "held task batch", p.Batch(), func() (int, error) {
			return h.store.DrainHeldTasks(ctx, p.Batch(), func(ht postgres.HeldTask) error {
				t, err := tasks.RebuildTask(ht.TaskType, ht.Payload)
				if err != nil {
					// Only this package's constructors hold tasks; a row
					// that does not rebuild never will, and is dropped.
					h.logger(ctx).Error("held task dropped", slog.Int64("held_id", ht.ID), slog.String("error", err.Error()))
					return nil
				}
				if _, err := h.held.EnqueueContext(ctx, t, h.layout.Options(t)...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
					return fmt.Errorf("worker: enqueue held task %d: %w", ht.ID, err)
				}
				return nil
			})
		})
		return dropped + n + held, err
	})
}

// requeueStale queues one batch of stale mails. Mails of a login attempt
// are handled per attempt under the account's row lock, as a redelivered
// attempt would handle them.
func (h *Handlers) requeueStale(ctx context.Context, ms []postgres.StaleMail) error {
	var out []outgoing
	attempts := map[int64]bool{}
	for _, m := range ms {
		switch {
		case m.AttemptID != 0:
			if attempts[m.AttemptID] {
				continue
			}
			attempts[m.AttemptID] = true
			var more []outgoing
			err := h.store.WithTx(ctx, func(tx *postgres.Tx) error {
				sub, err := tx.LockAccountByID(ctx, m.AccountID)
				if err != nil {
					return err
				}
				more, err = h.requeueAttemptMail(ctx, tx, sub.Employee, sub.Company.Policy, m.AttemptID)
				return err
			})
			if errors.Is(err, policy.ErrNotFound) {
				continue // the account was deleted meanwhile, and its mail with it
			}
			if err != nil {
				return fmt.Errorf("requeue mails of attempt %d: %w", m.AttemptID, err)
			}
			// Queue each attempt's mail as soon as its transaction commits.
			if err := h.enqueue(ctx, more); err != nil {
				return err
			}
		case m.Kind == postgres.MailDormantLoginAlert:
			out = append(out, outgoing{typ: tasks.TypeEmailAlert, email: tasks.Email{MailID: m.ID}})
		case m.Kind == postgres.MailVerification:
			// Its attempt is gone, so the link cannot be re-issued the way
			// the attempt would; it is dropped once the link dies.
			h.logger(ctx).Warn("pending verification mail without attempt", slog.Int64("mail_id", m.ID))
		default:
			out = append(out, outgoing{typ: tasks.TypeEmailNotice, email: tasks.Email{MailID: m.ID}})
		}
	}
	if len(out) > 0 {
		h.logger(ctx).Info("mail requeued", slog.Int("mails", len(out)))
	}
	return h.enqueue(ctx, out)
}
