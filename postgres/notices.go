package postgres

import (
	"context"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/dormancy/dormancy/policy"
)

// noticeTargets lists the company's active accounts with an address that
// where (SQL on a, the account) selects and keep accepts.
func (s *Store) noticeTargets(ctx context.Context, db bun.IDB, companyID, where string, keep func(policy.Employee, policy.Company) bool) ([]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+employeeColumns+` FROM `+accountsWithCompany+`
		WHERE a.company_id = ? AND a.status = 'active' AND a.email IS NOT NULL AND `+where, companyID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var r employeeRow
		if err := s.db.ScanRow(ctx, rows, &r); err != nil {
			return nil, err
		}
		co, err := r.company()
		if err != nil {
			return nil, err
		}
		if keep(r.employee(), co) {
			ids = append(ids, r.ID)
		}
	}
	return ids, rows.Err()
}

// canActAt keeps the administrators who can act at now (policy.CanAct).
func canActAt(now time.Time) func(policy.Employee, policy.Company) bool {
	return func(e policy.Employee, c policy.Company) bool { return policy.CanAct(e, c.Policy, now) }
}

// insertNotices writes one mail of kind to each account, keyed by keys, and
// returns those written now (a key written before is skipped).
func insertNotices(ctx context.Context, db bun.IDB, kind MailKind, to []int64, keys []string, now time.Time) ([]int64, error) {
	var ids []int64
	if len(to) == 0 {
		return nil, nil
	}
	err := db.NewRaw(`WITH m AS (
			INSERT INTO mails (kind, company_id, account_id, recipient_account_id, to_address, locale, idempotency_key, created_at)
			SELECT ?, a.company_id, a.id, a.id, a.email, c.locale, i.key, ?
			FROM unnest(?::bigint[], ?::text[]) AS i(id, key) JOIN accounts a ON a.id = i.id JOIN companies c ON c.id = a.company_id
			ON CONFLICT (idempotency_key) DO NOTHING RETURNING id)
		SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM m`,
		string(kind), now, pgdialect.Array(to), pgdialect.Array(keys)).Scan(ctx, pgdialect.Array(&ids))
	return ids, err
}
