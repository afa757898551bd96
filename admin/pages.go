package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

//go:embed templates static
var assets embed.FS

var pageNames = []string{"employees", "recipients", "recipients_confirm", "message", "mailbox", "history"}

// pageSet holds every page template, parsed once per locale so that the
// "t" function is bound to the locale.
type pageSet struct {
	byLocale map[policy.Locale]map[string]*template.Template
}

func parsePages() (*pageSet, error) {
	ps := &pageSet{byLocale: map[policy.Locale]map[string]*template.Template{}}
	for _, loc := range []policy.Locale{policy.LocaleJA, policy.LocaleEN} {
		ps.byLocale[loc] = map[string]*template.Template{}
		for _, name := range pageNames {
			t, err := template.New("layout.html").Funcs(pageFuncs(loc)).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
			if err != nil {
				return nil, fmt.Errorf("admin: parse page %s: %w", name, err)
			}
			ps.byLocale[loc][name] = t
		}
	}
	return ps, nil
}

func pageFuncs(loc policy.Locale) template.FuncMap {
	return template.FuncMap{
		"t":    func(key string) string { return msg(loc, key) },
		"tf":   func(key string, args ...any) string { return fmt.Sprintf(msg(loc, key), args...) },
		"lang": func() string { return string(loc) },
	}
}

// pageData is what every page template gets.
type pageData struct {
	Company *postgres.CompanyInfo
	Actor   *postgres.Actor
	CSRF    string
	Title   string
	Flash   string
	Message string
	Status  int
	Page    any
}

