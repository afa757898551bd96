package admin

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/webhook"
)

// WebhookSettings are the rules endpoint registration follows, shared by
// the API and the CLI.
type WebhookSettings struct {
	// Policy decides which URLs may be registered (WEBHOOK_ALLOW_PRIVATE,
	// WEBHOOK_ALLOW_HTTP); the worker checks it again on every connection.
	Policy webhook.AddressPolicy
	// Resolver looks endpoint hosts up; nil is net.DefaultResolver.
	Resolver webhook.Resolver
	// SecretOverlap is how long a rotated-out secret keeps signing (24 h
	// when 0).
	SecretOverlap time.Duration
	// Random is the secrets' source; nil is crypto/rand.
	Random io.Reader
}

func (s WebhookSettings) resolver() webhook.Resolver {
	if s.Resolver == nil {
		return net.DefaultResolver
	}
	return s.Resolver
}

func (s WebhookSettings) random() io.Reader { return cmp.Or[io.Reader](s.Random, rand.Reader) }

// NewWebhook is an endpoint to register. CompanyID "" is platform-wide.
type NewWebhook struct {
	CompanyID   string
	URL         string
	Events      []string
	Description string
}

// webhookKinds maps public event names to audit kinds, naming the first
// unknown one.
func webhookKinds(events []string) ([]postgres.EventKind, error) {
	if len(events) == 0 {
		return nil, &tasks.FieldError{Field: "events", Reason: "name at least one of " + strings.Join(postgres.WebhookTypes(), ", ")}
	}
	kinds := make([]postgres.EventKind, 0, len(events))
	for _, e := range events {
		k, ok := postgres.WebhookKind(strings.TrimSpace(e))
		if !ok {
			return nil, &tasks.FieldError{Field: "events", Reason: fmt.Sprintf("%q is not an event; want %s", e, strings.Join(postgres.WebhookTypes(), ", "))}
		}
		kinds = append(kinds, k)
	}
	return kinds, nil
}

func (s WebhookSettings) checkURL(ctx context.Context, raw string) error {
	if _, err := s.Policy.CheckURL(ctx, raw, s.resolver()); err != nil {
		return &tasks.FieldError{Field: "url", Reason: strings.TrimPrefix(err.Error(), "webhook: ")}
	}
	return nil
}

func checkDescription(d string) error {
	if len(d) > 200 {
		return &tasks.FieldError{Field: "description", Reason: "at most 200 bytes"}
	}
	return nil
}

// RegisterWebhook checks and stores a new endpoint and returns it with its
// signing secret (whsec_…), which is shown this once and never again.
func RegisterWebhook(ctx context.Context, store *postgres.Store, s WebhookSettings, w NewWebhook, now time.Time) (postgres.WebhookEndpoint, string, error) {
	kinds, err := webhookKinds(w.Events)
	if err != nil {
		return postgres.WebhookEndpoint{}, "", err
	}
	if err := checkDescription(w.Description); err != nil {
		return postgres.WebhookEndpoint{}, "", err
	}
	if w.CompanyID != "" {
		if err := tasks.CheckCompanyID(w.CompanyID); err != nil {
			return postgres.WebhookEndpoint{}, "", err
		}
		if _, err := store.Company(ctx, w.CompanyID); err != nil {
			return postgres.WebhookEndpoint{}, "", err
		}
	}
	if err := s.checkURL(ctx, w.URL); err != nil {
		return postgres.WebhookEndpoint{}, "", err
	}
	key, err := webhook.NewSecret(s.random())
	if err != nil {
		return postgres.WebhookEndpoint{}, "", err
	}
	ep, err := store.CreateWebhookEndpoint(ctx, postgres.NewWebhookEndpoint{CompanyID: w.CompanyID, URL: w.URL,
		Description: w.Description, Kinds: kinds, Secret: key}, now)
	if err != nil {
		return postgres.WebhookEndpoint{}, "", err
	}
	return ep, webhook.FormatSecret(key), nil
}

