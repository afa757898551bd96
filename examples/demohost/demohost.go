// Package demohost is a small host platform that uses dormancy the way a
// real one would: the reference integration a Go host copies. It owns its
// users and passwords, checks them itself, and calls only dormancy's public
// API (package tasks): Check and Redeem synchronously on the login path,
// ReportLoginAttempt for the worker, Profile for the login date.
//
// It keeps its users in memory because it is a demo: the password store is
// the host's business, not dormancy's.
package demohost

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// User is one login of the host platform.
type User struct {
	LoginID  string
	Password string
}

// Dormancy is the part of *tasks.Client the host calls.
type Dormancy interface {
	Login(ctx context.Context, p tasks.LoginAttempt) (tasks.CheckResult, error)
	Redeem(ctx context.Context, companyID, loginID, token, requestID string) (tasks.RedeemResult, error)
	Profile(ctx context.Context, companyID, loginID string) (tasks.Profile, error)
}

// Config wires the demo host.
type Config struct {
	Dormancy  Dormancy
	CompanyID string
	Users     []User
	// AdminLink returns a signed link into dormancy's admin pages for an
	// administrator; nil hides the link.
	AdminLink func(companyID string, accountID int64) (string, error)
	Logger    *slog.Logger
}

// Host is the demo platform's HTTP handler.
type Host struct {
	cfg    Config
	users  map[string]User
	secret []byte
	mux    *http.ServeMux
	log    *slog.Logger

	// saved are the saved logins ("３０日間パスワードを保存") by the random
	// id their cookie carries: the server can revoke one, which a signed
	// cookie holding the login ID could not be.
	mu    sync.Mutex
	saved map[string]savedLogin
}

type savedLogin struct {
	loginID string
	expires time.Time
}

// savedLoginTTL is how long a saved login lasts.
const savedLoginTTL = 30 * 24 * time.Hour

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"date": func(t time.Time, loc *time.Location) string {
		if t.IsZero() {
			return "未ログイン"
		}
		if loc == nil {
			loc = time.UTC
		}
		return t.In(loc).Format("2006/01/02 15:04")
	},
}).ParseFS(templateFS, "templates/*.html"))

// New builds the host.
func New(cfg Config) *Host {
	h := &Host{cfg: cfg, users: map[string]User{}, secret: make([]byte, 32), mux: http.NewServeMux(), log: cfg.Logger,
		saved: map[string]savedLogin{}}
	if h.log == nil {
		h.log = slog.Default()
	}
	_, _ = rand.Read(h.secret)
	for _, u := range cfg.Users {
		h.users[u.LoginID] = u
	}
	h.mux.HandleFunc("GET /{$}", h.home)
	h.mux.HandleFunc("GET /login", h.loginForm)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("GET /verify", h.verifyForm)
	h.mux.HandleFunc("GET /profile", h.profile)
	h.mux.HandleFunc("POST /logout", h.logout)
	h.mux.HandleFunc("GET /employees", h.employees)
	return h
}

func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

type loginPage struct {
	CSRF     string
	Token    string
	Error    string
	Verified bool
	LoginID  string
}

type lockedPage struct {
	Message        string
	EmailSent      bool
	Administrators []policy.Administrator
	Contact        string
}

func (h *Host) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		h.log.Error("render", "page", name, "error", err)
	}
}

