package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/policy"
)

// AccountView is an account as the admin server shows it: who the person
// is, the login date and where the lock stands.
type AccountView struct {
	ID                 int64
	CompanyID          string
	LoginID            string
	IDKind             policy.IDKind
	Email              string
	Name               string
	Department         string
	CanManageEmployees bool
	Retired            bool
	// LastLoginAt is the login date; zero means never.
	LastLoginAt time.Time
	// State is the stored state, except that an unlock whose deadline has
	// passed reads as locked: deadlines are enforced when read.
	State         policy.LockState
	Reason        policy.LockReason
	LockedAt      time.Time
	UnlockedUntil time.Time
	// Recipient is set when the account is a login notification recipient.
	Recipient bool
}

// Locked reports whether the account refuses logins because of a lock.
func (a AccountView) Locked() bool { return a.State == policy.StateLocked }

type accountViewRow struct {
	ID                 int64
	CompanyID          string
	LoginID            string
	IDKind             string
	Email              sql.NullString
	Name               string
	Department         string
	CanManageEmployees bool
	Status             string
	LastLoginAt        sql.NullTime
	LockState          string
	LockReason         sql.NullString
	LockedAt           sql.NullTime
	UnlockedUntil      sql.NullTime
	Recipient          bool
	Total              int
}

func (r accountViewRow) view() AccountView {
	return AccountView{
		ID: r.ID, CompanyID: r.CompanyID, LoginID: r.LoginID, IDKind: policy.IDKind(r.IDKind),
		Email: r.Email.String, Name: r.Name, Department: r.Department,
		CanManageEmployees: r.CanManageEmployees, Retired: r.Status == "retired",
		LastLoginAt: r.LastLoginAt.Time, State: policy.LockState(r.LockState),
		Reason: policy.LockReason(r.LockReason.String), LockedAt: r.LockedAt.Time,
		UnlockedUntil: r.UnlockedUntil.Time, Recipient: r.Recipient,
	}
}

// accountViewColumns reads an account refused by a lock (an unlock whose
// deadline passed, or dormancy the sweep has not reached yet) as locked for
// the dormant reason, the way policy.Decide treats it, so the list never
// shows as open an account that would be refused. It needs the company
// (accountsWithCompany).
var accountViewColumns = `
	a.id, a.company_id, a.login_id, a.id_kind, a.email, a.name, a.department,
	a.can_manage_employees, a.status, a.last_login_at,
	CASE WHEN a.status = 'active' AND ` + sqlRefusedByLock("?0::timestamptz") + ` THEN 'locked' ELSE a.lock_state END AS lock_state,
	CASE WHEN a.status = 'active' AND a.lock_state <> 'locked' AND ` + sqlRefusedByLock("?0::timestamptz") + ` THEN 'dormant'
		ELSE a.lock_reason END AS lock_reason,
	a.locked_at,
	CASE WHEN a.lock_state = 'unlocked_until' AND NOT ` + sqlUnlockLapsed("?0") + ` THEN a.unlocked_until END AS unlocked_until,
	EXISTS (SELECT 1 FROM login_notification_recipients r WHERE r.company_id = a.company_id AND r.account_id = a.id) AS recipient`

// lockedAt is the locked-only filter, with the same reading of deadlines.
// A retired account is never one to unlock, whatever lock it kept.
var lockedAt = `a.status = 'active' AND ` + sqlRefusedByLock("?0::timestamptz")

// AccountFilter selects a page of a company's employee list.
type AccountFilter struct {
	// LockedOnly keeps the accounts that refuse logins because of a lock.
	LockedOnly bool
	// Page is 1-based; PerPage is capped at MaxPerPage.
	Page    int
	PerPage int
}

// MaxPerPage bounds one page, so one request cannot pull a whole company.
const MaxPerPage = 200

// AccountPage is one page of a company's employee list.
type AccountPage struct {
	Accounts []AccountView
	// Total counts every account the filter matches, over all pages.
	Total   int
	Page    int
	PerPage int
}

