package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/policy"
)

// ReportSummary is what an assessor reads first: how many accounts are
// inactive past their company's period, how many of those are locked, why
// the others are not, and what dormancy did in the report's period. The
// counts apply the policy through its SQL twins (rules.go), as of now.
type ReportSummary struct {
	Accounts int `json:"accounts"`
	// Inactive counts the accounts whose last activity is at least the
	// period old, whatever their state.
	Inactive int `json:"inactive_past_period"`
	// InactiveLocked are locked, or their same-day unlock has lapsed: a
	// login is refused.
	InactiveLocked int `json:"inactive_locked"`
	// InactiveNotLocked is Inactive minus InactiveLocked, by reason.
	InactiveNotLocked int `json:"inactive_not_locked"`
	NotLockedExempt   int `json:"not_locked_exempt"`
	NotLockedRetired  int `json:"not_locked_retired"`
	// NotLockedUnlocked were unlocked by an administrator until a deadline
	// still ahead.
	NotLockedUnlocked int `json:"not_locked_unlocked"`
	// NotLockedPending are active, unexempt and dormant: the next login or
	// sweep locks them (a login is already refused).
	NotLockedPending int `json:"not_locked_pending_sweep"`

	// Events in the report's period.
	Locks   int `json:"locks"`
	Unlocks int `json:"unlocks"`
	Relocks int `json:"relocks"`
	Alerts  int `json:"alerts"`
}

// ReportCompany reads the company a report is of. An unknown company is
// ErrNotFound.
func (s *Store) ReportCompany(ctx context.Context, companyID string) (policy.Company, error) {
	co, err := s.loadCompany(ctx, companyID)
	if err != nil {
		return policy.Company{}, fmt.Errorf("postgres.ReportCompany(%q): %w", companyID, err)
	}
	return co, nil
}

// AccountCount is how many accounts the company has: the total a report's
// progress counts towards, read from the company's index alone.
func (s *Store) AccountCount(ctx context.Context, companyID string) (int, error) {
	var n int
	if err := s.db.NewRaw(`SELECT count(*) FROM accounts WHERE company_id = ?`, companyID).Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("postgres.AccountCount(%q): %w", companyID, err)
	}
	return n, nil
}

// ReportSummary counts the company's accounts at now, with the events of
// [since, until). It reads every account of the company, so only the
// report that prints the summary asks for it.
func (s *Store) ReportSummary(ctx context.Context, companyID string, now, since, until time.Time) (ReportSummary, error) {
	var sum ReportSummary
	inactive := sqlDormant("?::timestamptz")
	locked := `(a.lock_state = 'locked' OR ` + sqlUnlockLapsed("?::timestamptz") + `)`
	q := `SELECT count(*) AS accounts,
			count(*) FILTER (WHERE ` + inactive + `) AS inactive,
			count(*) FILTER (WHERE ` + inactive + ` AND ` + locked + `) AS inactive_locked,
			count(*) FILTER (WHERE ` + inactive + ` AND NOT ` + locked + ` AND a.status = 'retired') AS not_locked_retired,
			count(*) FILTER (WHERE ` + inactive + ` AND NOT ` + locked + ` AND a.status <> 'retired' AND a.exempt) AS not_locked_exempt,
			count(*) FILTER (WHERE ` + inactive + ` AND NOT ` + locked + ` AND a.status <> 'retired' AND NOT a.exempt AND a.lock_state = 'unlocked_until') AS not_locked_unlocked,
			count(*) FILTER (WHERE ` + inactive + ` AND NOT ` + locked + ` AND a.status <> 'retired' AND NOT a.exempt AND a.lock_state = 'active') AS not_locked_pending
		FROM ` + accountsWithCompany + ` WHERE a.company_id = ?`
	// Every placeholder but the last is the instant of the report.
	args := make([]any, strings.Count(q, "?"))
	for i := range args {
		args[i] = now
	}
	args[len(args)-1] = companyID
	err := s.db.NewRaw(q, args...).Scan(ctx,
		&sum.Accounts, &sum.Inactive, &sum.InactiveLocked, &sum.NotLockedRetired, &sum.NotLockedExempt, &sum.NotLockedUnlocked, &sum.NotLockedPending)
	if err != nil {
		return sum, fmt.Errorf("postgres.ReportSummary(%q): %w", companyID, err)
	}
	sum.InactiveNotLocked = sum.Inactive - sum.InactiveLocked
	var kinds []struct {
		Kind string
		N    int
	}
	err = s.db.NewRaw(`SELECT kind, count(*) AS n FROM audit_events
		WHERE company_id = ? AND occurred_at >= ? AND occurred_at <= ? AND kind IN (?, ?, ?, ?) GROUP BY kind`,
		companyID, since, until, EventLocked, EventUnlocked, EventRelocked, EventAlertSent).Scan(ctx, &kinds)
	if err != nil {
		return sum, fmt.Errorf("postgres.ReportSummary(%q): %w", companyID, err)
	}
	for _, k := range kinds {
		switch EventKind(k.Kind) {
		case EventLocked:
			sum.Locks = k.N
		case EventUnlocked:
			sum.Unlocks = k.N
		case EventRelocked:
			sum.Relocks = k.N
		case EventAlertSent:
			sum.Alerts = k.N
		}
	}
	return sum, nil
}

