package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/dormancy/dormancy/postgres"
)

// The audit trail read back: newest first, paged by a cursor that neither
// skips nor repeats an event written between two pages, filtered by kind,
// account and time, and scoped like the rest of the API.
func TestEventsReadBack(t *testing.T) {
	b := setup(t)
	at := func(i int) time.Time { return start.Add(-time.Duration(10-i) * time.Minute) }
	for i := range 10 {
		kind, acct := postgres.EventLocked, b.a.lockedPlatform
		if i%2 == 1 {
			kind, acct = postgres.EventUnlocked, b.a.member
		}
		if err := b.store.Audit(b.ctx, postgres.Event{Kind: kind, CompanyID: b.a.id, AccountID: acct, ActorAccountID: b.a.admin,
			Detail: map[string]any{"i": i}, OccurredAt: at(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: b.b.id, AccountID: b.b.lockedPlatform, OccurredAt: at(5)}); err != nil {
		t.Fatal(err)
	}
	page := func(path string, actor int64) eventsResponse {
		t.Helper()
		w := b.api("GET", path, "", actor)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body.String())
		}
		var r eventsResponse
		mustJSON(t, w, &r)
		return r
	}
	base := "/api/v1/companies/" + b.a.id + "/events"
	first := page(base+"?limit=4", b.a.admin)
	if len(first.Events) != 4 || first.NextCursor == "" || first.Events[0].Detail == nil {
		t.Fatalf("first page: %+v", first)
	}
	// An event written between the pages, dated before the cursor, shows
	// on a later page; nothing is repeated or skipped.
	if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventRelocked, CompanyID: b.a.id, AccountID: b.a.member, OccurredAt: at(2).Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	var times []time.Time
	for _, e := range first.Events {
		seen[e.ID] = true
		times = append(times, e.OccurredAt)
	}
	for cursor := first.NextCursor; cursor != ""; {
		p := page(base+"?limit=4&cursor="+url.QueryEscape(cursor), b.a.admin)
		for _, e := range p.Events {
			if seen[e.ID] {
				t.Errorf("event %d repeated", e.ID)
			}
			seen[e.ID] = true
			times = append(times, e.OccurredAt)
		}
		cursor = p.NextCursor
	}
	var want int
	if err := b.db.QueryRow(`SELECT count(*) FROM audit_events WHERE company_id = $1`, b.a.id).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if len(seen) != want || want < 11 {
		t.Errorf("read %d events of company A, want %d (11 written here)", len(seen), want)
	}
	for i := 1; i < len(times); i++ {
		if times[i].After(times[i-1]) {
			t.Errorf("not newest first at %d: %v after %v", i, times[i], times[i-1])
		}
	}
	// Filters.
	if r := page(base+"?kind=unlocked", b.a.admin); len(r.Events) != 5 {
		t.Errorf("kind=unlocked: %d events, want 5", len(r.Events))
	}
	if r := page(fmt.Sprintf("%s?account_id=%d&since=%s&until=%s", base, b.a.lockedPlatform,
		url.QueryEscape(at(4).Format(time.RFC3339)), url.QueryEscape(at(8).Format(time.RFC3339))), b.a.admin); len(r.Events) != 2 {
		t.Errorf("account and time range: %d events, want 2 (i = 4, 6)", len(r.Events))
	}
	// One account's history.
	if r := page(fmt.Sprintf("/api/v1/accounts/%d/events", b.a.member), b.a.admin); len(r.Events) != 6 {
		t.Errorf("the member's history: %d events, want 6", len(r.Events))
	}
	// Scope and permission.
	for _, c := range []struct {
		path   string
		actor  int64
		status int
	}{
		{"/api/v1/companies/" + b.b.id + "/events", b.a.admin, http.StatusForbidden},
		{fmt.Sprintf("/api/v1/accounts/%d/events", b.b.lockedPlatform), b.a.admin, http.StatusNotFound},
		{fmt.Sprintf("/api/v1/accounts/%d/events", b.a.member), b.a.member, http.StatusForbidden},
		{base, b.a.member, http.StatusForbidden},
		{base + "?cursor=nonsense", b.a.admin, http.StatusBadRequest},
		{base + "?limit=0", b.a.admin, http.StatusBadRequest},
		{base + "?since=yesterday", b.a.admin, http.StatusBadRequest},
	} {
		if w := b.api("GET", c.path, "", c.actor); w.Code != c.status {
			t.Errorf("%s as %d: %d, want %d", c.path, c.actor, w.Code, c.status)
		}
	}
}
