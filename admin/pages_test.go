package admin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/worker"
)

const escapedEvil = "&lt;script&gt;alert(1)&lt;/script&gt;"

// assertEscaped fails if the evil name appears as markup, or not at all.
func assertEscaped(t *testing.T, where, body string) {
	t.Helper()
	if strings.Contains(body, evilName) {
		t.Errorf("%s: the name is in the page unescaped", where)
	}
	if !strings.Contains(body, escapedEvil) && !strings.Contains(body, "&amp;lt;script&amp;gt;") {
		t.Errorf("%s: the escaped name is missing", where)
	}
}

func TestEmployeeList(t *testing.T) {
	b := setup(t)
	s := b.login(t, b.a.id, b.a.admin)
	all := b.page(s, "GET", "/admin/employees", nil).Body.String()
	locked := b.page(s, "GET", "/admin/employees?locked=1", nil).Body.String()
	for _, want := range []string{"社員一覧", "ロック中のみ表示", "一括ロック解除", "ログイン日", "2026/05/10 10:00"} {
		if !strings.Contains(all, want) {
			t.Errorf("employee list lacks %q", want)
		}
	}
	// Three locked rows, and the member past the inactivity period whom the
	// sweep has not reached yet: a login would be refused, so the page says
	// locked too.
	if got, want := strings.Count(all, `class="lock-icon`), 4; got != want {
		t.Errorf("lock icons = %d, want %d", got, want)
	}
	if !strings.Contains(locked, "一般 次郎") {
		t.Error("the dormant member the sweep has not reached is not listed as locked")
	}
	if got, want := strings.Count(locked, "<tr data-account-id="), 4; got != want {
		t.Errorf("rows with the locked filter = %d, want %d", got, want)
	}
	if strings.Contains(locked, "有効 六郎") || strings.Contains(all, "会社 "+b.b.id) {
		t.Error("the filter or the company scope leaks")
	}
	// Per-row unlock only for locked platform IDs; email IDs unlock themselves.
	// The lock icon of a platform ID is its unlock button, with the
	// confirm dialog; an email ID's is a plain label.
	if got, want := strings.Count(all, `<button type="submit" name="account_id"`), 3; got != want {
		t.Errorf("lock icons that unlock = %d, want %d", got, want)
	}
	if got, want := strings.Count(all, `class="lock-icon unlock-one"`), 3; got != want {
		t.Errorf("unlock buttons = %d, want %d", got, want)
	}
	if !strings.Contains(all, "本人がメールで解除") {
		t.Error("the email-ID row does not say it unlocks by email")
	}
	assertEscaped(t, "employee list", all)
	if !strings.Contains(all, `data-confirm="`+escapedEvil) {
		t.Error("the confirm text does not carry the escaped name")
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"} {
		if b.page(s, "GET", "/admin/employees", nil).Header().Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
}

func TestRecipientsFlow(t *testing.T) {
	b := setup(t)
	s := b.login(t, b.a.id, b.a.admin)
	// The manual's steps: [ログイン通知先管理] → [担当者を設定] → choose →
	// [確認画面へ] → [登録する].
	first := b.page(s, "GET", "/admin/recipients", nil).Body.String()
	for _, want := range []string{"ログイン通知先管理", `id="choose"`, "担当者を設定"} {
		if !strings.Contains(first, want) {
			t.Errorf("recipients page lacks %q", want)
		}
	}
	if strings.Contains(first, `id="to-confirm"`) {
		t.Error("the employees to choose from are shown before [担当者を設定]")
	}
	page := b.page(s, "GET", "/admin/recipients?choose=1", nil).Body.String()
	if !strings.Contains(page, "確認画面へ") {
		t.Error("the chooser has no [確認画面へ]")
	}
	assertEscaped(t, "recipients page", page)
	if !strings.Contains(page, fmt.Sprintf(`value="%d" id="r%d" checked`, b.a.recipient, b.a.recipient)) {
		t.Error("the current recipient is not checked")
	}
	confirm := b.page(s, "POST", "/admin/recipients/confirm", url.Values{"ids": {id(b.a.evil), id(b.a.admin)}})
	if confirm.Code != http.StatusOK {
		t.Fatalf("confirm: %d", confirm.Code)
	}
	assertEscaped(t, "confirm page", confirm.Body.String())
	// Confirming changes nothing yet.
	if got := b.recipients(t, b.a.id); got != fmt.Sprint([]int64{b.a.recipient}) {
		t.Errorf("recipients after confirm = %s", got)
	}
	save := b.page(s, "POST", "/admin/recipients", url.Values{"ids": {id(b.a.evil), id(b.a.admin)}})
	if save.Code != http.StatusSeeOther || save.Header().Get("Location") != "/admin/recipients?saved=1" {
		t.Fatalf("save: %d %s", save.Code, save.Header().Get("Location"))
	}
	if got, want := b.recipients(t, b.a.id), fmt.Sprint([]int64{b.a.admin, b.a.evil}); got != want { // ids in order
		t.Errorf("recipients = %s, want %s", got, want)
	}
	if body := b.page(s, "GET", "/admin/recipients?saved=1", nil).Body.String(); !strings.Contains(body, "登録しました") {
		t.Error("no confirmation after saving")
	}
	// A retired account is no candidate.
	if w := b.page(s, "POST", "/admin/recipients/confirm", url.Values{"ids": {id(b.a.retiredAdmin)}}); w.Code != http.StatusNotFound {
		t.Errorf("retired recipient: %d, want 404", w.Code)
	}
}

func (b *testBundle) recipients(t *testing.T, company string) string {
	t.Helper()
	rs, err := b.store.LoginNotificationRecipients(b.ctx, company, b.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, r := range rs {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

// TestUnlockThroughWorker unlocks through the page and the API with a real
// worker running the account:unlock task, and watches the state the page
// polls go to completed and the lock icons go.
func TestUnlockThroughWorker(t *testing.T) {
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := worker.New(worker.Config{TokenSecret: testenv.TokenSecret,
		Redis: testenv.RedisOpt(), Store: b.store, Sender: mail.NewDev(slog.New(slog.NewJSONHandler(io.Discard, nil))),
		Links: worker.Links{Base: mustURL("https://platform.example.com/")}, Concurrency: 2,
		TaskCheckInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: b.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { stop(); <-done }()

	s := b.login(t, b.a.id, b.a.admin)
	res := b.page(s, "POST", "/admin/unlocks", url.Values{"ids": {id(b.a.lockedPlatform), id(b.a.evil), id(b.a.member)}, "bulk": {"1"}, "locked": {"1"}, "request_id": {tasks.NewKey()}})
	if res.Code != http.StatusSeeOther {
		t.Fatalf("bulk unlock: %d %s", res.Code, res.Body.String())
	}
	loc, _ := url.Parse(res.Header().Get("Location"))
	taskID := loc.Query().Get("unlock")
	if loc.Path != "/admin/employees" || loc.Query().Get("locked") != "1" || taskID == "" {
		t.Fatalf("redirect to %s", loc)
	}
	b.waitState(ctx, t, func() int { return b.page(s, "GET", "/admin/unlocks/"+url.PathEscape(taskID), nil).Code }, func() string {
		var st unlockStatusResponse
		mustJSON(t, b.page(s, "GET", "/admin/unlocks/"+url.PathEscape(taskID), nil), &st)
		return st.State
	})
	page := b.page(s, "GET", "/admin/employees?locked=1", nil).Body.String()
	if got := strings.Count(page, `class="lock-icon`); got != 1 {
		t.Errorf("lock icons after the bulk unlock = %d, want 1 (the email ID)", got)
	}
	if all := b.page(s, "GET", "/admin/employees", nil).Body.String(); !strings.Contains(all, "2026/11/26 24:00 までにログインが必要") {
		t.Error("the list does not show the same-day deadline")
	}
	// Nothing in company B moved.
	var lockedB int
	if err := b.db.QueryRow(`SELECT count(*) FROM accounts WHERE company_id = $1 AND lock_state = 'locked'`, b.b.id).Scan(&lockedB); err != nil || lockedB != 3 {
		t.Errorf("company B locked accounts = %d (%v), want 3", lockedB, err)
	}

	// The API: all locked, twice with one request id: one task.
	body := `{"all":true,"request_id":"api-all-1"}`
	first := b.api("POST", "/api/v1/companies/"+b.b.id+"/unlocks", body, b.b.admin)
	second := b.api("POST", "/api/v1/companies/"+b.b.id+"/unlocks", body, b.b.admin)
	var r1, r2 unlockResponse
	mustJSON(t, first, &r1)
	mustJSON(t, second, &r2)
	if first.Code != http.StatusAccepted || second.Code != http.StatusAccepted || r1.TaskID == "" || r1.TaskID != r2.TaskID {
		t.Fatalf("repeated unlock: %d %+v / %d %+v", first.Code, r1, second.Code, r2)
	}
	statusPath := r1.StatusURL
	b.waitState(ctx, t, func() int { return b.api("GET", statusPath, "", b.b.admin).Code }, func() string {
		var st unlockStatusResponse
		mustJSON(t, b.api("GET", statusPath, "", b.b.admin), &st)
		return st.State
	})
	var list accountListResponse
	mustJSON(t, b.api("GET", "/api/v1/companies/"+b.b.id+"/accounts?locked=true", "", b.b.admin), &list)
	if len(list.Accounts) != 1 || list.Accounts[0].IDKind != string(policy.IDKindEmail) {
		t.Errorf("locked after unlocking all: %+v", list.Accounts)
	}
}

// waitState polls a task's state until it completes or ctx ends.
func (b *testBundle) waitState(ctx context.Context, t *testing.T, code func() int, state func() string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c := code(); c != http.StatusOK {
			t.Fatalf("status: %d", c)
		}
		st := state()
		if st == asynq.TaskStateCompleted.String() {
			return
		}
		if st == asynq.TaskStateArchived.String() {
			t.Fatal("the unlock task was archived")
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the unlock did not finish: state %s", st)
		case <-tick.C:
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestDevMailbox(t *testing.T) {
	b := setup(t)
	// A real alert about the evil-named account, rendered by the worker's
	// own path into the dev mailbox.
	h := worker.NewHandlers(worker.Config{TokenSecret: testenv.TokenSecret,
		Redis: testenv.RedisOpt(), Store: b.store, Sender: mail.NewDev(slog.New(slog.NewJSONHandler(io.Discard, nil))),
		Links: worker.Links{Base: mustURL("https://platform.example.com/")}, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: b.clock.Now,
	})
	defer h.Close()
	b.exec(t, `UPDATE accounts SET lock_state = 'active', lock_reason = NULL, locked_at = NULL WHERE id = $1`, b.a.evil)
	task, err := tasks.NewLoginAttemptTask(tasks.LoginAttempt{CompanyID: b.a.id, LoginID: loginIDOf(t, b, b.a.evil), Method: policy.MethodPassword, At: b.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LoginAttempt(b.ctx, task); err != nil {
		t.Fatal(err)
	}
	infos, err := b.inspect.ListPendingTasks(tasks.QueueDefault)
	if err != nil || len(infos) == 0 {
		t.Fatalf("no alert queued: %v", err)
	}
	for _, info := range infos {
		if err := h.Email(b.ctx, asynq.NewTask(info.Type, info.Payload)); err != nil {
			t.Fatal(err)
		}
		_ = b.inspect.DeleteTask(tasks.QueueDefault, info.ID)
	}
	r := newRequest("GET", "/dev/mailbox")
	r.SetBasicAuth(operatorUser, operatorPass)
	w := b.serve(r)
	if w.Code != http.StatusOK {
		t.Fatalf("mailbox: %d", w.Code)
	}
	body := w.Body.String()
	if !strings.Contains(body, "一定期間ログインをしていない社員がログインを試みました。") {
		t.Errorf("the alert is not listed:\n%s", body)
	}
	if !strings.Contains(body, `<a href="https://platform.example.com/employees"`) {
		t.Error("the alert's link is not listed")
	}
	if strings.Contains(body, evilName) {
		t.Error("the name is in the mailbox unescaped")
	}
	if !strings.Contains(body, escapedEvil) {
		t.Error("the escaped name is missing from the text body")
	}
	if !strings.Contains(body, "<iframe sandbox srcdoc=") {
		t.Error("the HTML body is not in a sandboxed frame")
	}

	// Without the dev mailbox configured the route does not exist.
	srv, err := New(Config{Store: b.store, Redis: testenv.RedisOpt(), LinkSecret: testSecret, OperatorUser: operatorUser, OperatorPassword: operatorPass,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rec := newRecorder()
	srv.ServeHTTP(rec, r)
	if rec.Code != http.StatusNotFound {
		t.Errorf("mailbox without dev mail: %d, want 404", rec.Code)
	}
}
