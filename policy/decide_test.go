package policy_test

import (
	"fmt"
	"testing"
	"time"
	_ "time/tzdata" // the zone tests must not depend on the host's tzdata

	"github.com/dormancy/dormancy/policy"
)

// loadLocation loads a zone or stops the test.
func loadLocation(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

// Durations at the edge of the default 90-day inactivity period.
const (
	ninetyDays   = 90 * 24 * time.Hour
	justUnder90d = ninetyDays - time.Millisecond // 89 d 23 h 59 m 59.999 s
)

var (
	allKinds   = []policy.IDKind{policy.IDKindEmail, policy.IDKindPlatform}
	allMethods = policy.Methods
	allStates  = []policy.LockState{policy.StateActive, policy.StateLocked, policy.StateUnlockedUntil}
)

// refused is the decision for a login refused because of a lock: the outcome
// depends only on the ID kind.
func refused(k policy.IDKind, tr policy.Transition) policy.Decision {
	o := policy.OutcomeAskAdministrator
	if k == policy.IDKindEmail {
		o = policy.OutcomeVerifyByEmail
	}
	return policy.Decision{Outcome: o, Transition: tr, Reason: policy.ReasonDormant, Alert: true}
}

var (
	allowLogin     = policy.Decision{Outcome: policy.OutcomeAllow, UpdateLoginDate: true}
	allowNoDate    = policy.Decision{Outcome: policy.OutcomeAllow}
	allowActivate  = policy.Decision{Outcome: policy.OutcomeAllow, Transition: policy.TransitionActivate, UpdateLoginDate: true}
	retiredOutcome = policy.Decision{Outcome: policy.OutcomeRetired}
)

func TestDecideActive(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	created := now.Add(-365 * 24 * time.Hour)

	type tc struct {
		name string
		acct policy.Account
		p    policy.Policy
		m    policy.Method
		want policy.Decision
	}
	var cases []tc
	for _, k := range allKinds {
		for _, m := range allMethods {
			interactiveAllow := allowNoDate
			if m != policy.MethodRemembered {
				interactiveAllow = allowLogin
			}
			add := func(name string, a policy.Account, p policy.Policy, want policy.Decision) {
				a.IDKind = k
				if a.State == "" {
					a.State = policy.StateActive
				}
				cases = append(cases, tc{fmt.Sprintf("%s/%s/%s", k, m, name), a, p, m, want})
			}
			add("never logged in, created exactly 90d ago: dormant",
				policy.Account{CreatedAt: now.Add(-ninetyDays)}, p, refused(k, policy.TransitionLock))
			add("never logged in, created 89d23h59m59.999s ago: allowed",
				policy.Account{CreatedAt: now.Add(-justUnder90d)}, p, interactiveAllow)
			add("never logged in, created a year ago: dormant",
				policy.Account{CreatedAt: created}, p, refused(k, policy.TransitionLock))
			add("never logged in, created just now: allowed",
				policy.Account{CreatedAt: now}, p, interactiveAllow)
			add("last login exactly 90d ago: dormant",
				policy.Account{CreatedAt: created, LastLoginAt: now.Add(-ninetyDays)}, p, refused(k, policy.TransitionLock))
			add("last login 89d23h59m59.999s ago: allowed",
				policy.Account{CreatedAt: created, LastLoginAt: now.Add(-justUnder90d)}, p, interactiveAllow)
			add("last login 1ns short of 90d: allowed",
				policy.Account{CreatedAt: created, LastLoginAt: now.Add(-ninetyDays + time.Nanosecond)}, p, interactiveAllow)
			add("last login yesterday: allowed",
				policy.Account{CreatedAt: created, LastLoginAt: now.Add(-24 * time.Hour)}, p, interactiveAllow)
			add("last login counts, not an old creation time",
				policy.Account{CreatedAt: now.Add(-10 * ninetyDays), LastLoginAt: now.Add(-time.Hour)}, p, interactiveAllow)
			add("last login in the future (clock skew): allowed",
				policy.Account{CreatedAt: created, LastLoginAt: now.Add(time.Hour)}, p, interactiveAllow)
			add("exempt, last login 10 years ago: never dormant",
				policy.Account{Exempt: true, CreatedAt: created, LastLoginAt: now.AddDate(-10, 0, 0)}, p, interactiveAllow)
			add("exempt, never logged in, created exactly 90d ago: never dormant",
				policy.Account{Exempt: true, CreatedAt: now.Add(-ninetyDays)}, p, interactiveAllow)
			short := p
			short.InactivityPeriod = 30 * 24 * time.Hour
			add("company period 30d, last login exactly 30d ago: dormant",
				policy.Account{CreatedAt: created, LastLoginAt: now.Add(-30 * 24 * time.Hour)}, short, refused(k, policy.TransitionLock))
			add("company period 30d, last login 29d23h59m59.999s ago: allowed",
				policy.Account{CreatedAt: created, LastLoginAt: now.Add(-30*24*time.Hour + time.Millisecond)}, short, interactiveAllow)
		}
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, want := policy.Decide(c.acct, c.p, c.m, now), c.want; got != want {
				t.Errorf("Decide = %+v, want %+v", got, want)
			}
		})
	}
}

