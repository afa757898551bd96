package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
)

func TestSignedLink(t *testing.T) {
	b := setup(t)
	good := func() string { return b.link(t, b.a.id, b.a.admin, 5*time.Minute) }
	tamper := func(key, value string) string {
		u, _ := url.Parse(good())
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	expired := b.link(t, b.a.id, b.a.admin, time.Minute)
	cases := []struct {
		name string
		link string
		want int
	}{
		{"valid", good(), http.StatusSeeOther},
		{"another company", tamper("company", b.b.id), http.StatusForbidden},
		{"another account", tamper("account", id(b.b.admin)), http.StatusForbidden},
		{"later expiry", tamper("expires", "99999999999"), http.StatusForbidden},
		{"another nonce", tamper("nonce", strings.Repeat("n", 20)), http.StatusForbidden},
		{"flipped signature", tamper("sig", strings.Repeat("0", 64)), http.StatusForbidden},
		{"signature not hex", tamper("sig", "zz"), http.StatusForbidden},
		{"signed with another secret", func() string {
			u, _ := SignLink([]byte(strings.Repeat("x", 32)), "http://admin.example", Link{CompanyID: b.a.id, AccountID: b.a.admin, Expires: start.Add(time.Minute), Nonce: testenv.UniqueID("nonce-nonce")})
			return u
		}(), http.StatusForbidden},
		{"no signature", strings.Split(good(), "&sig=")[0], http.StatusUnauthorized},
		{"lifetime beyond the maximum", b.link(t, b.a.id, b.a.admin, 20*time.Minute), http.StatusForbidden},
		{"member without the permission", b.link(t, b.a.id, b.a.member, time.Minute), http.StatusForbidden},
		{"retired administrator", b.link(t, b.a.id, b.a.retiredAdmin, time.Minute), http.StatusForbidden},
		{"administrator of another company", b.link(t, b.a.id, b.b.admin, time.Minute), http.StatusForbidden},
	}
	b.clock.Add(time.Minute) // the one-minute link has now expired, to the second
	cases = append(cases, struct {
		name string
		link string
		want int
	}{"expired", expired, http.StatusForbidden})
	for _, c := range cases {
		w := b.serve(linkRequest(c.link))
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, w.Code, c.want)
		}
		if c.want != http.StatusSeeOther && len(w.Result().Cookies()) > 0 {
			t.Errorf("%s: a cookie was set", c.name)
		}
	}

	// A link opens one session.
	link := good()
	first := b.serve(linkRequest(link))
	if first.Code != http.StatusSeeOther || first.Header().Get("Location") != "/admin/employees" {
		t.Fatalf("first use: %d %s", first.Code, first.Header().Get("Location"))
	}
	if again := b.serve(linkRequest(link)); again.Code != http.StatusForbidden {
		t.Errorf("second use: %d, want 403", again.Code)
	}
	c := first.Result().Cookies()[0]
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie attributes: %+v", c)
	}
	// The session ends after its lifetime.
	s := session{cookie: c}
	if w := b.page(s, "GET", "/admin/employees", nil); w.Code != http.StatusOK {
		t.Fatalf("session: %d", w.Code)
	}
	b.clock.Add(8 * time.Hour)
	if w := b.page(s, "GET", "/admin/employees", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("session after 8 hours: %d, want 401", w.Code)
	}
}

func TestLinkLocaleAndLogout(t *testing.T) {
	b := setup(t)
	u, err := SignLink(testSecret, "http://admin.example", Link{CompanyID: b.a.id, AccountID: b.a.admin, Expires: start.Add(time.Minute), Nonce: testenv.UniqueID("nonce-nonce"), Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	w := b.serve(linkRequest(u))
	s := session{cookie: w.Result().Cookies()[0]}
	page := b.page(s, "GET", "/admin/employees", nil)
	if body := page.Body.String(); !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, "Employees") {
		t.Errorf("English page expected:\n%s", body)
	}
	s.csrf = csrfRE.FindStringSubmatch(page.Body.String())[1]
	if w := b.page(s, "POST", "/admin/logout", url.Values{}); w.Code != http.StatusOK {
		t.Fatalf("logout: %d", w.Code)
	}
	if w := b.page(s, "GET", "/admin/employees", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", w.Code)
	}
	// The link is still within its lifetime, and stays used.
	if w := b.serve(linkRequest(u)); w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
		t.Errorf("the link again after logout: %d, want 403 and no session", w.Code)
	}
	if _, err := SignLink(testSecret, "http://x", Link{CompanyID: "c", AccountID: 1, Nonce: "short"}); err == nil {
		t.Error("a short nonce was signed")
	}
}

func linkRequest(target string) *http.Request {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	return newRequest("GET", u.RequestURI())
}

// TestSessionEndsWithTheRight: a session whose administrator loses the
// permission, retires or is locked ends there; giving the right back does
// not bring the old cookie back. A session unused for ADMIN_SESSION_IDLE
// ends too, and each request keeps it alive.
func TestSessionEndsWithTheRight(t *testing.T) {
	b := setup(t)
	for name, c := range map[string]struct{ take, give string }{
		"permission removed": {`UPDATE accounts SET can_manage_employees = false WHERE id = $1`, `UPDATE accounts SET can_manage_employees = true WHERE id = $1`},
		"retired":            {`UPDATE accounts SET status = 'retired', retired_at = now() WHERE id = $1`, `UPDATE accounts SET status = 'active', retired_at = NULL WHERE id = $1`},
		"locked":             {`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = '2026-01-01' WHERE id = $1`, `UPDATE accounts SET lock_state = 'active', lock_reason = NULL, locked_at = NULL WHERE id = $1`},
	} {
		s := b.login(t, b.a.id, b.a.admin)
		b.exec(t, c.take, b.a.admin)
		if w := b.page(s, "GET", "/admin/employees", nil); w.Code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, w.Code)
		}
		b.exec(t, c.give, b.a.admin)
		if w := b.page(s, "GET", "/admin/employees", nil); w.Code != http.StatusUnauthorized {
			t.Errorf("%s, then given back: %d, want 401 (the session ended)", name, w.Code)
		}
	}

	s := b.login(t, b.a.id, b.a.admin)
	for range 3 {
		b.clock.Add(20 * time.Minute)
		if w := b.page(s, "GET", "/admin/employees", nil); w.Code != http.StatusOK {
			t.Fatalf("session used every 20 minutes: %d", w.Code)
		}
	}
	b.clock.Add(31 * time.Minute)
	if w := b.page(s, "GET", "/admin/employees", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("session idle for 31 minutes: %d, want 401", w.Code)
	}
}
