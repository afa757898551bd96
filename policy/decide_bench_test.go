package policy_test

import (
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
)

var (
	sinkDecision policy.Decision
	sinkTime     time.Time
)

func BenchmarkDecide(b *testing.B) {
	p := policy.DefaultPolicy()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, p.Location)
	created := now.AddDate(-1, 0, 0)
	cases := []struct {
		name string
		acct policy.Account
		m    policy.Method
		want policy.Outcome
	}{
		{"active/password/allowed",
			policy.Account{IDKind: policy.IDKindEmail, State: policy.StateActive, CreatedAt: created, LastLoginAt: now.Add(-24 * time.Hour)},
			policy.MethodPassword, policy.OutcomeAllow},
		{"active/remembered/allowed",
			policy.Account{IDKind: policy.IDKindEmail, State: policy.StateActive, CreatedAt: created, LastLoginAt: now.Add(-24 * time.Hour)},
			policy.MethodRemembered, policy.OutcomeAllow},
		{"active/dormant/lock-email",
			policy.Account{IDKind: policy.IDKindEmail, State: policy.StateActive, CreatedAt: created, LastLoginAt: now.AddDate(0, -4, 0)},
			policy.MethodPassword, policy.OutcomeVerifyByEmail},
		{"active/dormant/lock-platform",
			policy.Account{IDKind: policy.IDKindPlatform, State: policy.StateActive, CreatedAt: created, LastLoginAt: now.AddDate(0, -4, 0)},
			policy.MethodPassword, policy.OutcomeAskAdministrator},
		{"locked/verification-link",
			policy.Account{IDKind: policy.IDKindEmail, State: policy.StateLocked, Reason: policy.ReasonDormant, CreatedAt: created},
			policy.MethodVerificationLink, policy.OutcomeAllow},
		{"unlocked-until/password/allowed",
			policy.Account{IDKind: policy.IDKindPlatform, State: policy.StateUnlockedUntil, Reason: policy.ReasonDormant, CreatedAt: created,
				UnlockedUntil: now.Add(time.Hour)},
			policy.MethodPassword, policy.OutcomeAllow},
		{"unlocked-until/password/relock",
			policy.Account{IDKind: policy.IDKindPlatform, State: policy.StateUnlockedUntil, Reason: policy.ReasonDormant, CreatedAt: created,
				UnlockedUntil: now.Add(-time.Hour)},
			policy.MethodPassword, policy.OutcomeAskAdministrator},
	}
	for _, c := range cases {
		if got := policy.Decide(c.acct, p, c.m, now); got.Outcome != c.want {
			b.Fatalf("%s: Outcome = %q, want %q", c.name, got.Outcome, c.want)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkDecision = policy.Decide(c.acct, p, c.m, now)
			}
		})
	}
}

func BenchmarkNextMidnight(b *testing.B) {
	for _, zone := range []string{"Asia/Tokyo", "America/New_York"} {
		loc := loadLocation(b, zone)
		t := time.Date(2026, 3, 8, 9, 0, 0, 0, loc)
		b.Run(zone, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkTime = policy.NextMidnight(t, loc)
			}
		})
	}
}
