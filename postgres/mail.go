package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// MailKind is the kind of an outgoing mail; each has its own template.
type MailKind string

const (
	MailVerification      MailKind = "verification"
	MailDormantLoginAlert MailKind = "dormant_login_alert"
	MailUnlocked          MailKind = "unlocked"
	MailAdminUnlocked     MailKind = "admin_unlocked"
	MailPrelockWarning    MailKind = "prelock_warning"
	// MailSweepHeld tells a company's administrators that the sweep held
	// back a mass lock and waits for a confirmation.
	MailSweepHeld MailKind = "sweep_held"
	// MailDailyDigest is a company's daily digest to one recipient.
	MailDailyDigest MailKind = "daily_digest"
	// MailLockNotice tells an owner the sweep locked the account, and how
	// to get back in.
	MailLockNotice MailKind = "lock_notice"
	// MailWebhookDisabled tells a company's administrators that one of its
	// webhook endpoints was disabled.
	MailWebhookDisabled MailKind = "webhook_disabled"
)

// MailStatus is where a mail stands.
type MailStatus string

const (
	MailPending MailStatus = "pending"
	MailSent    MailStatus = "sent"
	MailFailed  MailStatus = "failed"
	// MailDropped: no longer worth sending (link superseded, person retired).
	MailDropped MailStatus = "dropped"
)

// NewMail is a mail to write to the outbox.
type NewMail struct {
	Kind               MailKind
	CompanyID          string
	AccountID          int64
	RecipientAccountID int64
	To                 string
	Locale             policy.Locale
	IdempotencyKey     string
	AttemptID          int64
	TokenID            int64
	CreatedAt          time.Time
}

// InsertMail writes m to the outbox. A mail whose idempotency key exists
// already is not written twice; its id is returned either way.
func (t *Tx) InsertMail(ctx context.Context, m NewMail) (int64, error) {
	var id int64
	err := t.scanOne(ctx, insertMail, []any{string(m.Kind), m.CompanyID, m.AccountID, m.RecipientAccountID, m.To, string(m.Locale),
		m.IdempotencyKey, m.AttemptID, m.TokenID, m.CreatedAt}, &id)
	if err != nil {
		return 0, fmt.Errorf("postgres.InsertMail(%q): %w", m.IdempotencyKey, err)
	}
	return id, nil
}

var insertMail = newStatement("InsertMail", `WITH ins AS (
		INSERT INTO mails (kind, company_id, account_id, recipient_account_id, to_address, locale,
			idempotency_key, attempt_id, token_id, created_at)
		VALUES ($1, $2, $3, nullif($4::bigint, 0), $5, $6, $7, nullif($8::bigint, 0), nullif($9::bigint, 0), $10)
		ON CONFLICT (idempotency_key) DO NOTHING RETURNING id)
	SELECT id FROM ins UNION ALL SELECT id FROM mails WHERE idempotency_key = $7 LIMIT 1`)

// InsertAlertMails writes to the outbox, in one statement, an alert about
// the attempt to each of the company's login notification recipients who
// is due one at now: active, with an address, not the account itself, and
// not alerted about it within the window. It returns the mails' ids. The
// caller holds the account's row lock, so two attempts cannot both find a
// recipient due. Only mails it writes are returned: a mail already under
// a pair's key is an alert about this account sent for this attempt, which
// the window keeps from being due, and a redelivered attempt queues its
// pending mails by another path (the worker's requeueAttemptMail).
func (t *Tx) InsertAlertMails(ctx context.Context, companyID string, accountID, attemptID int64, locale policy.Locale, window time.Duration, now time.Time) ([]int64, error) {
	var ids []int64
	err := t.scanAll(ctx, insertAlertMails, &ids, companyID, accountID, string(MailDormantLoginAlert), now.Add(-window), string(locale), attemptID, now)
	if err != nil {
		return nil, fmt.Errorf("postgres.InsertAlertMails(%q, %d): %w", companyID, accountID, err)
	}
	return ids, nil
}

