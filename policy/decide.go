package policy

import "time"

// Method is how a login attempt authenticated at the host. The method says
// only whether the login is interactive; it never unlocks anything by
// itself (see Decide).
type Method string

const (
	// MethodPassword is ID and password typed on the login screen.
	MethodPassword Method = "password"
	// MethodRemembered is the 30-day saved login. It is a login, so a dormant
	// account is locked by it, but it is not interactive: it never moves the
	// login date and never counts as the login an unlock asked for.
	MethodRemembered Method = "remembered"
	// MethodVerificationLink is a password login on the form a verification
	// link led to, reported after Redeem consumed the link. Redeem alone
	// lifts the lock; this method is decided exactly as a password login,
	// so a report naming it unlocks nobody.
	MethodVerificationLink Method = "verification_link"
	// MethodSSO is a login federated through the host's identity provider
	// (SAML, OpenID Connect): interactive, as a password login.
	MethodSSO Method = "sso"
	// MethodPasskey is a WebAuthn passkey login: interactive.
	MethodPasskey Method = "passkey"
)

// Methods lists every method, interactive ones first.
var Methods = []Method{MethodPassword, MethodVerificationLink, MethodSSO, MethodPasskey, MethodRemembered}

// Valid reports whether m is a known method.
func (m Method) Valid() bool { return m.Interactive() || m == MethodRemembered }

// Interactive reports whether a login by m is one the person made just now:
// it moves the login date and is the login an administrator's unlock asks
// for. Only the saved login is not.
func (m Method) Interactive() bool {
	return m == MethodPassword || m == MethodVerificationLink || m == MethodSSO || m == MethodPasskey
}

// Outcome is what the host does with the login.
type Outcome string

const (
	OutcomeAllow Outcome = "allow"
	// OutcomeVerifyByEmail: refused; a verification email is on its way.
	OutcomeVerifyByEmail Outcome = "verify_by_email"
	// OutcomeAskAdministrator: refused; contact an administrator.
	OutcomeAskAdministrator Outcome = "ask_administrator"
	// OutcomeRetired: dormancy does not act on retired accounts; the host
	// refuses them by its own rules.
	OutcomeRetired Outcome = "retired"
)

// Locked reports whether the outcome refuses the login because of a lock.
func (o Outcome) Locked() bool {
	return o == OutcomeVerifyByEmail || o == OutcomeAskAdministrator
}

// Transition is the change of lock state a decision asks for.
type Transition string

const (
	TransitionNone Transition = ""
	// TransitionLock: an active account turned dormant and is locked now.
	TransitionLock Transition = "lock"
	// TransitionActivate: an account unlocked by an administrator or a
	// verification link logged in and is active again.
	TransitionActivate Transition = "activate"
	// TransitionRelock: the same-day deadline of an administrator's unlock
	// passed without a login.
	TransitionRelock Transition = "relock"
)

// Decision is the answer to one login attempt.
type Decision struct {
	Outcome    Outcome
	Transition Transition
	Reason     LockReason
	// UpdateLoginDate is set for an allowed interactive login.
	UpdateLoginDate bool
	// Alert is set when the login notification recipients are to be told.
	Alert bool
}

// Decide decides one login attempt answered at now by method m on account
// a, whose company has policy p. It runs after the host verified the
// credentials, so a stranger never reaches it.
//
// now is the time dormancy answered the login (the host API's clock, or
// tasks.Client's), never a time the host claims: the worker decides again
// at that same instant, so the answer the host showed and what is recorded
// are one decision. Deadlines are enforced here, when read: a passed
// same-day deadline is refused even if the scheduler has not relocked the
// row yet.
//
// A lock dated after now (a.LockedAt) did not exist when the login was
// answered: a relock at midnight, or a sweep, that ran while the attempt
// waited in the queue. The login is decided on the state that lock
// replaced, so a login made in time counts whatever runs first.
//
// Nothing the caller names unlocks an account: a locked account stays
// locked for every method. An email ID's lock lifts only when its
// verification link is consumed (Redeem), a platform ID's only through an
// administrator's unlock.
func Decide(a Account, p Policy, m Method, now time.Time) Decision {
	if a.Retired {
		return Decision{Outcome: OutcomeRetired}
	}
	switch a.State {
	case StateLocked:
		if a.LockedAt.After(now) {
			return decideBeforeLock(a, p, m, now)
		}
		reason := a.Reason
		if reason == ReasonNone {
			reason = ReasonDormant
		}
		return refuse(a, reason, TransitionNone)
	case StateUnlockedUntil:
		if !now.Before(a.UnlockedUntil) {
			return refuse(a, ReasonDormant, TransitionRelock)
		}
		if m.Interactive() {
			return Decision{Outcome: OutcomeAllow, Transition: TransitionActivate, UpdateLoginDate: true}
		}
		// A saved login inside the window is let in, but it is not the
		// interactive login the unlock asked for: the deadline still stands.
		return Decision{Outcome: OutcomeAllow}
	}
	if Dormant(a, p, now) {
		return refuse(a, ReasonDormant, TransitionLock)
	}
	return Decision{Outcome: OutcomeAllow, UpdateLoginDate: m.Interactive()}
}