// ListAccounts returns a page of the company's accounts, ordered by
// department, name and id, with lock states as they read at now.
func (s *Store) ListAccounts(ctx context.Context, companyID string, f AccountFilter, now time.Time) (AccountPage, error) {
	if f.PerPage <= 0 {
		f.PerPage = 50
	}
	f.PerPage = min(f.PerPage, MaxPerPage)
	f.Page = max(f.Page, 1)
	where := `a.company_id = ?1`
	if f.LockedOnly {
		where += ` AND ` + lockedAt
	}
	var rows []accountViewRow
	err := s.db.NewRaw(`SELECT `+accountViewColumns+`, count(*) OVER () AS total
		FROM `+accountsWithCompany+` WHERE `+where+`
		ORDER BY a.department, a.name, a.id
		LIMIT ?2 OFFSET ?3`, now, companyID, f.PerPage, (f.Page-1)*f.PerPage).Scan(ctx, &rows)
	if err != nil {
		return AccountPage{}, fmt.Errorf("postgres.ListAccounts(%q): %w", companyID, err)
	}
	p := AccountPage{Accounts: make([]AccountView, len(rows)), Page: f.Page, PerPage: f.PerPage}
	for i, r := range rows {
		p.Accounts[i] = r.view()
		p.Total = r.Total
	}
	if len(rows) == 0 && f.Page > 1 {
		// Past the last page the window function has no row to ride on.
		q := `SELECT count(*) FROM ` + accountsWithCompany + ` WHERE ` + where
		if err := s.db.NewRaw(q, now, companyID).Scan(ctx, &p.Total); err != nil {
			return AccountPage{}, fmt.Errorf("postgres.ListAccounts(%q): count: %w", companyID, err)
		}
	}
	return p, nil
}

// Account returns one account as the admin server shows it, whatever its
// company; callers compare CompanyID with the actor's.
func (s *Store) Account(ctx context.Context, id int64, now time.Time) (AccountView, error) {
	var r accountViewRow
	err := s.db.NewRaw(`SELECT `+accountViewColumns+`, 0 AS total FROM `+accountsWithCompany+` WHERE a.id = ?1`, now, id).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return AccountView{}, fmt.Errorf("postgres.Account(%d): %w", id, ErrNotFound)
	}
	if err != nil {
		return AccountView{}, fmt.Errorf("postgres.Account(%d): %w", id, err)
	}
	return r.view(), nil
}

// Actor is the account an administrator acts as, with what the permission
// check reads.
type Actor struct {
	AccountID          int64
	CompanyID          string
	Name               string
	CanManageEmployees bool
	Retired            bool
	// CanAct is policy.CanAct at the time the actor was loaded: an
	// administrator who is locked, lapsed or dormant cannot act.
	CanAct bool
}

// Administers reports whether the actor may manage the employees of
// companyID now: an administrator of that company who can act.
func (a Actor) Administers(companyID string) bool {
	return a.AccountID != 0 && a.CompanyID == companyID && a.CanAct
}

// Actor loads the account an API call or a page acts as, judged at now.
// Every request reads it afresh, so a permission withdrawn, a person
// retired or locked counts at once.
func (s *Store) Actor(ctx context.Context, accountID int64, now time.Time) (Actor, error) {
	sub, _, err := scanSubject(ctx, s.db.NewRaw(`SELECT `+employeeColumns+`, NULL AS administrators
		FROM accounts a JOIN companies c ON c.id = a.company_id WHERE a.id = ?`, accountID))
	if err != nil {
		return Actor{}, fmt.Errorf("postgres.Actor(%d): %w", accountID, err)
	}
	return actorOf(sub, now), nil
}

func actorOf(sub Subject, now time.Time) Actor {
	e := sub.Employee
	return Actor{AccountID: e.ID, CompanyID: e.CompanyID, Name: e.Name, CanManageEmployees: e.CanManageEmployees,
		Retired: e.Retired, CanAct: policy.CanAct(e, sub.Company.Policy, now)}
}

// CompanyInfo is what the admin pages show of a company.
type CompanyInfo struct {
	ID       string
	Name     string
	Location *time.Location
	Locale   policy.Locale
}

