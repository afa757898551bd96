package report_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/report"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// failAfter takes n bytes, then fails every write, as a client that went
// away does.
type failAfter struct{ n int }

var errGone = errors.New("client gone")

func (w *failAfter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		return 0, errGone
	}
	w.n -= len(p)
	return len(p), nil
}

// A reader that stops taking the report mid-stream gets its own error
// back, in either format, and the accounts still being read are let go:
// the next report of the company reads all of them.
func TestReportEndsWhenItsReaderFails(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	company := testenv.UniqueID("gone")
	if err := store.UpsertCompany(ctx, postgres.CompanyRecord{ID: company}); err != nil {
		t.Fatal(err)
	}
	const accounts = 25_000
	if _, err := testenv.DB(t).Exec(`INSERT INTO accounts (company_id, login_id, id_kind, name, created_at)
		SELECT $1, 'u' || g, 'platform', 'n' || g, now() - interval '10 days' FROM generate_series(1, $2::int) g`, company, accounts); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, f := range []report.Format{report.CSV, report.JSON} {
		n, err := report.Write(ctx, store, company, &failAfter{n: 100_000}, report.Options{Format: f, Now: now, Since: now.Add(-time.Hour), Until: now})
		if !errors.Is(err, errGone) || n >= accounts {
			t.Errorf("%s to a reader gone after 100 kB: %d accounts, %v; want its error before the end", f, n, err)
		}
	}
	n, err := report.Write(ctx, store, company, io.Discard, report.Options{Format: report.CSV, Now: now})
	if err != nil || n != accounts {
		t.Errorf("the whole report: %d accounts, %v; want %d", n, err, accounts)
	}
	if _, err := report.Write(ctx, store, company, io.Discard, report.Options{Format: "xml", Now: now}); err == nil {
		t.Error("format xml accepted")
	}
}
