package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
)

// TestAPIKeyCommand: the new key alone on stdout (K=$(dormancy apikey
// create …) captures just the key), what it is on stderr; a key is scoped
// to companies unless -platform says otherwise, and list shows the scope.
func TestAPIKeyCommand(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	getenv := env(map[string]string{"DATABASE_URL": dsn})
	ctx := context.Background()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"apikey", "create", "host one", "-companies", "co-a,co-b"}, getenv, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "dmy_") {
		t.Errorf("stdout = %q, want the key alone", out.String())
	}
	if !strings.Contains(errb.String(), "companies co-a, co-b") {
		t.Errorf("stderr = %q", errb.String())
	}
	out.Reset()
	if err := run(ctx, []string{"apikey", "create", "-platform", "host two"}, getenv, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		{"apikey", "create", "host three"},
		{"apikey", "create", "host three", "-platform", "-companies", "a"},
		{"apikey", "create", "host three", "-companies", " , "},
		{"apikey", "create", "-companies", "a"},
	} {
		if err := run(ctx, bad, getenv, &out, &errb); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
	if err := run(ctx, []string{"apikey", "create", "host four", "-companies", "no spaces allowed"}, getenv, &out, &errb); err == nil {
		t.Error("a company id with spaces was accepted")
	}
	out.Reset()
	if err := run(ctx, []string{"apikey", "list"}, getenv, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if list := out.String(); !strings.Contains(list, "host one\tco-a,co-b\t") || !strings.Contains(list, "host two\tplatform-wide\t") {
		t.Errorf("list:\n%s", list)
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "dormancy ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("version = %q", out.String())
	}
}

// A busy ADMIN_ADDR fails before anything says the server started, naming
// the variable.
func TestAdminBindsBeforeItAnnounces(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dsn := testenv.NewDatabase(t)
	var logs bytes.Buffer
	err = run(context.Background(), []string{"admin"}, env(map[string]string{
		"DATABASE_URL": dsn, "REDIS_URL": testenv.RedisURL(), "ADMIN_ADDR": ln.Addr().String(),
	}), io.Discard, &logs)
	if err == nil || !strings.Contains(err.Error(), "ADMIN_ADDR") {
		t.Errorf("busy address: %v, want an error naming ADMIN_ADDR", err)
	}
	if strings.Contains(logs.String(), "admin server started") {
		t.Errorf("announced before binding:\n%s", logs.String())
	}
}

// dormancy import: the rejects file appears only when a row was refused,
// and then the command ends with errRejected (exit 3) unless told to
// accept rejects; "yes" and "1" are not booleans, as in the API.
func TestImportCommandRejects(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	getenv := env(map[string]string{"DATABASE_URL": dsn})
	dir := t.TempDir()
	header := "company_id,login_id,id_kind,email,name,department,can_manage_employees,exempt,created_at,last_login_at\n"
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(header+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx := context.Background()
	var stderr bytes.Buffer
	clean := write("clean.csv", "acme,E1,platform,,山田,総務,true,false,2024-01-01,\n")
	if err := run(ctx, []string{"import", "-create-companies", clean}, getenv, io.Discard, &stderr); err != nil {
		t.Fatalf("clean import: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(clean + ".rejects.csv"); !os.IsNotExist(err) {
		t.Errorf("a rejects file was written for a clean import: %v", err)
	}
	if !strings.Contains(stderr.String(), "into postgres://") {
		t.Errorf("the import does not name its database first:\n%s", stderr.String())
	}
	bad := write("bad.csv", "acme,E2,platform,,佐藤,総務,yes,false,2024-01-01,\nacme,E3,platform,,鈴木,総務,false,1,2024-01-01,\n")
	err := run(ctx, []string{"import", bad}, getenv, io.Discard, io.Discard)
	if !errors.Is(err, errRejected) {
		t.Errorf("import with rejected rows: %v, want errRejected", err)
	}
	rejects, rerr := os.ReadFile(bad + ".rejects.csv")
	if rerr != nil || !strings.Contains(string(rejects), "can_manage_employees") || !strings.Contains(string(rejects), "exempt") {
		t.Errorf("rejects file: %v\n%s", rerr, rejects)
	}
	if err := run(ctx, []string{"import", "-accept-rejects", bad}, getenv, io.Discard, io.Discard); err != nil {
		t.Errorf("-accept-rejects: %v", err)
	}
}
