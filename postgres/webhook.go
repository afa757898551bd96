package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// webhookTypes are the public names of the audit event kinds an endpoint
// may subscribe to: the one place the two vocabularies meet. Receivers
// branch on these names, so they are stable; a kind missing here is never
// sent.
var webhookTypes = map[EventKind]string{
	EventLocked:            "account.locked",
	EventUnlocked:          "account.unlocked",
	EventRelocked:          "account.relocked",
	EventActivated:         "account.activated",
	EventTokenIssued:       "verification.sent",
	EventVerificationUsed:  "verification.used",
	EventAlertSent:         "login.dormant_attempted",
	EventUnlockExpired:     "unlock.expired",
	EventAccountCreated:    "account.created",
	EventAccountUpdated:    "account.updated",
	EventAccountRetired:    "account.retired",
	EventAccountReinstated: "account.reinstated",
	EventAccountErased:     "account.erased",
	EventExemptionExpired:  "exemption.expired",
	EventSweepHeld:         "sweep.held",
	EventSweepConfirmed:    "sweep.confirmed",
	EventRecipientsChanged: "recipients.changed",
	EventMailFailed:        "mail.failed",
}

// WebhookType is the public name of an audit event kind, "" for one that
// is never sent.
func WebhookType(k EventKind) string { return webhookTypes[k] }

// WebhookKind is the audit event kind a public name stands for.
func WebhookKind(name string) (EventKind, bool) {
	for k, n := range webhookTypes {
		if n == name {
			return k, true
		}
	}
	return "", false
}

