package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/mail"
	"github.com/dormancy/dormancy/mail/resendtest"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

// What Asynqmon shows of a pending verification email holds the ids of its
// mail and token, never the link's token, which the worker derives when it
// renders the email. (Resend fails the attempt's own try at the link, so
// that its task is left pending.)
func TestAsynqmonShowsNoLiveToken(t *testing.T) {
	b := setup(t)
	fake := resendtest.New(t)
	sender, err := mail.NewResend(mail.ResendConfig{APIKey: "re_test", BaseURL: fake.URL(), From: "dormancy <no-reply@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	fake.FailNext(1, 422, nil)
	mux := b.workerSending(t, sender)
	login := loginIDOf(t, b, b.a.lockedEmail)
	w := b.api("POST", "/api/v1/login-attempts", `{"company_id":"`+b.a.id+`","login_id":"`+login+`","method":"password"}`, 0)
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body.String())
	}
	var r loginAttemptResponse
	mustJSON(t, w, &r)
	b.runTask(t, mux, tasks.QueueCritical, tasks.LoginAttemptTaskID(r.AttemptKey))

	var seed []byte
	if err := b.db.QueryRow(`SELECT seed FROM verification_tokens WHERE account_id = $1 AND revoked_at IS NULL`, b.a.lockedEmail).Scan(&seed); err != nil {
		t.Fatal(err)
	}
	token, _ := policy.DeriveToken(testenv.TokenSecret, seed)
	for _, state := range []string{"pending_tasks", "completed_tasks", "archived_tasks", "retry_tasks"} {
		req := newRequest("GET", "/monitoring/api/queues/"+tasks.QueueDefault+"/"+state)
		req.SetBasicAuth(operatorUser, operatorPass)
		w := b.serve(req)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d", state, w.Code)
		}
		if strings.Contains(w.Body.String(), token) {
			t.Errorf("Asynqmon's %s shows the live token", state)
		}
		if state == "pending_tasks" && !strings.Contains(w.Body.String(), tasks.TypeEmailVerification) {
			t.Errorf("the verification email is not among the pending tasks: %s", w.Body.String())
		}
	}
}
