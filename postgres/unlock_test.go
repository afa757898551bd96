package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

func TestAdminUnlockedKeyRoundTrips(t *testing.T) {
	deadline := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	got, err := postgres.ParseAdminUnlockedKey(postgres.AdminUnlockedKey(9, deadline))
	if err != nil || !got.Equal(deadline) {
		t.Errorf("round trip = %v, %v; want %v", got, err, deadline)
	}
	for _, bad := range []string{"", "admin_unlocked:9", "admin_unlocked:9:x", "unlocked:9:1", "prelock_warning:1:2:3"} {
		if _, err := postgres.ParseAdminUnlockedKey(bad); err == nil {
			t.Errorf("ParseAdminUnlockedKey(%q) accepted", bad)
		}
	}
}

// Unlock reports the deadline and the notices to queue; a second call
// unlocks nothing but returns the notice still pending, so a redelivered
// task can queue what the first delivery did not.
func TestUnlockReturnsTheNoticesToQueue(t *testing.T) {
	ctx := context.Background()
	s := testenv.Store(t)
	db := testenv.DB(t)
	co := testenv.UniqueID("co")
	if err := s.UpsertCompany(ctx, postgres.CompanyRecord{ID: co}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 0, 30, 0, 0, time.UTC) // 09:30 in Tokyo
	add := func(admin bool, email string) int64 {
		last := now.AddDate(0, 0, -100)
		if admin {
			last = now.AddDate(0, 0, -1) // an administrator who can act
		}
		id, err := s.UpsertAccount(ctx, postgres.AccountRecord{
			CompanyID: co, LoginID: testenv.UniqueID("u"), IDKind: policy.IDKindPlatform, Email: email, Name: "n",
			CanManageEmployees: admin, CreatedAt: now.AddDate(-1, 0, 0), LastLoginAt: last,
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	admin := add(true, "")
	withEmail, without := add(false, "a@example.com"), add(false, "")
	if _, err := db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant' WHERE id IN ($1, $2)`, withEmail, without); err != nil {
		t.Fatal(err)
	}
	u := postgres.Unlock{CompanyID: co, ActorID: admin, AccountIDs: []int64{without, withEmail, withEmail}, At: now, RequestID: "r"}
	r, err := s.Unlock(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC) // midnight in Tokyo
	want := []int64{withEmail, without}
	slices.Sort(want)
	if !slices.Equal(r.Unlocked, want) || !r.Deadline.Equal(deadline) || len(r.NoticeMailIDs) != 1 {
		t.Fatalf("Unlock = %+v; want %v unlocked until %v, one notice", r, want, deadline)
	}
	if got := testenv.Count(t, db, `SELECT count(*) FROM mails WHERE id = $1 AND idempotency_key = $2 AND to_address = 'a@example.com'`,
		r.NoticeMailIDs[0], postgres.AdminUnlockedKey(withEmail, deadline)); got != 1 {
		t.Error("the notice's key is not AdminUnlockedKey(account, deadline)")
	}
	u.At = now.Add(time.Hour)
	again, err := s.Unlock(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Unlocked) != 0 || !slices.Equal(again.NoticeMailIDs, r.NoticeMailIDs) {
		t.Errorf("again = %+v; want nothing unlocked, the same pending notice %v", again, r.NoticeMailIDs)
	}
	if _, err := db.Exec(`UPDATE mails SET status = 'sent' WHERE id = $1`, r.NoticeMailIDs[0]); err != nil {
		t.Fatal(err)
	}
	if again, err := s.Unlock(ctx, u); err != nil || len(again.NoticeMailIDs) != 0 {
		t.Errorf("after the notice was sent: %+v, %v; want no notice to queue", again, err)
	}
	if _, err := s.Unlock(ctx, postgres.Unlock{CompanyID: co, ActorID: admin, At: now}); err == nil {
		t.Error("neither accounts nor all: accepted")
	}
}
