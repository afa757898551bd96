package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// DigestCompany is a company that asked for the daily digest.
type DigestCompany struct {
	ID       string
	Digest   policy.Digest
	Location *time.Location
}

// DigestCompanies lists the companies with the digest on.
func (s *Store) DigestCompanies(ctx context.Context) ([]DigestCompany, error) {
	var rows []struct{ ID, Digest, TimeZone string }
	if err := s.db.NewRaw(`SELECT id, digest, time_zone FROM companies WHERE digest <> 'off' ORDER BY id`).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("postgres.DigestCompanies: %w", err)
	}
	out := make([]DigestCompany, 0, len(rows))
	for _, r := range rows {
		loc, err := loadLocation(r.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("postgres.DigestCompanies: %q: %w", r.ID, err)
		}
		out = append(out, DigestCompany{ID: r.ID, Digest: policy.Digest(r.Digest), Location: loc})
	}
	return out, nil
}

// DigestItem is one line of the digest: an account and when.
type DigestItem struct {
	Name       string
	Department string
	LoginID    string
	At         time.Time
}

// DigestContent is what a company's digest for the day ending at End says.
type DigestContent struct {
	End                             time.Time
	Locks, Unlocks, Relocks, Alerts []DigestItem
	// Upcoming are the accounts that turn dormant in the 7 days after end.
	Upcoming []DigestItem
}

// Empty reports whether there is nothing to say.
func (c DigestContent) Empty() bool {
	return len(c.Locks)+len(c.Unlocks)+len(c.Relocks)+len(c.Alerts)+len(c.Upcoming) == 0
}

// digestLimit bounds each list; the report has the rest.
const digestLimit = 50

// Digest reads what the company's digest for the 24 hours before end says:
// the events of that day and the accounts the sweep would lock in the
// week after end (the sweep's own rule, sqlSweepable, at each instant).
func (s *Store) Digest(ctx context.Context, companyID string, end time.Time) (DigestContent, error) {
	c := DigestContent{End: end}
	var events []struct {
		Kind, Name, Department, LoginID string
		OccurredAt                      time.Time
	}
	err := s.db.NewRaw(`SELECT e.kind, coalesce(a.name, '') AS name, coalesce(a.department, '') AS department,
			coalesce(a.login_id, '') AS login_id, e.occurred_at
		FROM audit_events e LEFT JOIN accounts a ON a.id = e.account_id
		WHERE e.company_id = ? AND e.occurred_at >= ? AND e.occurred_at < ? AND e.kind IN (?, ?, ?, ?, ?)
		ORDER BY e.occurred_at, e.id`,
		companyID, end.Add(-24*time.Hour), end, EventLocked, EventUnlocked, EventVerificationUsed, EventRelocked, EventAlertSent).Scan(ctx, &events)
	if err != nil {
		return c, fmt.Errorf("postgres.Digest(%q): %w", companyID, err)
	}
	for _, e := range events {
		it := DigestItem{Name: e.Name, Department: e.Department, LoginID: e.LoginID, At: e.OccurredAt}
		var list *[]DigestItem
		switch EventKind(e.Kind) {
		case EventLocked:
			list = &c.Locks
		case EventUnlocked, EventVerificationUsed:
			list = &c.Unlocks
		case EventRelocked:
			list = &c.Relocks
		case EventAlertSent:
			list = &c.Alerts
		}
		if len(*list) < digestLimit {
			*list = append(*list, it)
		}
	}
	// Not sweepable at end, sweepable a week later: they turn dormant in
	// between, at their last activity plus the period.
	var upcoming []struct {
		Name, Department, LoginID string
		LockAt                    time.Time
	}
	err = s.db.NewRaw(`SELECT a.name, a.department, a.login_id, `+sqlLastActivity+` + c.inactivity_days * interval '24 hours' AS lock_at
		FROM `+accountsWithCompany+`
		WHERE a.company_id = ?2 AND NOT `+sqlSweepable("?0::timestamptz")+` AND `+sqlSweepable("?1::timestamptz")+`
		ORDER BY lock_at, a.id LIMIT ?3`, end, end.Add(policy.DigestLookahead), companyID, digestLimit).Scan(ctx, &upcoming)
	if err != nil {
		return c, fmt.Errorf("postgres.Digest(%q): %w", companyID, err)
	}
	for _, u := range upcoming {
		c.Upcoming = append(c.Upcoming, DigestItem{Name: u.Name, Department: u.Department, LoginID: u.LoginID, At: u.LockAt})
	}
	return c, nil
}

