package postgres_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// adminNow is the fixed "now" of these tests: 2026-11-26 10:00 in Tokyo.
var adminNow = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

type adminBundle struct {
	ctx     context.Context
	store   *postgres.Store
	db      *sql.DB
	company string
}

func adminSetup(t *testing.T) *adminBundle {
	t.Helper()
	b := &adminBundle{ctx: context.Background(), store: testenv.Store(t), db: testenv.DB(t)}
	b.company = b.newCompany(t)
	return b
}

func (b *adminBundle) newCompany(t *testing.T) string {
	t.Helper()
	id := testenv.UniqueID("co")
	if err := b.store.UpsertCompany(b.ctx, postgres.CompanyRecord{ID: id, Name: "Example"}); err != nil {
		t.Fatal(err)
	}
	return id
}

type acct struct {
	company   string
	name      string
	dept      string
	platform  bool
	noEmail   bool
	admin     bool
	retired   bool
	lastLogin time.Time
}

func (b *adminBundle) account(t *testing.T, o acct) int64 {
	t.Helper()
	if o.company == "" {
		o.company = b.company
	}
	login := testenv.UniqueID("u")
	rec := postgres.AccountRecord{CompanyID: o.company, LoginID: login, IDKind: policy.IDKindEmail, Name: o.name,
		Department: o.dept, CanManageEmployees: o.admin, Retired: o.retired, CreatedAt: adminNow.Add(-400 * 24 * time.Hour),
		LastLoginAt: o.lastLogin}
	if o.platform {
		rec.IDKind = policy.IDKindPlatform
	}
	if !o.noEmail {
		rec.Email = login + "@example.com"
	}
	id, err := b.store.UpsertAccount(b.ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *adminBundle) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (b *adminBundle) lock(t *testing.T, id int64) {
	b.exec(t, `UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = $1 WHERE id = $2`, adminNow.Add(-time.Hour), id)
}

func (b *adminBundle) unlockUntil(t *testing.T, id int64, until time.Time) {
	b.exec(t, `UPDATE accounts SET lock_state = 'unlocked_until', lock_reason = NULL, unlocked_until = $1 WHERE id = $2`, until, id)
}

func ids(as []postgres.AccountView) []int64 {
	out := []int64{}
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

func TestListAccounts(t *testing.T) {
	b := adminSetup(t)
	login := adminNow.Add(-10 * 24 * time.Hour)
	active := b.account(t, acct{name: "A 有効", dept: "1営業", lastLogin: login})
	locked := b.account(t, acct{name: "B ロック", dept: "1営業", platform: true})
	passed := b.account(t, acct{name: "C 期限切れ", dept: "2総務", platform: true})
	open := b.account(t, acct{name: "D 当日中", dept: "2総務", platform: true})
	retired := b.account(t, acct{name: "E 退職", dept: "3開発", retired: true})
	b.lock(t, locked)
	b.unlockUntil(t, passed, adminNow)                // the deadline is now: it has passed
	b.unlockUntil(t, open, adminNow.Add(time.Second)) // still open
	other := b.newCompany(t)
	b.account(t, acct{company: other, name: "Z 他社"})
	otherLocked := b.account(t, acct{company: other, name: "Z 他社ロック", platform: true})
	b.lock(t, otherLocked)

	all, err := b.store.ListAccounts(b.ctx, b.company, postgres.AccountFilter{}, adminNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(all.Accounts), []int64{active, locked, passed, open, retired}; !slices.Equal(got, want) {
		t.Fatalf("ids = %v, want %v (department, name order, this company only)", got, want)
	}
	if got, want := all.Total, 5; got != want {
		t.Errorf("Total = %d, want %d", got, want)
	}
	byID := map[int64]postgres.AccountView{}
	for _, a := range all.Accounts {
		byID[a.ID] = a
	}
	if got := byID[active].LastLoginAt; !got.Equal(login) {
		t.Errorf("login date = %v, want %v", got, login)
	}
	if got := byID[locked].LastLoginAt; !got.IsZero() {
		t.Errorf("never logged in: login date = %v, want zero", got)
	}
	for _, c := range []struct {
		id     int64
		state  policy.LockState
		reason policy.LockReason
		locked bool
	}{
		{active, policy.StateActive, "", false},
		{locked, policy.StateLocked, policy.ReasonDormant, true},
		{passed, policy.StateLocked, policy.ReasonDormant, true},
		{open, policy.StateUnlockedUntil, "", false},
		{retired, policy.StateActive, "", false},
	} {
		a := byID[c.id]
		if a.State != c.state || a.Reason != c.reason || a.Locked() != c.locked {
			t.Errorf("%s: state %q reason %q locked %v, want %q %q %v", a.Name, a.State, a.Reason, a.Locked(), c.state, c.reason, c.locked)
		}
	}
	if got := byID[open].UnlockedUntil; !got.Equal(adminNow.Add(time.Second)) {
		t.Errorf("unlocked_until = %v", got)
	}
	if !byID[passed].UnlockedUntil.IsZero() {
		t.Errorf("a passed deadline is shown: %v", byID[passed].UnlockedUntil)
	}
	if !byID[retired].Retired || byID[active].Retired {
		t.Errorf("retired flags wrong")
	}

	lockedOnly, err := b.store.ListAccounts(b.ctx, b.company, postgres.AccountFilter{LockedOnly: true}, adminNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(lockedOnly.Accounts), []int64{locked, passed}; !slices.Equal(got, want) {
		t.Errorf("locked only = %v, want %v", got, want)
	}
	// A retired account keeps whatever lock it had, but is never one to unlock.
	if _, err := b.db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant' WHERE id = $1`, retired); err != nil {
		t.Fatal(err)
	}
	if again, err := b.store.ListAccounts(b.ctx, b.company, postgres.AccountFilter{LockedOnly: true}, adminNow); err != nil || !slices.Equal(ids(again.Accounts), []int64{locked, passed}) {
		t.Errorf("locked only with a locked retired account = %v, %v", ids(again.Accounts), err)
	}
	// One second earlier the deadline had not passed yet.
	earlier, err := b.store.ListAccounts(b.ctx, b.company, postgres.AccountFilter{LockedOnly: true}, adminNow.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(earlier.Accounts), []int64{locked}; !slices.Equal(got, want) {
		t.Errorf("locked only before the deadline = %v, want %v", got, want)
	}

	var pages [][]int64
	for page := 1; page <= 4; page++ {
		p, err := b.store.ListAccounts(b.ctx, b.company, postgres.AccountFilter{Page: page, PerPage: 2}, adminNow)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := p.Total, 5; got != want {
			t.Errorf("page %d: Total = %d, want %d", page, got, want)
		}
		if p.Page != page || p.PerPage != 2 {
			t.Errorf("page %d: Page %d PerPage %d", page, p.Page, p.PerPage)
		}
		pages = append(pages, ids(p.Accounts))
	}
	want := [][]int64{{active, locked}, {passed, open}, {retired}, {}}
	for i := range want {
		if !slices.Equal(pages[i], want[i]) {
			t.Errorf("page %d = %v, want %v", i+1, pages[i], want[i])
		}
	}
	big, err := b.store.ListAccounts(b.ctx, b.company, postgres.AccountFilter{PerPage: 10000}, adminNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := big.PerPage, postgres.MaxPerPage; got != want {
		t.Errorf("PerPage = %d, want it capped at %d", got, want)
	}
	none, err := b.store.ListAccounts(b.ctx, "no-such-company", postgres.AccountFilter{}, adminNow)
	if err != nil || len(none.Accounts) != 0 || none.Total != 0 {
		t.Errorf("unknown company: %+v, %v", none, err)
	}
}

func TestAccountProfileAndActor(t *testing.T) {
	b := adminSetup(t)
	login := adminNow.Add(-3 * time.Hour)
	id := b.account(t, acct{name: "<script>alert(1)</script>", dept: "開発", platform: true, lastLogin: login})
	b.lock(t, id)
	a, err := b.store.Account(b.ctx, id, adminNow)
	if err != nil {
		t.Fatal(err)
	}
	if a.CompanyID != b.company || a.Name != "<script>alert(1)</script>" || a.IDKind != policy.IDKindPlatform || !a.Locked() || !a.LastLoginAt.Equal(login) {
		t.Errorf("Account = %+v", a)
	}
	if got := a.LockedAt; !got.Equal(adminNow.Add(-time.Hour)) {
		t.Errorf("LockedAt = %v", got)
	}
	if _, err := b.store.Account(b.ctx, 1<<60, adminNow); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("unknown account: %v, want ErrNotFound", err)
	}

	recent := adminNow.Add(-24 * time.Hour)
	admin := b.account(t, acct{name: "管理者", admin: true, platform: true, lastLogin: recent})
	retiredAdmin := b.account(t, acct{name: "退職管理者", admin: true, retired: true, lastLogin: recent})
	lockedAdmin := b.account(t, acct{name: "ロック管理者", admin: true, lastLogin: recent})
	b.lock(t, lockedAdmin)
	// Never logged in since creation 400 days ago: the next sweep locks it, so it cannot act now.
	dormantAdmin := b.account(t, acct{name: "休眠管理者", admin: true})
	for _, c := range []struct {
		id      int64
		company string
		want    bool
	}{
		{admin, b.company, true},
		{admin, "other", false},
		{id, b.company, false},
		{retiredAdmin, b.company, false},
		{lockedAdmin, b.company, false},
		{dormantAdmin, b.company, false},
	} {
		actor, err := b.store.Actor(b.ctx, c.id, adminNow)
		if err != nil {
			t.Fatal(err)
		}
		if got := actor.Administers(c.company); got != c.want {
			t.Errorf("Actor(%d).Administers(%q) = %v, want %v", c.id, c.company, got, c.want)
		}
	}
	if _, err := b.store.Actor(b.ctx, 1<<60, adminNow); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("unknown actor: %v", err)
	}
	if (postgres.Actor{}).Administers("") {
		t.Error("the zero Actor administers the empty company")
	}

	info, err := b.store.Company(b.ctx, b.company)
	if err != nil {
		t.Fatal(err)
	}
	if info.Location.String() != "Asia/Tokyo" || info.Locale != policy.LocaleJA || info.Name != "Example" {
		t.Errorf("Company = %+v", info)
	}
	if _, err := b.store.Company(b.ctx, "no-such"); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("unknown company: %v", err)
	}
}

func TestMissingAccounts(t *testing.T) {
	b := adminSetup(t)
	mine := b.account(t, acct{name: "mine"})
	other := b.newCompany(t)
	theirs := b.account(t, acct{company: other, name: "theirs"})
	missing, err := b.store.MissingAccounts(b.ctx, b.company, []int64{mine, theirs, 1 << 60})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := missing, []int64{theirs, 1 << 60}; !slices.Equal(got, want) {
		t.Errorf("missing = %v, want %v", got, want)
	}
	if missing, err := b.store.MissingAccounts(b.ctx, b.company, []int64{mine}); err != nil || len(missing) != 0 {
		t.Errorf("own account: %v, %v", missing, err)
	}
}

func TestReplaceLoginNotificationRecipients(t *testing.T) {
	b := adminSetup(t)
	actor := b.account(t, acct{name: "管理者", admin: true})
	r1 := b.account(t, acct{name: "通知1", dept: "a"})
	r2 := b.account(t, acct{name: "通知2", dept: "b"})
	retired := b.account(t, acct{name: "退職", retired: true})
	noEmail := b.account(t, acct{name: "メールなし", platform: true, noEmail: true})
	other := b.newCompany(t)
	foreign := b.account(t, acct{company: other, name: "他社"})
	foreignRecipient := b.account(t, acct{company: other, name: "他社通知"})
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, other, 0, []int64{foreignRecipient}, adminNow, ""); err != nil {
		t.Fatal(err)
	}

	current := func(company string) []int64 {
		t.Helper()
		rs, err := b.store.LoginNotificationRecipients(b.ctx, company, adminNow)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.CompanyID != company || !r.Recipient {
				t.Errorf("recipient %+v listed for %s", r, company)
			}
		}
		return ids(rs)
	}
	events := func() int {
		return testenv.Count(t, b.db, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'recipients_changed'`, b.company)
	}

	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, actor, []int64{r2, r1, r1}, adminNow, "req-1"); err != nil {
		t.Fatal(err)
	}
	if got, want := current(b.company), []int64{r1, r2}; !slices.Equal(got, want) {
		t.Fatalf("recipients = %v, want %v", got, want)
	}
	if got, want := events(), 1; got != want {
		t.Errorf("audit events = %d, want %d", got, want)
	}
	if got := testenv.Count(t, b.db, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'recipients_changed'
		AND actor_account_id = $2 AND request_id = 'req-1'`, b.company, actor); got != 1 {
		t.Errorf("the event does not carry the actor and request")
	}

	for _, c := range []struct {
		name     string
		ids      []int64
		reason   string
		notFound bool
	}{
		{"another company's account", []int64{r1, foreign}, "not_found", true},
		{"unknown account", []int64{1 << 60}, "not_found", true},
		{"retired account", []int64{retired}, "retired", false},
		{"account without an address", []int64{noEmail}, "no_email", false},
	} {
		err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, actor, c.ids, adminNow, "")
		var rr *postgres.RecipientRefusedError
		if !errors.As(err, &rr) || rr.Reason != c.reason {
			t.Errorf("%s: err = %v, want reason %q", c.name, err, c.reason)
		}
		if got := errors.Is(err, postgres.ErrNotFound); got != c.notFound {
			t.Errorf("%s: errors.Is(ErrNotFound) = %v, want %v", c.name, got, c.notFound)
		}
		if got, want := current(b.company), []int64{r1, r2}; !slices.Equal(got, want) {
			t.Errorf("%s changed the recipients to %v", c.name, got)
		}
	}
	if got, want := current(other), []int64{foreignRecipient}; !slices.Equal(got, want) {
		t.Errorf("the other company's recipients = %v, want %v", got, want)
	}
	// The same set again is no change and no event.
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, actor, []int64{r1, r2}, adminNow, ""); err != nil {
		t.Fatal(err)
	}
	if got, want := events(), 1; got != want {
		t.Errorf("audit events after a no-op = %d, want %d", got, want)
	}
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, b.company, actor, []int64{}, adminNow, ""); err != nil {
		t.Fatal(err)
	}
	if got := current(b.company); len(got) != 0 {
		t.Errorf("after clearing: %v", got)
	}
	cands, err := b.store.RecipientCandidates(b.ctx, b.company, adminNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(cands), []int64{actor, r1, r2}; !slices.Equal(got, want) {
		t.Errorf("candidates = %v, want %v (active, with an address, this company)", got, want)
	}
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, "no-such-company", actor, nil, adminNow, ""); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("unknown company: %v", err)
	}
}

