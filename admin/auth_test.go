package admin

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// routeCase says how to call one route. build makes the request with the
// company in the path taken from pathCo and the account ids from idsCo, so
// the same case asks for the actor's own data, another company's, or a
// mix of the two.
type routeCase struct {
	build func(b *testBundle, pathCo, idsCo company) (method, path string, form url.Values, body string)
	// ok is the status of a permitted call on the actor's own data.
	ok int
	// noIDs: the route names no account, so a mix is the same as own.
	noIDs bool
}

func apiCase(ok int, noIDs bool, f func(b *testBundle, pathCo, idsCo company) (string, string, string)) routeCase {
	return routeCase{ok: ok, noIDs: noIDs, build: func(b *testBundle, p, i company) (string, string, url.Values, string) {
		m, path, body := f(b, p, i)
		return m, path, nil, body
	}}
}

func pageCase(ok int, noIDs bool, f func(b *testBundle, idsCo company) (string, string, url.Values)) routeCase {
	return routeCase{ok: ok, noIDs: noIDs, build: func(b *testBundle, _, i company) (string, string, url.Values, string) {
		m, path, form := f(b, i)
		return m, path, form, ""
	}}
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

// TestAuthorization walks every route of the server: without credentials
// it is refused (401), with another company's ids it is refused (403 or
// 404) and nothing changes, an actor without the permission and a retired
// actor are refused (403), and the actor's own call succeeds, so each
// refusal is the check's doing.
func TestAuthorization(t *testing.T) {
	b := setup(t)
	// An unlock task of each company, for the status routes.
	taskOf := map[string]string{}
	for _, c := range []company{b.a, b.b} {
		w := b.api("POST", "/api/v1/companies/"+c.id+"/unlocks", fmt.Sprintf(`{"account_ids":[%d]}`, c.lockedPlatform), c.admin)
		if w.Code != http.StatusAccepted {
			t.Fatalf("unlock for %s: %d %s", c.id, w.Code, w.Body.String())
		}
		var r unlockResponse
		mustJSON(t, w, &r)
		taskOf[c.id] = r.TaskID
	}

	apiActor := map[string]routeCase{
		"GET /api/v1/companies/{id}/accounts": apiCase(200, true, func(b *testBundle, p, i company) (string, string, string) {
			return "GET", "/api/v1/companies/" + p.id + "/accounts?locked=true", ""
		}),
		"POST /api/v1/companies/{id}/unlocks": apiCase(202, false, func(b *testBundle, p, i company) (string, string, string) {
			return "POST", "/api/v1/companies/" + p.id + "/unlocks", fmt.Sprintf(`{"account_ids":[%d],"request_id":%q}`, i.lockedPlatform, tasks.NewKey())
		}),
		"GET /api/v1/companies/{id}/unlocks/{task_id}": apiCase(200, false, func(b *testBundle, p, i company) (string, string, string) {
			return "GET", "/api/v1/companies/" + p.id + "/unlocks/" + url.PathEscape(taskOf[i.id]), ""
		}),
		"GET /api/v1/companies/{id}/login-notification-recipients": apiCase(200, true, func(b *testBundle, p, i company) (string, string, string) {
			return "GET", "/api/v1/companies/" + p.id + "/login-notification-recipients", ""
		}),
		"PUT /api/v1/companies/{id}/login-notification-recipients": apiCase(200, false, func(b *testBundle, p, i company) (string, string, string) {
			return "PUT", "/api/v1/companies/" + p.id + "/login-notification-recipients", fmt.Sprintf(`{"account_ids":[%d]}`, i.recipient)
		}),
		"GET /api/v1/accounts/{id}": apiCase(200, false, func(b *testBundle, p, i company) (string, string, string) {
			return "GET", "/api/v1/accounts/" + id(i.lockedPlatform), ""
		}),
		"GET /api/v1/companies/{id}/events": apiCase(200, true, func(b *testBundle, p, i company) (string, string, string) {
			return "GET", "/api/v1/companies/" + p.id + "/events", ""
		}),
		"GET /api/v1/accounts/{id}/events": apiCase(200, false, func(b *testBundle, p, i company) (string, string, string) {
			return "GET", "/api/v1/accounts/" + id(i.lockedPlatform) + "/events", ""
		}),
		"GET /api/v1/companies/{id}/report": apiCase(200, true, func(b *testBundle, p, i company) (string, string, string) {
			return "GET", "/api/v1/companies/" + p.id + "/report", ""
		}),
		"GET /api/v1/accounts/{id}/export": apiCase(200, false, func(b *testBundle, p, i company) (string, string, string) {
			return "GET", "/api/v1/accounts/" + id(i.lockedPlatform) + "/export", ""
		}),
		"POST /api/v1/accounts/{id}/erasure": apiCase(200, false, func(b *testBundle, p, i company) (string, string, string) {
			return "POST", "/api/v1/accounts/" + id(i.retiredAdmin) + "/erasure", ""
		}),
		"POST /api/v1/companies/{id}/sweep-confirmations": apiCase(200, true, func(b *testBundle, p, i company) (string, string, string) {
			// A held sweep to confirm.
			if _, err := b.db.Exec(`INSERT INTO sweep_holds (company_id, would_lock, employed, held_at) VALUES ($1, 60, 62, now())
				ON CONFLICT (company_id) DO UPDATE SET confirmed_at = NULL, confirmed_by = ''`, p.id); err != nil {
				panic(err)
			}
			return "POST", "/api/v1/companies/" + p.id + "/sweep-confirmations", ""
		}),
	}
	pages := map[string]routeCase{
		"GET /admin/employees": pageCase(200, true, func(b *testBundle, i company) (string, string, url.Values) {
			return "GET", "/admin/employees?locked=1", nil
		}),
		"GET /admin/employees/{id}/history": pageCase(200, false, func(b *testBundle, i company) (string, string, url.Values) {
			return "GET", "/admin/employees/" + id(i.lockedPlatform) + "/history", nil
		}),
		"POST /admin/unlocks": pageCase(303, false, func(b *testBundle, i company) (string, string, url.Values) {
			return "POST", "/admin/unlocks", url.Values{"account_id": {id(i.lockedPlatform)}, "request_id": {tasks.NewKey()}}
		}),
		"GET /admin/unlocks/{task_id}": pageCase(200, false, func(b *testBundle, i company) (string, string, url.Values) {
			return "GET", "/admin/unlocks/" + url.PathEscape(taskOf[i.id]), nil
		}),
		"GET /admin/recipients": pageCase(200, true, func(b *testBundle, i company) (string, string, url.Values) {
			return "GET", "/admin/recipients", nil
		}),
		"POST /admin/recipients/confirm": pageCase(200, false, func(b *testBundle, i company) (string, string, url.Values) {
			return "POST", "/admin/recipients/confirm", url.Values{"ids": {id(i.recipient)}}
		}),
		"POST /admin/recipients": pageCase(303, false, func(b *testBundle, i company) (string, string, url.Values) {
			return "POST", "/admin/recipients", url.Values{"ids": {id(i.recipient)}}
		}),
		"POST /admin/logout": pageCase(200, true, func(b *testBundle, i company) (string, string, url.Values) {
			return "POST", "/admin/logout", url.Values{}
		}),
	}
	// Routes that take an API key but act for nobody: the host speaks for
	// its users, and the body names the company.
	apiKeyOnly := map[string]struct {
		method, path, body string
		ok                 int
	}{
		"POST /api/v1/login-attempts": {"POST", "/api/v1/login-attempts",
			fmt.Sprintf(`{"company_id":%q,"login_id":%q,"method":"password"}`, b.a.id, loginIDOf(t, b, b.a.active)), 200},
		// A refused token proves the key was accepted.
		"POST /api/v1/verifications/redeem": {"POST", "/api/v1/verifications/redeem",
			fmt.Sprintf(`{"company_id":%q,"login_id":"x","token":"nope"}`, b.a.id), 422},
	}
	operator := map[string]string{
		"/monitoring/":             "/monitoring/",
		"GET /metrics":             "/metrics",
		"GET /dev/mailbox":         "/dev/mailbox",
		"GET /debug/pprof/":        "/debug/pprof/heap",
		"GET /debug/pprof/profile": "/debug/pprof/profile?seconds=1",
	}
	public := map[string]struct {
		path string
		ok   int
	}{
		"GET /healthz":             {"/healthz", 200},
		"GET /readyz":              {"/readyz", 200},
		"GET /api/v1/openapi.json": {"/api/v1/openapi.json", 200},
		"GET /admin/static/":       {"/admin/static/admin.js", 200},
		"/api/v1/":                 {"/api/v1/nothing-here", 404},
		"GET /admin/login":         {"/admin/login", 401},
	}

	// Every route has a case, and every case a route.
	covered := map[string]bool{}
	for _, m := range []map[string]routeCase{apiActor, pages} {
		for p := range m {
			covered[p] = true
		}
	}
	for p := range apiKeyOnly {
		covered[p] = true
	}
	for p := range operator {
		covered[p] = true
	}
	for p := range public {
		covered[p] = true
	}
	for p := range directoryCases(b) {
		covered[p] = true
	}
	for p := range webhookCases(b) {
		covered[p] = true
	}
	routes := map[string]bool{}
	for _, rt := range b.srv.routes {
		routes[rt.pattern] = true
		if !covered[rt.pattern] {
			t.Errorf("route %q (%s) has no authorization case", rt.pattern, rt.auth)
		}
	}
	for p := range covered {
		if !routes[p] {
			t.Errorf("case %q names no route", p)
		}
	}

	for pattern, c := range apiActor {
		t.Run(pattern, func(t *testing.T) {
			m, path, _, body := c.build(b, b.a, b.a)
			for _, key := range []string{"", "dmy_not-a-real-key", "not-even-the-prefix"} {
				if w := b.apiAs(key, m, path, body, b.a.admin); w.Code != http.StatusUnauthorized {
					t.Errorf("key %q: %d, want 401", key, w.Code)
				} else if e := apiErrorOf(t, w); e.Code != codeUnauthorized {
					t.Errorf("key %q: code %q", key, e.Code)
				}
			}
			if w := b.api(m, path, body, 0); w.Code != http.StatusBadRequest || apiErrorOf(t, w).Field != ActorHeader {
				t.Errorf("no actor: %d %s, want 400 naming %s", w.Code, w.Body.String(), ActorHeader)
			}
			for name, actor := range map[string]int64{
				"member without the permission": b.a.member,
				"retired administrator":         b.a.retiredAdmin,
				"unknown account":               1 << 60,
			} {
				before := b.snapshot(t)
				w := b.api(m, path, body, actor)
				if w.Code != http.StatusForbidden {
					t.Errorf("%s: %d %s, want 403", name, w.Code, w.Body.String())
				}
				if after := b.snapshot(t); after != before {
					t.Errorf("%s changed something", name)
				}
			}
			foreign := [][2]company{{b.b, b.b}}
			if !c.noIDs {
				foreign = append(foreign, [2]company{b.a, b.b})
			}
			for _, f := range foreign {
				m, path, _, body := c.build(b, f[0], f[1])
				before := b.snapshot(t)
				w := b.api(m, path, body, b.a.admin)
				if w.Code != http.StatusForbidden && w.Code != http.StatusNotFound {
					t.Errorf("%s %s by company A's administrator: %d %s, want 403 or 404", m, path, w.Code, w.Body.String())
				}
				if after := b.snapshot(t); after != before {
					t.Errorf("%s %s by company A's administrator changed something:\n%s\n%s", m, path, before, after)
				}
			}
			if w := b.api(m, path, body, b.a.admin); w.Code != c.ok {
				t.Errorf("own call: %d %s, want %d", w.Code, w.Body.String(), c.ok)
			}
		})
	}

	for pattern, c := range pages {
		t.Run(pattern, func(t *testing.T) {
			m, path, form, _ := c.build(b, b.a, b.a)
			if w := b.page(session{}, m, path, form); w.Code != http.StatusUnauthorized {
				t.Errorf("no session: %d, want 401", w.Code)
			}
			forged := session{cookie: &http.Cookie{Name: sessionCookie, Value: strings.Repeat("A", 43)}, csrf: "x"}
			if w := b.page(forged, m, path, form); w.Code != http.StatusUnauthorized {
				t.Errorf("forged session: %d, want 401", w.Code)
			}
			// A session whose actor lost the permission, or left, after it began.
			for name, change := range map[string]string{
				"permission withdrawn": `UPDATE accounts SET can_manage_employees = false WHERE id = $1`,
				"retired":              `UPDATE accounts SET status = 'retired' WHERE id = $1`,
			} {
				actor := b.account(t, b.a.id, "管理 一時", true, policy.IDKindPlatform, false)
				s := b.login(t, b.a.id, actor)
				b.exec(t, change, actor)
				m, path, form, _ := c.build(b, b.a, b.a)
				before := b.snapshot(t)
				if w := b.page(s, m, path, form); w.Code != http.StatusForbidden {
					t.Errorf("%s: %d, want 403", name, w.Code)
				}
				if after := b.snapshot(t); after != before {
					t.Errorf("%s: something changed", name)
				}
			}
			if !c.noIDs {
				s := b.login(t, b.a.id, b.a.admin)
				m, path, form, _ := c.build(b, b.a, b.b)
				before := b.snapshot(t)
				w := b.page(s, m, path, form)
				if w.Code != http.StatusForbidden && w.Code != http.StatusNotFound {
					t.Errorf("company B's ids in company A's session: %d, want 403 or 404", w.Code)
				}
				if after := b.snapshot(t); after != before {
					t.Errorf("company B's ids in company A's session changed something:\n%s\n%s", before, after)
				}
			}
			if m != "GET" {
				s := b.login(t, b.a.id, b.a.admin)
				other := b.login(t, b.b.id, b.b.admin)
				// The forgery differs from the real token in its last two
				// characters, always (a fixed "AA" would equal a real token
				// that happens to end so, one session in 256).
				forged := s.csrf[:len(s.csrf)-2] + "AA"
				if forged == s.csrf {
					forged = s.csrf[:len(s.csrf)-2] + "BA"
				}
				for name, token := range map[string]string{"no": "", "another session's": other.csrf, "a forged": forged} {
					m, path, form, _ := c.build(b, b.a, b.a)
					form.Set("csrf", token)
					before := b.snapshot(t)
					if w := b.page(s, m, path, form); w.Code != http.StatusForbidden {
						t.Errorf("%s CSRF token: %d, want 403", name, w.Code)
					}
					if after := b.snapshot(t); after != before {
						t.Errorf("%s CSRF token: something changed", name)
					}
				}
			}
			s := b.login(t, b.a.id, b.a.admin)
			if w := b.page(s, m, path, form); w.Code != c.ok {
				t.Errorf("own call: %d %s, want %d", w.Code, w.Body.String(), c.ok)
			}
		})
	}

	for pattern, c := range apiKeyOnly {
		t.Run(pattern, func(t *testing.T) {
			for _, key := range []string{"", "dmy_not-a-real-key"} {
				before := b.queued(t, tasks.QueueCritical)
				if w := b.apiAs(key, c.method, c.path, c.body, 0); w.Code != http.StatusUnauthorized {
					t.Errorf("key %q: %d, want 401", key, w.Code)
				}
				if after := b.queued(t, tasks.QueueCritical); after != before {
					t.Errorf("key %q: a task was queued", key)
				}
			}
			if w := b.api(c.method, c.path, c.body, 0); w.Code != c.ok {
				t.Errorf("with the key: %d %s, want %d", w.Code, w.Body.String(), c.ok)
			}
		})
	}

	for pattern, path := range operator {
		t.Run(pattern, func(t *testing.T) {
			for name, creds := range map[string][2]string{"none": {}, "wrong password": {operatorUser, "guess"}, "wrong user": {"admin", operatorPass}} {
				r := newRequest("GET", path)
				if creds[0] != "" {
					r.SetBasicAuth(creds[0], creds[1])
				}
				if w := b.serve(r); w.Code != http.StatusUnauthorized {
					t.Errorf("%s: %d, want 401", name, w.Code)
				} else if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("%s: no Basic challenge", name)
				}
			}
			r := newRequest("GET", path)
			r.SetBasicAuth(operatorUser, operatorPass)
			if w := b.serve(r); w.Code != http.StatusOK {
				t.Errorf("operator: %d, want 200", w.Code)
			}
			// An administrator's session or an API key is not an operator.
			s := b.login(t, b.a.id, b.a.admin)
			if w := b.page(s, "GET", path, nil); w.Code != http.StatusUnauthorized {
				t.Errorf("administrator's session: %d, want 401", w.Code)
			}
			if w := b.api("GET", path, "", b.a.admin); w.Code != http.StatusUnauthorized {
				t.Errorf("API key: %d, want 401", w.Code)
			}
		})
	}

	for pattern, c := range public {
		t.Run(pattern, func(t *testing.T) {
			if w := b.serve(newRequest("GET", c.path)); w.Code != c.ok {
				t.Errorf("GET %s: %d, want %d", c.path, w.Code, c.ok)
			}
		})
	}

	for pattern, c := range directoryCases(b) {
		t.Run(pattern, func(t *testing.T) { c(t) })
	}
	for pattern, c := range webhookCases(b) {
		t.Run(pattern, func(t *testing.T) { c(t) })
	}
}