// reportChunk is how many accounts one COPY of the report reads: small
// enough that a chunk is read well inside the driver's read timeout (set
// once per statement) and held in memory whole, large enough that the
// statements cost nothing beside the rows.
//
// The first chunk is a tenth of that and each next one four times the one
// before, up to reportChunk: the first rows reach the caller (and a
// client's first byte leaves) before a whole chunk is read.
const reportChunk = 10_000

// ReportAccounts calls fn with every account of the company, by login ID,
// a chunk at a time. The chunks are COPYs (text format, read without the
// driver's per-value conversions, which cost twice what the server spends
// on a row) walking the login IDs in one read-only snapshot, so the report
// is of one instant. Two goroutines of its own read the chunk after next
// and parse the next one while fn is given this one, so the server's work,
// the reading and fn's overlap on every core; memory holds a few chunks,
// however many accounts there are. The slice is reused once fn returns.
func (s *Store) ReportAccounts(ctx context.Context, companyID string, fn func([]policy.Employee) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	raw := make(chan string, 1)
	parsed := make(chan []policy.Employee, 1)
	free := make(chan []policy.Employee, 2)
	// Each goroutine's error is read once the channel it closes is closed.
	var copyErr, parseErr error
	go func() {
		defer close(raw)
		copyErr = s.copyAccounts(ctx, companyID, func(chunk string) error {
			select {
			case raw <- chunk:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	go func() {
		defer close(parsed)
		defer func() {
			for range raw { // until the copier has stopped
			}
		}()
		for chunk := range raw {
			var employees []policy.Employee
			select {
			case employees = <-free:
			default:
				employees = make([]policy.Employee, 0, reportChunk)
			}
			employees = employees[:0]
			parseErr = eachCopyRow(chunk, accountColumnCount, func(f []string) error {
				var r employeeRow
				if err := r.fromCopy(f); err != nil {
					return err
				}
				employees = append(employees, r.employee())
				return nil
			})
			if parseErr != nil {
				cancel()
				return
			}
			select {
			case parsed <- employees:
			case <-ctx.Done():
				return
			}
		}
	}()
	for employees := range parsed {
		if err := fn(employees); err != nil {
			cancel()
			for range parsed { // until both have stopped
			}
			return err
		}
		select {
		case free <- employees:
		default:
		}
	}
	for _, err := range []error{parseErr, copyErr} {
		if err != nil {
			return fmt.Errorf("postgres.ReportAccounts(%q): %w", companyID, err)
		}
	}
	return nil
}

// copyAccounts hands each chunk of the company's accounts, as COPY text, to
// fn, until a chunk comes back short.
func (s *Store) copyAccounts(ctx context.Context, companyID string, fn func(chunk string) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	var buf bytes.Buffer
	after := ""
	for limit := reportChunk / 10; ; limit = min(4*limit, reportChunk) {
		buf.Reset()
		res, err := pgdriver.CopyTo(ctx, conn, &buf, `COPY (SELECT `+accountColumns+` FROM accounts a
			WHERE a.company_id = $1 AND a.login_id > $2 ORDER BY a.login_id LIMIT $3) TO STDOUT`, companyID, after, int64(limit))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		chunk := buf.String()
		// The next chunk starts after this one's last login ID, its
		// third field.
		last := chunk[strings.LastIndexByte(chunk[:len(chunk)-1], '\n')+1:]
		f := strings.SplitN(last, "\t", 4)
		if len(f) < 4 {
			return errCopyText
		}
		if after, err = unescapeCopy(f[2]); err != nil {
			return err
		}
		if err := fn(chunk); err != nil {
			return err
		}
		if n < int64(limit) {
			return nil
		}
	}
}
