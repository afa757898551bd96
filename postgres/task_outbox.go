package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// HoldTask keeps a task that could not be enqueued until DrainHeldTasks
// hands it over. Holding a task ID twice keeps the first.
func (s *Store) HoldTask(ctx context.Context, typ, taskID string, payload []byte, now time.Time) error {
	_, err := s.db.NewRaw(`INSERT INTO task_outbox (task_type, task_id, payload, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (task_id) DO NOTHING`, typ, taskID, payload, now).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.HoldTask(%s): %w", taskID, err)
	}
	return nil
}

// HeldTask is a task waiting in the outbox.
type HeldTask struct {
	ID       int64
	TaskType string
	Payload  []byte
}

// DrainHeldTasks passes up to limit held tasks, oldest first, to enqueue
// and deletes each one enqueue accepted, in one transaction: a crash
// before the commit leaves them held, and enqueueing one twice is refused
// by its task ID. Tasks another drain holds are skipped. It returns how
// many were handed over; the first failure stops the batch.
func (s *Store) DrainHeldTasks(ctx context.Context, limit int, enqueue func(HeldTask) error) (int, error) {
	n := 0
	err := s.WithTx(ctx, func(tx *Tx) error {
		var held []HeldTask
		if err := tx.tx.NewRaw(`SELECT id, task_type, payload FROM task_outbox ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`, limit).
			Scan(ctx, &held); err != nil {
			return err
		}
		var done []int64
		var failed error
		for _, h := range held {
			if failed = enqueue(h); failed != nil {
				break
			}
			done = append(done, h.ID)
		}
		if len(done) > 0 {
			if _, err := tx.tx.NewRaw(`DELETE FROM task_outbox WHERE id = ANY(?)`, pgdialect.Array(done)).Exec(ctx); err != nil {
				return err
			}
		}
		return handedOver(done, failed, &n)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres.DrainHeldTasks: %w", err)
	}
	return n, nil
}

// handedOver ends a batch that hands rows to the queue until one fails:
// the rows handed over before the failure are kept as handed over (their
// change commits), and the failure is returned only when none was, so the
// job's next run retries the rest rather than the whole batch.
func handedOver(done []int64, failed error, n *int) error {
	*n = len(done)
	if failed != nil && len(done) == 0 {
		return failed
	}
	return nil
}