// RotateWebhookSecret gives the endpoint a new secret, returned once; the
// old one signs beside it for SecretOverlap.
func RotateWebhookSecret(ctx context.Context, store *postgres.Store, s WebhookSettings, id int64, now time.Time) (postgres.WebhookEndpoint, string, error) {
	key, err := webhook.NewSecret(s.random())
	if err != nil {
		return postgres.WebhookEndpoint{}, "", err
	}
	ep, err := store.RotateWebhookSecret(ctx, id, key, now.Add(cmp.Or(s.SecretOverlap, 24*time.Hour)), now)
	if err != nil {
		return postgres.WebhookEndpoint{}, "", err
	}
	return ep, webhook.FormatSecret(key), nil
}

// ChangeWebhook is a PATCH: nil fields stay.
type ChangeWebhook struct {
	URL         *string
	Events      []string
	Description *string
	Enabled     *bool
}

// UpdateWebhook checks and applies a change.
func UpdateWebhook(ctx context.Context, store *postgres.Store, s WebhookSettings, id int64, c ChangeWebhook, now time.Time) (postgres.WebhookEndpoint, error) {
	change := postgres.WebhookChange{URL: c.URL, Description: c.Description, Enabled: c.Enabled}
	if c.Events != nil {
		kinds, err := webhookKinds(c.Events)
		if err != nil {
			return postgres.WebhookEndpoint{}, err
		}
		change.Kinds = kinds
	}
	if c.Description != nil {
		if err := checkDescription(*c.Description); err != nil {
			return postgres.WebhookEndpoint{}, err
		}
	}
	if c.URL != nil {
		if err := s.checkURL(ctx, *c.URL); err != nil {
			return postgres.WebhookEndpoint{}, err
		}
	}
	return store.UpdateWebhookEndpoint(ctx, id, change, now)
}

