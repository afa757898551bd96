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
)

// APIKey is a host platform's key as stored: never the key itself.
type APIKey struct {
	ID         int64
	Name       string
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt time.Time
	RevokedAt  time.Time
	// Companies is the key's scope; nil is platform-wide.
	Companies []string
}

// Allows reports whether the key may touch companyID.
func (k APIKey) Allows(companyID string) bool {
	return k.Companies == nil || slices.Contains(k.Companies, companyID)
}

// CreateAPIKey stores a new key by its hash and returns its id. companies
// scopes it; nil makes it platform-wide.
func (s *Store) CreateAPIKey(ctx context.Context, name, prefix string, hash [sha256.Size]byte, companies []string, now time.Time) (int64, error) {
	if companies != nil && len(companies) == 0 {
		return 0, fmt.Errorf("postgres.CreateAPIKey(%q): an empty scope; nil is platform-wide", name)
	}
	var scope any
	if companies != nil {
		scope = pgdialect.Array(companies)
	}
	var id int64
	err := s.db.NewRaw(`INSERT INTO api_keys (name, prefix, key_hash, companies, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		name, prefix, hash[:], scope, now).Scan(ctx, &id)
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
		Companies []string `bun:",array"`
	}
	err := s.db.NewRaw(`WITH k AS (
			SELECT id, name, prefix, created_at, companies FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL
		), touch AS (
			UPDATE api_keys SET last_used_at = ? FROM k
			WHERE api_keys.id = k.id AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < ?)
		)
		SELECT id, name, prefix, created_at, companies FROM k`, hash[:], now, now.Add(-time.Minute)).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("postgres.APIKeyByHash: %w", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres.APIKeyByHash: %w", err)
	}
	return APIKey{ID: r.ID, Name: r.Name, Prefix: r.Prefix, CreatedAt: r.CreatedAt, Companies: r.Companies}, nil
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
		Companies  []string `bun:",array"`
	}
	if err := s.db.NewRaw(`SELECT id, name, prefix, created_at, last_used_at, revoked_at, companies FROM api_keys ORDER BY id DESC`).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("postgres.ListAPIKeys: %w", err)
	}
	out := make([]APIKey, len(rows))
	for i, r := range rows {
		out[i] = APIKey{ID: r.ID, Name: r.Name, Prefix: r.Prefix, CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt.Time, RevokedAt: r.RevokedAt.Time, Companies: r.Companies}
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