// The headline cases again, spelled out field by field.
func TestDecideRememberedLoginDoesNotMoveLoginDate(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	a := policy.Account{IDKind: policy.IDKindPlatform, State: policy.StateActive,
		CreatedAt: now.AddDate(-1, 0, 0), LastLoginAt: now.Add(-justUnder90d)}

	got := policy.Decide(a, p, policy.MethodRemembered, now)
	if got, want := got.Outcome, policy.OutcomeAllow; got != want {
		t.Errorf("remembered: Outcome = %q, want %q", got, want)
	}
	if got.UpdateLoginDate {
		t.Errorf("remembered: UpdateLoginDate = true, want false")
	}
	if got, want := got.Transition, policy.TransitionNone; got != want {
		t.Errorf("remembered: Transition = %q, want none", got)
	}

	got = policy.Decide(a, p, policy.MethodPassword, now)
	if got, want := got.Outcome, policy.OutcomeAllow; got != want {
		t.Errorf("password: Outcome = %q, want %q", got, want)
	}
	if !got.UpdateLoginDate {
		t.Errorf("password: UpdateLoginDate = false, want true")
	}

	// One millisecond later the same account is dormant, however it logs in.
	for _, m := range allMethods {
		got := policy.Decide(a, p, m, now.Add(time.Millisecond))
		if got, want := got, refused(policy.IDKindPlatform, policy.TransitionLock); got != want {
			t.Errorf("%s at 90d: Decide = %+v, want %+v", m, got, want)
		}
	}
}

func TestDecideLocked(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	created := now.AddDate(-2, 0, 0)

	cases := []struct {
		name string
		acct policy.Account
		m    policy.Method
		want policy.Decision
	}{
		{"email/password", policy.Account{IDKind: policy.IDKindEmail}, policy.MethodPassword, refused(policy.IDKindEmail, policy.TransitionNone)},
		{"email/remembered", policy.Account{IDKind: policy.IDKindEmail}, policy.MethodRemembered, refused(policy.IDKindEmail, policy.TransitionNone)},
		{"email/verification_link unlocks nobody", policy.Account{IDKind: policy.IDKindEmail}, policy.MethodVerificationLink, refused(policy.IDKindEmail, policy.TransitionNone)},
		{"email/sso", policy.Account{IDKind: policy.IDKindEmail}, policy.MethodSSO, refused(policy.IDKindEmail, policy.TransitionNone)},
		{"platform/passkey", policy.Account{IDKind: policy.IDKindPlatform}, policy.MethodPasskey, refused(policy.IDKindPlatform, policy.TransitionNone)},
		{"email/a lock taken at this very instant counts", policy.Account{IDKind: policy.IDKindEmail, LockedAt: now}, policy.MethodPassword, refused(policy.IDKindEmail, policy.TransitionNone)},
		{"platform/password", policy.Account{IDKind: policy.IDKindPlatform}, policy.MethodPassword, refused(policy.IDKindPlatform, policy.TransitionNone)},
		{"platform/remembered", policy.Account{IDKind: policy.IDKindPlatform}, policy.MethodRemembered, refused(policy.IDKindPlatform, policy.TransitionNone)},
		{"platform/verification_link stays refused", policy.Account{IDKind: policy.IDKindPlatform}, policy.MethodVerificationLink, refused(policy.IDKindPlatform, policy.TransitionNone)},
		{"email/recent login: the lock, not the date, decides", policy.Account{IDKind: policy.IDKindEmail, LastLoginAt: now.Add(-time.Hour)}, policy.MethodPassword, refused(policy.IDKindEmail, policy.TransitionNone)},
		{"platform/recent login: the lock, not the date, decides", policy.Account{IDKind: policy.IDKindPlatform, LastLoginAt: now.Add(-time.Hour)}, policy.MethodPassword, refused(policy.IDKindPlatform, policy.TransitionNone)},
		{"email/exempt but locked: still refused", policy.Account{IDKind: policy.IDKindEmail, Exempt: true}, policy.MethodPassword, refused(policy.IDKindEmail, policy.TransitionNone)},
		{"platform/stale unlocked-until deadline is ignored", policy.Account{IDKind: policy.IDKindPlatform, UnlockedUntil: now.Add(time.Hour)}, policy.MethodPassword, refused(policy.IDKindPlatform, policy.TransitionNone)},
	}
	for _, reason := range []policy.LockReason{policy.ReasonDormant, policy.ReasonNone} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("reason=%q/%s", reason, c.name), func(t *testing.T) {
				a := c.acct
				a.State = policy.StateLocked
				a.Reason = reason // an empty reason reads as dormant
				a.CreatedAt = created
				got := policy.Decide(a, p, c.m, now)
				if got != c.want {
					t.Errorf("Decide = %+v, want %+v", got, c.want)
				}
				if got.Transition == policy.TransitionLock || got.Transition == policy.TransitionRelock {
					t.Errorf("Transition = %q: a locked account is not locked again", got.Transition)
				}
			})
		}
	}
}

