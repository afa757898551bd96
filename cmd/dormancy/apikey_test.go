package main

import (
	"bytes"
	"context"
	"errors"
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
