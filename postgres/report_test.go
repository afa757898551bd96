package postgres_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// The report's accounts, read as COPY text in chunks, are the accounts the
// store reads one at a time: names holding every character COPY escapes,
// NULL and set times, and every account once, in login ID order, across
// chunk boundaries (a company of exactly two chunks ends with an empty
// one; one more account ends with a short one).
func TestReportAccountsReadWhatWasStored(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	db := testenv.DB(t)
	company := testenv.UniqueID("copy")
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: company}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO accounts (company_id, login_id, id_kind, email, name, created_at, last_login_at)
		SELECT $1, 'b' || lpad(g::text, 6, '0'), 'platform', NULL, 'n' || g, now() - interval '400 days', now() - interval '1 day'
		FROM generate_series(1, $2::int) g`, company, 2*postgres.ReportChunk-3); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 2, 3, 4, 5, 6, 789123000, time.UTC)
	for _, name := range []string{"tab\there", "line\nbreak", `back\slash`, `\N`, "cr\rx", "\b\f\v", "社員 太郎", ""} {
		rec := postgres.AccountRecord{CompanyID: company, LoginID: "a" + testenv.UniqueID(""), IDKind: policy.IDKindEmail,
			Email: "x@example.com", Name: name, Department: name, CreatedAt: created}
		if _, err := store.UpsertAccount(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`UPDATE accounts SET lock_state = 'locked', lock_reason = 'dormant', locked_at = '2026-05-06 07:08:09.123456+09',
		exempt = true, exempt_reason = E'監査\t用', exempt_granted_by = 'CISO', exempt_until = '2027-01-01T00:00:00Z'
		WHERE company_id = $1 AND name = 'cr' || chr(13) || 'x'`, company); err != nil {
		t.Fatal(err)
	}

	read := func() []policy.Employee {
		t.Helper()
		var all []policy.Employee
		if err := store.ReportAccounts(ctx, company, func(c []policy.Employee) error {
			all = append(all, c...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return all
	}
	check := func(all []policy.Employee) {
		t.Helper()
		rows, err := db.Query(`SELECT login_id FROM accounts WHERE company_id = $1 ORDER BY login_id`, company)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		i := 0
		for ; rows.Next(); i++ {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			if i >= len(all) || all[i].LoginID != id {
				t.Fatalf("account %d is not %q (read %d accounts)", i, id, len(all))
			}
			if id[0] == 'a' || i%1000 == 0 {
				one, _, err := store.CheckAccount(ctx, company, id)
				if err != nil {
					t.Fatal(err)
				}
				got := all[i]
				for _, e := range []*policy.Employee{&one, &got} { // times compared as instants
					e.CreatedAt, e.LastLoginAt, e.LockedAt, e.ExemptUntil = e.CreatedAt.UTC(), e.LastLoginAt.UTC(), e.LockedAt.UTC(), e.ExemptUntil.UTC()
				}
				if !reflect.DeepEqual(got, one) {
					t.Errorf("report read\n%+v\nthe store reads\n%+v", got, one)
				}
			}
		}
		if i != len(all) {
			t.Fatalf("read %d accounts, the company has %d", len(all), i)
		}
	}
	all := read()
	if len(all) != 2*postgres.ReportChunk+5 {
		t.Fatalf("read %d accounts, want %d", len(all), 2*postgres.ReportChunk+5)
	}
	check(all)
	if _, err := db.Exec(`DELETE FROM accounts WHERE company_id = $1 AND login_id = (SELECT max(login_id) FROM accounts WHERE company_id = $1 AND login_id LIKE 'b%')`, company); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM accounts WHERE company_id = $1 AND name IN ('', 'n1', 'n2', 'n3')`, company); err != nil {
		t.Fatal(err)
	}
	all = read()
	if len(all) != 2*postgres.ReportChunk {
		t.Fatalf("read %d accounts, want exactly two chunks", len(all))
	}
	check(all)

	// fn's error ends the reading and comes back as it is.
	stop := errors.New("stop")
	calls := 0
	if err := store.ReportAccounts(ctx, company, func([]policy.Employee) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("fn failing: %v after %d calls; want its error after one", err, calls)
	}
	if err := store.ReportAccounts(ctx, "no-such-company", func([]policy.Employee) error { calls++; return nil }); err != nil || calls != 1 {
		t.Errorf("unknown company: %v, %d calls; want nothing read", err, calls-1)
	}
}
