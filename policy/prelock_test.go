package policy_test

import (
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
)

func TestDaysLeft(t *testing.T) {
	tokyo := loadLocation(t, "Asia/Tokyo")
	ny := loadLocation(t, "America/New_York")
	cases := []struct {
		name   string
		now, t time.Time
		loc    *time.Location
		want   int
	}{
		{"same instant", time.Date(2026, 6, 15, 12, 0, 0, 0, tokyo), time.Date(2026, 6, 15, 12, 0, 0, 0, tokyo), tokyo, 0},
		{"later the same local day", time.Date(2026, 6, 15, 0, 0, 0, 0, tokyo), time.Date(2026, 6, 15, 23, 59, 59, 0, tokyo), tokyo, 0},
		{"one second into the next day", time.Date(2026, 6, 15, 23, 59, 59, 0, tokyo), time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo), tokyo, 1},
		{"UTC would say the same day", time.Date(2026, 6, 15, 14, 0, 0, 0, time.UTC), time.Date(2026, 6, 15, 16, 0, 0, 0, time.UTC), tokyo, 1},
		{"30 days", time.Date(2026, 6, 15, 9, 0, 0, 0, tokyo), time.Date(2026, 7, 15, 8, 0, 0, 0, tokyo), tokyo, 30},
		{"in the past", time.Date(2026, 6, 15, 9, 0, 0, 0, tokyo), time.Date(2026, 6, 13, 9, 0, 0, 0, tokyo), tokyo, -2},
		{"across the 23-hour day", time.Date(2026, 3, 7, 23, 0, 0, 0, ny), time.Date(2026, 3, 9, 0, 30, 0, 0, ny), ny, 2},
		{"across the 25-hour day", time.Date(2026, 10, 31, 23, 0, 0, 0, ny), time.Date(2026, 11, 2, 0, 30, 0, 0, ny), ny, 2},
		{"across a year end", time.Date(2026, 12, 31, 10, 0, 0, 0, tokyo), time.Date(2027, 1, 3, 10, 0, 0, 0, tokyo), tokyo, 3},
	}
	for _, c := range cases {
		if got := policy.DaysLeft(c.now, c.t, c.loc); got != c.want {
			t.Errorf("%s: DaysLeft(%v, %v) = %d, want %d", c.name, c.now, c.t, got, c.want)
		}
	}
}

func TestLockAtMatchesDormant(t *testing.T) {
	p := policy.DefaultPolicy()
	last := time.Date(2026, 3, 1, 10, 0, 0, 0, p.Location)
	for _, a := range []policy.Account{
		{CreatedAt: last.AddDate(-1, 0, 0), LastLoginAt: last},
		{CreatedAt: last},
	} {
		at := policy.LockAt(a, p)
		if policy.Dormant(a, p, at.Add(-time.Nanosecond)) || !policy.Dormant(a, p, at) {
			t.Errorf("LockAt = %v, but Dormant does not switch there", at)
		}
	}
}