// The key is the attempt's and the recipient's: a mail per pair, ever.
var insertAlertMails = newStatement("InsertAlertMails", `WITH due AS (
		SELECT r.account_id, ra.email
		FROM login_notification_recipients r
		JOIN accounts ra ON ra.id = r.account_id
		WHERE r.company_id = $1 AND ra.company_id = r.company_id AND ra.status = 'active'
		  AND ra.email IS NOT NULL AND ra.id <> $2
		  AND NOT EXISTS (SELECT 1 FROM mails m
			WHERE m.kind = $3 AND m.account_id = $2 AND m.recipient_account_id = r.account_id
			  AND `+sqlAlertedWithin("$4")+`)
		ORDER BY r.account_id)
	INSERT INTO mails (kind, company_id, account_id, recipient_account_id, to_address, locale, idempotency_key, attempt_id, created_at)
	SELECT $3, $1, $2, due.account_id, due.email, $5, 'alert:' || $6::bigint || ':' || due.account_id, nullif($6::bigint, 0), $7 FROM due
	ON CONFLICT (idempotency_key) DO NOTHING
	RETURNING id`)

// PendingMail is an outbox row that still has to be handed to the queue.
type PendingMail struct {
	ID      int64
	Kind    MailKind
	TokenID int64
}

// PendingMailsOfAttempt lists the attempt's mails not yet sent: a
// redelivered login:attempt hands them to the queue again, in case the
// first delivery died between its commit and its enqueue.
func (t *Tx) PendingMailsOfAttempt(ctx context.Context, attemptID int64) ([]PendingMail, error) {
	var ms []PendingMail
	err := t.tx.NewRaw(`SELECT id, kind, coalesce(token_id, 0) AS token_id FROM mails
		WHERE attempt_id = ? AND status = ? ORDER BY id`, attemptID, MailPending).Scan(ctx, &ms)
	if err != nil {
		return nil, fmt.Errorf("postgres.PendingMailsOfAttempt(%d): %w", attemptID, err)
	}
	return ms, nil
}

// Mail is an outbox row with everything its template needs.
type Mail struct {
	ID                 int64
	Kind               MailKind
	Status             MailStatus
	CompanyID          string
	AccountID          int64
	RecipientAccountID int64
	To                 string
	Locale             policy.Locale
	IdempotencyKey     string
	TokenID            int64
	CreatedAt          time.Time

	Location        *time.Location
	VerificationTTL time.Duration
	// InactivityPeriod is the company's, as the mail is sent.
	InactivityPeriod time.Duration
	// PlatformName is the company's name for the host platform, or "".
	PlatformName string
	// The account the mail is about.
	IDKind     policy.IDKind
	Name       string
	LoginID    string
	Department string
	Retired    bool
	// RecipientRetired is set when an alert's recipient left meanwhile.
	RecipientRetired bool
	UnlockedUntil    time.Time
	// The attempt behind an alert.
	AttemptedAt time.Time
	IP          netip.Addr
	Device      policy.DeviceKind
	// The verification link's token, as LiveTokenSeed reads it at the
	// instant LockMail was given: read with the mail, since every link
	// sent needs it.
	TokenSeed []byte
	TokenHash policy.TokenHash
	TokenLive bool
}

