package postgres

import (
	"context"
	"fmt"
)

// ResetCompany deletes a company and everything of it, so `dormancy dev`
// can seed its demo company afresh on every start. Nothing outside dev and
// tests calls it: production data is retired, never deleted.
func (s *Store) ResetCompany(ctx context.Context, companyID string) error {
	return s.WithTx(ctx, func(t *Tx) error {
		for _, q := range []string{
			`DELETE FROM audit_events WHERE company_id = ?`,
			`DELETE FROM mails WHERE company_id = ?`,
			`DELETE FROM login_attempts WHERE company_id = ?`,
			`DELETE FROM login_notification_recipients WHERE company_id = ?`,
			`DELETE FROM admin_sessions WHERE company_id = ?`,
			`DELETE FROM accounts WHERE company_id = ?`,
			`DELETE FROM companies WHERE id = ?`,
		} {
			if _, err := t.tx.NewRaw(q, companyID).Exec(ctx); err != nil {
				return fmt.Errorf("postgres.ResetCompany(%q): %w", companyID, err)
			}
		}
		return nil
	})
}