// securityHeaders keep the pages from running any script but our own file,
// from being framed, and from sending the signed link onwards as a referrer.
func securityHeaders(w http.ResponseWriter, styleInline bool) {
	style := "style-src 'self'"
	if styleInline {
		// The dev mailbox shows emails, whose HTML carries inline styles;
		// scripts stay off.
		style = "style-src 'self' 'unsafe-inline'"
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; "+style+"; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, loc policy.Locale, status int, name string, d pageData) {
	t := s.pages.byLocale[loc][name]
	if t == nil {
		t = s.pages.byLocale[policy.DefaultLocale][name]
	}
	var buf bytes.Buffer
	d.Status = status
	if err := t.Execute(&buf, d); err != nil {
		s.log.ErrorContext(r.Context(), "admin: render", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securityHeaders(w, name == "mailbox")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderStatus shows a one-message page with status.
func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, loc policy.Locale, status int, key string) {
	d := pageData{Title: msg(loc, key), Message: msg(loc, key)}
	if pc, ok := r.Context().Value(pageCtxKey{}).(*pageCtx); ok {
		d.Company, d.Actor, d.CSRF = &pc.company, &pc.actor, pc.csrf
	}
	s.render(w, r, loc, status, "message", d)
}

// pageError shows err as a page, with the status the API would give it;
// the error's own text is logged, never shown.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, loc policy.Locale, err error) {
	e := toAPIError(err)
	key := "err_internal"
	switch e.Status {
	case http.StatusNotFound:
		key = "err_not_found"
	case http.StatusForbidden:
		key = "err_forbidden"
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		key = "err_bad_form"
	}
	if e.Status >= 500 {
		s.log.ErrorContext(r.Context(), "admin: page", slog.String("path", r.URL.Path),
			slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
	}
	s.renderStatus(w, r, loc, e.Status, key)
}

// pageHandler is a page behind a session.
type pageHandler func(w http.ResponseWriter, r *http.Request, pc *pageCtx) error

func (s *Server) pageHandler(h pageHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pc := r.Context().Value(pageCtxKey{}).(*pageCtx)
		if err := h(w, r, pc); err != nil {
			s.pageError(w, r, pc.locale, err)
		}
	})
}

func (s *Server) data(pc *pageCtx, title string, page any) pageData {
	return pageData{Company: &pc.company, Actor: &pc.actor, CSRF: pc.csrf, Title: msg(pc.locale, title), Page: page}
}

// employeeRow is one line of the employee list.
type employeeRow struct {
	postgres.AccountView
	LoginDate string
	// Deadline is the same-day deadline of an administrator's unlock.
	Deadline string
	// Unlockable rows get a checkbox and an unlock button: locked,
	// active platform-ID accounts. Email IDs unlock themselves by email.
	Unlockable bool
}

type employeesPage struct {
	Rows       []employeeRow
	LockedOnly bool
	Total      int
	PageNo     int
	Pages      int
	PrevURL    string
	NextURL    string
	AllURL     string
	LockedURL  string
	UnlockTask string
	RequestID  string
	Unlockable bool
}

// formatLocal shows t on the company's wall clock; midnight-to-midnight
// deadlines read as 24:00 of the day before, as people say them.
func formatLocal(t time.Time, loc *time.Location, deadline bool) string {
	if t.IsZero() {
		return ""
	}
	l := t.In(loc)
	if deadline && l.Hour() == 0 && l.Minute() == 0 && l.Second() == 0 {
		return l.Add(-time.Second).Format("2006/01/02") + " 24:00"
	}
	return l.Format("2006/01/02 15:04")
}

func employeesURL(lockedOnly bool, page int) string {
	q := url.Values{}
	if lockedOnly {
		q.Set("locked", "1")
	}
	if page > 1 {
		q.Set("page", strconv.Itoa(page))
	}
	if len(q) == 0 {
		return "/admin/employees"
	}
	return "/admin/employees?" + q.Encode()
}

func (s *Server) pageEmployees(w http.ResponseWriter, r *http.Request, pc *pageCtx) error {
	q := r.URL.Query()
	f, err := parseListQuery(url.Values{"locked": {boolParam(q.Get("locked"))}, "page": {q.Get("page")}})
	if err != nil {
		return err
	}
	f.PerPage = 50
	list, err := s.store.ListAccounts(r.Context(), pc.company.ID, f, s.now())
	if err != nil {
		return err
	}
	p := employeesPage{
		LockedOnly: f.LockedOnly, Total: list.Total, PageNo: list.Page,
		Pages:  max(1, (list.Total+list.PerPage-1)/list.PerPage),
		AllURL: employeesURL(false, 1), LockedURL: employeesURL(true, 1),
		RequestID: tasks.NewKey(),
	}
	if id := q.Get("unlock"); validRequestID(id) {
		p.UnlockTask = id
	}
	if p.PageNo > 1 {
		p.PrevURL = employeesURL(f.LockedOnly, p.PageNo-1)
	}
	if p.PageNo < p.Pages {
		p.NextURL = employeesURL(f.LockedOnly, p.PageNo+1)
	}
	for _, a := range list.Accounts {
		row := employeeRow{
			AccountView: a,
			LoginDate:   formatLocal(a.LastLoginAt, pc.company.Location, false),
			Deadline:    formatLocal(a.UnlockedUntil, pc.company.Location, true),
			Unlockable:  a.Locked() && !a.Retired && a.IDKind == policy.IDKindPlatform,
		}
		p.Unlockable = p.Unlockable || row.Unlockable
		p.Rows = append(p.Rows, row)
	}
	d := s.data(pc, "title_employees", p)
	if p.UnlockTask != "" {
		d.Flash = msg(pc.locale, "unlock_queued")
	}
	s.render(w, r, pc.locale, http.StatusOK, "employees", d)
	return nil
}

// boolParam reads a checkbox-style query value: "1", "true", "on".
func boolParam(v string) string {
	switch v {
	case "1", "true", "on":
		return "true"
	}
	return "false"
}

// pageUnlock enqueues the unlock of one row (account_id) or of the checked
// rows (ids), after the same synchronous checks as the API.
func (s *Server) pageUnlock(w http.ResponseWriter, r *http.Request, pc *pageCtx) error {
	var ids []int64
	raw := r.PostForm["ids"]
	if one := r.PostForm.Get("account_id"); one != "" {
		raw = []string{one}
	}
	for _, v := range raw {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errField("account_ids", "want account ids")
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return errField("account_ids", "nothing selected")
	}
	taskID, err := s.enqueueUnlock(r.Context(), pc.actor, pc.company.ID, ids, false, r.PostForm.Get("request_id"))
	if err != nil {
		return err
	}
	back := employeesURL(r.PostForm.Get("locked") == "1", 1)
	sep := "?"
	if len(back) > len("/admin/employees") {
		sep = "&"
	}
	http.Redirect(w, r, back+sep+"unlock="+url.QueryEscape(taskID), http.StatusSeeOther)
	return nil
}

// pageUnlockStatus tells the employee list's script whether the unlock it
// is waiting for has run.
func (s *Server) pageUnlockStatus(w http.ResponseWriter, r *http.Request, pc *pageCtx) error {
	res, err := s.unlockStatus(r.Context(), pc.company.ID, r.PathValue("task_id"))
	if err != nil {
		writeError(w, toAPIError(err))
		return nil
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

type recipientRow struct {
	postgres.AccountView
	Checked bool
}

type recipientsPage struct {
	// Choosing is the manual's second step, after [担当者を設定]: the
	// employees to choose from.
	Choosing   bool
	Candidates []recipientRow
	Chosen     []postgres.AccountView
	Current    []postgres.AccountView
}

func (s *Server) pageRecipients(w http.ResponseWriter, r *http.Request, pc *pageCtx) error {
	cands, err := s.store.RecipientCandidates(r.Context(), pc.company.ID, s.now())
	if err != nil {
		return err
	}
	cur, err := s.store.LoginNotificationRecipients(r.Context(), pc.company.ID, s.now())
	if err != nil {
		return err
	}
	p := recipientsPage{Current: cur, Choosing: r.URL.Query().Get("choose") == "1"}
	for _, c := range cands {
		p.Candidates = append(p.Candidates, recipientRow{AccountView: c, Checked: c.Recipient})
	}
	d := s.data(pc, "title_recipients", p)
	if r.URL.Query().Get("saved") == "1" {
		d.Flash = msg(pc.locale, "recipients_saved")
	}
	s.render(w, r, pc.locale, http.StatusOK, "recipients", d)
	return nil
}

// chosenRecipients reads the checked ids and keeps the candidates they
// name; an id that is not a candidate of the company is refused.
func (s *Server) chosenRecipients(r *http.Request, pc *pageCtx) ([]postgres.AccountView, []int64, error) {
	cands, err := s.store.RecipientCandidates(r.Context(), pc.company.ID, s.now())
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[int64]postgres.AccountView, len(cands))
	for _, c := range cands {
		byID[c.ID] = c
	}
	var chosen []postgres.AccountView
	var ids []int64
	seen := map[int64]bool{}
	for _, v := range r.PostForm["ids"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, nil, errField("account_ids", "want account ids")
		}
		c, ok := byID[id]
		if !ok {
			return nil, nil, errNotFound("not a recipient candidate of this company")
		}
		if !seen[id] {
			seen[id] = true
			chosen = append(chosen, c)
			ids = append(ids, id)
		}
	}
	return chosen, ids, nil
}

func (s *Server) pageRecipientsConfirm(w http.ResponseWriter, r *http.Request, pc *pageCtx) error {
	chosen, _, err := s.chosenRecipients(r, pc)
	if err != nil {
		return err
	}
	s.render(w, r, pc.locale, http.StatusOK, "recipients_confirm", s.data(pc, "title_recipients_confirm", recipientsPage{Chosen: chosen}))
	return nil
}

func (s *Server) pageRecipientsSave(w http.ResponseWriter, r *http.Request, pc *pageCtx) error {
	_, ids, err := s.chosenRecipients(r, pc)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []int64{}
	}
	if err := s.store.ReplaceLoginNotificationRecipients(r.Context(), pc.company.ID, pc.actor.AccountID, ids, s.now(), requestID(r.Context())); err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/recipients?saved=1", http.StatusSeeOther)
	return nil
}

