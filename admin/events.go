package admin

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/postgres"
)

// eventJSON is one audit event as the API shows it.
type eventJSON struct {
	ID             int64           `json:"id"`
	Kind           string          `json:"kind"`
	CompanyID      string          `json:"company_id"`
	AccountID      int64           `json:"account_id,omitempty"`
	ActorAccountID int64           `json:"actor_account_id,omitempty"`
	Detail         json.RawMessage `json:"detail"`
	RequestID      string          `json:"request_id,omitempty"`
	OccurredAt     time.Time       `json:"occurred_at"`
}

type eventsResponse struct {
	Events []eventJSON `json:"events"`
	// NextCursor reads the next (older) page; empty on the last.
	NextCursor string `json:"next_cursor,omitempty"`
}

// apiCompanyEvents reads a company's audit trail, newest first.
func (s *Server) apiCompanyEvents(w http.ResponseWriter, r *http.Request) (int, any, error) {
	companyID := r.PathValue("id")
	if _, err := authorize(r.Context(), companyID); err != nil {
		return 0, nil, err
	}
	f, err := parseEventQuery(r)
	if err != nil {
		return 0, nil, err
	}
	f.CompanyID = companyID
	return s.events(r, f)
}

// apiAccountEvents reads one account's lock history: for an administrator
// of its company. An account of another company reads as missing.
func (s *Server) apiAccountEvents(w http.ResponseWriter, r *http.Request) (int, any, error) {
	a, _, err := s.administeredAccount(r)
	if err != nil {
		return 0, nil, err
	}
	id := a.ID
	f, err := parseEventQuery(r)
	if err != nil {
		return 0, nil, err
	}
	if f.AccountID != 0 && f.AccountID != id {
		return 0, nil, errField("account_id", "names another account than the path")
	}
	f.CompanyID, f.AccountID = a.CompanyID, id
	return s.events(r, f)
}

func (s *Server) events(r *http.Request, f postgres.EventFilter) (int, any, error) {
	evs, next, err := s.store.Events(r.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	out := eventsResponse{Events: make([]eventJSON, len(evs))}
	for i, e := range evs {
		detail := e.Detail
		if len(detail) == 0 {
			detail = json.RawMessage("{}")
		}
		out.Events[i] = eventJSON{ID: e.ID, Kind: string(e.Kind), CompanyID: e.CompanyID, AccountID: e.AccountID,
			ActorAccountID: e.ActorAccountID, Detail: detail, RequestID: e.RequestID, OccurredAt: e.OccurredAt}
	}
	if next.ID != 0 {
		out.NextCursor = encodeCursor(next)
	}
	return http.StatusOK, out, nil
}

// parseEventQuery reads kind (comma-separated), account_id, since, until
// (RFC 3339), limit and cursor, naming the first bad one.
func parseEventQuery(r *http.Request) (postgres.EventFilter, error) {
	q := r.URL.Query()
	f := postgres.EventFilter{Limit: 100}
	if v := q.Get("kind"); v != "" {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k == "" || len(k) > 64 {
				return f, errField("kind", "want event kinds separated by commas")
			}
			f.Kinds = append(f.Kinds, k)
		}
	}
	if v := q.Get("account_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return f, errField("account_id", "want a positive account id")
		}
		f.AccountID = id
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, errField(t.name, "want an RFC 3339 time")
			}
			*t.dst = at
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > postgres.MaxEventsPage {
			return f, errField("limit", fmt.Sprintf("want 1 to %d", postgres.MaxEventsPage))
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			return f, errField("cursor", "not a cursor this API gave")
		}
		f.After = c
	}
	return f, nil
}

func encodeCursor(c postgres.EventCursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d", c.At.UnixMicro(), c.ID))
}

func decodeCursor(s string) (postgres.EventCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return postgres.EventCursor{}, err
	}
	at, id, ok := strings.Cut(string(b), ".")
	micros, err1 := strconv.ParseInt(at, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil || n <= 0 {
		return postgres.EventCursor{}, fmt.Errorf("malformed cursor")
	}
	return postgres.EventCursor{At: time.UnixMicro(micros), ID: n}, nil
}
