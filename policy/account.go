package policy

import "time"

// IDKind says how an account's owner gets back in once locked: an email ID
// verifies itself by email, a platform ID asks an administrator.
type IDKind string

const (
	IDKindEmail    IDKind = "email"
	IDKindPlatform IDKind = "platform"
)

// Valid reports whether k is one of the known kinds.
func (k IDKind) Valid() bool { return k == IDKindEmail || k == IDKindPlatform }

// LockState is where an account stands in the lock lifecycle.
type LockState string

const (
	// StateActive accounts may log in while they are not dormant.
	StateActive LockState = "active"
	// StateLocked accounts are refused until they verify or are unlocked.
	StateLocked LockState = "locked"
	// StateUnlockedUntil accounts were unlocked by an administrator and must
	// log in before their deadline, the next local midnight.
	StateUnlockedUntil LockState = "unlocked_until"
)

// LockReason says why an account is locked, so every screen can say what to
// do about it. Only dormancy exists today; the column has room for more.
type LockReason string

const (
	ReasonNone    LockReason = ""
	ReasonDormant LockReason = "dormant"
)

// Account is the part of an employee record the decision reads.
type Account struct {
	IDKind IDKind
	// Retired accounts are never locked, alerted on or unlocked.
	Retired bool
	// Exempt accounts (service accounts, for example) never turn dormant.
	Exempt    bool
	CreatedAt time.Time
	// LastLoginAt is the login date: the last interactive login. Zero means
	// the account has never logged in, and dormancy counts from CreatedAt.
	LastLoginAt   time.Time
	State         LockState
	Reason        LockReason
	UnlockedUntil time.Time
	// LockedAt is the instant a locked account's lock took effect: the
	// decision time of the login that locked it, the sweep's run, or the
	// deadline of the unlock that lapsed into it.
	LockedAt time.Time
	// LapsedDeadline is, on an account locked again because its same-day
	// unlock passed, that unlock's deadline; zero for any other lock.
	LapsedDeadline time.Time
}

// LastActivity is the instant dormancy counts from.
func (a Account) LastActivity() time.Time {
	if a.LastLoginAt.IsZero() {
		return a.CreatedAt
	}
	return a.LastLoginAt
}

// Administrator is who a locked platform-ID user is told to contact.
type Administrator struct {
	AccountID  int64  `json:"account_id"`
	Department string `json:"department"`
	Name       string `json:"name"`
}
