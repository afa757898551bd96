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