// DigestKey is the idempotency key of one recipient's digest of the day
// ending at end.
func DigestKey(companyID string, end time.Time, recipientID int64) string {
	return fmt.Sprintf("%s:%d:%d:%s", MailDailyDigest, end.Unix(), recipientID, companyID)
}

// ParseDigestKey reads the end of the day back from a DigestKey.
func ParseDigestKey(key string) (time.Time, error) {
	parts := strings.SplitN(key, ":", 4)
	if len(parts) != 4 || parts[0] != string(MailDailyDigest) {
		return time.Time{}, fmt.Errorf("postgres.ParseDigestKey(%q): not a digest key", key)
	}
	sec, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("postgres.ParseDigestKey(%q): %w", key, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// DigestDone reports whether the company's digest of the day ending at
// end was written (or found empty) already.
func (s *Store) DigestDone(ctx context.Context, companyID string, end time.Time, loc *time.Location) (bool, error) {
	var done bool
	err := s.db.NewRaw(`SELECT EXISTS (SELECT 1 FROM digest_days WHERE company_id = ? AND day = ?::date)`,
		companyID, end.In(loc).Format(time.DateOnly)).Scan(ctx, &done)
	if err != nil {
		return false, fmt.Errorf("postgres.DigestDone(%q): %w", companyID, err)
	}
	return done, nil
}

// FinishDigestDay records that the company's digest of the day ending at
// end went out in mails mails (0: nothing to say).
func (s *Store) FinishDigestDay(ctx context.Context, companyID string, end time.Time, loc *time.Location, mails int, now time.Time) error {
	_, err := s.db.NewRaw(`INSERT INTO digest_days (company_id, day, mails, created_at) VALUES (?, ?::date, ?, ?)
		ON CONFLICT (company_id, day) DO NOTHING`, companyID, end.In(loc).Format(time.DateOnly), mails, now).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.FinishDigestDay(%q): %w", companyID, err)
	}
	return nil
}

// RecordDigestMails writes the digest to each of its recipients with an
// address: the administrators who can act at now (policy.CanAct), or the
// login notification recipients. Each mail's key names the day and the
// recipient, so a run repeated after a crash writes none twice. It returns
// the mails written now, to queue; one written before and not queued is
// the requeue job's.
func (s *Store) RecordDigestMails(ctx context.Context, dc DigestCompany, end, now time.Time) ([]int64, error) {
	where, keep := `a.can_manage_employees`, canActAt(now)
	if dc.Digest == policy.DigestRecipients {
		where = `EXISTS (SELECT 1 FROM login_notification_recipients r WHERE r.account_id = a.id)`
		keep = func(policy.Employee, policy.Company) bool { return true }
	}
	to, err := s.noticeTargets(ctx, s.db, dc.ID, where, keep)
	if err != nil {
		return nil, fmt.Errorf("postgres.RecordDigestMails(%q): %w", dc.ID, err)
	}
	keys := make([]string, len(to))
	for i, id := range to {
		keys[i] = DigestKey(dc.ID, end, id)
	}
	ids, err := insertNotices(ctx, s.db, MailDailyDigest, to, keys, now)
	if err != nil {
		return nil, fmt.Errorf("postgres.RecordDigestMails(%q): %w", dc.ID, err)
	}
	return ids, nil
}