func TestPrelockWarningDue(t *testing.T) {
	tokyo := loadLocation(t, "Asia/Tokyo")
	pol := policy.DefaultPolicy() // 90 days, Tokyo
	company := policy.Company{ID: "acme", Policy: pol, PrelockWarningDays: []int{30, 14, 3}}
	// The lock falls on 2026-12-01 15:00 Tokyo.
	lockAt := time.Date(2026, 12, 1, 15, 0, 0, 0, tokyo)
	last := lockAt.Add(-pol.InactivityPeriod)
	owner := policy.Employee{
		ID: 1, Email: "taro@example.com",
		Account: policy.Account{IDKind: policy.IDKindEmail, State: policy.StateActive, CreatedAt: last.AddDate(-1, 0, 0), LastLoginAt: last},
	}
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, tokyo) }

	cases := []struct {
		name  string
		e     func(policy.Employee) policy.Employee
		c     func(policy.Company) policy.Company
		now   time.Time
		stage int // -1: none due
		left  int
	}{
		{"31 days ahead: nothing yet", nil, nil, at(2026, 10, 31, 12, 0), -1, 0},
		{"30 days ahead", nil, nil, at(2026, 11, 1, 12, 0), 30, 30},
		{"30 days ahead, before 09:00 local", nil, nil, at(2026, 11, 1, 8, 59), -1, 0},
		{"30 days ahead, exactly 09:00 local", nil, nil, at(2026, 11, 1, 9, 0), 30, 30},
		{"20 days ahead: still the 30-day stage", nil, nil, at(2026, 11, 11, 10, 0), 30, 20},
		{"14 days ahead", nil, nil, at(2026, 11, 17, 10, 0), 14, 14},
		{"first seen 2 days ahead: only the nearest stage", nil, nil, at(2026, 11, 29, 10, 0), 3, 2},
		{"lock day, before the lock", nil, nil, at(2026, 12, 1, 14, 59), 3, 0},
		{"at the lock instant: dormant, no warning", nil, nil, lockAt, -1, 0},
		{"after the lock", nil, nil, at(2026, 12, 2, 10, 0), -1, 0},
		{"platform ID with an email", func(e policy.Employee) policy.Employee { e.IDKind = policy.IDKindPlatform; return e }, nil, at(2026, 11, 17, 10, 0), 14, 14},
		{"no email", func(e policy.Employee) policy.Employee { e.IDKind, e.Email = policy.IDKindPlatform, ""; return e }, nil, at(2026, 11, 17, 10, 0), -1, 0},
		{"retired", func(e policy.Employee) policy.Employee { e.Retired = true; return e }, nil, at(2026, 11, 17, 10, 0), -1, 0},
		{"exempt", func(e policy.Employee) policy.Employee { e.Exempt = true; return e }, nil, at(2026, 11, 17, 10, 0), -1, 0},
		{"locked", func(e policy.Employee) policy.Employee { e.State = policy.StateLocked; return e }, nil, at(2026, 11, 17, 10, 0), -1, 0},
		{"unlocked for the day", func(e policy.Employee) policy.Employee {
			e.State, e.UnlockedUntil = policy.StateUnlockedUntil, at(2026, 11, 18, 0, 0)
			return e
		}, nil, at(2026, 11, 17, 10, 0), -1, 0},
		{"warnings off", nil, func(c policy.Company) policy.Company { c.PrelockWarningDays = nil; return c }, at(2026, 11, 17, 10, 0), -1, 0},
		{"stage on the lock day", nil, func(c policy.Company) policy.Company { c.PrelockWarningDays = []int{0}; return c }, at(2026, 12, 1, 9, 30), 0, 0},
		{"stages unordered", nil, func(c policy.Company) policy.Company { c.PrelockWarningDays = []int{3, 30, 14}; return c }, at(2026, 11, 20, 10, 0), 14, 11},
		{"stage of the whole period is ignored", nil, func(c policy.Company) policy.Company { c.PrelockWarningDays = []int{90, -1}; return c }, at(2026, 11, 20, 10, 0), -1, 0},
		{"never logged in: counts from creation", func(e policy.Employee) policy.Employee {
			e.LastLoginAt, e.CreatedAt = time.Time{}, last
			return e
		}, nil, at(2026, 11, 17, 10, 0), 14, 14},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, co := owner, company
			if c.e != nil {
				e = c.e(e)
			}
			if c.c != nil {
				co = c.c(co)
			}
			w, ok := policy.PrelockWarningDue(e, co, c.now)
			if c.stage < 0 {
				if ok {
					t.Fatalf("PrelockWarningDue = %+v, want none", w)
				}
				return
			}
			if !ok {
				t.Fatal("PrelockWarningDue: none due, want one")
			}
			if got, want := w.DaysBefore, c.stage; got != want {
				t.Errorf("DaysBefore = %d, want %d", got, want)
			}
			if got, want := w.DaysLeft, c.left; got != want {
				t.Errorf("DaysLeft = %d, want %d", got, want)
			}
			if got, want := w.LockAt, lockAt; !got.Equal(want) {
				t.Errorf("LockAt = %v, want %v", got, want)
			}
			if got, want := w.Cycle, last; !got.Equal(want) {
				t.Errorf("Cycle = %v, want %v", got, want)
			}
		})
	}
}

// The send-from hour is local: a New York company is warned at 09:00 New
// York time, which is 14:00 UTC in winter and 13:00 UTC in summer.
func TestPrelockWarningDueFollowsTheCompanyClock(t *testing.T) {
	ny := loadLocation(t, "America/New_York")
	pol := policy.DefaultPolicy()
	pol.Location = ny
	c := policy.Company{Policy: pol, PrelockWarningDays: []int{14}}
	for _, now := range []time.Time{
		time.Date(2026, 1, 15, 14, 0, 0, 0, time.UTC),
		time.Date(2026, 7, 15, 13, 0, 0, 0, time.UTC),
	} {
		last := now.Add(-80 * 24 * time.Hour)
		e := policy.Employee{Email: "a@example.com", Account: policy.Account{State: policy.StateActive, CreatedAt: last}}
		if _, ok := policy.PrelockWarningDue(e, c, now.Add(-time.Second)); ok {
			t.Errorf("%v: due at 08:59:59 New York time", now)
		}
		if _, ok := policy.PrelockWarningDue(e, c, now); !ok {
			t.Errorf("%v: not due at 09:00 New York time", now)
		}
	}
}
