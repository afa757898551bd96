package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
)

// A person's data: exported whole for an administrator of the company, and
// erased on request once the account is retired, its audit trail kept
// about the pseudonym.
func TestExportAndEraseAccount(t *testing.T) {
	b := setup(t)
	login := loginIDOf(t, b, b.a.member)
	body := fmt.Sprintf(`{"company_id":%q,"login_id":%q,"method":"password","ip":"203.0.113.9","user_agent":"Mozilla/5.0 (X11; Linux x86_64)"}`, b.a.id, login)
	if w := b.api("POST", "/api/v1/login-attempts", body, 0); w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body.String())
	}
	// The worker is not running here: the attempt is recorded the way it
	// would record it.
	b.exec(t, `INSERT INTO login_attempts (attempt_key, company_id, account_id, method, outcome, ip, user_agent, attempted_at, recorded_at)
		VALUES ('erase-1', $1, $2, 'password', 'ask_administrator', '203.0.113.9', 'Mozilla/5.0 (X11; Linux x86_64)', $3, $3)`, b.a.id, b.a.member, start)
	b.exec(t, `INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, status, subject, body_text, created_at)
		VALUES ('unlocked', $1, $2, 'member@example.com', 'ja', 'erase-mail', 'sent', '件名', '本文', $3)`, b.a.id, b.a.member, start)
	b.exec(t, `INSERT INTO audit_events (company_id, account_id, kind, detail, occurred_at) VALUES ($1, $2, 'account_updated', '{"name": "一般 次郎", "fields": ["name"]}', $3)`, b.a.id, b.a.member, start)

	path := fmt.Sprintf("/api/v1/accounts/%d", b.a.member)
	w := b.api("GET", path+"/export", "", b.a.admin)
	var doc struct {
		Account       map[string]any   `json:"account"`
		LoginAttempts []map[string]any `json:"login_attempts"`
		Mails         []map[string]any `json:"mails"`
		AuditEvents   []map[string]any `json:"audit_events"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &doc) != nil {
		t.Fatalf("export: %d %s", w.Code, w.Body.String())
	}
	if doc.Account["login_id"] != login || len(doc.LoginAttempts) != 1 || doc.LoginAttempts[0]["ip"] != "203.0.113.9" ||
		len(doc.Mails) != 1 || len(doc.AuditEvents) == 0 {
		t.Errorf("export = %s", w.Body.String())
	}
	if w := b.api("GET", fmt.Sprintf("/api/v1/accounts/%d/export", b.b.member), "", b.a.admin); w.Code != http.StatusNotFound {
		t.Errorf("another company's account: %d", w.Code)
	}

	// Employed: refused.
	if w := b.api("POST", path+"/erasure", "", b.a.admin); w.Code != http.StatusBadRequest || apiErrorOf(t, w).Field != "id" {
		t.Errorf("erasing an employed account: %d %s", w.Code, w.Body.String())
	}
	events := func() int {
		return testenv.Count(t, b.db, `SELECT count(*) FROM audit_events WHERE account_id = $1`, b.a.member)
	}
	b.exec(t, `UPDATE accounts SET status = 'retired', retired_at = $2 WHERE id = $1`, b.a.member, start)
	before := events()
	w = b.api("POST", path+"/erasure", "", b.a.admin)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"erased-`) {
		t.Fatalf("erasure: %d %s", w.Code, w.Body.String())
	}
	for what, q := range map[string]string{
		"account":        `SELECT count(*) FROM accounts WHERE id = $1 AND name = '' AND department = '' AND login_id LIKE 'erased-%' AND email IS NULL`,
		"login attempts": `SELECT count(*) FROM login_attempts WHERE account_id = $1 AND (ip IS NOT NULL OR user_agent <> '')`,
		"mails":          `SELECT count(*) FROM mails WHERE account_id = $1 AND (to_address <> '' OR body_text IS NOT NULL)`,
		"audit details":  `SELECT count(*) FROM audit_events WHERE account_id = $1 AND detail ? 'name'`,
	} {
		want := 0
		if what == "account" {
			want = 1
		}
		if got := testenv.Count(t, b.db, q, b.a.member); got != want {
			t.Errorf("%s after erasure: %d, want %d", what, got, want)
		}
	}
	if got := events(); got != before+1 {
		t.Errorf("audit events %d → %d: the trail must stay, with one account_erased", before, got)
	}
	if strings.Contains(b.api("GET", path+"/export", "", b.a.admin).Body.String(), "203.0.113.9") {
		t.Error("the export still shows the IP address after erasure")
	}
}