// Company returns the company's name, time zone and locale, or ErrNotFound.
func (s *Store) Company(ctx context.Context, companyID string) (CompanyInfo, error) {
	var r struct {
		ID       string
		Name     string
		TimeZone string
		Locale   string
	}
	err := s.db.NewRaw(`SELECT id, name, time_zone, locale FROM companies WHERE id = ?`, companyID).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return CompanyInfo{}, fmt.Errorf("postgres.Company(%q): %w", companyID, ErrNotFound)
	}
	if err != nil {
		return CompanyInfo{}, fmt.Errorf("postgres.Company(%q): %w", companyID, err)
	}
	loc, err := time.LoadLocation(r.TimeZone)
	if err != nil {
		return CompanyInfo{}, fmt.Errorf("postgres.Company(%q): time zone %q: %w", companyID, r.TimeZone, err)
	}
	return CompanyInfo{ID: r.ID, Name: r.Name, Location: loc, Locale: policy.Locale(r.Locale)}, nil
}

// MissingAccounts returns the ids among ids that are not accounts of the
// company, so a request naming another company's account is refused before
// anything changes.
func (s *Store) MissingAccounts(ctx context.Context, companyID string, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var missing []int64
	err := s.db.NewRaw(`SELECT x.id FROM unnest(?::bigint[]) AS x(id)
		WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = x.id AND a.company_id = ?)
		ORDER BY x.id`, pgdialect.Array(ids), companyID).Scan(ctx, &missing)
	if err != nil {
		return nil, fmt.Errorf("postgres.MissingAccounts(%q): %w", companyID, err)
	}
	return missing, nil
}

// LoginNotificationRecipients lists the company's recipients.
func (s *Store) LoginNotificationRecipients(ctx context.Context, companyID string, now time.Time) ([]AccountView, error) {
	var rows []accountViewRow
	err := s.db.NewRaw(`SELECT `+accountViewColumns+`, 0 AS total
		FROM login_notification_recipients r JOIN accounts a ON a.id = r.account_id AND a.company_id = r.company_id
		JOIN companies c ON c.id = a.company_id
		WHERE r.company_id = ?1 ORDER BY a.department, a.name, a.id`, now, companyID).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres.LoginNotificationRecipients(%q): %w", companyID, err)
	}
	out := make([]AccountView, len(rows))
	for i, r := range rows {
		out[i] = r.view()
	}
	return out, nil
}

// RecipientCandidates lists the accounts that may be chosen as recipients:
// active, of the company, with an address to mail.
func (s *Store) RecipientCandidates(ctx context.Context, companyID string, now time.Time) ([]AccountView, error) {
	var rows []accountViewRow
	err := s.db.NewRaw(`SELECT `+accountViewColumns+`, 0 AS total
		FROM `+accountsWithCompany+` WHERE a.company_id = ?1 AND a.status = 'active' AND a.email IS NOT NULL
		ORDER BY a.department, a.name, a.id`, now, companyID).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres.RecipientCandidates(%q): %w", companyID, err)
	}
	out := make([]AccountView, len(rows))
	for i, r := range rows {
		out[i] = r.view()
	}
	return out, nil
}

// RecipientRefusedError names the account that cannot be a recipient.
type RecipientRefusedError struct {
	AccountID int64
	// Reason is "not_found" (no such account in the company), "retired" or
	// "no_email".
	Reason string
}

func (e *RecipientRefusedError) Error() string {
	return fmt.Sprintf("account %d cannot be a login notification recipient: %s", e.AccountID, e.Reason)
}

// Unwrap makes an account of another company ErrNotFound.
func (e *RecipientRefusedError) Unwrap() error {
	if e.Reason == "not_found" {
		return ErrNotFound
	}
	return nil
}

