package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// dormancy report writes the company's report to -out in the format asked,
// one line per account, and refuses bad flags as usage errors.
func TestReportCommand(t *testing.T) {
	ctx := context.Background()
	dsn, store := commandDatabase(t, postgres.CompanyRecord{ID: "co-report", Name: "報告"})
	for i, last := range []time.Duration{24 * time.Hour, 200 * 24 * time.Hour} {
		if _, err := store.UpsertAccount(ctx, postgres.AccountRecord{CompanyID: "co-report", LoginID: []string{"a", "b"}[i], IDKind: policy.IDKindPlatform,
			Name: "n", CreatedAt: time.Now().AddDate(-1, 0, 0), LastLoginAt: time.Now().Add(-last)}); err != nil {
			t.Fatal(err)
		}
	}
	getenv := env(map[string]string{"DATABASE_URL": dsn})
	out := filepath.Join(t.TempDir(), "report.csv")
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"report", "-company", "co-report", "-format", "csv", "-out", out}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("report: %v\n%s", err, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) != 3 || recs[2][0] != "b" || recs[2][12] != "pending_sweep" {
		t.Errorf("CSV = %v, %v; want a header and two accounts, b pending the sweep", recs, err)
	}
	if !strings.Contains(stderr.String(), "2 accounts") || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q", stderr.String(), stdout.String())
	}
	for _, args := range [][]string{{"report"}, {"report", "-company", "x", "-format", "xml"}, {"report", "-company", "x", "-since", "yesterday"}} {
		if err := run(ctx, args, getenv, &stdout, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if err := run(ctx, []string{"report", "-company", "no-such"}, getenv, &stdout, &stderr); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("unknown company: %v", err)
	}
}

// dormancy account export prints the account's data; erase refuses an
// employed account and erases a retired one.
func TestAccountCommand(t *testing.T) {
	ctx := context.Background()
	dsn, store := commandDatabase(t, postgres.CompanyRecord{ID: "co-person"})
	if _, err := store.UpsertAccount(ctx, postgres.AccountRecord{CompanyID: "co-person", LoginID: "hanako", IDKind: policy.IDKindPlatform,
		Name: "山田 花子", CreatedAt: time.Now().AddDate(-1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	getenv := env(map[string]string{"DATABASE_URL": dsn})
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"account", "export", "-company", "co-person", "-login", "hanako"}, getenv, &stdout, &stderr); err != nil ||
		!strings.Contains(stdout.String(), "山田 花子") {
		t.Fatalf("export: %v\n%s", err, stdout.String())
	}
	if err := run(ctx, []string{"account", "erase", "-company", "co-person", "-login", "hanako"}, getenv, &stdout, &stderr); !errors.Is(err, postgres.ErrNotRetired) {
		t.Errorf("erasing an employed account: %v", err)
	}
	if _, _, err := store.SyncRetirement(ctx, "co-person", "hanako", 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := run(ctx, []string{"account", "erase", "-company", "co-person", "-login", "hanako"}, getenv, &stdout, &stderr); err != nil ||
		!strings.Contains(stdout.String(), "erased-") {
		t.Fatalf("erase: %v %s", err, stdout.String())
	}
	for _, args := range [][]string{{"account"}, {"account", "export"}, {"account", "delete", "-company", "x", "-login", "y"}} {
		if err := run(ctx, args, getenv, &stdout, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// commandDatabase is a database of its own, for the commands a test runs,
// holding the company co; the store is closed when the test ends.
func commandDatabase(t *testing.T, co postgres.CompanyRecord) (string, *postgres.Store) {
	t.Helper()
	dsn := testenv.NewDatabase(t)
	store, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.UpsertCompany(context.Background(), co); err != nil {
		t.Fatal(err)
	}
	return dsn, store
}