func TestAPIKeys(t *testing.T) {
	b := adminSetup(t)
	hash := sha256.Sum256([]byte("dmy_key-one"))
	id, err := b.store.CreateAPIKey(b.ctx, "host one", "dmy_key", hash, nil, adminNow)
	if err != nil {
		t.Fatal(err)
	}
	second := sha256.Sum256([]byte("dmy_key-two"))
	id2, err := b.store.CreateAPIKey(b.ctx, "host two", "dmy_key", second, []string{"co-a", "co-b"}, adminNow)
	if err != nil {
		t.Fatal(err)
	}
	k, err := b.store.APIKeyByHash(b.ctx, hash, adminNow)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != id || k.Name != "host one" || k.Prefix != "dmy_key" {
		t.Errorf("key = %+v", k)
	}
	if !k.Allows("any-company") || k.Companies != nil {
		t.Errorf("a platform-wide key = %+v", k)
	}
	if k2, err := b.store.APIKeyByHash(b.ctx, second, adminNow); err != nil || !k2.Allows("co-b") || k2.Allows("co-c") {
		t.Errorf("second live key, scoped: %+v %v", k2, err)
	}
	if _, err := b.store.APIKeyByHash(b.ctx, sha256.Sum256([]byte("dmy_wrong")), adminNow); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("unknown key: %v", err)
	}
	lastUsed := func() time.Time {
		var at sql.NullTime
		if err := b.db.QueryRow(`SELECT last_used_at FROM api_keys WHERE id = $1`, id).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at.Time
	}
	if got := lastUsed(); !got.Equal(adminNow) {
		t.Errorf("last_used_at = %v, want %v", got, adminNow)
	}
	if _, err := b.store.APIKeyByHash(b.ctx, hash, adminNow.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(adminNow) {
		t.Errorf("touched again within a minute: %v", got)
	}
	if _, err := b.store.APIKeyByHash(b.ctx, hash, adminNow.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(adminNow.Add(2 * time.Minute)) {
		t.Errorf("last_used_at after two minutes = %v", got)
	}
	if err := b.store.RevokeAPIKey(b.ctx, id, adminNow); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.APIKeyByHash(b.ctx, hash, adminNow); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("revoked key still works: %v", err)
	}
	if _, err := b.store.APIKeyByHash(b.ctx, second, adminNow); err != nil {
		t.Errorf("revoking one key stopped the other: %v", err)
	}
	if err := b.store.RevokeAPIKey(b.ctx, 1<<60, adminNow); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("revoking an unknown key: %v", err)
	}
	keys, err := b.store.ListAPIKeys(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sawRevoked, sawLive bool
	for _, k := range keys {
		sawRevoked = sawRevoked || (k.ID == id && !k.RevokedAt.IsZero())
		sawLive = sawLive || (k.ID == id2 && k.RevokedAt.IsZero())
	}
	if !sawRevoked || !sawLive {
		t.Errorf("ListAPIKeys = %+v", keys)
	}
}

