package demohost_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/examples/demohost"
	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/mail/resendtest"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type testBundle struct {
	ctx     context.Context
	srv     *httptest.Server
	resend  *resendtest.Server
	mux     *asynq.ServeMux
	inspect *asynq.Inspector
	clock   *testenv.Clock
	store   *postgres.Store
	company string
	host    *demohost.Host
}

var start = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

func setup(t *testing.T) *testBundle {
	ctx := context.Background()
	store := testenv.Store(t)
	fake := resendtest.New(t)
	sender, err := mail.NewResend(mail.ResendConfig{APIKey: "re_test", BaseURL: fake.URL(), From: "x <x@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.NewClock(start)
	q := asynq.NewClient(testenv.RedisOpt())
	t.Cleanup(func() { q.Close() })
	insp := asynq.NewInspector(testenv.RedisOpt())
	t.Cleanup(func() { insp.Close() })
	// Tests of this package share one Redis DB and run one at a time:
	// start each with empty queues.
	for _, q := range []string{tasks.QueueCritical, tasks.QueueDefault} {
		insp.DeleteAllPendingTasks(q)
	}
	company := testenv.UniqueID("demo")
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: company}); err != nil {
		t.Fatal(err)
	}
	host := demohost.New(demohost.Config{
		Dormancy: tasks.NewClient(q, store, c.Now), CompanyID: company,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Users: []demohost.User{
			{LoginID: "tanaka@example.com", Password: "pw"}, {LoginID: "suzuki01", Password: "pw"},
			{LoginID: "yamamoto@example.com", Password: "pw"},
		},
	})
	srv := httptest.NewServer(host)
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	h := worker.NewHandlers(worker.Config{TokenSecret: testenv.TokenSecret,
		Redis: testenv.RedisOpt(), Store: store, Sender: sender, Links: worker.Links{Base: base},
		Now: c.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	t.Cleanup(h.Close)
	mux := asynq.NewServeMux()
	h.Register(mux)
	b := &testBundle{ctx: ctx, srv: srv, resend: fake, mux: mux, inspect: insp, clock: c, store: store, company: company, host: host}
	for _, a := range []postgres.AccountRecord{
		{LoginID: "tanaka@example.com", IDKind: policy.IDKindEmail, Email: "tanaka@example.com", Name: "田中 一郎", LastLoginAt: start.Add(-120 * 24 * time.Hour)},
		{LoginID: "suzuki01", IDKind: policy.IDKindPlatform, Name: "鈴木 二郎", LastLoginAt: start.Add(-120 * 24 * time.Hour)},
		{LoginID: "soumu01", IDKind: policy.IDKindPlatform, Name: "総務 花子", Department: "総務部", CanManageEmployees: true, LastLoginAt: start},
		{LoginID: "yamamoto@example.com", IDKind: policy.IDKindEmail, Email: "yamamoto@example.com", Name: "山本 三郎", LastLoginAt: start.Add(-3 * 24 * time.Hour)},
	} {
		a.CompanyID, a.CreatedAt = company, start.Add(-400*24*time.Hour)
		if _, err := store.UpsertAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// work runs every queued task, as the worker would.
func (b *testBundle) work(t *testing.T) {
	t.Helper()
	for _, q := range []string{tasks.QueueCritical, tasks.QueueDefault} {
		for {
			infos, err := b.inspect.ListPendingTasks(q)
			if err != nil || len(infos) == 0 {
				break
			}
			for _, info := range infos {
				b.inspect.DeleteTask(q, info.ID)
				if err := b.mux.ProcessTask(b.ctx, asynq.NewTask(info.Type, info.Payload)); err != nil {
					t.Fatalf("%s: %v", info.Type, err)
				}
			}
		}
	}
}

type browser struct {
	t *testing.T
	c *http.Client
	b *testBundle
}

func (b *testBundle) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, b: b, c: &http.Client{Jar: jar}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post submits a form; a login form carries the CSRF token of the login
// page, as a browser that opened it would.
func (br *browser) post(path string, form url.Values) (int, string) {
	br.t.Helper()
	if _, given := form["csrf"]; path == "/login" && !given {
		_, page := br.get("/login")
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			br.t.Fatalf("no CSRF token on the login page:\n%s", page)
		}
		form.Set("csrf", m[1])
	}
	resp, err := br.c.PostForm(br.b.srv.URL+path, form)
	if err != nil {
		br.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (br *browser) get(path string) (int, string) {
	br.t.Helper()
	resp, err := br.c.Get(br.b.srv.URL + path)
	if err != nil {
		br.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func login(id, pw string, extra ...string) url.Values {
	v := url.Values{"login_id": {id}, "password": {pw}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

var verifyLink = regexp.MustCompile(`(/verify\?token=[A-Za-z0-9_-]+)`)

func TestEmailIDFlowThroughTheHost(t *testing.T) {
	b := setup(t)
	br := b.browser(t)
	code, body := br.post("/login", login("tanaka@example.com", "pw"))
	if code != http.StatusForbidden || !strings.Contains(body, "一定期間ログインがなかったため、セキュリティ上の理由によりアカウントをロックしました") || !strings.Contains(body, "本人確認メール") {
		t.Fatalf("lock page: %d\n%s", code, body)
	}
	b.work(t)
	emails := b.resend.Emails()
	if len(emails) != 1 || emails[0].Subject != "【本人確認】アカウントロックの解除について" {
		t.Fatalf("emails: %+v", emails)
	}
	link := verifyLink.FindString(emails[0].Text)
	if link == "" {
		t.Fatalf("no link:\n%s", emails[0].Text)
	}
	_, form := br.get(link)
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(form)
	if token == nil {
		t.Fatalf("landing page has no token field:\n%s", form)
	}
	// The link with a wrong password is the ordinary failure, nothing more.
	if code, _ := br.post("/login", login("tanaka@example.com", "wrong", "token", token[1])); code != http.StatusUnauthorized {
		t.Errorf("wrong password through the link: %d", code)
	}
	b.clock.Add(2 * time.Hour)
	code, body = br.post("/login", login("tanaka@example.com", "pw", "token", token[1]))
	if code != http.StatusOK || !strings.Contains(body, "2026/11/26 12:00") {
		t.Fatalf("profile after verification: %d\n%s", code, body)
	}
}

func TestWrongPasswordNeverReachesDormancy(t *testing.T) {
	b := setup(t)
	br := b.browser(t)
	code, body := br.post("/login", login("tanaka@example.com", "nope"))
	if code != http.StatusUnauthorized || strings.Contains(body, "ロック") {
		t.Fatalf("wrong password: %d\n%s", code, body)
	}
	if infos, _ := b.inspect.ListPendingTasks(tasks.QueueCritical); len(infos) != 0 {
		t.Errorf("a wrong password reported %d attempts", len(infos))
	}
}

func TestPlatformIDIsToldWhomToAsk(t *testing.T) {
	b := setup(t)
	code, body := b.browser(t).post("/login", login("suzuki01", "pw"))
	if code != http.StatusForbidden || !strings.Contains(body, "総務部　総務 花子さん") || strings.Contains(body, `id="contact"`) {
		t.Fatalf("lock page: %d\n%s", code, body)
	}

	// With the only administrator past the inactivity period, the page
	// names the company's fallback contact instead.
	if err := b.store.UpsertCompany(b.ctx, postgres.CompanyRecord{ID: b.company, FallbackContact: "ヘルプデスク 内線 1234"}); err != nil {
		t.Fatal(err)
	}
	b.clock.Add(91 * 24 * time.Hour)
	code, body = b.browser(t).post("/login", login("suzuki01", "pw"))
	if code != http.StatusForbidden || strings.Contains(body, "総務 花子") || !strings.Contains(body, "連絡先：ヘルプデスク 内線 1234") {
		t.Fatalf("lock page without an able administrator: %d\n%s", code, body)
	}
}

func TestRememberedLoginKeepsTheLoginDate(t *testing.T) {
	b := setup(t)
	br := b.browser(t)
	if code, _ := br.post("/login", login("yamamoto@example.com", "pw", "remember", "on")); code != http.StatusOK {
		t.Fatalf("first login: %d", code)
	}
	b.work(t) // the worker moves the login date
	if _, body := br.get("/profile"); !strings.Contains(body, "2026/11/26 10:00") {
		t.Fatalf("profile after a password login:\n%s", body)
	}
	br.post("/logout", nil)
	b.clock.Add(5 * 24 * time.Hour)
	code, body := br.get("/")
	if code != http.StatusOK || !strings.Contains(body, "2026/11/26 10:00") {
		t.Fatalf("remembered login moved the login date: %d\n%s", code, body)
	}
	b.work(t)
	p, err := tasks.NewClient(nil, b.store, nil).Profile(b.ctx, b.company, "yamamoto@example.com")
	if err != nil || !p.LoginDate.Equal(start) {
		t.Errorf("login date after remembered login = %v, %v; want %v", p.LoginDate, err, start)
	}
}

// The login form is CSRF-protected: a post without the token of the
// browser's own login page is refused and logs nobody in.
func TestLoginFormNeedsItsCSRFToken(t *testing.T) {
	b := setup(t)
	br := b.browser(t)
	for name, token := range map[string]string{"no token": "", "another browser's token": "forged"} {
		form := login("yamamoto@example.com", "pw", "csrf", token)
		resp, err := br.c.PostForm(b.srv.URL+"/login", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	if code, _ := br.get("/profile"); code != http.StatusOK {
		t.Fatal("profile should redirect to the login page")
	}
	if _, body := br.get("/profile"); strings.Contains(body, "yamamoto@example.com") {
		t.Error("a login without its CSRF token started a session")
	}
	if code, _ := br.post("/login", login("yamamoto@example.com", "pw")); code != http.StatusOK {
		t.Errorf("login with the token: %d", code)
	}
}

// Cookies are Secure except on this machine, where the dev setup serves
// plain HTTP.
func TestCookiesAreSecureOutsideLocalhost(t *testing.T) {
	b := setup(t)
	for host, secure := range map[string]bool{"platform.example.com": true, "127.0.0.1:8080": false, "localhost:8080": false} {
		r := httptest.NewRequest("GET", "/login", nil)
		r.Host = host
		w := httptest.NewRecorder()
		b.host.ServeHTTP(w, r)
		cs := w.Result().Cookies()
		if len(cs) == 0 || cs[0].Secure != secure {
			t.Errorf("%s: cookies %+v, want Secure %v", host, cs, secure)
		}
	}
}

// A saved login lives on the server: revoked there (as a lock does), the
// cookie no longer logs anyone in.
func TestSavedLoginCanBeRevoked(t *testing.T) {
	b := setup(t)
	br := b.browser(t)
	if code, _ := br.post("/login", login("yamamoto@example.com", "pw", "remember", "on")); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	br.post("/logout", nil)
	if _, body := br.get("/"); !strings.Contains(body, "yamamoto@example.com") {
		t.Fatalf("the saved login did not log in:\n%s", body)
	}
	br.post("/logout", nil)
	b.host.RevokeSavedLogins("yamamoto@example.com")
	if _, body := br.get("/"); strings.Contains(body, "yamamoto@example.com") || !strings.Contains(body, "ログイン") {
		t.Errorf("a revoked saved login still logs in:\n%s", body)
	}
}
