package postgres

// The SQL twins of policy's rules. Each fragment below is the rule of the
// policy function its comment names, written for a row of accounts a
// (joined to companies c where it needs the company's settings), with the
// instant it is judged at given as SQL text (a placeholder or a column).
// Statements embed these fragments and never spell a rule out again;
// rules_test.go runs the production statements that embed each one and
// the Go function on the same edge cases and asserts that they agree.

// sqlLastActivity is policy.Account.LastActivity: the login date, else the
// creation date. The accounts_last_activity and accounts_sweep indexes are
// built on exactly this text, and the planner uses an expression index only
// for a textually identical expression: change both or neither.
const sqlLastActivity = `coalesce(a.last_login_at, a.created_at)`

// sqlDormant is policy.Dormant for an active, unexempt row at now: inactive
// for at least the company's period, which is counted in exact hours as
// time.Duration counts it (a DST day moves nothing).
func sqlDormant(now string) string {
	return sqlLastActivity + ` <= ` + now + ` - c.inactivity_days * interval '24 hours'`
}

// sqlUnlockLapsed is policy.Decide's reading of a same-day unlock at or
// past its deadline: the account is locked, relocked or not.
func sqlUnlockLapsed(now string) string {
	return `(a.lock_state = 'unlocked_until' AND a.unlocked_until <= ` + now + `)`
}

// sqlRefusedByLock is policy.Decide refusing an active row because of a
// lock (policy.Outcome.Locked): locked, an unlock that lapsed, or dormant
// and not yet swept, which the next login or sweep locks.
func sqlRefusedByLock(now string) string {
	return `(a.lock_state = 'locked' OR ` + sqlUnlockLapsed(now) +
		` OR (a.lock_state = 'active' AND NOT a.exempt AND ` + sqlDormant(now) + `))`
}

// sqlStartOfDate is policy.StartOfDate: the instant the calendar date
// (SQL text of type date) begins in the time zone named by zone. Where the
// clocks repeat midnight (America/Havana in November), AT TIME ZONE reads
// 00:00 as the later one; the day began at the first, an hour after the
// eve's 23:00.
func sqlStartOfDate(date, zone string) string {
	return `least(` + date + `::timestamp AT TIME ZONE ` + zone + `, ((` + date + `::timestamp - interval '1 hour') AT TIME ZONE ` + zone + `) + interval '1 hour')`
}

// sqlSweepable is policy.Decide locking an active row at its next login
// (TransitionLock): employed, not exempt, not locked, and dormant. The
// sweep locks these rows, and the guard and the dry run count and list them.
func sqlSweepable(now string) string {
	return `(a.lock_state = 'active' AND a.status = 'active' AND NOT a.exempt AND ` + sqlDormant(now) + `)`
}

// accountsWithCompany is the FROM clause the fragments that read company
// settings need.
const accountsWithCompany = `accounts a JOIN companies c ON c.id = a.company_id`

// Version rules, shared by companies, accounts and retirements (mergeSQL
// states them through sqlVersionAction):
//   - a newer version applies;
//   - the same version is the same event delivered again: unchanged;
//   - an older version arrived late: stale, nothing changes;
//   - version 0 is an unversioned import row, which applies only to a
//     record no versioned event has touched (stored version 0 too).
const (
	actionApply     = "apply"
	actionDuplicate = "duplicate"
	actionStale     = "stale"
)

// versionAction is the version rule for a record against the stored row;
// force (fixtures and seeds) applies whatever the versions.
func versionAction(version, stored int64, force bool) string {
	switch {
	case force, version > stored, version == 0 && stored == 0:
		return actionApply
	case version == stored:
		return actionDuplicate
	}
	return actionStale
}

// sqlVersionAction is versionAction as the WHEN branches of a CASE, for
// the incoming and stored versions and force given as SQL text.
func sqlVersionAction(force, version, stored string) string {
	return `WHEN ` + force + ` OR ` + version + ` > ` + stored + ` OR (` + version + ` = 0 AND ` + stored + ` = 0) THEN '` + actionApply + `'
			WHEN ` + version + ` = ` + stored + ` THEN '` + actionDuplicate + `'
			ELSE '` + actionStale + `'`
}

// sqlAlertedWithin is the negation of policy.AlertDue for one alert mail m,
// given since = now - the alert window (computed in Go, as AlertDue
// subtracts): m was created after since, so its recipient is not alerted
// about the same account again yet.
func sqlAlertedWithin(since string) string {
	return `m.created_at > ` + since
}
