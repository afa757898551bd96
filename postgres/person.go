package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// ExportAccount is everything dormancy holds about one account, as one
// JSON document: the account, its login attempts, the mails about it or to
// it, its verification links (metadata only: a link exists only in its
// email), its pre-lock warnings, its place among the login notification
// recipients and the audit events about it or by it. An unknown account is
// ErrNotFound.
func (s *Store) ExportAccount(ctx context.Context, id int64) (json.RawMessage, error) {
	var doc []json.RawMessage
	err := s.db.NewRaw(`SELECT json_build_object(
		'account', (SELECT to_jsonb(a) - 'host_version' FROM accounts a WHERE a.id = ?0),
		'login_attempts', coalesce((SELECT json_agg(json_build_object('attempt_key', l.attempt_key, 'method', l.method, 'outcome', l.outcome,
				'ip', host(l.ip), 'user_agent', l.user_agent, 'device_kind', l.device_kind, 'attempted_at', l.attempted_at,
				'decided_at', l.decided_at, 'request_id', l.request_id) ORDER BY l.id)
			FROM login_attempts l WHERE l.account_id = ?0), '[]'),
		'mails', coalesce((SELECT json_agg(json_build_object('kind', m.kind, 'about_account_id', m.account_id,
				'recipient_account_id', m.recipient_account_id, 'to_address', m.to_address, 'subject', m.subject, 'body_text', m.body_text,
				'status', m.status, 'created_at', m.created_at, 'sent_at', m.sent_at) ORDER BY m.id)
			FROM mails m WHERE m.account_id = ?0 OR m.recipient_account_id = ?0), '[]'),
		'verification_links', coalesce((SELECT json_agg(json_build_object('email', v.email, 'created_at', v.created_at,
				'expires_at', v.expires_at, 'consumed_at', v.consumed_at, 'revoked_at', v.revoked_at, 'revoked_reason', v.revoked_reason) ORDER BY v.id)
			FROM verification_tokens v WHERE v.account_id = ?0), '[]'),
		'prelock_warnings', coalesce((SELECT json_agg(to_jsonb(p) - 'account_id' ORDER BY p.created_at)
			FROM prelock_warnings p WHERE p.account_id = ?0), '[]'),
		'login_notification_recipient', EXISTS (SELECT 1 FROM login_notification_recipients r WHERE r.account_id = ?0),
		'audit_events', coalesce((SELECT json_agg(json_build_object('kind', e.kind, 'account_id', e.account_id, 'actor_account_id', e.actor_account_id,
				'detail', e.detail, 'request_id', e.request_id, 'occurred_at', e.occurred_at) ORDER BY e.id)
			FROM audit_events e WHERE e.account_id = ?0 OR e.actor_account_id = ?0), '[]'))
		WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?0)`, id).Scan(ctx, &doc)
	if err != nil {
		return nil, fmt.Errorf("postgres.ExportAccount(%d): %w", id, err)
	}
	if len(doc) == 0 {
		return nil, fmt.Errorf("postgres.ExportAccount(%d): %w", id, ErrNotFound)
	}
	return doc[0], nil
}

// ErrNotRetired refuses to erase an account that is still employed:
// dormancy needs its login ID and address to lock and unlock it.
var ErrNotRetired = &policy.FieldError{Field: "id", Reason: "only a retired account can be erased; retire it first"}

// personalDetail are the audit detail keys that can name a person.
var personalDetail = []string{"login_id", "name", "email", "department", "ip", "user_agent", "to", "to_address"}

// EraseAccount erases a retired account's personal data on request: its
// name, department, address and login ID give way to a pseudonym, its
// login attempts lose their IP address and User-Agent, the mails about or
// to it their address, subject and bodies, its verification links their
// address, and its audit events the fields that name the person. The audit
// trail stays, about the pseudonymised account, with an account_erased
// event. It returns the pseudonym. An active account is ErrNotRetired.
func (s *Store) EraseAccount(ctx context.Context, id int64, by string, now time.Time) (string, error) {
	var pseudonym string
	err := s.WithTx(ctx, func(t *Tx) error {
		var rows []struct {
			CompanyID, LoginID, Status string
		}
		if err := t.tx.NewRaw(`SELECT company_id, login_id, status FROM accounts WHERE id = ? FOR UPDATE`, id).Scan(ctx, &rows); err != nil {
			return err
		}
		if len(rows) == 0 {
			return ErrNotFound
		}
		if rows[0].Status != "retired" {
			return ErrNotRetired
		}
		sum := sha256.Sum256([]byte(rows[0].CompanyID + "\x00" + rows[0].LoginID))
		pseudonym = "erased-" + hex.EncodeToString(sum[:8])
		for _, st := range []*bun.RawQuery{
			t.tx.NewRaw(`UPDATE accounts SET login_id = ?, name = '', department = '',
				email = CASE WHEN id_kind = 'email' THEN ? ELSE NULL END, updated_at = ? WHERE id = ?`,
				pseudonym, pseudonym+"@erased.invalid", now, id),
			t.tx.NewRaw(`UPDATE login_attempts SET ip = NULL, user_agent = '' WHERE account_id = ?`, id),
			t.tx.NewRaw(`UPDATE mails SET to_address = '', subject = '', body_text = NULL, body_html = NULL, error = NULL
				WHERE account_id = ?0 OR recipient_account_id = ?0`, id),
			t.tx.NewRaw(`UPDATE verification_tokens SET email = '' WHERE account_id = ?`, id),
			t.tx.NewRaw(`UPDATE audit_events SET detail = detail - ?1::text[] WHERE account_id = ?0 OR actor_account_id = ?0`,
				id, pgdialect.Array(personalDetail)),
		} {
			if _, err := st.Exec(ctx); err != nil {
				return err
			}
		}
		return t.Audit(ctx, Event{Kind: EventAccountErased, CompanyID: rows[0].CompanyID, AccountID: id, OccurredAt: now,
			Detail: map[string]any{"by": by, "pseudonym": pseudonym}})
	})
	if err != nil {
		return "", fmt.Errorf("postgres.EraseAccount(%d): %w", id, err)
	}
	return pseudonym, nil
}
