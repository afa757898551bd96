package policy

import "time"

// PrelockSendFrom is the local time of day from which pre-lock warnings go
// out. The stage of a warning changes at local midnight; without this the
// first run after midnight would mail people in the middle of their night.
const PrelockSendFrom = 9 * time.Hour

// LockAt is the instant an account with last activity as in a turns
// dormant under p: Dormant is true from this instant on.
func LockAt(a Account, p Policy) time.Time { return a.LastActivity().Add(p.InactivityPeriod) }

// DaysLeft counts local calendar days from now to t in loc: 0 when t falls
// on now's local date, 1 on the next, and so on. Warnings speak of dates
// ("locked on 12/01, in 3 days"), so the count follows the calendar, not
// 24-hour blocks, and a 23- or 25-hour DST day still counts as one.
func DaysLeft(now, t time.Time, loc *time.Location) int {
	y1, m1, d1 := now.In(loc).Date()
	y2, m2, d2 := t.In(loc).Date()
	a := time.Date(y1, m1, d1, 0, 0, 0, 0, time.UTC)
	b := time.Date(y2, m2, d2, 0, 0, 0, 0, time.UTC)
	return int(b.Sub(a) / (24 * time.Hour))
}

// PrelockWarning is a warning due to an account's owner.
type PrelockWarning struct {
	// DaysBefore is the company's configured stage this warning is for;
	// each stage is sent at most once per cycle.
	DaysBefore int
	// DaysLeft is what the mail says: local calendar days until LockAt.
	DaysLeft int
	LockAt   time.Time
	// Cycle is the last activity the lock counts from. A login starts a new
	// cycle, and with it a new round of warnings.
	Cycle time.Time
}

// PrelockWarningDue says which warning, if any, is due at now to the owner
// of e, whose company is c. The stage due is the smallest configured day
// count that is at least the days left: with stages 30, 14 and 3, an
// account 20 days from its lock is due the 30-day warning, and one that the
// job first sees 2 days ahead gets only the 3-day warning, not all three.
//
// Nobody is warned who cannot act on it or whom the lock will not reach: a
// retired or exempt account, one without an email address, one that is not
// active (already locked, or unlocked by an administrator for the day), or
// one already dormant. Stages of the inactivity period or more are ignored:
// they would fall due the moment the owner logs in.
func PrelockWarningDue(e Employee, c Company, now time.Time) (PrelockWarning, bool) {
	a, p := e.Account, c.Policy
	if a.Retired || a.Exempt || e.Email == "" || a.State != StateActive || p.Location == nil {
		return PrelockWarning{}, false
	}
	lockAt := LockAt(a, p)
	if !now.Before(lockAt) {
		return PrelockWarning{}, false
	}
	h, m, s := now.In(p.Location).Clock()
	if time.Duration(h)*time.Hour+time.Duration(m)*time.Minute+time.Duration(s)*time.Second < PrelockSendFrom {
		return PrelockWarning{}, false
	}
	left := DaysLeft(now, lockAt, p.Location)
	stage := -1
	for _, d := range c.PrelockWarningDays {
		if d < 0 || time.Duration(d)*24*time.Hour >= p.InactivityPeriod || d < left {
			continue
		}
		if stage < 0 || d < stage {
			stage = d
		}
	}
	if stage < 0 {
		return PrelockWarning{}, false
	}
	return PrelockWarning{DaysBefore: stage, DaysLeft: left, LockAt: lockAt, Cycle: a.LastActivity()}, true
}
