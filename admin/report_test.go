package admin

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/report"
)

type reportJSON struct {
	report.Header
	Accounts []report.Row `json:"accounts"`
}

func (b *testBundle) report(t *testing.T, company string, accept string) (*http.Response, string) {
	t.Helper()
	r := newRequest("GET", "/api/v1/companies/"+company+"/report")
	r.Header.Set("Authorization", "Bearer "+b.apiKey)
	r.Header.Set(ActorHeader, strconv.FormatInt(b.a.admin, 10))
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := b.serve(r)
	return w.Result(), w.Body.String()
}

// The compliance report: its summary agrees with its rows, names why each
// inactive account is not locked (none pending after the sweep, the exempt
// and the retired ones named), and its CSV says what its JSON says.
func TestComplianceReport(t *testing.T) {
	b := setup(t)
	exempt := b.account(t, b.a.id, "除外 八郎", false, policy.IDKindPlatform, false)
	b.exec(t, `UPDATE accounts SET exempt = true, exempt_reason = '監視用', exempt_granted_by = 'CISO', exempt_until = $2 WHERE id = $1`,
		exempt, start.AddDate(0, 6, 0))

	read := func() reportJSON {
		t.Helper()
		resp, body := b.report(t, b.a.id, "")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("report: %d %s", resp.StatusCode, body)
		}
		var r reportJSON
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, body)
		}
		return r
	}
	agree := func(r reportJSON) {
		t.Helper()
		s := r.Summary
		var inactive, locked int
		reasons := map[string]int{}
		for _, a := range r.Accounts {
			if a.DaysInactive >= r.InactivityDays {
				inactive++
				if a.State == string(policy.StateLocked) {
					locked++
				}
			}
			reasons[a.NotLockedReason]++
		}
		if s.Accounts != len(r.Accounts) || s.Inactive != inactive || s.InactiveLocked != locked ||
			s.NotLockedExempt != reasons[report.NotLockedExempt] || s.NotLockedRetired != reasons[report.NotLockedRetired] ||
			s.NotLockedPending != reasons[report.NotLockedPending] || s.NotLockedUnlocked != reasons[report.NotLockedUnlocked] ||
			s.InactiveNotLocked != s.NotLockedExempt+s.NotLockedRetired+s.NotLockedPending+s.NotLockedUnlocked {
			t.Errorf("summary %+v disagrees with the rows: %d accounts, %d inactive, %d locked, reasons %v", s, len(r.Accounts), inactive, locked, reasons)
		}
	}

	before := read()
	agree(before)
	if before.Summary.NotLockedPending != 1 || rowOf(before, b, b.a.member).NotLockedReason != report.NotLockedPending {
		t.Errorf("before the sweep: pending %d, member %+v; want the dormant member pending", before.Summary.NotLockedPending, rowOf(before, b, b.a.member))
	}

	if _, _, err := b.store.SweepBatch(b.ctx, b.clock.Now(), postgres.Cursor{}, 1000); err != nil {
		t.Fatal(err)
	}
	after := read()
	agree(after)
	s := after.Summary
	if s.NotLockedPending != 0 || s.InactiveNotLocked != 2 || s.NotLockedExempt != 1 || s.NotLockedRetired != 1 {
		t.Errorf("after the sweep: %+v; want none pending, the exempt and the retired one named", s)
	}
	if s.Locks < 1 {
		t.Errorf("the sweep's locks are not counted in the period: %+v", s)
	}
	for id, reason := range map[int64]string{exempt: report.NotLockedExempt, b.a.retiredAdmin: report.NotLockedRetired, b.a.member: ""} {
		if got := rowOf(after, b, id); got.NotLockedReason != reason {
			t.Errorf("account %d: reason %q, want %q (%+v)", id, got.NotLockedReason, reason, got)
		}
	}
	// The exemption is listed with its terms, in CSV too (below).
	if e := rowOf(after, b, exempt); e.ExemptReason != "監視用" || e.ExemptGrantedBy != "CISO" || !strings.HasPrefix(e.ExemptUntil, "2027-05-26") {
		t.Errorf("exempt row: %+v", e)
	}
	if m := rowOf(after, b, b.a.member); m.State != "locked" || m.LockedAt == "" || m.DormantOn == "" {
		t.Errorf("swept member: %+v", m)
	}

	// CSV, asked for by Accept, has the same rows.
	resp, body := b.report(t, b.a.id, "text/csv")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV report: %d %s", resp.StatusCode, body)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(after.Accounts)+1 || recs[0][0] != "login_id" {
		t.Fatalf("CSV has %d lines for %d accounts", len(recs), len(after.Accounts))
	}
	for i, a := range after.Accounts {
		rec := recs[i+1]
		if rec[0] != a.LoginID || rec[6] != a.State || rec[12] != a.NotLockedReason || rec[5] != strconv.Itoa(a.DaysInactive) || rec[11] != a.DormantOn ||
			rec[13] != a.ExemptReason || rec[14] != a.ExemptGrantedBy || rec[15] != a.ExemptUntil {
			t.Errorf("CSV row %d %v disagrees with JSON %+v", i+1, rec, a)
		}
	}

	// Another company's report is not this key's actor's to read.
	if resp, _ := b.report(t, b.b.id, ""); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusForbidden {
		t.Errorf("another company's report: %d", resp.StatusCode)
	}
	r := newRequest("GET", "/api/v1/companies/"+b.a.id+"/report?since=yesterday")
	r.Header.Set("Authorization", "Bearer "+b.apiKey)
	r.Header.Set(ActorHeader, strconv.FormatInt(b.a.admin, 10))
	if w := b.serve(r); w.Code != http.StatusBadRequest || apiErrorOf(t, w).Field != "since" {
		t.Errorf("bad since: %d %s", w.Code, w.Body.String())
	}
}

func rowOf(r reportJSON, b *testBundle, id int64) report.Row {
	var login string
	if err := b.db.QueryRow(`SELECT login_id FROM accounts WHERE id = $1`, id).Scan(&login); err != nil {
		panic(err)
	}
	i := slices.IndexFunc(r.Accounts, func(a report.Row) bool { return a.LoginID == login })
	if i < 0 {
		return report.Row{}
	}
	return r.Accounts[i]
}
