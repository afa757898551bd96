package postgres_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/postgres"
)

// Two processes running `migrate up` at once on a database that does not
// exist yet: both succeed, the schema is applied once.
func TestMigrateCreatesDatabaseAndIsSafeConcurrently(t *testing.T) {
	ctx := context.Background()
	u, _ := url.Parse(testenv.DSN())
	u.Path = "/" + strings.ReplaceAll(testenv.UniqueID("dormancy_mig"), "-", "_")
	dsn := u.String()
	t.Cleanup(func() { dropDB(t, u.Path[1:]) })

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			errs[i] = postgres.Migrate(ctx, dsn, "up", &out)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrate %d: %v", i, err)
		}
	}
	var out bytes.Buffer
	if err := postgres.Migrate(ctx, dsn, "status", &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "applied") || strings.Contains(out.String(), "pending") {
		t.Fatalf("status after up:\n%s", out.String())
	}
	out.Reset()
	if err := postgres.Migrate(ctx, dsn, "down", &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := postgres.Migrate(ctx, dsn, "status", &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pending") {
		t.Fatalf("status after down:\n%s", out.String())
	}
	if err := postgres.Migrate(ctx, dsn, "sideways", &out); err == nil {
		t.Fatal("unknown direction accepted")
	}
}

func dropDB(t *testing.T, name string) {
	db := testenv.DB(t)
	if _, err := db.Exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`); err != nil {
		t.Log(err)
	}
}
