package admin

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/webhook"
)

var testWebhookSettings = WebhookSettings{Resolver: webhook.StaticResolver{
	"hooks.example.com": {netip.MustParseAddr("93.184.215.14")},
	"intranet.example":  {netip.MustParseAddr("10.0.0.8")},
	"rebind.example":    {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("127.0.0.1")},
	"localhost":         {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
}}

// scopedKey is an API key for the named companies only.
func (b *testBundle) scopedKey(t *testing.T, companies ...string) string {
	t.Helper()
	_, key, err := CreateAPIKey(b.ctx, b.store, rand.Reader, "scoped "+strings.Join(companies, ","), companies, start)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func (b *testBundle) newWebhook(t *testing.T, key, body string) webhookWithSecret {
	t.Helper()
	w := b.apiAs(key, "POST", "/api/v1/webhooks", body, 0)
	var out webhookWithSecret
	if w.Code != http.StatusCreated {
		t.Fatalf("create %s: %d %s", body, w.Code, w.Body.String())
	}
	mustJSON(t, w, &out)
	return out
}

// webhookCases are the authorization cases of the webhook routes: an API
// key is required, and a key scoped to company b gets 404 for company a's
// endpoint, changing nothing.
func webhookCases(b *testBundle) map[string]func(t *testing.T) {
	check := func(method, suffix, body string, ok int) func(t *testing.T) {
		return func(t *testing.T) {
			ep := b.newWebhook(t, b.apiKey, fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/a","events":["account.locked"]}`, b.a.id)).Webhook
			path := fmt.Sprintf("/api/v1/webhooks/%d%s", ep.ID, suffix)
			if suffix == "-" {
				path = "/api/v1/webhooks"
			}
			for _, key := range []string{"", "dmy_not-a-real-key"} {
				if w := b.apiAs(key, method, path, body, 0); w.Code != http.StatusUnauthorized {
					t.Errorf("key %q: %d, want 401", key, w.Code)
				}
			}
			if suffix != "-" {
				other := b.scopedKey(t, b.b.id)
				if w := b.apiAs(other, method, path, body, 0); w.Code != http.StatusNotFound {
					t.Errorf("a key scoped to another company: %d %s, want 404", w.Code, w.Body.String())
				}
				if got, err := b.store.WebhookEndpoint(b.ctx, ep.ID); err != nil || got.URL != ep.URL || !got.Enabled {
					t.Errorf("the other company's key changed the endpoint: %+v, %v", got, err)
				}
			}
			if w := b.api(method, path, body, 0); w.Code != ok {
				t.Errorf("with the key: %d %s, want %d", w.Code, w.Body.String(), ok)
			}
		}
	}
	return map[string]func(t *testing.T){
		"POST /api/v1/webhooks":                       check("POST", "-", fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/x","events":["account.unlocked"]}`, b.a.id), 201),
		"GET /api/v1/webhooks":                        check("GET", "-", "", 200),
		"GET /api/v1/webhooks/{id}":                   check("GET", "", "", 200),
		"PATCH /api/v1/webhooks/{id}":                 check("PATCH", "", `{"description":"ops"}`, 200),
		"DELETE /api/v1/webhooks/{id}":                check("DELETE", "", "", 200),
		"POST /api/v1/webhooks/{id}/secret-rotations": check("POST", "/secret-rotations", "", 201),
		"POST /api/v1/webhooks/{id}/replays":          check("POST", "/replays", `{"since":"2026-11-01T00:00:00Z","until":"2026-11-02T00:00:00Z"}`, 202),
		"GET /api/v1/webhooks/{id}/deliveries":        check("GET", "/deliveries", "", 200),
	}
}

// TestWebhookAPIScopes: a company-scoped key registers and sees only its
// companies' endpoints; a platform-wide endpoint needs a platform-wide
// key; the secret is shown once.
func TestWebhookAPIScopes(t *testing.T) {
	b := setup(t)
	keyA := b.scopedKey(t, b.a.id)
	mine := b.newWebhook(t, keyA, fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/a","events":["account.locked","account.unlocked"],"description":"revoke sessions"}`, b.a.id))
	if !strings.HasPrefix(mine.Secret, webhook.SecretPrefix) || mine.Webhook.CompanyID != b.a.id || !mine.Webhook.Enabled ||
		!slices.Equal(mine.Webhook.Events, []string{"account.locked", "account.unlocked"}) {
		t.Fatalf("created: %+v", mine)
	}
	if _, err := webhook.ParseSecret(mine.Secret); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"another company":       fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/b","events":["account.locked"]}`, b.b.id),
		"a company that is not": `{"company_id":"no-such-co","url":"https://hooks.example.com/b","events":["account.locked"]}`,
	} {
		if w := b.apiAs(keyA, "POST", "/api/v1/webhooks", body, 0); w.Code != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", name, w.Code, w.Body.String())
		}
	}
	if w := b.apiAs(keyA, "POST", "/api/v1/webhooks", `{"url":"https://hooks.example.com/all","events":["account.locked"]}`, 0); w.Code != http.StatusForbidden {
		t.Errorf("platform-wide with a scoped key: %d %s, want 403", w.Code, w.Body.String())
	}
	platform := b.newWebhook(t, b.apiKey, `{"url":"https://hooks.example.com/all","events":["account.locked"]}`)
	t.Cleanup(func() { _ = b.store.DeleteWebhookEndpoint(b.ctx, platform.Webhook.ID) })
	theirs := b.newWebhook(t, b.apiKey, fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/b","events":["account.locked"]}`, b.b.id))

	var list webhookListResponse
	mustJSON(t, b.apiAs(keyA, "GET", "/api/v1/webhooks", "", 0), &list)
	if len(list.Webhooks) != 1 || list.Webhooks[0].ID != mine.Webhook.ID {
		t.Errorf("the scoped key lists %+v, want its company's one endpoint", list.Webhooks)
	}
	for _, id := range []int64{platform.Webhook.ID, theirs.Webhook.ID} {
		if w := b.apiAs(keyA, "GET", fmt.Sprintf("/api/v1/webhooks/%d", id), "", 0); w.Code != http.StatusNotFound {
			t.Errorf("endpoint %d through the scoped key: %d, want 404", id, w.Code)
		}
	}
	if w := b.apiAs(keyA, "GET", "/api/v1/webhooks?company_id="+b.b.id, "", 0); w.Code != http.StatusNotFound {
		t.Errorf("listing another company: %d, want 404", w.Code)
	}
	// The secret is never shown again.
	w := b.apiAs(keyA, "GET", fmt.Sprintf("/api/v1/webhooks/%d", mine.Webhook.ID), "", 0)
	if w.Code != 200 || strings.Contains(w.Body.String(), "secret") || strings.Contains(w.Body.String(), strings.TrimPrefix(mine.Secret, webhook.SecretPrefix)) {
		t.Errorf("GET shows the secret: %s", w.Body.String())
	}
	// A rotation answers the new secret once; the old one signs beside it.
	var rotated webhookWithSecret
	mustJSON(t, b.apiAs(keyA, "POST", fmt.Sprintf("/api/v1/webhooks/%d/secret-rotations", mine.Webhook.ID), "", 0), &rotated)
	if rotated.Secret == mine.Secret || rotated.Webhook.PreviousSecretUntil == nil || !rotated.Webhook.PreviousSecretUntil.Equal(start.Add(24*3600e9)) {
		t.Errorf("rotation: %+v", rotated)
	}
	// Turning it off and on.
	var patched webhookJSON
	mustJSON(t, b.apiAs(keyA, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", mine.Webhook.ID), `{"enabled":false}`, 0), &patched)
	if patched.Enabled || patched.DisabledAt == nil {
		t.Errorf("disabled: %+v", patched)
	}
	var again webhookJSON
	mustJSON(t, b.apiAs(keyA, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", mine.Webhook.ID), `{"enabled":true}`, 0), &again)
	if !again.Enabled || again.DisabledAt != nil {
		t.Errorf("enabled again: %+v", again)
	}
}

// TestWebhookAPIRefusesInternalURLs: endpoints on loopback, private and
// link-local addresses (named or resolved) are refused unless the setting
// allows them; the answer names the field.
func TestWebhookAPIRefusesInternalURLs(t *testing.T) {
	b := setup(t)
	for _, u := range []string{"https://127.0.0.1/h", "https://[::1]/h", "https://localhost/h", "https://10.1.2.3/h", "https://192.168.0.1/h",
		"https://169.254.169.254/latest/meta-data/", "https://[fe80::1]/h", "https://intranet.example/h", "https://rebind.example/h",
		"https://100.64.1.1/h", "http://hooks.example.com/h", "ftp://hooks.example.com/h", "https://u:p@hooks.example.com/h", "not a url"} {
		w := b.api("POST", "/api/v1/webhooks", fmt.Sprintf(`{"company_id":%q,"url":%q,"events":["account.locked"]}`, b.a.id, u), 0)
		if w.Code != http.StatusBadRequest || apiErrorOf(t, w).Field != "url" {
			t.Errorf("%s: %d %s, want 400 naming url", u, w.Code, w.Body.String())
		}
	}
	for _, body := range []string{
		fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/h","events":[]}`, b.a.id),
		fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/h","events":["locked"]}`, b.a.id),
	} {
		if w := b.api("POST", "/api/v1/webhooks", body, 0); w.Code != http.StatusBadRequest || apiErrorOf(t, w).Field != "events" {
			t.Errorf("%s: %d %s, want 400 naming events", body, w.Code, w.Body.String())
		}
	}
	if n := testCount(t, b, `SELECT count(*) FROM webhook_endpoints WHERE company_id = $1`, b.a.id); n != 0 {
		t.Errorf("%d endpoints stored", n)
	}
	// Allowed by the setting, loopback over http registers.
	allow, _ := webhook.ParseAllow("loopback")
	s := testWebhookSettings
	s.Policy = webhook.AddressPolicy{Allow: allow, AllowHTTP: true}
	if _, _, err := RegisterWebhook(b.ctx, b.store, s, NewWebhook{CompanyID: b.a.id, URL: "http://127.0.0.1:9/h", Events: []string{"account.locked"}}, start); err != nil {
		t.Errorf("loopback allowed: %v", err)
	}
	// A change of URL is checked the same way.
	ep := b.newWebhook(t, b.apiKey, fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/h","events":["account.locked"]}`, b.a.id))
	if w := b.api("PATCH", fmt.Sprintf("/api/v1/webhooks/%d", ep.Webhook.ID), `{"url":"https://169.254.169.254/"}`, 0); w.Code != http.StatusBadRequest {
		t.Errorf("PATCH to a link-local URL: %d", w.Code)
	}
}

func TestWebhookAPIReplayAndDeliveries(t *testing.T) {
	b := setup(t)
	ep := b.newWebhook(t, b.apiKey, fmt.Sprintf(`{"company_id":%q,"url":"https://hooks.example.com/h","events":["account.locked"]}`, b.a.id)).Webhook
	for range 3 {
		if err := b.store.Audit(b.ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: b.a.id, AccountID: b.a.lockedPlatform, OccurredAt: start}); err != nil {
			t.Fatal(err)
		}
	}
	var page webhookDeliveriesResponse
	mustJSON(t, b.api("GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=2", ep.ID), "", 0), &page)
	if len(page.Deliveries) != 2 || page.NextCursor == "" || page.Deliveries[0].Status != "pending" || !strings.HasPrefix(page.Deliveries[0].WebhookID, "msg_") {
		t.Fatalf("first page: %+v", page)
	}
	first := page.Deliveries[0]
	var last webhookDeliveriesResponse
	mustJSON(t, b.api("GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=2&cursor=%s", ep.ID, page.NextCursor), "", 0), &last)
	if len(last.Deliveries) != 1 || last.NextCursor != "" || last.Deliveries[0].ID == first.ID {
		t.Fatalf("second page: %+v", last)
	}
	var replay webhookReplayResponse
	w := b.api("POST", fmt.Sprintf("/api/v1/webhooks/%d/replays", ep.ID), fmt.Sprintf(`{"event_id":%d}`, first.EventID), 0)
	mustJSON(t, w, &replay)
	if w.Code != http.StatusAccepted || replay.Deliveries != 1 {
		t.Fatalf("replay: %d %+v", w.Code, replay)
	}
	if n := testCount(t, b, `SELECT count(*) FROM webhook_deliveries WHERE message_id = $1 AND replay`, first.WebhookID); n != 1 {
		t.Errorf("replayed deliveries with %s: %d", first.WebhookID, n)
	}
	for _, body := range []string{`{}`, `{"event_id":1,"since":"2026-11-01T00:00:00Z","until":"2026-11-02T00:00:00Z"}`,
		`{"since":"2026-11-02T00:00:00Z","until":"2026-11-01T00:00:00Z"}`} {
		if w := b.api("POST", fmt.Sprintf("/api/v1/webhooks/%d/replays", ep.ID), body, 0); w.Code != http.StatusBadRequest {
			t.Errorf("replay %s: %d, want 400", body, w.Code)
		}
	}
	if w := b.api("POST", fmt.Sprintf("/api/v1/webhooks/%d/replays", ep.ID), `{"event_id":999999999}`, 0); w.Code != http.StatusNotFound {
		t.Errorf("replay of an unknown event: %d, want 404", w.Code)
	}

	// A disabled endpoint's deliveries would only fail: its replay is
	// refused, nothing written, until it is enabled again.
	if w := b.api("PATCH", fmt.Sprintf("/api/v1/webhooks/%d", ep.ID), `{"enabled":false}`, 0); w.Code != http.StatusOK {
		t.Fatalf("disable: %d %s", w.Code, w.Body)
	}
	body := fmt.Sprintf(`{"event_id":%d}`, first.EventID)
	w = b.api("POST", fmt.Sprintf("/api/v1/webhooks/%d/replays", ep.ID), body, 0)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), `"endpoint_disabled"`) {
		t.Errorf("replay to a disabled endpoint: %d %s, want 409 endpoint_disabled", w.Code, w.Body)
	}
	if n := testCount(t, b, `SELECT count(*) FROM webhook_deliveries WHERE message_id = $1 AND replay`, first.WebhookID); n != 1 {
		t.Errorf("replayed deliveries after the refusal: %d, want still 1", n)
	}
	if w := b.api("PATCH", fmt.Sprintf("/api/v1/webhooks/%d", ep.ID), `{"enabled":true}`, 0); w.Code != http.StatusOK {
		t.Fatalf("enable: %d %s", w.Code, w.Body)
	}
	if w := b.api("POST", fmt.Sprintf("/api/v1/webhooks/%d/replays", ep.ID), body, 0); w.Code != http.StatusAccepted {
		t.Errorf("replay once enabled again: %d %s", w.Code, w.Body)
	}
}

// TestWebhookEventNamesDocumented: the OpenAPI enum is the mapping's list.
func TestWebhookEventNamesDocumented(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				WebhookEvent struct {
					Enum []string `json:"enum"`
				}
			}
		}
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(doc.Components.Schemas.WebhookEvent.Enum))
	if want := postgres.WebhookTypes(); !slices.Equal(got, want) {
		t.Errorf("documented %v, mapped %v", got, want)
	}
}

func testCount(t *testing.T, b *testBundle, q string, args ...any) int {
	t.Helper()
	var n int
	if err := b.db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
