package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/dormancy/dormancy/tasks"
)

// directoryCases are the authorization cases of the directory routes: the
// host's API key is required, and a body naming another record than the
// path changes nothing.
func directoryCases(b *testBundle) map[string]func(t *testing.T) {
	check := func(method, path, body, mismatch string, ok int) func(t *testing.T) {
		return func(t *testing.T) {
			for _, key := range []string{"", "dmy_not-a-real-key"} {
				before := b.snapshot(t)
				if w := b.apiAs(key, method, path, body, 0); w.Code != http.StatusUnauthorized {
					t.Errorf("key %q: %d, want 401", key, w.Code)
				}
				if after := b.snapshot(t); after != before {
					t.Errorf("key %q: something changed", key)
				}
			}
			if mismatch != "" {
				before := b.snapshot(t)
				if w := b.api(method, path, mismatch, 0); w.Code != http.StatusBadRequest {
					t.Errorf("body naming another record: %d %s, want 400", w.Code, w.Body.String())
				}
				if after := b.snapshot(t); after != before {
					t.Errorf("body naming another record: something changed")
				}
			}
			if w := b.api(method, path, body, 0); w.Code != ok {
				t.Errorf("with the key: %d %s, want %d", w.Code, w.Body.String(), ok)
			}
		}
	}
	newLogin := "new-" + b.a.id
	return map[string]func(t *testing.T){
		"PUT /api/v1/companies/{id}": check("PUT", "/api/v1/companies/"+b.a.id,
			`{"version":5,"name":"改名"}`, fmt.Sprintf(`{"company_id":%q,"version":6,"name":"乗っ取り"}`, b.b.id), 200),
		"PUT /api/v1/companies/{id}/accounts/{login_id}": check("PUT", "/api/v1/companies/"+b.a.id+"/accounts/"+newLogin,
			`{"version":1,"id_kind":"platform","name":"新人","created_at":"2026-11-01T00:00:00Z"}`,
			fmt.Sprintf(`{"company_id":%q,"version":1,"id_kind":"platform","name":"x","created_at":"2026-11-01T00:00:00Z"}`, b.b.id), 201),
		"DELETE /api/v1/companies/{id}/accounts/{login_id}": check("DELETE",
			"/api/v1/companies/"+b.a.id+"/accounts/"+url.PathEscape(loginIDOfBundle(b, b.a.active))+"?version=9", "", "", 200),
	}
}

func loginIDOfBundle(b *testBundle, account int64) string {
	var login string
	_ = b.db.QueryRow(`SELECT login_id FROM accounts WHERE id = $1`, account).Scan(&login)
	return login
}

// openAPISchemasFor maps the directory schemas to the Go types they
// describe, for TestOpenAPI.
func openAPISchemasFor(b *testBundle) map[string]any {
	return map[string]any{"CompanyUpsert": tasks.Company{}, "AccountUpsert": tasks.Account{}, "DirectoryResult": directoryResponse{}}
}

