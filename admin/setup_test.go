package admin

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// start is the fixed "now": 2026-11-26 10:00 in Tokyo.
var start = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

const (
	operatorUser = "ops"
	operatorPass = "correct horse battery staple"
	evilName     = "<script>alert(1)</script>"
)

// company is a tenant with the people the tests act as and on.
type company struct {
	id string
	// admin may manage employees; member may not; retiredAdmin had the
	// permission and left.
	admin, member, retiredAdmin int64
	// lockedPlatform and evil are locked platform IDs; lockedEmail is a
	// locked email ID; active is neither.
	lockedPlatform, lockedEmail, evil, active int64
	recipient                                 int64
}

type testBundle struct {
	ctx     context.Context
	store   *postgres.Store
	db      *sql.DB
	clock   *testenv.Clock
	srv     *Server
	inspect *asynq.Inspector
	apiKey  string
	a, b    company
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	store := testenv.Store(t)
	c := testenv.NewClock(start)
	srv, err := New(Config{
		Store: store, Redis: testenv.RedisOpt(), LinkSecret: testSecret,
		OperatorUser: operatorUser, OperatorPassword: operatorPass, DevMailbox: true,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: c.Now,
		// The package's tests all come from one test address and refuse
		// many credentials on purpose; throttle_test.go tests the limits.
		Throttle: Throttle{Attempts: 1 << 20, Window: time.Hour},
		Webhooks: testWebhookSettings,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	insp := asynq.NewInspector(testenv.RedisOpt())
	t.Cleanup(func() { insp.Close() })
	b := &testBundle{ctx: ctx, store: store, db: testenv.DB(t), clock: c, srv: srv, inspect: insp}
	_, key, err := CreateAPIKey(ctx, store, rand.Reader, "test host", nil, start)
	if err != nil {
		t.Fatal(err)
	}
	b.apiKey = key
	b.a = b.newCompany(t)
	b.b = b.newCompany(t)
	return b
}

func (b *testBundle) newCompany(t *testing.T) company {
	t.Helper()
	id := testenv.UniqueID("co")
	if err := b.store.UpsertCompany(b.ctx, postgres.CompanyRecord{ID: id, Name: "会社 " + id}); err != nil {
		t.Fatal(err)
	}
	c := company{id: id}
	c.admin = b.account(t, id, "管理 花子", true, policy.IDKindPlatform, false)
	c.member = b.account(t, id, "一般 次郎", false, policy.IDKindPlatform, false)
	c.retiredAdmin = b.account(t, id, "退職 三郎", true, policy.IDKindPlatform, true)
	c.lockedPlatform = b.account(t, id, "ロック 四郎", false, policy.IDKindPlatform, false)
	c.lockedEmail = b.account(t, id, "メール 五郎", false, policy.IDKindEmail, false)
	c.evil = b.account(t, id, evilName, false, policy.IDKindPlatform, false)
	c.active = b.account(t, id, "有効 六郎", false, policy.IDKindEmail, false)
	c.recipient = b.account(t, id, "通知 七子", false, policy.IDKindEmail, false)
	// The active employee and the recipient logged in yesterday; the member
	// is dormant but not yet swept, which the pages show as locked because
	// a login would be refused.
	b.exec(t, `UPDATE accounts SET last_login_at = $1 WHERE id IN ($2, $3)`, start.Add(-24*time.Hour), c.active, c.recipient)
	for _, acc := range []int64{c.lockedPlatform, c.lockedEmail, c.evil} {
		b.lock(t, acc)
	}
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, id, c.admin, []int64{c.recipient}, start, ""); err != nil {
		t.Fatal(err)
	}
	return c
}

// account creates an employee with an email address; the login ID of an
// email ID is that address.
func (b *testBundle) account(t *testing.T, company, name string, admin bool, kind policy.IDKind, retired bool) int64 {
	t.Helper()
	login := testenv.UniqueID("u")
	email := login + "@example.com"
	// An administrator who can act logged in recently; everyone else is
	// past the inactivity period, for the sweep to lock.
	lastLogin := start.Add(-200 * 24 * time.Hour)
	if admin && !retired {
		lastLogin = start.Add(-24 * time.Hour)
	}
	if kind == policy.IDKindEmail {
		login = email
	}
	id, err := b.store.UpsertAccount(b.ctx, postgres.AccountRecord{
		CompanyID: company, LoginID: login, IDKind: kind, Email: email, Name: name, Department: "部署",
		CanManageEmployees: admin, Retired: retired, CreatedAt: start.Add(-400 * 24 * time.Hour),
		LastLoginAt: lastLogin,
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *testBundle) lock(t *testing.T, id int64) {
	t.Helper()
	if _, err := b.db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = $1 WHERE id = $2`, start.Add(-time.Hour), id); err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (b *testBundle) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	b.srv.ServeHTTP(w, r)
	return w
}

// api calls the JSON API with the bundle's key; actor 0 sends no actor.
func (b *testBundle) api(method, path, body string, actor int64) *httptest.ResponseRecorder {
	return b.apiAs(b.apiKey, method, path, body, actor)
}

func (b *testBundle) apiAs(key, method, path, body string, actor int64) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if actor != 0 {
		r.Header.Set(ActorHeader, strconv.FormatInt(actor, 10))
	}
	return b.serve(r)
}

// apiError decodes an error answer.
func apiErrorOf(t *testing.T, w *httptest.ResponseRecorder) apiError {
	t.Helper()
	var e struct {
		Error apiError `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not a JSON error (%d): %s", w.Code, w.Body.String())
	}
	return e.Error
}

// link signs a link for actor of company, valid for ttl from now.
func (b *testBundle) link(t *testing.T, company string, actor int64, ttl time.Duration) string {
	t.Helper()
	u, err := SignLink(testSecret, "http://admin.example", Link{
		CompanyID: company, AccountID: actor, Expires: b.clock.Now().Add(ttl), Nonce: testenv.UniqueID("nonce-nonce"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// session is a logged-in administrator's browser: the cookie and the CSRF
// token the pages carry.
type session struct {
	cookie *http.Cookie
	csrf   string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login opens a session through a signed link for actor of company.
func (b *testBundle) login(t *testing.T, company string, actor int64) session {
	t.Helper()
	w := b.serve(httptest.NewRequest("GET", b.link(t, company, actor, 5*time.Minute), nil))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", w.Code, w.Body.String())
	}
	var s session
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			s.cookie = c
		}
	}
	if s.cookie == nil {
		t.Fatal("login: no session cookie")
	}
	page := b.page(s, "GET", "/admin/employees", nil)
	if page.Code != http.StatusOK {
		t.Fatalf("employees after login: %d", page.Code)
	}
	m := csrfRE.FindStringSubmatch(page.Body.String())
	if m == nil {
		t.Fatal("no CSRF token on the employee list")
	}
	s.csrf = m[1]
	return s
}

// page requests a page in session s; a form is posted with s's CSRF token
// unless it carries its own "csrf".
func (b *testBundle) page(s session, method, path string, form url.Values) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		form = cloneValues(form)
		if _, ok := form["csrf"]; !ok && s.csrf != "" {
			form.Set("csrf", s.csrf)
		}
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if s.cookie != nil {
		r.AddCookie(&http.Cookie{Name: s.cookie.Name, Value: s.cookie.Value})
	}
	return b.serve(r)
}

// queued counts the tasks waiting in a queue.
func (b *testBundle) queued(t *testing.T, queue string) int {
	t.Helper()
	info, err := b.inspect.GetQueueInfo(queue)
	if err != nil {
		return 0
	}
	return info.Size
}

// snapshot is the state an admin action could change: lock states,
// recipients and queued unlocks, of both companies.
func (b *testBundle) snapshot(t *testing.T) string {
	t.Helper()
	var s string
	err := b.db.QueryRow(`SELECT coalesce(string_agg(id || ':' || lock_state || ':' || coalesce(unlocked_until::text, ''), ',' ORDER BY id), '')
		FROM accounts WHERE company_id IN ($1, $2)`, b.a.id, b.b.id).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	var r string
	err = b.db.QueryRow(`SELECT coalesce(string_agg(company_id || ':' || account_id, ',' ORDER BY company_id, account_id), '')
		FROM login_notification_recipients WHERE company_id IN ($1, $2)`, b.a.id, b.b.id).Scan(&r)
	if err != nil {
		t.Fatal(err)
	}
	return s + "|" + r + "|" + strconv.Itoa(b.queued(t, tasks.QueueCritical))
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