// LockMail loads a mail and holds its row lock while the caller sends it,
// so two deliveries of one task send once: the second waits, then finds it
// sent. A verification mail's token is read with it, live or not at now.
func (t *Tx) LockMail(ctx context.Context, id int64, now time.Time) (Mail, error) {
	var r struct {
		ID                 int64
		Kind               string
		Status             string
		CompanyID          string
		AccountID          int64
		RecipientAccountID sql.NullInt64
		ToAddress          string
		Locale             string
		IdempotencyKey     string
		TokenID            sql.NullInt64
		CreatedAt          time.Time
		TimeZone           string
		VerificationTTL    int
		InactivityDays     int
		PlatformName       string
		Name               string
		IDKind             string
		LoginID            string
		Department         string
		AccountStatus      string
		RecipientStatus    sql.NullString
		UnlockedUntil      sql.NullTime
		AttemptedAt        sql.NullTime
		IP                 sql.NullString
		DeviceKind         sql.NullString
		TokenSeed          []byte
		TokenHash          []byte
		TokenLive          bool
	}
	err := t.scanOne(ctx, lockMail, []any{id, now}, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return Mail{}, fmt.Errorf("postgres.LockMail(%d): %w", id, ErrNotFound)
	}
	if err != nil {
		return Mail{}, fmt.Errorf("postgres.LockMail(%d): %w", id, err)
	}
	loc, err := loadLocation(r.TimeZone)
	if err != nil {
		return Mail{}, fmt.Errorf("postgres.LockMail(%d): time zone %q: %w", id, r.TimeZone, err)
	}
	m := Mail{
		ID: r.ID, Kind: MailKind(r.Kind), Status: MailStatus(r.Status), CompanyID: r.CompanyID,
		AccountID: r.AccountID, RecipientAccountID: r.RecipientAccountID.Int64, To: r.ToAddress,
		Locale: policy.Locale(r.Locale), IdempotencyKey: r.IdempotencyKey, TokenID: r.TokenID.Int64,
		CreatedAt: r.CreatedAt, Location: loc, VerificationTTL: time.Duration(r.VerificationTTL) * time.Second,
		InactivityPeriod: time.Duration(r.InactivityDays) * 24 * time.Hour, PlatformName: r.PlatformName, Name: r.Name, IDKind: policy.IDKind(r.IDKind), LoginID: r.LoginID, Department: r.Department,
		Retired: r.AccountStatus == "retired", RecipientRetired: r.RecipientStatus.String == "retired",
		UnlockedUntil: r.UnlockedUntil.Time, AttemptedAt: r.AttemptedAt.Time,
		Device:    policy.DeviceKind(r.DeviceKind.String),
		TokenSeed: r.TokenSeed, TokenLive: r.TokenLive,
	}
	copy(m.TokenHash[:], r.TokenHash)
	if r.IP.Valid {
		m.IP, _ = netip.ParseAddr(r.IP.String)
	}
	return m, nil
}

var lockMail = newStatement("LockMail", `SELECT m.id, m.kind, m.status, m.company_id, m.account_id, m.recipient_account_id,
		m.to_address, m.locale, m.idempotency_key, m.token_id, m.created_at,
		c.time_zone, c.verification_ttl_seconds AS verification_ttl, c.inactivity_days, c.platform_name, a.name, a.id_kind, a.login_id, a.department, a.status AS account_status,
		ra.status AS recipient_status, a.unlocked_until,
		la.attempted_at, host(la.ip) AS ip, la.device_kind,
		vt.seed AS token_seed, vt.token_hash, `+sqlTokenLive("$2")+` AS token_live
	FROM mails m
	JOIN companies c ON c.id = m.company_id
	JOIN accounts a ON a.id = m.account_id
	LEFT JOIN accounts ra ON ra.id = m.recipient_account_id
	LEFT JOIN login_attempts la ON la.id = m.attempt_id
	LEFT JOIN verification_tokens vt ON vt.id = m.token_id AND vt.account_id = a.id
	WHERE m.id = $1
	FOR UPDATE OF m`)

// Delivery is the result of handing a mail to the provider.
type Delivery struct {
	Status     MailStatus
	Subject    string
	ProviderID string
	// Text and HTML are kept only for the dev mailbox; a real delivery's
	// body can hold a live link and stays out of the database.
	Text, HTML string
	Error      string
	At         time.Time
	// Audit, when set, is the event that records the outcome, written by
	// the same statement: a sent mail is one round trip, not two.
	Audit *Event
}

var finishMail = newStatement("FinishMail", `UPDATE mails SET status = $1, subject = $2, provider_id = nullif($3, ''),
	body_text = nullif($4, ''), body_html = nullif($5, ''), error = nullif($6, ''),
	sent_at = CASE WHEN $7 THEN $8::timestamptz END
	WHERE id = $9`)

var finishMailAudited = audited("FinishMail+Audit", finishMail.query)

// FinishMail records what became of a mail.
func (t *Tx) FinishMail(ctx context.Context, id int64, d Delivery) error {
	args := []any{string(d.Status), d.Subject, d.ProviderID, d.Text, d.HTML, d.Error, d.Status == MailSent, d.At, id}
	var err error
	if d.Audit != nil {
		err = t.execAudited(ctx, finishMailAudited, *d.Audit, args...)
	} else {
		err = t.exec(ctx, finishMail, args...)
	}
	if err != nil {
		return fmt.Errorf("postgres.FinishMail(%d): %w", id, err)
	}
	return nil
}