func TestDirectoryAPI(t *testing.T) {
	b := setup(t)
	path := "/api/v1/companies/" + b.a.id + "/accounts/newcomer@example.com"
	body := `{"version":3,"id_kind":"email","name":"新人 花子","created_at":"2026-11-01T00:00:00Z"}`
	var r directoryResponse
	w := b.api("PUT", path, body, 0)
	mustJSON(t, w, &r)
	if w.Code != http.StatusCreated || r.Outcome != tasks.OutcomeCreated || r.AccountID == 0 {
		t.Fatalf("create: %d %+v", w.Code, r)
	}
	if w := b.api("PUT", path, body, 0); w.Code != http.StatusOK || !jsonHas(t, w, "unchanged") {
		t.Errorf("same version again: %d %s", w.Code, w.Body.String())
	}
	if w := b.api("PUT", path, `{"version":2,"id_kind":"email","name":"古い","created_at":"2026-11-01T00:00:00Z"}`, 0); w.Code != http.StatusOK || !jsonHas(t, w, "stale") {
		t.Errorf("older version: %d %s", w.Code, w.Body.String())
	}
	for name, c := range map[string]struct{ body, field string }{
		"unknown field":  {`{"version":4,"id_kind":"email","name":"x","created_at":"2026-11-01T00:00:00Z","admin":true}`, "admin"},
		"bad kind":       {`{"version":4,"id_kind":"robot","name":"x","created_at":"2026-11-01T00:00:00Z"}`, "id_kind"},
		"wrong type":     {`{"version":"4"}`, "version"},
		"bad created_at": {`{"version":4,"id_kind":"email","name":"x","created_at":"yesterday"}`, "created_at"},
		"other login id": {`{"login_id":"someone-else","version":4,"id_kind":"email","name":"x","created_at":"2026-11-01T00:00:00Z"}`, "login_id"},
	} {
		w := b.api("PUT", path, c.body, 0)
		if w.Code != http.StatusBadRequest || apiErrorOf(t, w).Field != c.field {
			t.Errorf("%s: %d %s, want 400 naming %s", name, w.Code, w.Body.String(), c.field)
		}
	}
	if w := b.api("DELETE", path, "", 0); w.Code != http.StatusBadRequest || apiErrorOf(t, w).Field != "version" {
		t.Errorf("retire without a version: %d %s", w.Code, w.Body.String())
	}
	if w := b.api("DELETE", path+"?version=4", "", 0); w.Code != http.StatusOK {
		t.Errorf("retire: %d %s", w.Code, w.Body.String())
	}
	var a accountJSON
	mustJSON(t, b.api("GET", fmt.Sprintf("/api/v1/accounts/%d", r.AccountID), "", b.a.admin), &a)
	if a.Status != "retired" || a.Name != "新人 花子" {
		t.Errorf("after retiring: %+v", a)
	}
}

func jsonHas(t *testing.T, w interface{ Result() *http.Response }, outcome string) bool {
	var r directoryResponse
	mustJSON(t, w, &r)
	return r.Outcome == outcome
}

// A date alone is the start of that day in the company's zone, as in an
// import file; a date that is no date is refused naming its field.
func TestDirectoryAPIDatesAlone(t *testing.T) {
	b := setup(t) // companies in Asia/Tokyo
	path := "/api/v1/companies/" + b.a.id + "/accounts/dated@example.com"
	w := b.api("PUT", path, `{"version":1,"id_kind":"email","name":"日付 太郎","created_at":"2026-04-01","last_login_at":"2026-11-20"}`, 0)
	var r directoryResponse
	mustJSON(t, w, &r)
	if w.Code != http.StatusCreated {
		t.Fatalf("create with dates: %d %s", w.Code, w.Body.String())
	}
	var created, last time.Time
	if err := b.db.QueryRow(`SELECT created_at, last_login_at FROM accounts WHERE id = $1`, r.AccountID).Scan(&created, &last); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC); !created.Equal(want) {
		t.Errorf("created_at = %v, want %v (midnight in Tokyo)", created.UTC(), want)
	}
	if want := time.Date(2026, 11, 19, 15, 0, 0, 0, time.UTC); !last.Equal(want) {
		t.Errorf("last_login_at = %v, want %v", last.UTC(), want)
	}
	for name, c := range map[string]struct{ body, field string }{
		"no such date": {`{"version":2,"id_kind":"email","name":"x","created_at":"2026-02-30"}`, "created_at"},
		"a date ahead": {`{"version":2,"id_kind":"email","name":"x","created_at":"2026-04-01","last_login_at":"2027-01-01"}`, "last_login_at"},
		"half a date":  {`{"version":2,"id_kind":"email","name":"x","created_at":"2026-04"}`, "created_at"},
	} {
		w := b.api("PUT", path, c.body, 0)
		if w.Code != http.StatusBadRequest || apiErrorOf(t, w).Field != c.field {
			t.Errorf("%s: %d %s, want 400 naming %s", name, w.Code, w.Body.String(), c.field)
		}
	}
	// Another company's zone is not consulted for a company the key
	// cannot reach, and an unknown company is 404 like any other.
	if w := b.api("PUT", "/api/v1/companies/no-such-company/accounts/x", `{"version":1,"id_kind":"email","name":"x","created_at":"2026-04-01"}`, 0); w.Code != http.StatusNotFound {
		t.Errorf("unknown company: %d %s", w.Code, w.Body.String())
	}
}