// decideBeforeLock decides a login answered before the lock on a was made:
// on an unlock whose deadline lapsed into that lock (a relock), or else on
// the active account the lock replaced. An interactive login allowed there
// lifts the lock, as it would have prevented it; anything else leaves the
// lock standing.
func decideBeforeLock(a Account, p Policy, m Method, now time.Time) Decision {
	before := a
	before.LockedAt, before.LapsedDeadline, before.Reason = time.Time{}, time.Time{}, ReasonNone
	if a.LapsedDeadline.IsZero() {
		before.State = StateActive
	} else {
		before.State, before.UnlockedUntil = StateUnlockedUntil, a.LapsedDeadline
	}
	d := Decide(before, p, m, now)
	switch {
	case d.Outcome == OutcomeAllow && d.UpdateLoginDate:
		d.Transition = TransitionActivate
	default:
		d.Transition = TransitionNone
	}
	return d
}

// CanAct reports whether an administrator can act at now: an active account
// with the employee-management permission that Decide would let in by an
// interactive login now (not locked, not past a lapsed unlock, not dormant
// enough for the next sweep to lock). Only such administrators are listed
// on a platform ID's lock message, accepted as the actor of an unlock, and
// told of a held sweep. It has no SQL twin: the store loads the candidates
// and asks this function.
func CanAct(e Employee, p Policy, now time.Time) bool {
	return e.CanManageEmployees && Decide(e.Account, p, MethodPassword, now).Outcome == OutcomeAllow
}

func refuse(a Account, reason LockReason, t Transition) Decision {
	d := Decision{Outcome: OutcomeAskAdministrator, Transition: t, Reason: reason, Alert: true}
	if a.IDKind == IDKindEmail {
		d.Outcome = OutcomeVerifyByEmail
	}
	return d
}

// Dormant reports whether an active account has been inactive for at least
// the inactivity period at now. Exactly at the threshold counts as dormant.
func Dormant(a Account, p Policy, now time.Time) bool {
	if a.Retired || a.Exempt {
		return false
	}
	return now.Sub(a.LastActivity()) >= p.InactivityPeriod
}

// DormantSince is the instant an account with last activity at t turns
// dormant; the sweep selects rows whose activity is at or before
// now - InactivityPeriod, which is this rule turned around.
func DormantSince(p Policy, now time.Time) time.Time { return now.Add(-p.InactivityPeriod) }

// StartOfDate is when the calendar date y-m-d begins in loc: what a date
// given alone (an imported or API "created_at": "2026-04-01") means. A day
// whose midnight the clocks skip begins when they resume.
func StartOfDate(y int, m time.Month, d int, loc *time.Location) time.Time {
	return NextMidnight(time.Date(y, m, d-1, 12, 0, 0, 0, loc), loc)
}

// NextMidnight is the first local midnight strictly after t in loc: the
// same-day deadline of an unlock made at t. It is computed on the calendar,
// not by adding 24 hours, so a day of 23 or 25 hours (DST) ends at its own
// midnight.
func NextMidnight(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	y, mo, d := l.Date()
	next := time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
	start, end := next.ZoneBounds()
	if ny, nm, nd := next.Date(); ny == y && nm == mo && nd == d {
		// The clocks skipped midnight (00:00 -> 01:00, as in America/Havana
		// or America/Santiago) and time.Date resolved the missing 00:00 with
		// the later offset, back into day d (23:00), possibly before t. The
		// next day starts where that zone period ends.
		return end
	}
	if start.After(t) {
		// Midnight happened twice (01:00 -> 00:00, as in Asia/Amman until
		// 2022) and time.Date picked the later one: if the zone period before
		// next's already reached the next date, the first midnight is in it.
		prev := start.Add(-time.Nanosecond)
		if py, pm, pd := prev.Date(); py == next.Year() && pm == next.Month() && pd == next.Day() {
			_, off := prev.Zone()
			wall := time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
			return wall.Add(-time.Duration(off) * time.Second).In(loc)
		}
	}
	return next
}

// UnlockDeadline is the deadline of an administrator's unlock clicked at
// requested and carried out at now: the local midnight after the click, as
// the confirm dialog's 本日中 promised, so an unlock queued at 23:59:50 and
// run after midnight does not last a whole extra day. A click time after
// now, or none (a payload from before the field), counts as now, so a clock
// running ahead cannot widen the window. ok is false when now is at or past
// the deadline: the unlock came too late to let anyone in.
func UnlockDeadline(requested, now time.Time, loc *time.Location) (deadline time.Time, ok bool) {
	if requested.IsZero() || requested.After(now) {
		requested = now
	}
	deadline = NextMidnight(requested, loc)
	return deadline, now.Before(deadline)
}

// TokenExpiry is when a verification link issued at now stops working.
func TokenExpiry(p Policy, now time.Time) time.Time { return now.Add(p.VerificationTTL) }

// TokenIssueDue reports whether a locked email-ID account may be sent a new
// verification email at now, given when its newest link was issued (zero if
// never). This rate-limits resends per account.
func TokenIssueDue(p Policy, lastIssued, now time.Time) bool {
	return lastIssued.IsZero() || now.Sub(lastIssued) >= p.ResendInterval
}

// AlertDue reports whether a recipient who was last alerted about an
// account at last (zero if never) is alerted again for an attempt at now.
func AlertDue(p Policy, last, now time.Time) bool {
	return last.IsZero() || now.Sub(last) >= p.AlertWindow
}

// DeviceKind is the kind of device a login came from, as the alert shows it.
type DeviceKind string

const (
	DevicePC         DeviceKind = "pc"
	DeviceSmartphone DeviceKind = "smartphone"
	DeviceTablet     DeviceKind = "tablet"
	DeviceOther      DeviceKind = "other"
)