// WebhookTypes lists the public names, sorted.
func WebhookTypes() []string {
	out := make([]string, 0, len(webhookTypes))
	for _, n := range webhookTypes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// WebhookEndpoint is a registered endpoint, without its secret.
type WebhookEndpoint struct {
	ID int64
	// CompanyID is "" for a platform-wide endpoint.
	CompanyID   string
	URL         string
	Description string
	Kinds       []EventKind
	Enabled     bool
	// FailingSince is the first failure since the last success; zero
	// while the endpoint is healthy.
	FailingSince   time.Time
	DisabledAt     time.Time
	DisabledReason string
	// PreviousSecretUntil is when a rotation's old secret stops signing;
	// zero when no rotation is under way.
	PreviousSecretUntil time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

type webhookEndpointRow struct {
	ID                  int64
	CompanyID           sql.NullString
	URL                 string
	Description         string
	EventKinds          []string `bun:",array"`
	Enabled             bool
	FailingSince        sql.NullTime
	DisabledAt          sql.NullTime
	DisabledReason      sql.NullString
	PreviousSecretUntil sql.NullTime
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

const webhookEndpointColumns = `id, company_id, url, description, event_kinds, enabled, failing_since,
	disabled_at, disabled_reason, previous_secret_until, created_at, updated_at`

func (r webhookEndpointRow) endpoint() WebhookEndpoint {
	kinds := make([]EventKind, len(r.EventKinds))
	for i, k := range r.EventKinds {
		kinds[i] = EventKind(k)
	}
	return WebhookEndpoint{ID: r.ID, CompanyID: r.CompanyID.String, URL: r.URL, Description: r.Description, Kinds: kinds,
		Enabled: r.Enabled, FailingSince: r.FailingSince.Time, DisabledAt: r.DisabledAt.Time, DisabledReason: r.DisabledReason.String,
		PreviousSecretUntil: r.PreviousSecretUntil.Time, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func kindStrings(kinds []EventKind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NewWebhookEndpoint is an endpoint to register. The caller has checked
// the URL against the address policy.
type NewWebhookEndpoint struct {
	CompanyID   string
	URL         string
	Description string
	Kinds       []EventKind
	Secret      []byte
}

// CreateWebhookEndpoint registers an endpoint; events after the commit
// are delivered to it.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e NewWebhookEndpoint, now time.Time) (WebhookEndpoint, error) {
	var r webhookEndpointRow
	err := s.db.NewRaw(`INSERT INTO webhook_endpoints (company_id, url, description, event_kinds, secret, created_at, updated_at)
		VALUES (nullif(?, ''), ?, ?, ?, ?, ?, ?) RETURNING `+webhookEndpointColumns,
		e.CompanyID, e.URL, e.Description, pgdialect.Array(kindStrings(e.Kinds)), e.Secret, now, now).Scan(ctx, &r)
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("postgres.CreateWebhookEndpoint(%q): %w", e.URL, err)
	}
	return r.endpoint(), nil
}

// WebhookEndpoint reads one endpoint; ErrNotFound when there is none.
func (s *Store) WebhookEndpoint(ctx context.Context, id int64) (WebhookEndpoint, error) {
	var r webhookEndpointRow
	err := s.db.NewRaw(`SELECT `+webhookEndpointColumns+` FROM webhook_endpoints WHERE id = ?`, id).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookEndpoint{}, fmt.Errorf("postgres.WebhookEndpoint(%d): %w", id, ErrNotFound)
	}
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("postgres.WebhookEndpoint(%d): %w", id, err)
	}
	return r.endpoint(), nil
}

// WebhookEndpoints lists endpoints by id. companies limits the list to
// those companies' endpoints (a scoped API key sees no platform-wide
// one); nil lists every endpoint.
func (s *Store) WebhookEndpoints(ctx context.Context, companies []string) ([]WebhookEndpoint, error) {
	var rows []webhookEndpointRow
	var err error
	if companies == nil {
		err = s.db.NewRaw(`SELECT `+webhookEndpointColumns+` FROM webhook_endpoints ORDER BY id`).Scan(ctx, &rows)
	} else {
		err = s.db.NewRaw(`SELECT `+webhookEndpointColumns+` FROM webhook_endpoints WHERE company_id = ANY(?) ORDER BY id`,
			pgdialect.Array(companies)).Scan(ctx, &rows)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres.WebhookEndpoints: %w", err)
	}
	out := make([]WebhookEndpoint, len(rows))
	for i, r := range rows {
		out[i] = r.endpoint()
	}
	return out, nil
}

// WebhookChange is a change to an endpoint; nil fields stay as they are.
// Enabling clears the failure record, so the endpoint gets the full
// WEBHOOK_DISABLE_AFTER again.
type WebhookChange struct {
	URL         *string
	Description *string
	Kinds       []EventKind
	Enabled     *bool
}

// UpdateWebhookEndpoint applies c and returns the endpoint as it is now.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, id int64, c WebhookChange, now time.Time) (WebhookEndpoint, error) {
	var kinds any
	if c.Kinds != nil {
		kinds = pgdialect.Array(kindStrings(c.Kinds))
	}
	var r webhookEndpointRow
	err := s.db.NewRaw(`UPDATE webhook_endpoints SET
			url = coalesce(?0, url),
			description = coalesce(?1, description),
			event_kinds = coalesce(?2::text[], event_kinds),
			enabled = coalesce(?3, enabled),
			disabled_at = CASE WHEN ?3 IS NULL THEN disabled_at WHEN ?3 THEN NULL ELSE coalesce(disabled_at, ?4) END,
			disabled_reason = CASE WHEN ?3 IS NULL THEN disabled_reason WHEN ?3 THEN NULL ELSE coalesce(disabled_reason, 'disabled by request') END,
			failing_since = CASE WHEN ?3 THEN NULL ELSE failing_since END,
			updated_at = ?4
		WHERE id = ?5 RETURNING `+webhookEndpointColumns,
		c.URL, c.Description, kinds, c.Enabled, now, id).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookEndpoint{}, fmt.Errorf("postgres.UpdateWebhookEndpoint(%d): %w", id, ErrNotFound)
	}
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("postgres.UpdateWebhookEndpoint(%d): %w", id, err)
	}
	return r.endpoint(), nil
}

