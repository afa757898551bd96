package postgres

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/uptrace/bun"
)

// PartitionedTables are the tables partitioned by month of their time
// column (timeColumn; migrations 000019 and 000020): retention drops their
// months whole.
var PartitionedTables = []string{"login_attempts", "audit_events"}

// PartitionsAhead is how many months past the current one EnsurePartitions
// keeps ready, so a day the job does not run costs nothing.
const PartitionsAhead = 3

// monthStart is the first instant of t's month, UTC: partitions are months
// of UTC.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// PartitionName names table's partition of the month that begins at month,
// as the migration names the first one: login_attempts_y2027m01.
func PartitionName(table string, month time.Time) string {
	return fmt.Sprintf("%s_y%04dm%02d", table, month.Year(), int(month.Month()))
}

// Partition is one month (or the legacy range, or the default) of a
// partitioned table. From is zero for MINVALUE; both are zero for the
// default partition.
type Partition struct {
	Name     string
	From, To time.Time
	Default  bool
}

var boundRE = regexp.MustCompile(`FROM \((MINVALUE|'[^']+')\) TO \('([^']+)'\)`)

// Partitions lists table's partitions, oldest first, the default last.
func (s *Store) Partitions(ctx context.Context, table string) ([]Partition, error) {
	return partitions(ctx, s.db, table)
}

func partitions(ctx context.Context, db bun.IDB, table string) ([]Partition, error) {
	var rows []struct {
		Name  string
		Bound string
	}
	// The bounds print in the session's zone; UTC makes them parse alike.
	err := db.NewRaw(`SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = ?::regclass`, table).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres.Partitions(%s): %w", table, err)
	}
	var out, def []Partition
	for _, r := range rows {
		if r.Bound == "DEFAULT" {
			def = append(def, Partition{Name: r.Name, Default: true})
			continue
		}
		m := boundRE.FindStringSubmatch(r.Bound)
		if m == nil {
			return nil, fmt.Errorf("postgres.Partitions(%s): bound %q of %s", table, r.Bound, r.Name)
		}
		p := Partition{Name: r.Name}
		if m[1] != "MINVALUE" {
			if p.From, err = parsePGTime(m[1][1 : len(m[1])-1]); err != nil {
				return nil, fmt.Errorf("postgres.Partitions(%s): %w", table, err)
			}
		}
		if p.To, err = parsePGTime(m[2]); err != nil {
			return nil, fmt.Errorf("postgres.Partitions(%s): %w", table, err)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Partition) int { return a.To.Compare(b.To) })
	return append(out, def...), nil
}

func parsePGTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05-07", "2006-01-02 15:04:05-07:00", "2006-01-02 15:04:05.999999-07"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("partition bound %q", s)
}

// EnsurePartitions creates, for each partitioned table, the months from
// now's through PartitionsAhead after it that no partition covers yet, and
// returns how many it created. Rows that waited in the default partition
// for such a month move into it in the same transaction.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time) (int, error) {
	created := 0
	for _, table := range PartitionedTables {
		col := timeColumn[table]
		for i := range PartitionsAhead + 1 {
			from := monthStart(now).AddDate(0, i, 0)
			to := from.AddDate(0, 1, 0)
			err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				// One creator at a time per table; the others then see its
				// partition and skip.
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext(?))`, "partitions:"+table); err != nil {
					return err
				}
				ps, err := partitions(ctx, tx, table)
				if err != nil {
					return err
				}
				for _, p := range ps {
					if !p.Default && p.From.Compare(from) <= 0 && p.To.After(from) {
						return nil // covered
					}
				}
				name := PartitionName(table, from)
				def := table + "_default"
				for _, q := range []string{
					`CREATE TABLE ` + name + ` (LIKE ` + table + ` INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
					`WITH moved AS (DELETE FROM ` + def + ` WHERE ` + col + ` >= ?0 AND ` + col + ` < ?1 RETURNING *)
						INSERT INTO ` + name + ` SELECT * FROM moved`,
					`ALTER TABLE ` + table + ` ATTACH PARTITION ` + name + ` FOR VALUES FROM (?0) TO (?1)`,
				} {
					if _, err := tx.NewRaw(q, from, to).Exec(ctx); err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
				}
				created++
				return nil
			})
			if err != nil {
				return created, fmt.Errorf("postgres.EnsurePartitions(%s): %w", table, err)
			}
		}
	}
	return created, nil
}

// DropExpiredPartitions detaches and drops, for each partitioned table
// whose retention is set, the partitions entirely older than the cutoff
// (their upper bound at or before now minus the retention), and returns
// how many rows went with them. The rows left in a younger partition are
// the row-by-row steps' (RetentionSteps).
func (s *Store) DropExpiredPartitions(ctx context.Context, r Retention, now time.Time) (int, error) {
	dropped := 0
	for _, table := range PartitionedTables {
		keep := r.keep(table)
		if keep <= 0 {
			continue
		}
		cutoff := now.Add(-keep)
		ps, err := s.Partitions(ctx, table)
		if err != nil {
			return dropped, err
		}
		for _, p := range ps {
			if p.Default || p.To.After(cutoff) {
				continue
			}
			var n int
			if err := s.db.NewRaw(`SELECT count(*) FROM `+p.Name).Scan(ctx, &n); err != nil {
				return dropped, fmt.Errorf("postgres.DropExpiredPartitions(%s): %w", p.Name, err)
			}
			// Dropping a partition holds the whole table for a moment (a
			// default partition rules out DETACH CONCURRENTLY): give up
			// after lock_timeout rather than queue logins behind a long
			// transaction; the next run tries again.
			err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, `DROP TABLE `+p.Name)
				return err
			})
			if err != nil {
				return dropped, fmt.Errorf("postgres.DropExpiredPartitions(%s): %w", p.Name, err)
			}
			dropped += n
		}
	}
	return dropped, nil
}