// ReplaceLoginNotificationRecipients replaces the company's recipients
// with accountIDs, all or nothing: an id that is not an active account of
// the company with an address refuses the whole change, so a request
// naming another company's account changes nothing. An actor other than 0
// (a seed or a test) must be an active administrator of the company, else
// policy.ErrForbidden. The change is an audit event carrying the actor.
func (s *Store) ReplaceLoginNotificationRecipients(ctx context.Context, companyID string, actorID int64, accountIDs []int64, now time.Time, requestID string) error {
	ids := append([]int64{}, accountIDs...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return s.WithTx(ctx, func(t *Tx) error {
		var found []struct {
			ID     int64
			Status string
			Email  sql.NullString
		}
		// Locks the company row so two administrators saving at once apply
		// one after the other.
		var locked string
		if err := t.tx.NewRaw(`SELECT id FROM companies WHERE id = ? FOR UPDATE`, companyID).Scan(ctx, &locked); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				err = ErrNotFound
			}
			return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
		}
		// An actor (actorID != 0) must be an active administrator of the
		// company at this moment: the row is share-locked, so a permission
		// removed concurrently lands first and refuses this, or waits.
		if actorID != 0 {
			var admin bool
			err := t.tx.NewRaw(`SELECT can_manage_employees AND status = 'active' FROM accounts
				WHERE id = ? AND company_id = ? FOR SHARE`, actorID, companyID).Scan(ctx, &admin)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
			}
			if !admin {
				return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): actor %d: %w", companyID, actorID, policy.ErrForbidden)
			}
		}
		if len(ids) > 0 {
			if err := t.tx.NewRaw(`SELECT id, status, email FROM accounts WHERE company_id = ? AND id = ANY(?) ORDER BY id`,
				companyID, pgdialect.Array(ids)).Scan(ctx, &found); err != nil {
				return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
			}
		}
		byID := make(map[int64]int, len(found))
		for i, f := range found {
			byID[f.ID] = i
		}
		for _, id := range ids {
			i, ok := byID[id]
			switch {
			case !ok:
				return &RecipientRefusedError{AccountID: id, Reason: "not_found"}
			case found[i].Status != "active":
				return &RecipientRefusedError{AccountID: id, Reason: "retired"}
			case !found[i].Email.Valid:
				return &RecipientRefusedError{AccountID: id, Reason: "no_email"}
			}
		}
		var before []int64
		if err := t.tx.NewRaw(`SELECT account_id FROM login_notification_recipients WHERE company_id = ? ORDER BY account_id`, companyID).Scan(ctx, &before); err != nil {
			return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
		}
		if slices.Equal(before, ids) {
			return nil
		}
		if _, err := t.tx.NewRaw(`DELETE FROM login_notification_recipients WHERE company_id = ? AND NOT (account_id = ANY(?))`,
			companyID, pgdialect.Array(ids)).Exec(ctx); err != nil {
			return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
		}
		if len(ids) > 0 {
			if _, err := t.tx.NewRaw(`INSERT INTO login_notification_recipients (company_id, account_id, created_at, created_by)
				SELECT ?, x.id, ?, nullif(?, 0) FROM unnest(?::bigint[]) AS x(id)
				ON CONFLICT (company_id, account_id) DO NOTHING`,
				companyID, now, actorID, pgdialect.Array(ids)).Exec(ctx); err != nil {
				return fmt.Errorf("postgres.ReplaceLoginNotificationRecipients(%q): %w", companyID, err)
			}
		}
		if before == nil {
			before = []int64{}
		}
		return t.Audit(ctx, Event{
			Kind: EventRecipientsChanged, CompanyID: companyID, ActorAccountID: actorID, RequestID: requestID, OccurredAt: now,
			Detail: map[string]any{"before": before, "after": ids},
		})
	})
}

// APIKey is a host platform's key as stored: never the key itself.
type APIKey struct {
	ID         int64
	Name       string
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// CreateAPIKey stores a new key by its hash and returns its id.
func (s *Store) CreateAPIKey(ctx context.Context, name, prefix string, hash [sha256.Size]byte, now time.Time) (int64, error) {
	var id int64
	err := s.db.NewRaw(`INSERT INTO api_keys (name, prefix, key_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
		name, prefix, hash[:], now).Scan(ctx, &id)
	if err != nil {
		return 0, fmt.Errorf("postgres.CreateAPIKey(%q): %w", name, err)
	}
	return id, nil
}

// APIKeyByHash finds the live key with this hash and notes its use at most
// once a minute, so a busy host does not turn every request into a write.
func (s *Store) APIKeyByHash(ctx context.Context, hash [sha256.Size]byte, now time.Time) (APIKey, error) {
	var r struct {
		ID        int64
		Name      string
		Prefix    string
		CreatedAt time.Time
	}
	err := s.db.NewRaw(`WITH k AS (
			SELECT id, name, prefix, created_at FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL
		), touch AS (
			UPDATE api_keys SET last_used_at = ? FROM k
			WHERE api_keys.id = k.id AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < ?)
		)
		SELECT id, name, prefix, created_at FROM k`, hash[:], now, now.Add(-time.Minute)).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("postgres.APIKeyByHash: %w", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres.APIKeyByHash: %w", err)
	}
	return APIKey{ID: r.ID, Name: r.Name, Prefix: r.Prefix, CreatedAt: r.CreatedAt}, nil
}

// ListAPIKeys lists every key, revoked ones included, newest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var rows []struct {
		ID         int64
		Name       string
		Prefix     string
		CreatedAt  time.Time
		LastUsedAt sql.NullTime
		RevokedAt  sql.NullTime
	}
	if err := s.db.NewRaw(`SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys ORDER BY id DESC`).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("postgres.ListAPIKeys: %w", err)
	}
	out := make([]APIKey, len(rows))
	for i, r := range rows {
		out[i] = APIKey{ID: r.ID, Name: r.Name, Prefix: r.Prefix, CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt.Time, RevokedAt: r.RevokedAt.Time}
	}
	return out, nil
}

// RevokeAPIKey stops a key from working; revoking twice is not an error.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64, now time.Time) error {
	res, err := s.db.NewRaw(`UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, now, id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.RevokeAPIKey(%d): %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("postgres.RevokeAPIKey(%d): %w", id, ErrNotFound)
	}
	return nil
}

