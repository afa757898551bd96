package policy

import "time"

// Method is how a login attempt authenticated at the host.
type Method string

const (
	// MethodPassword is ID and password typed on the login screen: it is an
	// interactive login and moves the login date.
	MethodPassword Method = "password"
	// MethodRemembered is the 30-day saved login. It is a login, so a dormant
	// account is locked by it, but it never moves the login date.
	MethodRemembered Method = "remembered"
	// MethodVerificationLink is a password login through a verification link.
	// The token itself is checked by Redeem; the decision only records it.
	MethodVerificationLink Method = "verification_link"
)

// Valid reports whether m is a known method.
func (m Method) Valid() bool {
	return m == MethodPassword || m == MethodRemembered || m == MethodVerificationLink
}

// Interactive reports whether a login by m updates the login date.
func (m Method) Interactive() bool { return m == MethodPassword || m == MethodVerificationLink }

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

// Decide decides one login attempt made at now by method m on account a,
// whose company has policy p. It runs after the host verified the
// credentials, so a stranger never reaches it.
//
// Deadlines are enforced here, when read: a passed same-day deadline is
// refused even if the scheduler has not relocked the row yet.
func Decide(a Account, p Policy, m Method, now time.Time) Decision {
	if a.Retired {
		return Decision{Outcome: OutcomeRetired}
	}
	switch a.State {
	case StateLocked:
		if m == MethodVerificationLink && a.IDKind == IDKindEmail {
			return Decision{Outcome: OutcomeAllow, Transition: TransitionActivate, UpdateLoginDate: true}
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
