package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/policy"
)

// AdminSession is a company administrator's session on the admin pages.
type AdminSession struct {
	TokenHash [sha256.Size]byte
	LinkNonce string
	CompanyID string
	AccountID int64
	Locale    policy.Locale
	CreatedAt time.Time
	ExpiresAt time.Time
	// LinkExpiresAt is when the link that opened the session expires: its
	// nonce is kept until then (admin_link_nonces).
	LinkExpiresAt time.Time
}

// ErrLinkUsed is returned when a signed link already opened a session.
var ErrLinkUsed = errors.New("signed link already used")

// CreateAdminSession stores a session. A link nonce used before, whatever
// became of the session it opened, is ErrLinkUsed: a signed link works
// once for its whole life. Sessions that ended a day ago, and the nonces of
// links expired a day ago (refused by their expiry by then), are cleared on
// the way.
func (s *Store) CreateAdminSession(ctx context.Context, a AdminSession) error {
	if a.LinkExpiresAt.IsZero() {
		return fmt.Errorf("postgres.CreateAdminSession(%q): the link's expiry is missing", a.CompanyID)
	}
	dayAgo := a.CreatedAt.Add(-24 * time.Hour)
	_, err := s.db.NewRaw(`WITH purge AS (DELETE FROM admin_sessions WHERE expires_at < ?),
		purge_nonces AS (DELETE FROM admin_link_nonces WHERE link_expires_at < ?),
		nonce AS (INSERT INTO admin_link_nonces (nonce, link_expires_at, used_at) VALUES (?, ?, ?) RETURNING nonce)
		INSERT INTO admin_sessions (token_hash, link_nonce, company_id, account_id, locale, created_at, expires_at, last_seen_at)
		SELECT ?, nonce, ?, ?, ?, ?, ?, ? FROM nonce`, dayAgo, dayAgo, a.LinkNonce, a.LinkExpiresAt, a.CreatedAt,
		a.TokenHash[:], a.CompanyID, a.AccountID, string(a.Locale), a.CreatedAt, a.ExpiresAt, a.CreatedAt).Exec(ctx)
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) && pgErr.Field('C') == "23505" {
		return fmt.Errorf("postgres.CreateAdminSession(%q): %w", a.CompanyID, ErrLinkUsed)
	}
	if err != nil {
		return fmt.Errorf("postgres.CreateAdminSession(%q): %w", a.CompanyID, err)
	}
	return nil
}

// AdminSessionByHash returns the live session with this token hash, and
// counts this request as its latest: a session is live until its absolute
// expiry and while it has been used within idle.
func (s *Store) AdminSessionByHash(ctx context.Context, hash [sha256.Size]byte, now time.Time, idle time.Duration) (AdminSession, error) {
	var r struct {
		LinkNonce string
		CompanyID string
		AccountID int64
		Locale    string
		CreatedAt time.Time
		ExpiresAt time.Time
	}
	err := s.db.NewRaw(`UPDATE admin_sessions SET last_seen_at = greatest(last_seen_at, ?)
		WHERE token_hash = ? AND expires_at > ? AND last_seen_at > ?
		RETURNING link_nonce, company_id, account_id, locale, created_at, expires_at`,
		now, hash[:], now, now.Add(-idle)).Scan(ctx, &r)
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
