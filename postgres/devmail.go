package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

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