func TestDecideUnlockedUntil(t *testing.T) {
	p := policy.DefaultPolicy()
	tokyo := p.Location
	unlockedAt := time.Date(2026, 6, 15, 9, 0, 0, 0, tokyo)
	deadline := policy.NextMidnight(unlockedAt, tokyo)
	if got, want := deadline, time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo); !got.Equal(want) {
		t.Fatalf("NextMidnight(%v) = %v, want %v", unlockedAt, got, want)
	}
	lastSecond := time.Date(2026, 6, 15, 23, 59, 59, 999_000_000, tokyo)
	nextDay := time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo)

	cases := []struct {
		name string
		kind policy.IDKind
		m    policy.Method
		now  time.Time
		want policy.Decision
	}{
		{"platform/password just after the unlock", policy.IDKindPlatform, policy.MethodPassword, unlockedAt.Add(time.Minute), allowActivate},
		{"platform/password at 23:59:59.999", policy.IDKindPlatform, policy.MethodPassword, lastSecond, allowActivate},
		{"platform/verification_link at 23:59:59.999", policy.IDKindPlatform, policy.MethodVerificationLink, lastSecond, allowActivate},
		{"platform/remembered at 23:59:59.999: allowed, deadline stands", policy.IDKindPlatform, policy.MethodRemembered, lastSecond, allowNoDate},
		{"platform/password 1ns before midnight", policy.IDKindPlatform, policy.MethodPassword, nextDay.Add(-time.Nanosecond), allowActivate},
		{"platform/password at 00:00:00 next day", policy.IDKindPlatform, policy.MethodPassword, nextDay, refused(policy.IDKindPlatform, policy.TransitionRelock)},
		{"platform/remembered at 00:00:00 next day", policy.IDKindPlatform, policy.MethodRemembered, nextDay, refused(policy.IDKindPlatform, policy.TransitionRelock)},
		{"platform/verification_link at 00:00:00 next day", policy.IDKindPlatform, policy.MethodVerificationLink, nextDay, refused(policy.IDKindPlatform, policy.TransitionRelock)},
		{"platform/password a week later", policy.IDKindPlatform, policy.MethodPassword, nextDay.AddDate(0, 0, 7), refused(policy.IDKindPlatform, policy.TransitionRelock)},
		{"platform/same instant, UTC clock: allowed", policy.IDKindPlatform, policy.MethodPassword, lastSecond.UTC(), allowActivate},
		{"platform/same instant, UTC clock: refused", policy.IDKindPlatform, policy.MethodPassword, nextDay.UTC(), refused(policy.IDKindPlatform, policy.TransitionRelock)},
		{"email/password at 23:59:59.999", policy.IDKindEmail, policy.MethodPassword, lastSecond, allowActivate},
		{"email/password at 00:00:00 next day", policy.IDKindEmail, policy.MethodPassword, nextDay, refused(policy.IDKindEmail, policy.TransitionRelock)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := policy.Account{
				IDKind:        c.kind,
				State:         policy.StateUnlockedUntil,
				Reason:        policy.ReasonDormant,
				CreatedAt:     unlockedAt.AddDate(-1, 0, 0),
				LastLoginAt:   unlockedAt.AddDate(0, -6, 0), // dormant by date: the unlock is what lets it in
				UnlockedUntil: deadline,
			}
			if got, want := policy.Decide(a, p, c.m, c.now), c.want; got != want {
				t.Errorf("Decide at %v = %+v, want %+v", c.now.In(tokyo), got, want)
			}
		})
	}
}