func mustJSON(t *testing.T, w interface{ Result() *http.Response }, v any) {
	t.Helper()
	if err := json.NewDecoder(w.Result().Body).Decode(v); err != nil {
		t.Fatalf("decode: %v", err)
	}
}

func newRequest(method, target string) *http.Request {
	r, err := http.NewRequest(method, "http://admin.example"+target, nil)
	if err != nil {
		panic(err)
	}
	return r
}

func loginIDOf(t *testing.T, b *testBundle, account int64) string {
	t.Helper()
	var login string
	if err := b.db.QueryRow(`SELECT login_id FROM accounts WHERE id = $1`, account).Scan(&login); err != nil {
		t.Fatal(err)
	}
	return login
}

// TestScopedAPIKey: a key scoped to company A answers 404 for company B on
// every route, whether B is in the path, in the body or is the actor's
// company, and changes nothing there; it works for A.
func TestScopedAPIKey(t *testing.T) {
	b := setup(t)
	_, key, err := CreateAPIKey(b.ctx, b.store, rand.Reader, "scoped host", []string{b.a.id}, start)
	if err != nil {
		t.Fatal(err)
	}
	for _, co := range []company{b.a, b.b} {
		want := http.StatusNotFound
		if co.id == b.a.id {
			want = 0 // anything but 404
		}
		login := loginIDOf(t, b, co.member)
		cases := []struct {
			method, path, body string
			actor              int64
		}{
			{"POST", "/api/v1/login-attempts", fmt.Sprintf(`{"company_id":%q,"login_id":%q,"method":"password"}`, co.id, login), 0},
			{"POST", "/api/v1/verifications/redeem", fmt.Sprintf(`{"company_id":%q,"login_id":%q,"token":"x"}`, co.id, login), 0},
			{"GET", "/api/v1/companies/" + co.id + "/accounts", "", co.admin},
			{"GET", "/api/v1/companies/" + co.id + "/accounts", "", b.a.admin},
			{"POST", "/api/v1/companies/" + co.id + "/unlocks", fmt.Sprintf(`{"account_ids":[%d]}`, co.lockedPlatform), co.admin},
			{"GET", "/api/v1/companies/" + co.id + "/login-notification-recipients", "", co.admin},
			{"PUT", "/api/v1/companies/" + co.id + "/login-notification-recipients", fmt.Sprintf(`{"account_ids":[%d]}`, co.recipient), co.admin},
			{"GET", fmt.Sprintf("/api/v1/accounts/%d", co.member), "", co.admin},
			{"GET", "/api/v1/companies/" + co.id + "/events", "", co.admin},
			{"GET", fmt.Sprintf("/api/v1/accounts/%d/events", co.member), "", co.admin},
			{"PUT", "/api/v1/companies/" + co.id, `{"version":5,"name":"改名"}`, 0},
			{"PUT", "/api/v1/companies/" + co.id + "/accounts/new-one", `{"version":1,"id_kind":"platform","name":"新人","created_at":"2026-11-01T00:00:00Z"}`, 0},
			{"DELETE", "/api/v1/companies/" + co.id + "/accounts/" + url.PathEscape(login) + "?version=9", "", 0},
		}
		for _, c := range cases {
			w := b.apiAs(key, c.method, c.path, c.body, c.actor)
			if want == http.StatusNotFound && w.Code != want {
				t.Errorf("company %s: %s %s: %d %s, want 404", co.id, c.method, c.path, w.Code, w.Body.String())
			}
			if want == 0 && (w.Code == http.StatusNotFound || w.Code == http.StatusUnauthorized) {
				t.Errorf("company %s (in scope): %s %s: %d %s", co.id, c.method, c.path, w.Code, w.Body.String())
			}
		}
	}
	// Nothing moved in B.
	if n := testenv.Count(t, b.db, `SELECT count(*) FROM accounts WHERE company_id = $1 AND (login_id = 'new-one' OR status = 'retired' AND name = '一般 次郎')`, b.b.id); n != 0 {
		t.Errorf("the scoped key changed %d accounts of company B", n)
	}
	if n := testenv.Count(t, b.db, `SELECT count(*) FROM companies WHERE id = $1 AND name = '改名'`, b.b.id); n != 0 {
		t.Error("the scoped key renamed company B")
	}
}

