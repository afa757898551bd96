package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

func TestAPIValidation(t *testing.T) {
	b := setup(t)
	unlocks := "/api/v1/companies/" + b.a.id + "/unlocks"
	attempts := "/api/v1/login-attempts"
	cases := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"malformed JSON", "POST", attempts, `{"company_id":`, 400, codeInvalidJSON, "body"},
		{"empty body", "POST", attempts, ``, 400, codeInvalidJSON, "body"},
		{"unknown field", "POST", attempts, `{"company_id":"x","login_id":"y","method":"password","admin":true}`, 400, codeInvalidJSON, "admin"},
		{"wrong type", "POST", attempts, `{"company_id":5}`, 400, codeInvalidJSON, "company_id"},
		{"bad time", "POST", attempts, `{"company_id":"x","login_id":"y","method":"password","at":"yesterday"}`, 400, codeInvalidField, "at"},
		{"time far in the future", "POST", attempts, fmt.Sprintf(`{"company_id":%q,"login_id":"y","method":"password","at":"2500-01-01T00:00:00Z"}`, b.a.id), 400, codeInvalidField, "at"},
		{"time far in the past", "POST", attempts, fmt.Sprintf(`{"company_id":%q,"login_id":"y","method":"password","at":"2020-01-01T00:00:00Z"}`, b.a.id), 400, codeInvalidField, "at"},
		{"trailing data", "POST", attempts, `{"company_id":"x","login_id":"y","method":"password"} {}`, 400, codeInvalidJSON, "body"},
		{"oversized", "POST", attempts, `{"company_id":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, codeBodyTooLarge, "body"},
		{"bad method", "POST", attempts, `{"company_id":"x","login_id":"y","method":"telepathy"}`, 400, codeInvalidField, "method"},
		{"bad ip", "POST", attempts, `{"company_id":"x","login_id":"y","method":"password","ip":"nope"}`, 400, codeInvalidField, "ip"},
		{"unknown account", "POST", attempts, fmt.Sprintf(`{"company_id":%q,"login_id":"nobody","method":"password"}`, b.a.id), 404, codeNotFound, ""},
		{"ids of the wrong type", "POST", unlocks, `{"account_ids":"all"}`, 400, codeInvalidJSON, "account_ids"},
		{"neither ids nor all", "POST", unlocks, `{}`, 400, codeInvalidField, "account_ids"},
		{"ids and all", "POST", unlocks, fmt.Sprintf(`{"account_ids":[%d],"all":true}`, b.a.lockedPlatform), 400, codeInvalidField, "account_ids"},
		{"negative id", "POST", unlocks, `{"account_ids":[-1]}`, 400, codeInvalidField, "account_ids"},
		{"bad page", "GET", "/api/v1/companies/" + b.a.id + "/accounts?page=0", "", 400, codeInvalidField, "page"},
		{"bad per_page", "GET", "/api/v1/companies/" + b.a.id + "/accounts?per_page=5000", "", 400, codeInvalidField, "per_page"},
		{"bad locked", "GET", "/api/v1/companies/" + b.a.id + "/accounts?locked=maybe", "", 400, codeInvalidField, "locked"},
		{"recipients missing", "PUT", "/api/v1/companies/" + b.a.id + "/login-notification-recipients", `{}`, 400, codeInvalidField, "account_ids"},
		{"retired recipient", "PUT", "/api/v1/companies/" + b.a.id + "/login-notification-recipients", fmt.Sprintf(`{"account_ids":[%d]}`, b.a.retiredAdmin), 400, codeInvalidField, "account_ids"},
		{"account id not a number", "GET", "/api/v1/accounts/abc", "", 400, codeInvalidField, "id"},
		{"method not allowed", "DELETE", "/api/v1/companies/" + b.a.id + "/accounts", "", 405, "method_not_allowed", ""},
		{"no such endpoint", "GET", "/api/v1/nothing", "", 404, codeNotFound, ""},
	}
	for _, c := range cases {
		before := b.queued(t, tasks.QueueCritical)
		w := b.api(c.method, c.path, c.body, b.a.admin)
		if w.Code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body.String(), c.status)
			continue
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
		e := apiErrorOf(t, w)
		if e.Code != c.code || e.Field != c.field || e.Message == "" {
			t.Errorf("%s: error %+v, want code %q field %q", c.name, e, c.code, c.field)
		}
		if after := b.queued(t, tasks.QueueCritical); after != before {
			t.Errorf("%s: a task was queued", c.name)
		}
	}
}

func TestLoginAttemptAPI(t *testing.T) {
	b := setup(t)
	body := fmt.Sprintf(`{"company_id":%q,"login_id":%q,"method":"password","ip":"203.0.113.7","user_agent":%q}`,
		b.a.id, loginIDOf(t, b, b.a.member), strings.Repeat("é", 1000))
	w := b.api("POST", "/api/v1/login-attempts", body, 0)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	var r loginAttemptResponse
	mustJSON(t, w, &r)
	if r.Outcome != "ask_administrator" || !r.Locked || r.AccountID != b.a.member || !strings.Contains(r.Message, "ロックしました") || r.AttemptKey == "" {
		t.Errorf("response = %+v", r)
	}
	if len(r.Administrators) != 1 || r.Administrators[0].AccountID != b.a.admin || r.Administrators[0].Name != "管理 花子" {
		t.Errorf("administrators = %+v", r.Administrators)
	}
	info, err := b.inspect.GetTaskInfo(tasks.QueueCritical, tasks.LoginAttemptTaskID(r.AttemptKey))
	if err != nil {
		t.Fatalf("login:attempt not queued: %v", err)
	}
	p, err := tasks.DecodeLoginAttempt(info.Payload)
	if err != nil || p.LoginID != loginIDOf(t, b, b.a.member) || !p.At.Equal(start) || len(p.UserAgent) > tasks.MaxUserAgentBytes {
		t.Errorf("payload = %+v, %v", p, err)
	}
	// The same attempt key again is accepted and queued once.
	again := fmt.Sprintf(`{"company_id":%q,"login_id":%q,"method":"password","attempt_key":%q}`, b.a.id, loginIDOf(t, b, b.a.member), r.AttemptKey)
	if w := b.api("POST", "/api/v1/login-attempts", again, 0); w.Code != http.StatusOK {
		t.Errorf("repeated attempt: %d", w.Code)
	}
}

func TestAccountAPI(t *testing.T) {
	b := setup(t)
	var a accountJSON
	w := b.api("GET", "/api/v1/accounts/"+id(b.a.evil), "", b.a.admin)
	mustJSON(t, w, &a)
	if w.Code != 200 || a.Name != evilName || !a.Locked || a.LockState != "locked" || a.LastLoginAt == nil || a.LockReason == nil || *a.LockReason != "dormant" {
		t.Errorf("profile = %d %+v", w.Code, a)
	}
	if strings.Contains(w.Body.String(), "<script>") {
		t.Error("the JSON carries an unescaped <script>")
	}
	// An employee sees their own profile, not a colleague's.
	if w := b.api("GET", "/api/v1/accounts/"+id(b.a.member), "", b.a.member); w.Code != 200 {
		t.Errorf("own profile: %d", w.Code)
	}
	if w := b.api("GET", "/api/v1/accounts/"+id(b.a.admin), "", b.a.member); w.Code != 403 {
		t.Errorf("colleague's profile: %d, want 403", w.Code)
	}
	var list accountListResponse
	mustJSON(t, b.api("GET", "/api/v1/companies/"+b.a.id+"/accounts?per_page=3&page=2", "", b.a.admin), &list)
	if list.Total != 8 || list.Page != 2 || list.PerPage != 3 || len(list.Accounts) != 3 {
		t.Errorf("page 2 of 3 = %+v", list)
	}
}

func TestMonitoringAndMetrics(t *testing.T) {
	b := setup(t)
	get := func(path string) (int, string) {
		r := newRequest("GET", path)
		r.SetBasicAuth(operatorUser, operatorPass)
		w := b.serve(r)
		return w.Code, w.Body.String()
	}
	if code, body := get("/monitoring/"); code != 200 || !strings.Contains(body, `<div id="root">`) {
		t.Errorf("dashboard: %d\n%.300s", code, body)
	}
	if code, body := get("/monitoring/api/queues"); code != 200 || !strings.Contains(body, "queues") {
		t.Errorf("dashboard API: %d %.300s", code, body)
	}
	if w := b.serve(newRequest("GET", "/monitoring/api/queues")); w.Code != 401 {
		t.Errorf("dashboard API without credentials: %d", w.Code)
	}
	// Work for the metrics to count.
	if w := b.api("POST", "/api/v1/companies/"+b.a.id+"/unlocks", `{"all":true}`, b.a.admin); w.Code != 202 {
		t.Fatal(w.Code)
	}
	if err := b.store.Audit(b.ctx, auditLocked(b.a.id)); err != nil {
		t.Fatal(err)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{`asynq_queue_size{queue="critical"}`, "dormancy_locks_total ", "dormancy_unlocks_total ",
		"dormancy_relocks_total ", "dormancy_emails_sent_total ", "dormancy_emails_failed_total ", `dormancy_events_total{kind="locked"}`,
		`dormancy_table_oldest_row_age_seconds{table="audit_events"}`, `dormancy_table_oldest_row_age_seconds{table="login_attempts"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if w := b.serve(newRequest("GET", "/healthz")); w.Code != 200 {
		t.Errorf("healthz: %d", w.Code)
	}
	if w := b.serve(newRequest("GET", "/readyz")); w.Code != 200 {
		t.Errorf("readyz: %d %s", w.Code, w.Body.String())
	}
	// Redis gone: not ready.
	down, err := New(Config{Store: b.store, Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, LinkSecret: testSecret,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	w := newRecorder()
	down.ServeHTTP(w, newRequest("GET", "/readyz"))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "redis") {
		t.Errorf("readyz without Redis: %d %s", w.Code, w.Body.String())
	}
	// Read-only monitoring still needs credentials.
	ro, err := New(Config{Store: b.store, Redis: testenv.RedisOpt(), LinkSecret: testSecret, MonitoringReadOnly: true,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	w = newRecorder()
	ro.ServeHTTP(w, newRequest("GET", "/monitoring/"))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("monitoring without configured credentials: %d, want 401", w.Code)
	}
}

// TestOpenAPI holds the document to the server: every /api/v1 route is
// documented with its method, every documented operation is routed, and
// each request and response schema lists exactly the JSON fields of the
// Go type the handler reads or writes.
func TestOpenAPI(t *testing.T) {
	b := setup(t)
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, rt := range b.srv.routes {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok || !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		routed[rt.pattern] = true
		if !documented[method+" "+path] {
			t.Errorf("route %s is not in the OpenAPI document", rt.pattern)
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("the OpenAPI document has %s, which no route serves", op)
		}
		// And the mux really sends it there.
		method, path, _ := strings.Cut(op, " ")
		r := newRequest(method, strings.NewReplacer("{id}", "x", "{task_id}", "y", "{login_id}", "z").Replace(path))
		if _, pattern := b.srv.mux.Handler(r); pattern != op {
			t.Errorf("%s is served by %q", op, pattern)
		}
	}
	schemas := map[string]any{
		"LoginAttemptRequest": tasks.LoginAttempt{}, "LoginAttemptResponse": loginAttemptResponse{},
		"RedeemRequest": redeemRequest{}, "RedeemResponse": redeemResponse{},
		"Account": accountJSON{}, "AccountList": accountListResponse{},
		"UnlockRequest": unlockRequest{}, "UnlockAccepted": unlockResponse{}, "UnlockStatus": unlockStatusResponse{},
		"Recipients": recipientsResponse{}, "RecipientsRequest": recipientsRequest{},
		"Event": eventJSON{}, "EventList": eventsResponse{},
		"Webhook": webhookJSON{}, "WebhookWithSecret": webhookWithSecret{}, "WebhookList": webhookListResponse{},
		"WebhookCreate": webhookCreateRequest{}, "WebhookPatch": webhookPatchRequest{}, "WebhookReplay": webhookReplayRequest{},
		"WebhookReplayAccepted": webhookReplayResponse{}, "WebhookDelivery": webhookDeliveryJSON{}, "WebhookDeliveryList": webhookDeliveriesResponse{},
		"Error": struct {
			Error *apiError `json:"error"`
		}{},
	}
	for name, v := range openAPISchemasFor(b) {
		schemas[name] = v
	}
	for schema, v := range schemas {
		s, ok := doc.Components.Schemas[schema]
		if !ok {
			t.Errorf("schema %s missing", schema)
			continue
		}
		var got []string
		for p := range s.Properties {
			got = append(got, p)
		}
		sort.Strings(got)
		if want := jsonFields(reflect.TypeOf(v)); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("schema %s has %v, the Go type %v", schema, got, want)
		}
	}
	if w := b.serve(newRequest("GET", "/api/v1/openapi.json")); w.Code != 200 || w.Body.Len() != len(openAPI) {
		t.Errorf("serving the document: %d", w.Code)
	}
	if _, err := os.Stat("openapi.json"); err != nil {
		t.Error(err)
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...) // encoding/json flattens it
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func auditLocked(company string) postgres.Event {
	return postgres.Event{Kind: postgres.EventLocked, CompanyID: company, OccurredAt: start}
}

// TestMonitoringRefusesCrossOrigin: the operator's browser remembers the
// basic credentials, so a page on another site could drive Asynqmon's
// buttons; it is refused and the queue stays as it was, while the same
// change from the dashboard itself goes through. Nobody may frame it.
func TestMonitoringRefusesCrossOrigin(t *testing.T) {
	b := setup(t)
	queue := testenv.UniqueID("mon")
	c := asynq.NewClient(testenv.RedisOpt())
	defer c.Close()
	if _, err := c.Enqueue(asynq.NewTask("noop", nil), asynq.Queue(queue)); err != nil {
		t.Fatal(err)
	}
	pause := func(site, origin string) int {
		r := newRequest("POST", "/monitoring/api/queues/"+queue+":pause")
		r.SetBasicAuth(operatorUser, operatorPass)
		r.Header.Set("Sec-Fetch-Site", site)
		r.Header.Set("Origin", origin)
		return b.serve(r).Code
	}
	paused := func() bool {
		info, err := b.inspect.GetQueueInfo(queue)
		if err != nil {
			t.Fatal(err)
		}
		return info.Paused
	}
	if code := pause("cross-site", "https://evil.example"); code != http.StatusForbidden || paused() {
		t.Errorf("cross-origin pause: %d, paused %v; want 403 and not paused", code, paused())
	}
	if code := pause("same-origin", "http://example.com"); code/100 != 2 || !paused() {
		t.Errorf("same-origin pause: %d, paused %v; want it done", code, paused())
	}
	r := newRequest("GET", "/monitoring/")
	r.SetBasicAuth(operatorUser, operatorPass)
	h := b.serve(r).Header()
	if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("monitoring may be framed: %v", h)
	}

	// Read-only (the command's default) refuses the change even from the
	// dashboard's own origin.
	ro, err := New(Config{Store: b.store, Redis: testenv.RedisOpt(), LinkSecret: testSecret, MonitoringReadOnly: true,
		OperatorUser: operatorUser, OperatorPassword: operatorPass, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := b.inspect.UnpauseQueue(queue); err != nil {
		t.Fatal(err)
	}
	w := newRecorder()
	r = newRequest("POST", "/monitoring/api/queues/"+queue+":pause")
	r.SetBasicAuth(operatorUser, operatorPass)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	ro.ServeHTTP(w, r)
	if w.Code/100 == 2 || paused() {
		t.Errorf("read-only pause: %d, paused %v", w.Code, paused())
	}
}
