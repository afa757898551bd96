package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/postgres"
)

// A locked login reads the account's newest link and the mail's link by
// their keys however many tokens are kept, in the generic plan a prepared
// statement settles on after its first runs, and before autovacuum has
// analyzed the table: the newest by (account, created_at), the mail's by
// its id, never a walk of the live links' partial index.
func TestTokenReadsKeepToTheirKeys(t *testing.T) {
	ctx := context.Background()
	db := testenv.DB(t)
	company := testenv.UniqueID("plan")
	for _, q := range []string{
		`INSERT INTO companies (id) VALUES ($1)`,
		`INSERT INTO accounts (company_id, login_id, id_kind, email, name, created_at)
		 SELECT $1, 'p' || g || '@example.com', 'email', 'p' || g || '@example.com', 'n', now() FROM generate_series(1, 3000) g`,
		`INSERT INTO verification_tokens (account_id, token_hash, seed, email, created_at, expires_at)
		 SELECT id, sha256(('plan' || id)::bytea), sha256(('seed' || id)::bytea), email, now(), now() + interval '1 day'
		 FROM accounts WHERE company_id = $1`,
	} {
		if _, err := db.ExecContext(ctx, q, company); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		statement, args, index string
	}{
		{"LiveTokenSeed", "(1, now())", "verification_tokens_pkey"},
		{"LatestTokenIssuedAt", "(1)", "verification_tokens_account"},
	} {
		if _, err := conn.ExecContext(ctx, `PREPARE plan_test AS `+postgres.StatementSQL(c.statement)); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.QueryContext(ctx, `EXPLAIN EXECUTE plan_test`+c.args)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		if _, err := conn.ExecContext(ctx, `DEALLOCATE plan_test`); err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, c.index) || strings.Contains(text, "Seq Scan on verification_tokens") || strings.Contains(text, "verification_tokens_live") {
			t.Errorf("%s: want a scan of %s alone, got:\n%s", c.statement, c.index, text)
		}
	}
}