// A verified API key is remembered for the cache's TTL: revoked, it keeps
// working until then at most, and is refused after.
func TestRevokedAPIKeyRefusedWithinTheCacheBound(t *testing.T) {
	b := setup(t)
	id, key, err := CreateAPIKey(b.ctx, b.store, rand.Reader, "to revoke", nil, start)
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/companies/" + b.a.id + "/events"
	if w := b.apiAs(key, "GET", path, "", b.a.admin); w.Code != http.StatusOK {
		t.Fatalf("live key: %d %s", w.Code, w.Body.String())
	}
	if err := b.store.RevokeAPIKey(b.ctx, id, b.clock.Now()); err != nil {
		t.Fatal(err)
	}
	b.clock.Add(DefaultAPIKeyCacheTTL - time.Millisecond)
	if w := b.apiAs(key, "GET", path, "", b.a.admin); w.Code != http.StatusOK {
		t.Errorf("revoked key within the cache bound: %d, want 200 (the bound the README states)", w.Code)
	}
	b.clock.Add(time.Millisecond)
	if w := b.apiAs(key, "GET", path, "", b.a.admin); w.Code != http.StatusUnauthorized {
		t.Errorf("revoked key at the cache bound: %d %s, want 401", w.Code, w.Body.String())
	}
	// An unknown key is never remembered.
	if w := b.apiAs(APIKeyPrefix+"unknown", "GET", path, "", b.a.admin); w.Code != http.StatusUnauthorized {
		t.Errorf("unknown key: %d", w.Code)
	}
}