func TestAdminSessions(t *testing.T) {
	b := adminSetup(t)
	actor := b.account(t, acct{name: "管理者", admin: true})
	s := postgres.AdminSession{
		TokenHash: sha256.Sum256([]byte(testenv.UniqueID("token"))), LinkNonce: testenv.UniqueID("nonce"),
		CompanyID: b.company, AccountID: actor, Locale: policy.LocaleEN, CreatedAt: adminNow, ExpiresAt: adminNow.Add(time.Hour),
		LinkExpiresAt: adminNow.Add(15 * time.Minute),
	}
	if err := b.store.CreateAdminSession(b.ctx, s); err != nil {
		t.Fatal(err)
	}
	const idle = 30 * time.Minute
	got, err := b.store.AdminSessionByHash(b.ctx, s.TokenHash, adminNow, idle)
	if err != nil {
		t.Fatal(err)
	}
	if got.CompanyID != b.company || got.AccountID != actor || got.Locale != policy.LocaleEN || !got.ExpiresAt.Equal(s.ExpiresAt) {
		t.Errorf("session = %+v", got)
	}
	again := s
	again.TokenHash = sha256.Sum256([]byte("another token"))
	if err := b.store.CreateAdminSession(b.ctx, again); !errors.Is(err, postgres.ErrLinkUsed) {
		t.Errorf("second session from one link: %v, want ErrLinkUsed", err)
	}
	// Used 20 minutes later it lives on; 31 minutes after that use it has
	// ended, though its lifetime has not.
	if _, err := b.store.AdminSessionByHash(b.ctx, s.TokenHash, adminNow.Add(20*time.Minute), idle); err != nil {
		t.Errorf("session used within the idle time: %v", err)
	}
	if _, err := b.store.AdminSessionByHash(b.ctx, s.TokenHash, adminNow.Add(51*time.Minute), idle); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("idle session: %v, want ErrNotFound", err)
	}
	if _, err := b.store.AdminSessionByHash(b.ctx, s.TokenHash, adminNow.Add(time.Hour), 2*time.Hour); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("expired session: %v", err)
	}
	if err := b.store.DeleteAdminSession(b.ctx, s.TokenHash); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.AdminSessionByHash(b.ctx, s.TokenHash, adminNow, idle); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("deleted session: %v", err)
	}
	// The link stays used after its session is gone (logout), and after a
	// later session's creation purged the expired sessions, for as long as
	// the link lives.
	if err := b.store.CreateAdminSession(b.ctx, again); !errors.Is(err, postgres.ErrLinkUsed) {
		t.Errorf("the link after its session was deleted: %v, want ErrLinkUsed", err)
	}
	other := s
	other.TokenHash, other.LinkNonce = sha256.Sum256([]byte(testenv.UniqueID("t"))), testenv.UniqueID("nonce")
	other.CreatedAt, other.ExpiresAt, other.LinkExpiresAt = adminNow.Add(2*time.Hour), adminNow.Add(3*time.Hour), adminNow.Add(2*time.Hour+time.Minute)
	if err := b.store.CreateAdminSession(b.ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := b.store.CreateAdminSession(b.ctx, again); !errors.Is(err, postgres.ErrLinkUsed) {
		t.Errorf("the link after the purge of expired sessions: %v, want ErrLinkUsed", err)
	}
}

