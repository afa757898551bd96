package postgres

import (
	"context"
	"fmt"
	"time"
)

// MaintenanceRunRetention is how long a job's claimed periods are kept:
// long enough to read back when each job last ran.
const MaintenanceRunRetention = 30 * 24 * time.Hour

// ClaimMaintenanceRun claims job typ's period for the task taskID and
// reports whether the task may run it: the period was free, or taskID
// already holds it (a retry). Another task holding it means another
// replica's enqueue of the same period runs or ran it.
func (s *Store) ClaimMaintenanceRun(ctx context.Context, typ string, period time.Time, taskID string, now time.Time) (bool, error) {
	// Two statements: a conflicting row committed after the INSERT's
	// snapshot is seen only by a later statement's.
	var holder []string
	err := s.db.NewRaw(`INSERT INTO maintenance_runs (task_type, period, task_id, claimed_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (task_type, period) DO NOTHING RETURNING task_id`, typ, period, taskID, now).Scan(ctx, &holder)
	if err == nil && len(holder) == 0 {
		err = s.db.NewRaw(`SELECT task_id FROM maintenance_runs WHERE task_type = ? AND period = ?`, typ, period).Scan(ctx, &holder)
	}
	if err != nil || len(holder) == 0 {
		return false, fmt.Errorf("postgres.ClaimMaintenanceRun(%s, %s): %w", typ, period.Format(time.RFC3339), err)
	}
	return holder[0] == taskID, nil
}

// FinishMaintenanceRun records that job typ's run of period ended well,
// having changed rows rows.
func (s *Store) FinishMaintenanceRun(ctx context.Context, typ string, period time.Time, rows int, now time.Time) error {
	_, err := s.db.NewRaw(`UPDATE maintenance_runs SET finished_at = ?, rows = ? WHERE task_type = ? AND period = ?`,
		now, rows, typ, period).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.FinishMaintenanceRun(%s): %w", typ, err)
	}
	return nil
}

// PurgeMaintenanceRuns deletes the claims of periods before before.
func (s *Store) PurgeMaintenanceRuns(ctx context.Context, before time.Time) (int, error) {
	return s.execCount(ctx, "postgres.PurgeMaintenanceRuns", `DELETE FROM maintenance_runs WHERE period < ?`, before)
}
