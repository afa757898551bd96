package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"time"

	"github.com/uptrace/bun"
)

// EventKind names an audit event. The names are stable: reports and
// assessors filter on them. Every kind is declared here, and statements
// bind them as parameters rather than spell them.
type EventKind string

const (
	EventLocked           EventKind = "locked"
	EventRelocked         EventKind = "relocked"
	EventActivated        EventKind = "activated"
	EventTokenIssued      EventKind = "token_issued"
	EventVerificationUsed EventKind = "verification_used"
	EventMailSent         EventKind = "mail_sent"
	EventAlertSent        EventKind = "alert_sent"
	EventMailFailed       EventKind = "mail_failed"
	EventTaskRejected     EventKind = "task_rejected"

	// EventUnlocked is an administrator's unlock of one account; the event
	// carries the administrator as actor_account_id.
	EventUnlocked EventKind = "unlocked"
	// EventUnlockExpired is an administrator's unlock that was carried out
	// at or after the deadline its request set (a task that waited past the
	// request's local midnight): nothing was unlocked.
	EventUnlockExpired EventKind = "unlock_expired"
	// EventRecipientsChanged records who changed the login notification
	// recipients, from what to what.
	EventRecipientsChanged EventKind = "recipients_changed"

	// Directory sync: one per real change, none for a duplicate or stale
	// event.
	EventCompanyCreated    EventKind = "company_created"
	EventCompanyUpdated    EventKind = "company_updated"
	EventAccountCreated    EventKind = "account_created"
	EventAccountUpdated    EventKind = "account_updated"
	EventAccountRetired    EventKind = "account_retired"
	EventAccountReinstated EventKind = "account_reinstated"
	// EventAccountsImported: the accounts one import batch created in one
	// company, by id; an import's updates are audited one by one.
	EventAccountsImported EventKind = "accounts_imported"
	// The sweep held back a mass lock, and a confirmation let it proceed.
	EventSweepHeld      EventKind = "sweep_held"
	EventSweepConfirmed EventKind = "sweep_confirmed"
	// A retired account's personal data was erased on request.
	EventAccountErased EventKind = "account_erased"
	// An exemption reached its end; the account follows the rule again.
	EventExemptionExpired EventKind = "exemption_expired"
	// A webhook endpoint failed for too long, or answered 410, and was
	// disabled.
	EventWebhookDisabled EventKind = "webhook_disabled"
)

// Event is one audit event.
type Event struct {
	Kind           EventKind
	CompanyID      string
	AccountID      int64
	ActorAccountID int64
	Detail         map[string]any
	RequestID      string
	// OccurredAt must be set: the driver sends a zero time as NULL.
	OccurredAt time.Time
}

// Audit records ev in the transaction, so the event exists exactly when the
// change it describes does.
func (t *Tx) Audit(ctx context.Context, ev Event) error { return audit(ctx, t.tx, ev) }

// Audit records ev on its own, for failures that have no transaction to
// join (a task rejected before it touched a row).
func (s *Store) Audit(ctx context.Context, ev Event) error { return audit(ctx, s.db, ev) }

func audit(ctx context.Context, db bun.IDB, ev Event) error {
	args, err := auditArgs(ev)
	if err == nil {
		_, err = db.NewRaw(insertAuditFormatted, args...).Exec(ctx)
	}
	if err != nil {
		return fmt.Errorf("postgres.Audit(%s): %w", ev.Kind, err)
	}
	return nil
}

const insertAudit = `INSERT INTO audit_events (company_id, account_id, actor_account_id, kind, detail, request_id, occurred_at) VALUES `

// insertAuditFormatted is an event's insert on its own, as bun formats
// it: built once, not on every Audit.
var insertAuditFormatted = insertAudit + auditValues(func(int) string { return "?" })

// auditValues is one event's row of values, its parameters named by
// param(1) to param(7) in auditArgs' order.
func auditValues(param func(i int) string) string {
	return "(nullif(" + param(1) + ", ''), nullif(" + param(2) + "::bigint, 0), nullif(" + param(3) + "::bigint, 0), " +
		param(4) + ", " + param(5) + "::jsonb, " + param(6) + ", " + param(7) + "::timestamptz)"
}

func auditArgs(ev Event) ([]any, error) {
	detail := []byte("{}")
	if ev.Detail != nil {
		var err error
		if detail, err = json.Marshal(ev.Detail); err != nil {
			return nil, err
		}
	}
	return []any{ev.CompanyID, ev.AccountID, ev.ActorAccountID, string(ev.Kind), string(detail), ev.RequestID, ev.OccurredAt}, nil
}

// audited declares query with the audit event of its change written by
// the same statement. A locking login's lock and each of its mails used
// two round trips for the change and its event, and round trips are most
// of what such a login costs the worker and Postgres. query changes rows
// and returns none; the event takes the parameters after its own.
func audited(name, query string) *statement {
	seen := map[int]bool{}
	for _, m := range paramRef.FindAllStringSubmatch(query, -1) {
		i, _ := strconv.Atoi(m[1])
		seen[i] = true
	}
	n := len(seen)
	for i := 1; i <= n; i++ {
		if !seen[i] {
			// A gap means a "$n" the count misread (in a literal, say):
			// the event's parameters would land in the wrong columns.
			panic(fmt.Sprintf("postgres: statement %s: parameters are not $1 to $%d", name, n))
		}
	}
	return newStatement(name, "WITH change AS ("+query+")\n\t"+insertAudit+
		auditValues(func(i int) string { return "$" + strconv.Itoa(n+i) }))
}

var paramRef = regexp.MustCompile(`\$(\d+)`)

// execAudited runs st, declared by audited, recording ev.
func (t *Tx) execAudited(ctx context.Context, st *statement, ev Event, args ...any) error {
	evArgs, err := auditArgs(ev)
	if err != nil {
		return fmt.Errorf("postgres.Audit(%s): %w", ev.Kind, err)
	}
	return t.exec(ctx, st, append(args, evArgs...)...)
}

func mergeDetail(base, extra map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(extra))
	maps.Copy(out, base)
	for k, v := range extra {
		if v != "" && v != nil {
			out[k] = v
		}
	}
	return out
}