func TestDevMails(t *testing.T) {
	b := adminSetup(t)
	id := b.account(t, acct{name: "<b>太郎</b>"})
	var mailIDs []int64
	for i, provider := range []string{"dev-1", "re_real", "dev-2", "dev-3"} {
		err := b.store.WithTx(b.ctx, func(tx *postgres.Tx) error {
			mid, err := tx.InsertMail(b.ctx, postgres.NewMail{Kind: postgres.MailUnlocked, CompanyID: b.company, AccountID: id,
				To: "taro@example.com", Locale: policy.LocaleJA, IdempotencyKey: testenv.UniqueID("k"), CreatedAt: adminNow})
			if err != nil {
				return err
			}
			mailIDs = append(mailIDs, mid)
			d := postgres.Delivery{Status: postgres.MailSent, Subject: "件名" + provider, ProviderID: provider, At: adminNow.Add(time.Duration(i) * time.Minute)}
			if provider != "re_real" {
				d.Text, d.HTML = "本文 https://platform.example.com/login", "<p>本文</p>"
			}
			return tx.FinishMail(b.ctx, mid, d)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ms, err := b.store.DevMails(b.ctx, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range ms {
		got = append(got, m.ID)
		if m.Text == "" || m.HTML == "" || m.To != "taro@example.com" || m.CompanyID != b.company || m.SentAt.IsZero() {
			t.Errorf("dev mail = %+v", m)
		}
	}
	if want := []int64{mailIDs[3], mailIDs[2]}; !slices.Equal(got, want) {
		t.Errorf("first page = %v, want %v", got, want)
	}
	ms, err = b.store.DevMails(b.ctx, 2, mailIDs[2])
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].ID != mailIDs[0] {
		t.Errorf("second page = %+v, want only mail %d (the Resend one is not in the dev mailbox)", ms, mailIDs[0])
	}
}

func TestEventCounter(t *testing.T) {
	b := adminSetup(t)
	ctx := b.ctx
	// The counter counts every row, so it starts from whatever other tests
	// in this database wrote; measure the change.
	c := b.store.NewEventCounter(time.Minute)
	count := func(at time.Time) map[postgres.EventKind]int64 {
		t.Helper()
		got, err := c.Counts(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		m := map[postgres.EventKind]int64{}
		for _, ec := range got {
			m[ec.Kind] = ec.Count
		}
		return m
	}
	audit := func(kind postgres.EventKind) {
		if err := b.store.Audit(ctx, postgres.Event{Kind: kind, CompanyID: b.company, OccurredAt: adminNow}); err != nil {
			t.Fatal(err)
		}
	}
	base := count(adminNow)
	audit(postgres.EventLocked)
	audit(postgres.EventLocked)
	audit(postgres.EventMailSent)
	now := adminNow.Add(15 * time.Second)
	got := count(now)
	if d := got[postgres.EventLocked] - base[postgres.EventLocked]; d != 2 {
		t.Errorf("locked +%d, want +2", d)
	}
	if d := got[postgres.EventMailSent] - base[postgres.EventMailSent]; d != 1 {
		t.Errorf("mail_sent +%d, want +1", d)
	}

	// A transaction that took a lower id commits after a higher id was
	// counted: it is still counted once it commits within the settle time.
	tx, err := b.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO audit_events (company_id, kind, occurred_at) VALUES ($1, 'relocked', $2)`, b.company, adminNow); err != nil {
		t.Fatal(err)
	}
	audit(postgres.EventLocked)
	now = now.Add(15 * time.Second)
	got = count(now)
	if d := got[postgres.EventLocked] - base[postgres.EventLocked]; d != 3 {
		t.Errorf("locked +%d, want +3", d)
	}
	if d := got[postgres.EventRelocked] - base[postgres.EventRelocked]; d != 0 {
		t.Errorf("uncommitted relock counted: +%d", d)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ { // scrapes over three minutes: the rows settle
		now = now.Add(30 * time.Second)
		got = count(now)
		if d := got[postgres.EventRelocked] - base[postgres.EventRelocked]; d != 1 {
			t.Errorf("scrape %d: relocked +%d, want +1", i, d)
		}
		if d := got[postgres.EventLocked] - base[postgres.EventLocked]; d != 3 {
			t.Errorf("scrape %d: locked +%d, want +3", i, d)
		}
	}
}