// webhookJSON is an endpoint as the API shows it: never its secret.
type webhookJSON struct {
	ID int64 `json:"id"`
	// CompanyID is empty for a platform-wide endpoint.
	CompanyID      string     `json:"company_id,omitempty"`
	URL            string     `json:"url"`
	Description    string     `json:"description"`
	Events         []string   `json:"events"`
	Enabled        bool       `json:"enabled"`
	FailingSince   *time.Time `json:"failing_since,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	// PreviousSecretUntil: during a rotation, when the old secret stops
	// signing.
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

func toWebhookJSON(ep postgres.WebhookEndpoint) webhookJSON {
	events := make([]string, 0, len(ep.Kinds))
	for _, k := range ep.Kinds {
		if n := postgres.WebhookType(k); n != "" {
			events = append(events, n)
		}
	}
	return webhookJSON{ID: ep.ID, CompanyID: ep.CompanyID, URL: ep.URL, Description: ep.Description, Events: events,
		Enabled: ep.Enabled, FailingSince: timePtr(ep.FailingSince), DisabledAt: timePtr(ep.DisabledAt),
		DisabledReason: ep.DisabledReason, PreviousSecretUntil: timePtr(ep.PreviousSecretUntil),
		CreatedAt: ep.CreatedAt, UpdatedAt: ep.UpdatedAt}
}

// webhookWithSecret answers a creation or a rotation: the one time the
// secret is shown.
type webhookWithSecret struct {
	Webhook webhookJSON `json:"webhook"`
	Secret  string      `json:"secret"`
}

type webhookListResponse struct {
	Webhooks []webhookJSON `json:"webhooks"`
}

type webhookCreateRequest struct {
	CompanyID   string   `json:"company_id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

type webhookPatchRequest struct {
	URL         *string  `json:"url"`
	Events      []string `json:"events"`
	Description *string  `json:"description"`
	Enabled     *bool    `json:"enabled"`
}

type webhookReplayRequest struct {
	EventID int64      `json:"event_id"`
	Since   *time.Time `json:"since"`
	Until   *time.Time `json:"until"`
}

type webhookReplayResponse struct {
	// Deliveries is how many were written; each goes out with its event's
	// original webhook-id.
	Deliveries int `json:"deliveries"`
}

type webhookDeliveryJSON struct {
	ID            int64      `json:"id"`
	EventID       int64      `json:"event_id"`
	WebhookID     string     `json:"webhook_id"`
	Replay        bool       `json:"replay"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

type webhookDeliveriesResponse struct {
	Deliveries []webhookDeliveryJSON `json:"deliveries"`
	NextCursor string                `json:"next_cursor,omitempty"`
}

// toDeliveryJSON is one delivery as the API shows it.
func toDeliveryJSON(d postgres.WebhookDelivery) webhookDeliveryJSON {
	out := webhookDeliveryJSON{ID: d.ID, EventID: d.EventID, WebhookID: d.MessageID, Replay: d.Replay, Status: string(d.Status),
		Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError, CreatedAt: d.CreatedAt,
		LastAttemptAt: timePtr(d.LastAttemptAt), DeliveredAt: timePtr(d.DeliveredAt)}
	if d.Status == postgres.WebhookPending {
		out.NextAttemptAt = timePtr(d.NextAttemptAt)
	}
	return out
}

func (s *Server) webhookRoutes() []route {
	api := func(pattern string, h apiHandler) route { return route{pattern, authAPIKey, s.apiHandler(h)} }
	return []route{
		api("POST /api/v1/webhooks", s.apiCreateWebhook),
		api("GET /api/v1/webhooks", s.apiListWebhooks),
		api("GET /api/v1/webhooks/{id}", s.apiGetWebhook),
		api("PATCH /api/v1/webhooks/{id}", s.apiPatchWebhook),
		api("DELETE /api/v1/webhooks/{id}", s.apiDeleteWebhook),
		api("POST /api/v1/webhooks/{id}/secret-rotations", s.apiRotateWebhookSecret),
		api("POST /api/v1/webhooks/{id}/replays", s.apiReplayWebhook),
		api("GET /api/v1/webhooks/{id}/deliveries", s.apiWebhookDeliveries),
	}
}

// keyScope is the request's API key's companies; nil is platform-wide.
func keyScope(ctx context.Context) []string {
	k, _ := ctx.Value(apiKeyKey{}).(postgres.APIKey)
	return k.Companies
}

// ownedWebhook loads the endpoint of the path, for a key that may see it:
// a company endpoint for a key scoped to that company, a platform-wide one
// for a platform-wide key. Any other is 404.
func (s *Server) ownedWebhook(r *http.Request) (postgres.WebhookEndpoint, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return postgres.WebhookEndpoint{}, errNotFound("not found")
	}
	ep, err := s.store.WebhookEndpoint(r.Context(), id)
	if err != nil {
		return ep, err
	}
	if err := inScope(r.Context(), ep.CompanyID); err != nil {
		return postgres.WebhookEndpoint{}, err
	}
	return ep, nil
}

func (s *Server) apiCreateWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req webhookCreateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return 0, nil, err
	}
	if req.CompanyID == "" && keyScope(r.Context()) != nil {
		return 0, nil, &apiError{Status: http.StatusForbidden, Code: codeForbidden, Field: "company_id",
			Message: "company_id: required: a platform-wide endpoint needs a platform-wide API key"}
	}
	if req.CompanyID != "" {
		if err := inScope(r.Context(), req.CompanyID); err != nil {
			return 0, nil, err
		}
	}
	ep, secret, err := RegisterWebhook(r.Context(), s.store, s.cfg.Webhooks, NewWebhook(req), s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, webhookWithSecret{Webhook: toWebhookJSON(ep), Secret: secret}, nil
}

func (s *Server) apiListWebhooks(w http.ResponseWriter, r *http.Request) (int, any, error) {
	scope := keyScope(r.Context())
	if c := r.URL.Query().Get("company_id"); c != "" {
		if err := inScope(r.Context(), c); err != nil {
			return 0, nil, err
		}
		scope = []string{c}
	}
	eps, err := s.store.WebhookEndpoints(r.Context(), scope)
	if err != nil {
		return 0, nil, err
	}
	out := webhookListResponse{Webhooks: make([]webhookJSON, len(eps))}
	for i, ep := range eps {
		out.Webhooks[i] = toWebhookJSON(ep)
	}
	return http.StatusOK, out, nil
}

func (s *Server) apiGetWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ep, err := s.ownedWebhook(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toWebhookJSON(ep), nil
}

func (s *Server) apiPatchWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ep, err := s.ownedWebhook(r)
	if err != nil {
		return 0, nil, err
	}
	var req webhookPatchRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return 0, nil, err
	}
	ep, err = UpdateWebhook(r.Context(), s.store, s.cfg.Webhooks, ep.ID, ChangeWebhook(req), s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toWebhookJSON(ep), nil
}

func (s *Server) apiDeleteWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ep, err := s.ownedWebhook(r)
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.DeleteWebhookEndpoint(r.Context(), ep.ID); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toWebhookJSON(ep), nil
}

func (s *Server) apiRotateWebhookSecret(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ep, err := s.ownedWebhook(r)
	if err != nil {
		return 0, nil, err
	}
	ep, secret, err := RotateWebhookSecret(r.Context(), s.store, s.cfg.Webhooks, ep.ID, s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, webhookWithSecret{Webhook: toWebhookJSON(ep), Secret: secret}, nil
}

// ReplayWebhook checks a replay request (one event, or a range) and writes
// its deliveries.
func ReplayWebhook(ctx context.Context, store *postgres.Store, id, eventID int64, since, until time.Time, now time.Time) (int, error) {
	switch {
	case eventID < 0:
		return 0, &tasks.FieldError{Field: "event_id", Reason: "want a positive event id"}
	case eventID > 0 && (!since.IsZero() || !until.IsZero()):
		return 0, &tasks.FieldError{Field: "event_id", Reason: "name one event, or a range with since and until, not both"}
	case eventID == 0 && (since.IsZero() || until.IsZero()):
		return 0, &tasks.FieldError{Field: "since", Reason: "name one event (event_id), or a range with since and until"}
	case eventID == 0 && !since.Before(until):
		return 0, &tasks.FieldError{Field: "until", Reason: "must be after since"}
	}
	n, err := store.ReplayWebhook(ctx, id, eventID, since, until, now)
	if errors.Is(err, postgres.ErrTooMany) {
		return 0, &tasks.FieldError{Field: "since", Reason: fmt.Sprintf("the range holds more than %d events; replay it in parts", postgres.MaxWebhookReplay)}
	}
	if err == nil && n == 0 && eventID > 0 {
		return 0, fmt.Errorf("admin.ReplayWebhook: event %d is not one this endpoint is sent: %w", eventID, policy.ErrNotFound)
	}
	return n, err
}

func (s *Server) apiReplayWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ep, err := s.ownedWebhook(r)
	if err != nil {
		return 0, nil, err
	}
	var req webhookReplayRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return 0, nil, err
	}
	var since, until time.Time
	if req.Since != nil {
		since = *req.Since
	}
	if req.Until != nil {
		until = *req.Until
	}
	n, err := ReplayWebhook(r.Context(), s.store, ep.ID, req.EventID, since, until, s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, webhookReplayResponse{Deliveries: n}, nil
}

func (s *Server) apiWebhookDeliveries(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ep, err := s.ownedWebhook(r)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > postgres.MaxEventsPage {
			return 0, nil, errField("limit", fmt.Sprintf("want 1 to %d", postgres.MaxEventsPage))
		}
		limit = n
	}
	var after postgres.EventCursor
	if v := q.Get("cursor"); v != "" {
		if after, err = decodeCursor(v); err != nil {
			return 0, nil, errField("cursor", "not a cursor this API gave")
		}
	}
	ds, next, err := s.store.WebhookDeliveries(r.Context(), ep.ID, after, limit)
	if err != nil {
		return 0, nil, err
	}
	out := webhookDeliveriesResponse{Deliveries: make([]webhookDeliveryJSON, len(ds))}
	for i, d := range ds {
		out.Deliveries[i] = toDeliveryJSON(d)
	}
	if next.ID != 0 {
		out.NextCursor = encodeCursor(next)
	}
	return http.StatusOK, out, nil
}
