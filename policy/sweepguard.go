package policy

// SweepGuard stops a sweep from locking a company wholesale: a bad
// directory sync or a mistyped inactivity period would otherwise lock
// everyone at the next sweep. A company where the sweep would lock more
// than Share of its employed accounts, and more than Floor accounts, is
// held until someone confirms.
type SweepGuard struct {
	Share float64
	Floor int
}

// DefaultSweepGuard holds a sweep that would lock more than a quarter of a
// company's employees, when that is more than 50 people. The first sweep
// after adoption can be such a sweep; it then waits for a confirmation too.
var DefaultSweepGuard = SweepGuard{Share: 0.25, Floor: 50}

// Holds reports whether a sweep that would lock wouldLock of employed
// accounts must wait. A zero guard holds nothing.
func (g SweepGuard) Holds(wouldLock, employed int) bool {
	if g.Share <= 0 {
		return false
	}
	return wouldLock > g.Floor && float64(wouldLock) > g.Share*float64(employed)
}