// linkRE finds the links in a dev mailbox email's text.
var linkRE = regexp.MustCompile(`https?://[^\s<>"']+`)

type mailboxEntry struct {
	postgres.DevMail
	Links []string
	Sent  string
}

type mailboxPage struct {
	Mails   []mailboxEntry
	NextURL string
}

// devMailbox lists what the dev sender took instead of sending: the
// operator's view, across companies, so it sits behind the operator's
// credentials.
func (s *Server) devMailbox(w http.ResponseWriter, r *http.Request) {
	var before int64
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.renderStatus(w, r, policy.DefaultLocale, http.StatusBadRequest, "err_bad_form")
			return
		}
		before = n
	}
	const perPage = 50
	mails, err := s.store.DevMails(r.Context(), perPage, before)
	if err != nil {
		s.pageError(w, r, policy.DefaultLocale, err)
		return
	}
	var p mailboxPage
	for _, m := range mails {
		p.Mails = append(p.Mails, mailboxEntry{DevMail: m, Links: linkRE.FindAllString(m.Text, -1), Sent: m.SentAt.UTC().Format(time.RFC3339)})
	}
	if len(mails) == perPage {
		p.NextURL = "/dev/mailbox?before=" + strconv.FormatInt(mails[len(mails)-1].ID, 10)
	}
	s.render(w, r, policy.DefaultLocale, http.StatusOK, "mailbox", pageData{Title: msg(policy.DefaultLocale, "title_mailbox"), Page: p})
}