func TestDecideUnlockedUntilZeroDeadlineRefuses(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	a := policy.Account{IDKind: policy.IDKindPlatform, State: policy.StateUnlockedUntil, CreatedAt: now.AddDate(-1, 0, 0)}
	if got, want := policy.Decide(a, p, policy.MethodPassword, now), refused(policy.IDKindPlatform, policy.TransitionRelock); got != want {
		t.Errorf("Decide = %+v, want %+v", got, want)
	}
}

func TestDecideRetired(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	activity := map[string]time.Time{
		"recent":           now.Add(-time.Hour),
		"exactly 90d":      now.Add(-ninetyDays),
		"never logged in":  {},
		"a decade ago":     now.AddDate(-10, 0, 0),
		"in the future":    now.Add(time.Hour),
		"just under 90d":   now.Add(-justUnder90d),
		"one year and 90d": now.AddDate(-1, 0, -90),
	}
	deadlines := map[string]time.Time{"none": {}, "passed": now.Add(-time.Hour), "ahead": now.Add(time.Hour)}
	for _, k := range append(allKinds, "") {
		for _, s := range append(allStates, "") {
			for _, m := range allMethods {
				for an, last := range activity {
					for dn, until := range deadlines {
						for _, exempt := range []bool{false, true} {
							a := policy.Account{
								IDKind: k, Retired: true, Exempt: exempt, State: s, Reason: policy.ReasonDormant,
								CreatedAt: now.AddDate(-2, 0, 0), LastLoginAt: last, UnlockedUntil: until,
							}
							if got, want := policy.Decide(a, p, m, now), retiredOutcome; got != want {
								t.Errorf("kind=%q state=%q method=%s activity=%s deadline=%s exempt=%v: Decide = %+v, want %+v",
									k, s, m, an, dn, exempt, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// TestDecideInvariants runs every combination and checks the rules that tie
// the decision's fields together.
func TestDecideInvariants(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	lasts := []time.Time{{}, now.Add(-time.Hour), now.Add(-justUnder90d), now.Add(-ninetyDays), now.AddDate(-3, 0, 0)}
	untils := []time.Time{{}, now, now.Add(-time.Nanosecond), now.Add(time.Nanosecond)}
	for _, k := range allKinds {
		for _, s := range allStates {
			for _, m := range allMethods {
				for _, last := range lasts {
					for _, until := range untils {
						for _, exempt := range []bool{false, true} {
							a := policy.Account{IDKind: k, Exempt: exempt, State: s, CreatedAt: now.AddDate(-1, 0, 0), LastLoginAt: last, UnlockedUntil: until}
							d := policy.Decide(a, p, m, now)
							if s == policy.StateLocked && d.Outcome == policy.OutcomeAllow {
								t.Errorf("kind=%s method=%s: a locked account was let in by the method its login named", k, m)
							}
							where := fmt.Sprintf("kind=%s state=%s method=%s last=%v until=%v exempt=%v: %+v", k, s, m, last, until, exempt, d)
							if got, want := d.Alert, d.Outcome.Locked(); got != want {
								t.Errorf("%s: Alert = %v, want Outcome.Locked() = %v", where, got, want)
							}
							if d.UpdateLoginDate && (d.Outcome != policy.OutcomeAllow || !m.Interactive()) {
								t.Errorf("%s: UpdateLoginDate on a refused or saved login", where)
							}
							if d.Transition == policy.TransitionActivate && d.Outcome != policy.OutcomeAllow {
								t.Errorf("%s: activate without allow", where)
							}
							if (d.Transition == policy.TransitionLock || d.Transition == policy.TransitionRelock) && !d.Outcome.Locked() {
								t.Errorf("%s: lock/relock but the login is let in", where)
							}
							if d.Outcome.Locked() {
								if got, want := d.Reason, policy.ReasonDormant; got != want {
									t.Errorf("%s: Reason = %q, want %q", where, got, want)
								}
								want := policy.OutcomeAskAdministrator
								if k == policy.IDKindEmail {
									want = policy.OutcomeVerifyByEmail
								}
								if d.Outcome != want {
									t.Errorf("%s: Outcome = %q, want %q for a %s ID", where, d.Outcome, want, k)
								}
							} else if d.Reason != policy.ReasonNone {
								t.Errorf("%s: Reason = %q on an allowed login", where, d.Reason)
							}
							if exempt && s == policy.StateActive && d.Outcome != policy.OutcomeAllow {
								t.Errorf("%s: an exempt active account was refused", where)
							}
						}
					}
				}
			}
		}
	}
}

func TestDormant(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	cases := []struct {
		name string
		acct policy.Account
		want bool
	}{
		{"never logged in, created exactly 90d ago", policy.Account{CreatedAt: now.Add(-ninetyDays)}, true},
		{"never logged in, created 89d23h59m59.999s ago", policy.Account{CreatedAt: now.Add(-justUnder90d)}, false},
		{"never logged in, zero creation time", policy.Account{}, true},
		{"last login exactly 90d ago", policy.Account{CreatedAt: now.AddDate(-1, 0, 0), LastLoginAt: now.Add(-ninetyDays)}, true},
		{"last login 89d23h59m59.999s ago", policy.Account{CreatedAt: now.AddDate(-1, 0, 0), LastLoginAt: now.Add(-justUnder90d)}, false},
		{"last login 90d and 1ns ago", policy.Account{LastLoginAt: now.Add(-ninetyDays - time.Nanosecond)}, true},
		{"last login overrides creation", policy.Account{CreatedAt: now.AddDate(-5, 0, 0), LastLoginAt: now}, false},
		{"last login in the future", policy.Account{LastLoginAt: now.Add(time.Hour)}, false},
		{"retired, inactive for years", policy.Account{Retired: true, LastLoginAt: now.AddDate(-5, 0, 0)}, false},
		{"exempt, inactive for years", policy.Account{Exempt: true, LastLoginAt: now.AddDate(-5, 0, 0)}, false},
		{"exempt, never logged in", policy.Account{Exempt: true}, false},
		{"a locked state does not change the arithmetic", policy.Account{State: policy.StateLocked, LastLoginAt: now.Add(-ninetyDays)}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, want := policy.Dormant(c.acct, p, now), c.want; got != want {
				t.Errorf("Dormant = %v, want %v", got, want)
			}
		})
	}
}

func TestDormantSinceMatchesDormant(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	since := policy.DormantSince(p, now)
	if got, want := since, now.Add(-ninetyDays); !got.Equal(want) {
		t.Fatalf("DormantSince = %v, want %v", got, want)
	}
	if got, want := policy.Dormant(policy.Account{LastLoginAt: since}, p, now), true; got != want {
		t.Errorf("Dormant(last login = DormantSince) = %v, want %v", got, want)
	}
	if got, want := policy.Dormant(policy.Account{LastLoginAt: since.Add(time.Nanosecond)}, p, now), false; got != want {
		t.Errorf("Dormant(last login = DormantSince+1ns) = %v, want %v", got, want)
	}
}

func TestAccountLastActivity(t *testing.T) {
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	login := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := (policy.Account{CreatedAt: created}).LastActivity(), created; !got.Equal(want) {
		t.Errorf("never logged in: LastActivity = %v, want CreatedAt %v", got, want)
	}
	if got, want := (policy.Account{CreatedAt: created, LastLoginAt: login}).LastActivity(), login; !got.Equal(want) {
		t.Errorf("logged in: LastActivity = %v, want LastLoginAt %v", got, want)
	}
}

func TestEnums(t *testing.T) {
	for _, c := range []struct {
		m                  policy.Method
		valid, interactive bool
	}{
		{policy.MethodPassword, true, true},
		{policy.MethodRemembered, true, false},
		{policy.MethodVerificationLink, true, true},
		{policy.MethodSSO, true, true},
		{policy.MethodPasskey, true, true},
		{"", false, false},
		{"PASSWORD", false, false},
		{"saml", false, false},
	} {
		if got, want := c.m.Valid(), c.valid; got != want {
			t.Errorf("Method(%q).Valid() = %v, want %v", c.m, got, want)
		}
		if got, want := c.m.Interactive(), c.interactive; got != want {
			t.Errorf("Method(%q).Interactive() = %v, want %v", c.m, got, want)
		}
	}
	for _, c := range []struct {
		k    policy.IDKind
		want bool
	}{{policy.IDKindEmail, true}, {policy.IDKindPlatform, true}, {"", false}, {"Email", false}} {
		if got := c.k.Valid(); got != c.want {
			t.Errorf("IDKind(%q).Valid() = %v, want %v", c.k, got, c.want)
		}
	}
	for _, c := range []struct {
		o    policy.Outcome
		want bool
	}{
		{policy.OutcomeAllow, false},
		{policy.OutcomeVerifyByEmail, true},
		{policy.OutcomeAskAdministrator, true},
		{policy.OutcomeRetired, false},
		{"", false},
	} {
		if got := c.o.Locked(); got != c.want {
			t.Errorf("Outcome(%q).Locked() = %v, want %v", c.o, got, c.want)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	issued := time.Date(2026, 6, 15, 23, 30, 0, 0, loadLocation(t, "Asia/Tokyo"))
	p := policy.DefaultPolicy()
	if got, want := policy.TokenExpiry(p, issued), issued.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("TokenExpiry(default) = %v, want %v", got, want)
	}
	p.VerificationTTL = 90 * time.Minute
	if got, want := policy.TokenExpiry(p, issued), issued.Add(90*time.Minute); !got.Equal(want) {
		t.Errorf("TokenExpiry(90m) = %v, want %v", got, want)
	}
	// 24 hours, not one calendar day: across a DST change the wall clock moves.
	ny := loadLocation(t, "America/New_York")
	p = policy.DefaultPolicy()
	before := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	if got, want := policy.TokenExpiry(p, before), time.Date(2026, 3, 8, 13, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("TokenExpiry across DST = %v, want %v", got, want)
	}
}

func TestTokenIssueDue(t *testing.T) {
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	def := policy.DefaultPolicy() // 5 minutes
	zero := def
	zero.ResendInterval = 0
	long := def
	long.ResendInterval = 1000 * time.Hour
	cases := []struct {
		name string
		p    policy.Policy
		last time.Time
		want bool
	}{
		{"never issued", def, time.Time{}, true},
		{"never issued, huge interval", long, time.Time{}, true},
		{"exactly one interval ago", def, now.Add(-5 * time.Minute), true},
		{"1ns short of the interval", def, now.Add(-5*time.Minute + time.Nanosecond), false},
		{"just issued", def, now, false},
		{"long ago", def, now.AddDate(-1, 0, 0), true},
		{"issued in the future (clock skew)", def, now.Add(time.Minute), false},
		{"zero interval, same instant", zero, now, true},
		{"zero interval, issued in the future", zero, now.Add(time.Second), false},
		{"huge interval, a month ago", long, now.AddDate(0, -1, 0), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, want := policy.TokenIssueDue(c.p, c.last, now), c.want; got != want {
				t.Errorf("TokenIssueDue(last=%v) = %v, want %v", c.last, got, want)
			}
		})
	}
}

func TestAlertDue(t *testing.T) {
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	def := policy.DefaultPolicy() // 1 hour
	zero := def
	zero.AlertWindow = 0
	cases := []struct {
		name string
		p    policy.Policy
		last time.Time
		want bool
	}{
		{"never alerted", def, time.Time{}, true},
		{"exactly one window ago", def, now.Add(-time.Hour), true},
		{"1ns inside the window", def, now.Add(-time.Hour + time.Nanosecond), false},
		{"59m59.999s ago", def, now.Add(-59*time.Minute - 59*time.Second - 999*time.Millisecond), false},
		{"just alerted", def, now, false},
		{"a day ago", def, now.Add(-24 * time.Hour), true},
		{"alerted in the future (clock skew)", def, now.Add(time.Second), false},
		{"zero window, same instant", zero, now, true},
		{"zero window, never alerted", zero, time.Time{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, want := policy.AlertDue(c.p, c.last, now), c.want; got != want {
				t.Errorf("AlertDue(last=%v) = %v, want %v", c.last, got, want)
			}
		})
	}
}

// A login answered before a lock was taken is decided on the state that
// lock replaced: the relock at midnight, or a sweep, may run while the
// attempt waits in the queue, and the login still counts.
func TestDecideBeforeTheLock(t *testing.T) {
	p := policy.DefaultPolicy()
	tokyo := p.Location
	deadline := time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo)
	inTime := deadline.Add(-10 * time.Second) // 23:59:50
	relocked := policy.Account{IDKind: policy.IDKindPlatform, State: policy.StateLocked, Reason: policy.ReasonDormant,
		CreatedAt: deadline.AddDate(-1, 0, 0), LastLoginAt: deadline.AddDate(0, 0, -120), LockedAt: deadline, LapsedDeadline: deadline}
	sweptAt := time.Date(2026, 6, 15, 3, 0, 0, 0, time.UTC)
	swept := policy.Account{IDKind: policy.IDKindEmail, State: policy.StateLocked, Reason: policy.ReasonDormant,
		CreatedAt: sweptAt.AddDate(-1, 0, 0), LastLoginAt: sweptAt.Add(-ninetyDays).Add(-time.Minute), LockedAt: sweptAt}
	cases := []struct {
		name string
		acct policy.Account
		m    policy.Method
		at   time.Time
		want policy.Decision
	}{
		{"relocked: password login at 23:59:50 counts", relocked, policy.MethodPassword, inTime, allowActivate},
		{"relocked: saved login at 23:59:50 is let in, the lock stands", relocked, policy.MethodRemembered, inTime, allowNoDate},
		{"relocked: login at the deadline is refused", relocked, policy.MethodPassword, deadline, refused(policy.IDKindPlatform, policy.TransitionNone)},
		{"relocked: login after the deadline is refused", relocked, policy.MethodPassword, deadline.Add(time.Minute), refused(policy.IDKindPlatform, policy.TransitionNone)},
		{"swept: login before it turned dormant counts", swept, policy.MethodPassword, sweptAt.Add(-2 * time.Minute), allowActivate},
		{"swept: saved login before it turned dormant, the lock stands", swept, policy.MethodRemembered, sweptAt.Add(-2 * time.Minute), allowNoDate},
		{"swept: login after it turned dormant but before the sweep is refused", swept, policy.MethodPassword, sweptAt.Add(-30 * time.Second), refused(policy.IDKindEmail, policy.TransitionNone)},
		{"swept: login after the sweep is refused", swept, policy.MethodPassword, sweptAt.Add(time.Second), refused(policy.IDKindEmail, policy.TransitionNone)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := policy.Decide(c.acct, p, c.m, c.at); got != c.want {
				t.Errorf("Decide = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestCanAct(t *testing.T) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	admin := func(a policy.Account) policy.Employee {
		a.IDKind, a.CreatedAt = policy.IDKindPlatform, now.AddDate(-1, 0, 0)
		if a.State == "" {
			a.State = policy.StateActive
		}
		return policy.Employee{CanManageEmployees: true, Account: a}
	}
	cases := []struct {
		name string
		e    policy.Employee
		want bool
	}{
		{"active, logged in yesterday", admin(policy.Account{LastLoginAt: now.AddDate(0, 0, -1)}), true},
		{"no permission", policy.Employee{Account: admin(policy.Account{LastLoginAt: now.AddDate(0, 0, -1)}).Account}, false},
		{"retired", admin(policy.Account{Retired: true, LastLoginAt: now.AddDate(0, 0, -1)}), false},
		{"locked", admin(policy.Account{State: policy.StateLocked, Reason: policy.ReasonDormant, LockedAt: now.AddDate(0, 0, -1)}), false},
		{"dormant, not swept yet", admin(policy.Account{LastLoginAt: now.Add(-ninetyDays)}), false},
		{"one millisecond short of dormant", admin(policy.Account{LastLoginAt: now.Add(-justUnder90d)}), true},
		{"exempt and long idle", admin(policy.Account{Exempt: true, LastLoginAt: now.AddDate(-2, 0, 0)}), true},
		{"unlocked until tonight", admin(policy.Account{State: policy.StateUnlockedUntil, UnlockedUntil: now.Add(time.Hour), LastLoginAt: now.AddDate(0, 0, -120)}), true},
		{"unlock lapsed", admin(policy.Account{State: policy.StateUnlockedUntil, UnlockedUntil: now, LastLoginAt: now.AddDate(0, 0, -120)}), false},
	}
	for _, c := range cases {
		if got := policy.CanAct(c.e, p, now); got != c.want {
			t.Errorf("%s: CanAct = %v, want %v", c.name, got, c.want)
		}
	}
}