// home logs in through the saved login when there is one: a remembered
// login is still a login dormancy decides on, but it never moves the login
// date.
func (h *Host) home(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.session(r); ok {
		http.Redirect(w, r, "/profile", http.StatusSeeOther)
		return
	}
	if id, ok := h.cookie(r, "demo_remember"); ok {
		if login, ok := h.savedLogin(id); ok {
			h.finish(w, r, login, policy.MethodRemembered, false)
			return
		}
		h.clearCookie(w, "demo_remember")
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// savedLogin is the login ID of a live saved login.
func (h *Host) savedLogin(id string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.saved[id]
	if !ok || !time.Now().Before(s.expires) {
		delete(h.saved, id)
		return "", false
	}
	return s.loginID, true
}

// RevokeSavedLogins ends every saved login of loginID: after a lock, a
// password change, or when the person asks.
func (h *Host) RevokeSavedLogins(loginID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, s := range h.saved {
		if s.loginID == loginID {
			delete(h.saved, id)
		}
	}
}

// csrf is the login form's token: a random value in a cookie and in the
// form, which a page on another site can neither read nor set.
func (h *Host) csrf(w http.ResponseWriter, r *http.Request) string {
	if v, ok := h.cookie(r, "demo_csrf"); ok {
		return v
	}
	v := randomID()
	h.setCookieOn(w, r, "demo_csrf", v, 0)
	return v
}

func randomID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (h *Host) loginForm(w http.ResponseWriter, r *http.Request) {
	h.render(w, http.StatusOK, "login.html", loginPage{CSRF: h.csrf(w, r)})
}

// verifyForm is where a verification link lands: the login form again. The
// link alone logs nobody in; the password must come with it.
func (h *Host) verifyForm(w http.ResponseWriter, r *http.Request) {
	h.render(w, http.StatusOK, "login.html", loginPage{CSRF: h.csrf(w, r), Token: r.URL.Query().Get("token"), Verified: true})
}

func (h *Host) login(w http.ResponseWriter, r *http.Request) {
	loginID, password, token := r.PostFormValue("login_id"), r.PostFormValue("password"), r.PostFormValue("token")
	if want, ok := h.cookie(r, "demo_csrf"); !ok || !hmac.Equal([]byte(want), []byte(r.PostFormValue("csrf"))) {
		h.render(w, http.StatusForbidden, "login.html", loginPage{CSRF: h.csrf(w, r), Token: token, Verified: token != "",
			Error: "ログイン画面を開き直してから、もう一度ログインしてください。"})
		return
	}
	u, ok := h.users[loginID]
	if !ok || !hmac.Equal([]byte(u.Password), []byte(password)) {
		// The host's ordinary failure: dormancy is never asked, so the lock
		// message never tells a stranger that an account exists.
		h.render(w, http.StatusUnauthorized, "login.html", loginPage{CSRF: h.csrf(w, r), Token: token, Verified: token != "", Error: "ログインIDまたはパスワードが正しくありません。", LoginID: loginID})
		return
	}
	method := policy.MethodPassword
	if token != "" {
		if _, err := h.cfg.Dormancy.Redeem(r.Context(), h.cfg.CompanyID, loginID, token, requestID(r)); err != nil {
			if !errors.Is(err, policy.ErrTokenRefused) {
				h.fail(w, err)
				return
			}
			h.render(w, http.StatusForbidden, "login.html", loginPage{CSRF: h.csrf(w, r), Error: "このURLは無効か、有効期限（24時間）が切れています。ログイン画面から再度ログインしてください。"})
			return
		}
		method = policy.MethodVerificationLink
	}
	h.finish(w, r, loginID, method, r.PostFormValue("remember") == "on")
}

// finish asks dormancy about a login whose credentials were good, reports
// the attempt, and either refuses it with the lock message or starts the
// session.
func (h *Host) finish(w http.ResponseWriter, r *http.Request, loginID string, m policy.Method, remember bool) {
	// Login reports the attempt stamped with the instant of this answer,
	// so the worker records the decision shown here.
	res, err := h.cfg.Dormancy.Login(r.Context(), tasks.LoginAttempt{
		CompanyID: h.cfg.CompanyID, LoginID: loginID, Method: m,
		IP: clientIP(r), UserAgent: r.UserAgent(), RequestID: requestID(r),
	})
	if err != nil {
		h.fail(w, err)
		return
	}
	if res.Decision.Outcome.Locked() {
		// A locked account's saved logins end on every device.
		h.RevokeSavedLogins(loginID)
		h.clearCookie(w, "demo_remember")
		h.render(w, http.StatusForbidden, "locked.html", lockedPage{
			Message:        res.Message,
			EmailSent:      res.Decision.Outcome == policy.OutcomeVerifyByEmail,
			Administrators: res.Administrators,
			Contact:        res.Contact,
		})
		return
	}
	if res.Decision.Outcome != policy.OutcomeAllow {
		h.RevokeSavedLogins(loginID)
		h.render(w, http.StatusForbidden, "login.html", loginPage{CSRF: h.csrf(w, r), Error: "このアカウントは利用できません。"})
		return
	}
	h.setCookieOn(w, r, "demo_session", loginID, 0)
	if remember {
		id := randomID()
		h.mu.Lock()
		h.saved[id] = savedLogin{loginID: loginID, expires: time.Now().Add(savedLoginTTL)}
		h.mu.Unlock()
		h.setCookieOn(w, r, "demo_remember", id, savedLoginTTL)
	}
	http.Redirect(w, r, "/profile", http.StatusSeeOther)
}

type profilePage struct {
	LoginID   string
	Profile   tasks.Profile
	AdminLink bool
}

func (h *Host) profile(w http.ResponseWriter, r *http.Request) {
	loginID, ok := h.session(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	p, err := h.cfg.Dormancy.Profile(r.Context(), h.cfg.CompanyID, loginID)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.render(w, http.StatusOK, "profile.html", profilePage{LoginID: loginID, Profile: p, AdminLink: h.cfg.AdminLink != nil})
}

// employees sends an administrator into dormancy's employee list through a
// short-lived signed link; emails link here too.
func (h *Host) employees(w http.ResponseWriter, r *http.Request) {
	loginID, ok := h.session(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	if h.cfg.AdminLink == nil {
		http.NotFound(w, r)
		return
	}
	p, err := h.cfg.Dormancy.Profile(r.Context(), h.cfg.CompanyID, loginID)
	if err != nil {
		h.fail(w, err)
		return
	}
	link, err := h.cfg.AdminLink(h.cfg.CompanyID, p.AccountID)
	if err != nil {
		h.fail(w, err)
		return
	}
	http.Redirect(w, r, link, http.StatusSeeOther)
}

func (h *Host) logout(w http.ResponseWriter, r *http.Request) {
	h.clearCookie(w, "demo_session")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (h *Host) fail(w http.ResponseWriter, err error) {
	h.log.Error("demo host", "error", err)
	h.render(w, http.StatusServiceUnavailable, "login.html", loginPage{Error: "ただいまログインできません。しばらくしてから再度お試しください。"})
}

// Cookies carry the login ID with an HMAC, so a visitor cannot become
// someone else by editing one.
func (h *Host) sign(v string) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "." + url.QueryEscape(v)
}

// setCookieOn sets a signed cookie, Secure everywhere but on this machine
// (a browser keeps a Secure cookie only over HTTPS, and the dev setup
// serves plain HTTP on localhost).
func (h *Host) setCookieOn(w http.ResponseWriter, r *http.Request, name, v string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: h.sign(v), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		MaxAge: int(maxAge / time.Second), Secure: !localHost(r.Host)})
}

// localHost reports whether host (with or without a port) is this machine.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *Host) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1})
}

func (h *Host) cookie(r *http.Request, name string) (string, bool) {
	c, err := r.Cookie(name)
	if err != nil {
		return "", false
	}
	mac, v, ok := strings.Cut(c.Value, ".")
	if !ok {
		return "", false
	}
	v, err = url.QueryUnescape(v)
	if err != nil || !hmac.Equal([]byte(h.sign(v)), []byte(mac+"."+url.QueryEscape(v))) {
		return "", false
	}
	return v, true
}

func (h *Host) session(r *http.Request) (string, bool) { return h.cookie(r, "demo_session") }

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 {
		return id
	}
	return tasks.NewKey()
}