func staticHandler() http.Handler {
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // the folder is embedded: a missing one is a build mistake
	}
	files := http.StripPrefix("/admin/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}

// historyPage is one employee's lock history, in the company's locale and
// time zone.
type historyPage struct {
	Account  postgres.AccountView
	Rows     []historyRow
	OlderURL string
}

type historyRow struct {
	Kind, When, What, By, Detail string
}

// historyKinds are the events of an employee's lock history.
var historyKinds = []string{
	string(postgres.EventLocked), string(postgres.EventRelocked), string(postgres.EventUnlocked),
	string(postgres.EventUnlockExpired), string(postgres.EventActivated), string(postgres.EventTokenIssued),
	string(postgres.EventVerificationUsed), string(postgres.EventAlertSent), string(postgres.EventAccountRetired),
	string(postgres.EventAccountReinstated),
}

// pageHistory shows an employee's lock history: locked, unlocked by whom
// and until when, relocked, link used, alerts sent.
func (s *Server) pageHistory(w http.ResponseWriter, r *http.Request, pc *pageCtx) error {
	id, err := pathAccountID(r)
	if err != nil {
		return err
	}
	a, err := s.accountOf(r, id, pc.company.ID)
	if err != nil {
		return err
	}
	f := postgres.EventFilter{CompanyID: pc.company.ID, AccountID: id, Kinds: historyKinds, Limit: 50}
	if c := r.URL.Query().Get("cursor"); c != "" {
		if f.After, err = decodeCursor(c); err != nil {
			return errField("cursor", "not a cursor this page gave")
		}
	}
	evs, next, err := s.store.Events(r.Context(), f)
	if err != nil {
		return err
	}
	p := historyPage{Account: a}
	names := map[int64]string{}
	for _, e := range evs {
		row := historyRow{Kind: string(e.Kind), When: formatLocal(e.OccurredAt, pc.company.Location, false), What: msg(pc.locale, "event_"+string(e.Kind))}
		if e.ActorAccountID != 0 {
			if _, ok := names[e.ActorAccountID]; !ok {
				// Looked up once per page, found or not (an actor gone
				// since shows no name).
				actor, _ := s.accountOf(r, e.ActorAccountID, pc.company.ID)
				names[e.ActorAccountID] = actor.Name
			}
			row.By = names[e.ActorAccountID]
		}
		var d struct {
			Until string `json:"unlocked_until"`
		}
		if json.Unmarshal(e.Detail, &d) == nil && d.Until != "" {
			if until, err := time.Parse(time.RFC3339Nano, d.Until); err == nil {
				row.Detail = fmt.Sprintf(msg(pc.locale, "history_until"), formatLocal(until, pc.company.Location, true))
			}
		}
		p.Rows = append(p.Rows, row)
	}
	if next.ID != 0 {
		p.OlderURL = fmt.Sprintf("/admin/employees/%d/history?cursor=%s", id, url.QueryEscape(encodeCursor(next)))
	}
	s.render(w, r, pc.locale, http.StatusOK, "history", s.data(pc, "title_history", p))
	return nil
}