// DeleteWebhookEndpoint removes an endpoint and its delivery log.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, id int64) error {
	n, err := s.execCount(ctx, fmt.Sprintf("postgres.DeleteWebhookEndpoint(%d)", id), `DELETE FROM webhook_endpoints WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("postgres.DeleteWebhookEndpoint(%d): %w", id, ErrNotFound)
	}
	return nil
}

// RotateWebhookSecret makes key the endpoint's secret; the current one
// keeps signing beside it until overlapUntil, so receivers can switch
// without missing a message. A rotation during a rotation drops the oldest.
func (s *Store) RotateWebhookSecret(ctx context.Context, id int64, key []byte, overlapUntil, now time.Time) (WebhookEndpoint, error) {
	var r webhookEndpointRow
	err := s.db.NewRaw(`UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = ?, secret = ?, updated_at = ?
		WHERE id = ? RETURNING `+webhookEndpointColumns, overlapUntil, key, now, id).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookEndpoint{}, fmt.Errorf("postgres.RotateWebhookSecret(%d): %w", id, ErrNotFound)
	}
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("postgres.RotateWebhookSecret(%d): %w", id, err)
	}
	return r.endpoint(), nil
}

// MaxWebhookReplay bounds the events one replay request delivers again.
const MaxWebhookReplay = 10000

// ReplayWebhook writes a new delivery, with the original webhook-id, of
// each event the endpoint is subscribed to: the one event eventID, or
// those that occurred in [since, until). It returns how many; more than
// MaxWebhookReplay is refused whole.
func (s *Store) ReplayWebhook(ctx context.Context, endpointID, eventID int64, since, until, now time.Time) (int, error) {
	var n int
	err := s.WithTx(ctx, func(t *Tx) error {
		var ep webhookEndpointRow
		err := t.tx.NewRaw(`SELECT `+webhookEndpointColumns+` FROM webhook_endpoints WHERE id = ? FOR UPDATE`, endpointID).Scan(ctx, &ep)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !ep.Enabled {
			return ErrEndpointDisabled
		}
		// Conditions spelled out for the planner: the primary key for one
		// event, audit_events_company for a company's range.
		where := `e.kind = ANY(?::text[])`
		args := []any{pgdialect.Array(ep.EventKinds)}
		if ep.CompanyID.Valid {
			where += ` AND e.company_id = ?`
			args = append(args, ep.CompanyID.String)
		}
		if eventID > 0 {
			where += ` AND e.id = ?`
			args = append(args, eventID)
		} else {
			where += ` AND e.occurred_at >= ? AND e.occurred_at < ?`
			args = append(args, since, until)
		}
		var ids []int64
		if err := t.tx.NewRaw(`SELECT e.id FROM audit_events e WHERE `+where+` ORDER BY e.id LIMIT ?`,
			append(args, MaxWebhookReplay+1)...).Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if len(ids) > MaxWebhookReplay {
			return fmt.Errorf("more than %d events in the range: %w", MaxWebhookReplay, ErrTooMany)
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		_, err = t.tx.NewRaw(`INSERT INTO webhook_deliveries (endpoint_id, event_id, message_id, replay, created_at)
			SELECT ?, id, 'msg_' || id, true, ? FROM unnest(?::bigint[]) AS id`, endpointID, now, pgdialect.Array(ids)).Exec(ctx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres.ReplayWebhook(%d): %w", endpointID, err)
	}
	return n, nil
}

// ErrTooMany: a request asked for more rows than one call handles.
var ErrTooMany = errors.New("too many")

// ErrEndpointDisabled refuses a replay to a disabled endpoint: its
// deliveries would only fail, each with "endpoint disabled".
var ErrEndpointDisabled = errors.New("the webhook endpoint is disabled")

// WebhookDeliveryStatus is where a delivery stands.
type WebhookDeliveryStatus string

const (
	WebhookPending   WebhookDeliveryStatus = "pending"
	WebhookDelivered WebhookDeliveryStatus = "delivered"
	WebhookFailed    WebhookDeliveryStatus = "failed"
)

// WebhookDelivery is one row of the delivery log.
type WebhookDelivery struct {
	ID            int64
	EndpointID    int64
	EventID       int64
	MessageID     string
	Replay        bool
	Status        WebhookDeliveryStatus
	Attempts      int
	NextAttemptAt time.Time
	LastAttemptAt time.Time
	LastStatus    int
	LastError     string
	DeliveredAt   time.Time
	CreatedAt     time.Time
}

type webhookDeliveryRow struct {
	ID            int64
	EndpointID    int64
	EventID       int64
	MessageID     string
	Replay        bool
	Status        string
	Attempts      int
	NextAttemptAt sql.NullTime
	LastAttemptAt sql.NullTime
	LastStatus    sql.NullInt64
	LastError     sql.NullString
	DeliveredAt   sql.NullTime
	CreatedAt     time.Time
}

func (r webhookDeliveryRow) delivery() WebhookDelivery {
	return WebhookDelivery{ID: r.ID, EndpointID: r.EndpointID, EventID: r.EventID, MessageID: r.MessageID, Replay: r.Replay,
		Status: WebhookDeliveryStatus(r.Status), Attempts: r.Attempts, NextAttemptAt: r.NextAttemptAt.Time,
		LastAttemptAt: r.LastAttemptAt.Time, LastStatus: int(r.LastStatus.Int64), LastError: r.LastError.String,
		DeliveredAt: r.DeliveredAt.Time, CreatedAt: r.CreatedAt}
}

const webhookDeliveryColumns = `id, endpoint_id, event_id, message_id, replay, status, attempts, next_attempt_at,
	last_attempt_at, last_status, last_error, delivered_at, created_at`

// WebhookDeliveries reads an endpoint's delivery log, newest first, a page
// of up to limit after the cursor (EventCursor: the created_at and id of the
// last row of the previous page). It returns the next page's cursor, zero
// on the last page.
func (s *Store) WebhookDeliveries(ctx context.Context, endpointID int64, after EventCursor, limit int) ([]WebhookDelivery, EventCursor, error) {
	if limit <= 0 || limit > MaxEventsPage {
		limit = MaxEventsPage
	}
	var rows []webhookDeliveryRow
	q := `SELECT ` + webhookDeliveryColumns + ` FROM webhook_deliveries WHERE endpoint_id = ?`
	args := []any{endpointID}
	if after.ID != 0 {
		q += ` AND (created_at, id) < (?, ?)`
		args = append(args, after.At, after.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit+1)
	if err := s.db.NewRaw(q, args...).Scan(ctx, &rows); err != nil {
		return nil, EventCursor{}, fmt.Errorf("postgres.WebhookDeliveries(%d): %w", endpointID, err)
	}
	var next EventCursor
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		next = EventCursor{At: last.CreatedAt, ID: last.ID}
	}
	out := make([]WebhookDelivery, len(rows))
	for i, r := range rows {
		out[i] = r.delivery()
	}
	return out, next, nil
}

// DispatchWebhookDeliveries hands pending deliveries to enqueue, up to
// limit: first those never handed over, oldest first, then those handed
// over before now-requeueAfter whose task may have gone missing (enqueue
// is a no-op for a task that still exists: its task ID is the delivery's).
// The rows are claimed FOR UPDATE SKIP LOCKED, so two workers' dispatchers
// share the work, and stamped enqueued_at = now in the same transaction.
// stale tells enqueue the row was handed over before; enqueue answers
// ErrTaskArchived when the row's task ended without recording an outcome
// (its retries ran out while Postgres was away), and the delivery is then
// failed here. The first other enqueue failure ends the batch.
func (s *Store) DispatchWebhookDeliveries(ctx context.Context, now time.Time, requeueAfter time.Duration, limit int, enqueue func(id int64, stale bool) error) (int, error) {
	n := 0
	err := s.WithTx(ctx, func(t *Tx) error {
		var ids, stale []int64
		err := t.tx.NewRaw(`SELECT id FROM webhook_deliveries WHERE status = 'pending' AND enqueued_at IS NULL
			ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`, limit).Scan(ctx, &ids)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if len(ids) < limit {
			err = t.tx.NewRaw(`SELECT id FROM webhook_deliveries WHERE status = 'pending' AND enqueued_at < ?
				ORDER BY enqueued_at LIMIT ? FOR UPDATE SKIP LOCKED`, now.Add(-requeueAfter), limit-len(ids)).Scan(ctx, &stale)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			ids = append(ids, stale...)
		}
		var done, archived []int64
		var failed error
		for i, id := range ids {
			failed = enqueue(id, i >= len(ids)-len(stale))
			if errors.Is(failed, ErrTaskArchived) {
				archived, failed = append(archived, id), nil
				continue
			}
			if failed != nil {
				break
			}
			done = append(done, id)
		}
		if len(done) > 0 {
			if _, err := t.tx.NewRaw(`UPDATE webhook_deliveries SET enqueued_at = ? WHERE id = ANY(?)`, now, pgdialect.Array(done)).Exec(ctx); err != nil {
				return err
			}
		}
		if len(archived) > 0 {
			if _, err := t.tx.NewRaw(`UPDATE webhook_deliveries SET status = 'failed', last_error = coalesce(last_error || '; ', '') || 'its task ended without an outcome'
				WHERE id = ANY(?)`, pgdialect.Array(archived)).Exec(ctx); err != nil {
				return err
			}
		}
		return handedOver(done, failed, &n)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres.DispatchWebhookDeliveries: %w", err)
	}
	return n, nil
}

// ErrTaskArchived: a delivery's task is archived, so handing it over again
// does nothing.
var ErrTaskArchived = errors.New("task archived")

// WebhookMessage is what a delivery task needs: the delivery, its
// endpoint's URL and signing keys, and the event.
type WebhookMessage struct {
	Delivery WebhookDelivery
	Endpoint WebhookEndpoint
	// Keys sign the message: the secret, and during a rotation the
	// previous one until its end.
	Keys [][]byte
	// Event is nil when retention deleted it.
	Event *StoredEvent
}

// WebhookMessage reads what a delivery task sends at now; ErrNotFound
// when the delivery is gone (its endpoint was removed).
func (s *Store) WebhookMessage(ctx context.Context, deliveryID int64, now time.Time) (WebhookMessage, error) {
	var r struct {
		webhookDeliveryRow
		Endpoint       webhookEndpointRow `bun:"embed:ep_"`
		Secret         []byte
		PreviousSecret []byte
	}
	err := s.db.NewRaw(`SELECT d.id, d.endpoint_id, d.event_id, d.message_id, d.replay, d.status, d.attempts, d.next_attempt_at,
			d.last_attempt_at, d.last_status, d.last_error, d.delivered_at, d.created_at,
			ep.id AS ep_id, ep.company_id AS ep_company_id, ep.url AS ep_url, ep.description AS ep_description,
			ep.event_kinds AS ep_event_kinds, ep.enabled AS ep_enabled, ep.failing_since AS ep_failing_since,
			ep.disabled_at AS ep_disabled_at, ep.disabled_reason AS ep_disabled_reason,
			ep.previous_secret_until AS ep_previous_secret_until, ep.created_at AS ep_created_at, ep.updated_at AS ep_updated_at,
			ep.secret, CASE WHEN ep.previous_secret_until > ? THEN ep.previous_secret END AS previous_secret
		FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id WHERE d.id = ?`, now, deliveryID).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookMessage{}, fmt.Errorf("postgres.WebhookMessage(%d): %w", deliveryID, ErrNotFound)
	}
	if err != nil {
		return WebhookMessage{}, fmt.Errorf("postgres.WebhookMessage(%d): %w", deliveryID, err)
	}
	m := WebhookMessage{Delivery: r.delivery(), Endpoint: r.Endpoint.endpoint(), Keys: [][]byte{r.Secret}}
	if len(r.PreviousSecret) > 0 {
		m.Keys = append(m.Keys, r.PreviousSecret)
	}
	var e struct {
		ID             int64
		Kind           string
		CompanyID      sql.NullString
		AccountID      sql.NullInt64
		ActorAccountID sql.NullInt64
		Detail         json.RawMessage
		RequestID      string
		OccurredAt     time.Time
	}
	err = s.db.NewRaw(`SELECT id, kind, company_id, account_id, actor_account_id, detail, request_id, occurred_at
		FROM audit_events WHERE id = ?`, r.EventID).Scan(ctx, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return m, nil
	}
	if err != nil {
		return WebhookMessage{}, fmt.Errorf("postgres.WebhookMessage(%d): %w", deliveryID, err)
	}
	m.Event = &StoredEvent{ID: e.ID, Kind: EventKind(e.Kind), CompanyID: e.CompanyID.String, AccountID: e.AccountID.Int64,
		ActorAccountID: e.ActorAccountID.Int64, Detail: e.Detail, RequestID: e.RequestID, OccurredAt: e.OccurredAt}
	return m, nil
}

// WebhookAttempt is the outcome of one delivery attempt.
type WebhookAttempt struct {
	At time.Time
	// Delivered: the receiver answered 2xx.
	Delivered bool
	// Final: no further attempt will be made (permanent failure, or the
	// last retry); the delivery is failed.
	Final bool
	// Gone: the receiver answered 410; the endpoint is disabled now.
	Gone   bool
	Status int
	Error  string
	// NextAt is when the retry runs, for the log; zero when none will.
	NextAt time.Time
}

// WebhookOutcome is what recording an attempt did beyond the delivery.
type WebhookOutcome struct {
	// Disabled: this attempt disabled the endpoint.
	Disabled bool
	// Endpoint is the endpoint after the attempt.
	Endpoint WebhookEndpoint
	// Mails are the notices to the company's administrators to queue.
	Mails []int64
}

// RecordWebhookAttempt writes an attempt's outcome to its delivery and its
// endpoint's failure record. An endpoint that has failed continuously for
// disableAfter (from its first failure since its last success), or that
// answered 410, is disabled in the same transaction: its pending
// deliveries fail, the event is audited, and a company endpoint's
// administrators are written one notice each. Only the attempt that
// disables it does this, so they hear once.
func (s *Store) RecordWebhookAttempt(ctx context.Context, deliveryID int64, a WebhookAttempt, disableAfter time.Duration) (WebhookOutcome, error) {
	var out WebhookOutcome
	err := s.WithTx(ctx, func(t *Tx) error {
		var ep webhookEndpointRow
		err := t.tx.NewRaw(`SELECT `+webhookEndpointColumns+` FROM webhook_endpoints
			WHERE id = (SELECT endpoint_id FROM webhook_deliveries WHERE id = ?) FOR UPDATE`, deliveryID).Scan(ctx, &ep)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		status := WebhookPending
		var deliveredAt, nextAt any
		switch {
		case a.Delivered:
			status, deliveredAt = WebhookDelivered, a.At
		case a.Final || a.Gone:
			status = WebhookFailed
		default:
			if !a.NextAt.IsZero() {
				nextAt = a.NextAt
			}
		}
		if _, err := t.tx.NewRaw(`UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = ?, last_status = nullif(?, 0),
				last_error = nullif(?, ''), status = ?, delivered_at = ?, next_attempt_at = ? WHERE id = ? AND status = 'pending'`,
			a.At, a.Status, truncate(a.Error, 500), string(status), deliveredAt, nextAt, deliveryID).Exec(ctx); err != nil {
			return err
		}
		if a.Delivered {
			if ep.FailingSince.Valid {
				return t.tx.NewRaw(`UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ? RETURNING `+webhookEndpointColumns, ep.ID).Scan(ctx, &ep)
			}
			out.Endpoint = ep.endpoint()
			return nil
		}
		since := a.At
		if ep.FailingSince.Valid && ep.FailingSince.Time.Before(since) {
			since = ep.FailingSince.Time
		}
		reason := ""
		switch {
		case !ep.Enabled:
		case a.Gone:
			reason = "the endpoint answered 410 Gone"
		case WebhookFailingTooLong(since, a.At, disableAfter):
			reason = fmt.Sprintf("failing since %s", since.UTC().Format(time.RFC3339))
		}
		if reason == "" {
			err := t.tx.NewRaw(`UPDATE webhook_endpoints SET failing_since = ? WHERE id = ? RETURNING `+webhookEndpointColumns, since, ep.ID).Scan(ctx, &ep)
			out.Endpoint = ep.endpoint()
			return err
		}
		if err := t.tx.NewRaw(`UPDATE webhook_endpoints SET failing_since = ?, enabled = false, disabled_at = ?, disabled_reason = ?, updated_at = ?
				WHERE id = ? RETURNING `+webhookEndpointColumns, since, a.At, reason, a.At, ep.ID).Scan(ctx, &ep); err != nil {
			return err
		}
		out.Disabled, out.Endpoint = true, ep.endpoint()
		if _, err := t.tx.NewRaw(`UPDATE webhook_deliveries SET status = 'failed', last_error = coalesce(last_error || '; ', '') || 'endpoint disabled'
				WHERE endpoint_id = ? AND status = 'pending'`, ep.ID).Exec(ctx); err != nil {
			return err
		}
		if ep.CompanyID.Valid {
			admins, err := s.noticeTargets(ctx, t.tx, ep.CompanyID.String, `a.can_manage_employees`, canActAt(a.At))
			if err != nil {
				return err
			}
			keys := make([]string, len(admins))
			for i, id := range admins {
				keys[i] = WebhookDisabledKey(ep.ID, a.At, id)
			}
			if out.Mails, err = insertNotices(ctx, t.tx, MailWebhookDisabled, admins, keys, a.At); err != nil {
				return err
			}
		}
		return t.Audit(ctx, Event{Kind: EventWebhookDisabled, CompanyID: ep.CompanyID.String, OccurredAt: a.At,
			Detail: map[string]any{"endpoint_id": ep.ID, "url": ep.URL, "reason": reason, "administrators_told": len(out.Mails)}})
	})
	if err != nil {
		return out, fmt.Errorf("postgres.RecordWebhookAttempt(%d): %w", deliveryID, err)
	}
	return out, nil
}

// FailWebhookDelivery ends a pending delivery that cannot be made (its
// endpoint disabled, its event deleted), leaving the endpoint's failure
// record alone: the receiver was never asked.
func (s *Store) FailWebhookDelivery(ctx context.Context, deliveryID int64, reason string, now time.Time) error {
	_, err := s.db.NewRaw(`UPDATE webhook_deliveries SET status = 'failed', last_error = ?, last_attempt_at = ?
		WHERE id = ? AND status = 'pending'`, truncate(reason, 500), now, deliveryID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.FailWebhookDelivery(%d): %w", deliveryID, err)
	}
	return nil
}

// WebhookFailingTooLong is the disable rule: an endpoint failing since
// since has failed for long enough at now. disableAfter <= 0 never
// disables.
func WebhookFailingTooLong(since, now time.Time, disableAfter time.Duration) bool {
	return disableAfter > 0 && !now.Before(since.Add(disableAfter))
}

// WebhookDisabledKey is the idempotency key of the notice to one
// administrator that an endpoint was disabled at an instant.
func WebhookDisabledKey(endpointID int64, at time.Time, adminID int64) string {
	return fmt.Sprintf("%s:%d:%d:%d", MailWebhookDisabled, endpointID, at.UnixMicro(), adminID)
}

// ParseWebhookDisabledKey reads the endpoint back from the key.
func ParseWebhookDisabledKey(key string) (endpointID int64, err error) {
	endpointID, _, err = parseWebhookDisabledKey(key)
	return endpointID, err
}

// ParseWebhookDisabledAt reads the instant of the disabling back from the
// key, so a retried notice renders the same body.
func ParseWebhookDisabledAt(key string) (time.Time, error) {
	_, micros, err := parseWebhookDisabledKey(key)
	return time.UnixMicro(micros), err
}

func parseWebhookDisabledKey(key string) (endpointID, micros int64, err error) {
	var admin int64
	if _, err := fmt.Sscanf(key, string(MailWebhookDisabled)+":%d:%d:%d", &endpointID, &micros, &admin); err != nil {
		return 0, 0, fmt.Errorf("postgres.ParseWebhookDisabledKey(%q): %w", key, err)
	}
	return endpointID, micros, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// webhookData is the body's "data": the event as the events API shows it.
type webhookData struct {
	EventID        int64           `json:"event_id"`
	CompanyID      string          `json:"company_id,omitempty"`
	AccountID      int64           `json:"account_id,omitempty"`
	ActorAccountID int64           `json:"actor_account_id,omitempty"`
	Detail         json.RawMessage `json:"detail"`
	RequestID      string          `json:"request_id,omitempty"`
}

// WebhookBody is the JSON a receiver gets for an event, in the
// specification's shape: {"type", "timestamp", "data"}. It is built from
// the event alone, so every retry and replay sends the same bytes.
func WebhookBody(e StoredEvent) ([]byte, error) {
	detail := e.Detail
	if len(detail) == 0 {
		detail = json.RawMessage("{}")
	}
	return json.Marshal(struct {
		Type      string      `json:"type"`
		Timestamp string      `json:"timestamp"`
		Data      webhookData `json:"data"`
	}{WebhookType(e.Kind), e.OccurredAt.UTC().Format(time.RFC3339Nano), webhookData{
		EventID: e.ID, CompanyID: e.CompanyID, AccountID: e.AccountID, ActorAccountID: e.ActorAccountID,
		Detail: detail, RequestID: e.RequestID,
	}})
}