// AdminSession is a company administrator's session on the admin pages.
type AdminSession struct {
	TokenHash [sha256.Size]byte
	LinkNonce string
	CompanyID string
	AccountID int64
	Locale    policy.Locale
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ErrLinkUsed is returned when a signed link already opened a session.
var ErrLinkUsed = errors.New("signed link already used")

// CreateAdminSession stores a session. A link nonce that opened a session
// before is ErrLinkUsed: a signed link works once. Sessions that ended a
// day ago are cleared on the way.
func (s *Store) CreateAdminSession(ctx context.Context, a AdminSession) error {
	_, err := s.db.NewRaw(`WITH purge AS (DELETE FROM admin_sessions WHERE expires_at < ?)
		INSERT INTO admin_sessions (token_hash, link_nonce, company_id, account_id, locale, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, a.CreatedAt.Add(-24*time.Hour),
		a.TokenHash[:], a.LinkNonce, a.CompanyID, a.AccountID, string(a.Locale), a.CreatedAt, a.ExpiresAt).Exec(ctx)
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) && pgErr.Field('C') == "23505" {
		return fmt.Errorf("postgres.CreateAdminSession(%q): %w", a.CompanyID, ErrLinkUsed)
	}
	if err != nil {
		return fmt.Errorf("postgres.CreateAdminSession(%q): %w", a.CompanyID, err)
	}
	return nil
}

// AdminSessionByHash returns the live session with this token hash.
func (s *Store) AdminSessionByHash(ctx context.Context, hash [sha256.Size]byte, now time.Time) (AdminSession, error) {
	var r struct {
		LinkNonce string
		CompanyID string
		AccountID int64
		Locale    string
		CreatedAt time.Time
		ExpiresAt time.Time
	}
	err := s.db.NewRaw(`SELECT link_nonce, company_id, account_id, locale, created_at, expires_at
		FROM admin_sessions WHERE token_hash = ? AND expires_at > ?`, hash[:], now).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return AdminSession{}, fmt.Errorf("postgres.AdminSessionByHash: %w", ErrNotFound)
	}
	if err != nil {
		return AdminSession{}, fmt.Errorf("postgres.AdminSessionByHash: %w", err)
	}
	return AdminSession{TokenHash: hash, LinkNonce: r.LinkNonce, CompanyID: r.CompanyID, AccountID: r.AccountID,
		Locale: policy.Locale(r.Locale), CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}, nil
}

// DeleteAdminSession ends a session (logout).
func (s *Store) DeleteAdminSession(ctx context.Context, hash [sha256.Size]byte) error {
	if _, err := s.db.NewRaw(`DELETE FROM admin_sessions WHERE token_hash = ?`, hash[:]).Exec(ctx); err != nil {
		return fmt.Errorf("postgres.DeleteAdminSession: %w", err)
	}
	return nil
}

// DevMail is one message in the dev mailbox: what would have been sent.
type DevMail struct {
	ID         int64
	Kind       MailKind
	CompanyID  string
	To         string
	Subject    string
	Text       string
	HTML       string
	ProviderID string
	CreatedAt  time.Time
	SentAt     time.Time
}

// DevMails lists the dev mailbox newest first: the mails the dev sender
// took, with their bodies. beforeID pages back (0 = from the newest).
func (s *Store) DevMails(ctx context.Context, limit int, beforeID int64) ([]DevMail, error) {
	if limit <= 0 || limit > MaxPerPage {
		limit = MaxPerPage
	}
	var rows []struct {
		ID         int64
		Kind       string
		CompanyID  string
		ToAddress  string
		Subject    string
		BodyText   sql.NullString
		BodyHTML   sql.NullString
		ProviderID string
		CreatedAt  time.Time
		SentAt     sql.NullTime
	}
	err := s.db.NewRaw(`SELECT id, kind, company_id, to_address, subject, body_text, body_html, provider_id, created_at, sent_at
		FROM mails WHERE provider_id LIKE 'dev-%' AND (? = 0 OR id < ?)
		ORDER BY id DESC LIMIT ?`, beforeID, beforeID, limit).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres.DevMails: %w", err)
	}
	out := make([]DevMail, len(rows))
	for i, r := range rows {
		out[i] = DevMail{ID: r.ID, Kind: MailKind(r.Kind), CompanyID: r.CompanyID, To: r.ToAddress, Subject: r.Subject,
			Text: r.BodyText.String, HTML: r.BodyHTML.String, ProviderID: r.ProviderID, CreatedAt: r.CreatedAt, SentAt: r.SentAt.Time}
	}
	return out, nil
}

// EventCount is how many audit events of one kind exist.
type EventCount struct {
	Kind  EventKind
	Count int64
}

// EventCounter counts audit events by kind for /metrics without scanning
// the whole table at every scrape: it keeps the counts of the rows it has
// settled and counts only newer rows. A row is settled once a later scrape
// saw a higher id at least Settle earlier, which leaves time for the
// transactions that took lower ids to commit.
type EventCounter struct {
	store   *Store
	settle  time.Duration
	settled map[EventKind]int64
	// boundary: every row with id <= boundary is in settled.
	boundary int64
	// seen are the highest ids seen by earlier scrapes, oldest first.
	seen []idSeen
}

type idSeen struct {
	at time.Time
	id int64
}

// NewEventCounter returns a counter; settle is how long a transaction may
// stay open before its events are counted for good (a minute is plenty).
func (s *Store) NewEventCounter(settle time.Duration) *EventCounter {
	return &EventCounter{store: s, settle: settle, settled: map[EventKind]int64{}}
}

// Counts returns the number of audit events of each kind at now. It is
// not safe for concurrent use; the caller serialises scrapes.
func (c *EventCounter) Counts(ctx context.Context, now time.Time) ([]EventCount, error) {
	settleTo := c.boundary
	for len(c.seen) > 0 && !c.seen[0].at.After(now.Add(-c.settle)) {
		settleTo = max(settleTo, c.seen[0].id)
		c.seen = c.seen[1:]
	}
	var rows []struct {
		Kind    string
		Settled int64
		Total   int64
		MaxID   int64
	}
	err := c.store.db.NewRaw(`SELECT kind, count(*) FILTER (WHERE id <= ?) AS settled, count(*) AS total, max(id) AS max_id
		FROM audit_events WHERE id > ? GROUP BY kind ORDER BY kind`, settleTo, c.boundary).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres.EventCounter.Counts: %w", err)
	}
	totals := make(map[EventKind]int64, len(c.settled)+len(rows))
	var maxID int64
	for k, n := range c.settled {
		totals[k] = n
	}
	for _, r := range rows {
		totals[EventKind(r.Kind)] += r.Total
		c.settled[EventKind(r.Kind)] += r.Settled
		maxID = max(maxID, r.MaxID)
	}
	c.boundary = settleTo
	if maxID > settleTo {
		c.seen = append(c.seen, idSeen{at: now, id: maxID})
	}
	out := make([]EventCount, 0, len(totals))
	for k, n := range totals {
		out = append(out, EventCount{Kind: k, Count: n})
	}
	slices.SortFunc(out, func(a, b EventCount) int {
		if a.Kind < b.Kind {
			return -1
		}
		if a.Kind > b.Kind {
			return 1
		}
		return 0
	})
	return out, nil
}
