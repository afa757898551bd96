package importer_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/importer"
	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var importNow = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

type bundle struct {
	ctx   context.Context
	store *postgres.Store
	db    *sql.DB
	// named is what the last run reported to Options.Companies.
	named []string
}

func setup(t testing.TB) *bundle {
	t.Helper()
	return &bundle{ctx: context.Background(), store: testenv.Store(t), db: testenv.DB(t)}
}

// companies creates n companies and returns their ids.
func (b *bundle) companies(t testing.TB, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testenv.UniqueID("co")
		if err := b.store.UpsertCompany(b.ctx, postgres.CompanyRecord{ID: ids[i], Name: "Example"}); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func (b *bundle) count(t testing.TB, q string, args ...any) int {
	t.Helper()
	return testenv.Count(t, b.db, q, args...)
}

func (b *bundle) run(t testing.TB, path string, o importer.Options) (importer.Summary, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rejects bytes.Buffer
	o.Rejects = &rejects
	if o.Now == nil {
		o.Now = func() time.Time { return importNow }
	}
	o.Companies = func(cos []string) { b.named = cos }
	s, err := importer.Run(b.ctx, b.store, f, o)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return s, rejects.String()
}

const header = "company_id,login_id,id_kind,email,name,department,can_manage_employees,exempt,created_at,last_login_at\n"

// generate writes n employee rows spread over the companies. broken maps a
// row index to a replacement row (which may span lines); it returns the
// line each row index starts on.
func generate(t testing.TB, path string, companies []string, n int, broken map[int]string) []int {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString(header)
	lines := make([]int, n)
	line := 2
	for i := range n {
		lines[i] = line
		row, ok := broken[i]
		if !ok {
			row = goodRow(companies, i)
		}
		w.WriteString(row)
		line += strings.Count(row, "\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// goodRow is row i: a third email IDs, the rest platform IDs, some with
// a contact address; every 50th an administrator; login dates spread over
// the last year, so many are dormant already.
func goodRow(companies []string, i int) string {
	co := companies[i%len(companies)]
	login, kind, email := fmt.Sprintf("E%07d", i), "platform", ""
	switch {
	case i%3 == 0:
		login, kind = fmt.Sprintf("emp%07d@example.com", i), "email"
	case i%2 == 1:
		email = fmt.Sprintf("p%07d@example.com", i)
	}
	last := ""
	if i%10 != 0 {
		last = importNow.Add(-time.Duration(i%365) * 24 * time.Hour).Format(time.RFC3339)
	}
	return fmt.Sprintf("%s,%s,%s,%s,社員 %d,営業部,%t,false,2023-04-01T09:00:00+09:00,%s\n",
		co, login, kind, email, i, i%50 == 0, last)
}

// The import: 100,000 rows across several companies, 10 of them
// broken in the ways files break. Exactly the good rows are imported, the
// rejects name exactly the 10 by line and field, nobody is emailed,
// nothing is locked, and a second run changes nothing.
func TestImportHundredThousandRowsWithTenBroken(t *testing.T) {
	b := setup(t)
	cos := b.companies(t, 5)
	const n = 100_000
	row := func(i int, f string) string { return fmt.Sprintf(f, cos[i%len(cos)]) }
	broken := map[int]string{
		101:   row(101, "%s,E-bad-date,platform,,名無し,営業部,false,false,2025-13-45,\n"),
		2002:  row(2002, "%s,E-bad-login-date,platform,,名無し,営業部,false,false,2023-04-01,yesterday\n"),
		3003:  row(3003, "%s,E-ldap,ldap,,名無し,営業部,false,false,2023-04-01,\n"),
		4004:  row(4004, "%s,,platform,,名無し,営業部,false,false,2023-04-01,\n"),
		5005:  row(5005, "%s,E-latin1,platform,,Jos\xe9,営業部,false,false,2023-04-01,\n"),
		6006:  row(6006, "%s,E-sjis-dept,platform,,名無し,\x89\x63\x8b\xc6,false,false,2023-04-01,\n"),
		7007:  row(7007, "%s,E-crlf,platform,,\"Taro\r\nBcc: x@example.com\",営業部,false,false,2023-04-01,\n"),
		8005:  row(8005, "%s,E0000005,platform,,二人目,営業部,false,false,2023-04-01,\n"), // row 5's login, same company
		9009:  row(9009, "%s,E-admin,platform,,名無し,営業部,maybe,false,2023-04-01,\n"),
		10010: "nowhere-co,E-nowhere,platform,,名無し,営業部,false,false,2023-04-01,\n",
	}
	// Row 8005 repeats row 5 only if both fall in the same company.
	if 8005%len(cos) != 5%len(cos) {
		t.Fatal("fixture: the duplicate must be in row 5's company")
	}
	path := filepath.Join(t.TempDir(), "employees.csv")
	lines := generate(t, path, cos, n, broken)

	var progress bytes.Buffer
	s, rejects := b.run(t, path, importer.Options{ProgressFunc: importer.LineProgress(&progress), BatchSize: 7000})
	want := importer.Summary{Rows: n, Created: n - 10, Rejected: 10}
	if s != want {
		t.Errorf("summary = %+v, want %+v", s, want)
	}
	if wantCos := slices.Sorted(slices.Values(append(slices.Clone(cos), "nowhere-co"))); !slices.Equal(b.named, wantCos) {
		t.Errorf("companies named = %v, want %v", b.named, wantCos)
	}
	wantRejects := "line,field,reason\n" +
		fmt.Sprintf("%d,created_at,\"want an RFC 3339 time (2026-04-01T09:30:00+09:00) or a date (2026-04-01), got \"\"2025-13-45\"\"\"\n", lines[101]) +
		fmt.Sprintf("%d,last_login_at,\"want an RFC 3339 time (2026-04-01T09:30:00+09:00) or a date (2026-04-01), got \"\"yesterday\"\"\"\n", lines[2002]) +
		fmt.Sprintf("%d,id_kind,\"unknown ID kind \"\"ldap\"\" (want email or platform)\"\n", lines[3003]) +
		fmt.Sprintf("%d,login_id,required\n", lines[4004]) +
		fmt.Sprintf("%d,name,not valid UTF-8\n", lines[5005]) +
		fmt.Sprintf("%d,department,not valid UTF-8\n", lines[6006]) +
		fmt.Sprintf("%d,name,contains control characters\n", lines[7007]) +
		fmt.Sprintf("%d,login_id,duplicate of line %d (same company_id and login_id)\n", lines[8005], lines[5]) +
		fmt.Sprintf("%d,can_manage_employees,\"want true or false, got \"\"maybe\"\"\"\n", lines[9009]) +
		fmt.Sprintf("%d,company_id,\"unknown company 'nowhere-co': create it first, or import with -create-companies\"\n", lines[10010])
	if rejects != wantRejects {
		t.Errorf("rejects:\n%s\nwant:\n%s", rejects, wantRejects)
	}
	// The CRLF row took two lines: the rows after it are counted right.
	if lines[8005] != 8005+3 {
		t.Fatalf("fixture: line of row 8005 = %d", lines[8005])
	}

	in := `company_id IN ($1, $2, $3, $4, $5)`
	args := []any{cos[0], cos[1], cos[2], cos[3], cos[4]}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE `+in, args...); got != n-10 {
		t.Errorf("accounts = %d, want %d", got, n-10)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE `+in+` AND login_id LIKE 'E-%'`, args...); got != 0 {
		t.Errorf("%d broken rows imported", got)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE `+in+` AND login_id = 'E0000005' AND name = '社員 5'`, args...); got != 1 {
		t.Error("the first of two rows with one login ID is not the one imported")
	}
	// Every row's values, checked in bulk against what the generator wrote.
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE `+in+` AND (
		(login_id LIKE 'emp%' AND (id_kind <> 'email' OR email <> login_id)) OR
		(login_id LIKE 'E%' AND id_kind <> 'platform') OR
		name <> '社員 ' || ltrim(substring(login_id from '[0-9]+'), '0') AND login_id <> 'E0000000' AND login_id <> 'emp0000000@example.com' OR
		can_manage_employees <> (substring(login_id from '[0-9]+')::int % 50 = 0) OR
		created_at <> '2023-04-01T00:00:00Z' OR
		(last_login_at IS NULL) <> (substring(login_id from '[0-9]+')::int % 10 = 0) OR
		status <> 'active' OR host_version <> 0)`, args...); got != 0 {
		t.Errorf("%d accounts with values other than the file's", got)
	}
	// Nobody emailed, nothing locked: the sweep does that, quietly.
	if got := b.count(t, `SELECT count(*) FROM mails WHERE `+in, args...); got != 0 {
		t.Errorf("mails = %d", got)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE `+in+` AND lock_state <> 'active'`, args...); got != 0 {
		t.Errorf("%d accounts locked by the import", got)
	}
	if got := b.count(t, `SELECT coalesce(sum((detail->>'count')::int), 0) FROM audit_events WHERE kind = 'accounts_imported' AND `+in, args...); got != n-10 {
		t.Errorf("accounts_imported events count %d accounts, want %d", got, n-10)
	}
	if !strings.Contains(progress.String(), "import: merged 99990 of 99990 rows (100%)") {
		t.Errorf("progress:\n%s", progress.String())
	}

	s, again := b.run(t, path, importer.Options{})
	want = importer.Summary{Rows: n, Unchanged: n - 10, Rejected: 10}
	if s != want {
		t.Errorf("second run = %+v, want %+v", s, want)
	}
	if again != wantRejects {
		t.Errorf("second run's rejects differ:\n%s", again)
	}
}

func TestImportJSONLines(t *testing.T) {
	b := setup(t)
	co := b.companies(t, 1)[0]
	file := strings.Join([]string{
		`{"company_id":"` + co + `","login_id":"hanako@example.com","id_kind":"email","name":"鈴木 花子","created_at":"2023-04-01","last_login_at":"2026-08-01T10:00:00+09:00","can_manage_employees":true}`,
		``,
		`{"company_id":"` + co + `","login_id":"E1","id_kind":"platform","name":"佐藤","created_at":"2023-04-01","last_login_at":null,"version":3}`,
		`{"company_id":"` + co + `","login_id":"E2","id_kind":"platform","name":"Taro\r\nYamada","created_at":"2023-04-01"}`,
		`{"company_id":"` + co + `","login_id":"E3","id_kind":"platform","name":"x","created_at":"2023-04-01","exempt":"yes"}`,
		`{"company_id":"` + co + `","login_id":"E4","id_kind":"platform","name":"x","created_at":"2023-04-01","manager":"E1"}`,
		`{"company_id":"` + co + `","login_id":"E5","id_kind":"platform","name":"Jos` + "\xe9" + `","created_at":"2023-04-01"}`,
		`{"company_id":"` + co + `","login_id":"E6","id_kind":"platform","name":"x","created_at":"2023-04-01","version":1.5}`,
		`{"company_id":"` + co + `","login_id":"E7",`,
		`[1,2]`,
		`{"company_id":"` + co + `","login_id":7,"id_kind":"platform","name":"x","created_at":"2023-04-01"}`,
		`{"company_id":"` + co + `","login_id":"E8","id_kind":"platform","name":"x","created_at":"2023-04-01","status":"retired"}` + "\r",
		`{"company_id":"` + co + `","bad\u0000key":1}`,
		`{"company_id":"` + co + `","login_id":"E9","id_kind":"platform","name":"x","created_at":"2023-04-01","last_login_at":"2999-01-01T00:00:00Z"}`,
		`{"company_id":"` + co + `","login_id":"E10","id_kind":"platform","name":"x","created_at":"2999-01-01"}`,
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "employees.jsonl")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := importer.FormatOf(path); got != importer.JSONL {
		t.Fatalf("FormatOf = %s", got)
	}
	s, rejects := b.run(t, path, importer.Options{Format: importer.JSONL})
	if want := (importer.Summary{Rows: 14, Created: 3, Rejected: 11}); s != want {
		t.Errorf("summary = %+v, want %+v", s, want)
	}
	want := `line,field,reason
4,name,contains control characters
5,exempt,want true or false
6,manager,unknown field
7,name,not valid UTF-8
8,version,want a whole number
9,(row),not a JSON object
10,(row),not a JSON object
11,login_id,want a string
13,"""bad\x00key""",unknown field
14,last_login_at,2999-01-01T00:00:00Z is in the future
15,created_at,2999-01-01T00:00:00Z is in the future
`
	if rejects != want {
		t.Errorf("rejects:\n%s\nwant:\n%s", rejects, want)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	var created time.Time
	var email string
	var admin bool
	if err := b.db.QueryRow(`SELECT created_at, email, can_manage_employees FROM accounts WHERE company_id = $1 AND login_id = 'hanako@example.com'`, co).
		Scan(&created, &email, &admin); err != nil {
		t.Fatal(err)
	}
	if !created.Equal(time.Date(2023, 4, 1, 0, 0, 0, 0, tokyo)) || email != "hanako@example.com" || !admin {
		t.Errorf("hanako = %v %s admin=%v", created, email, admin)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND login_id = 'E1' AND host_version = 3`, co); got != 1 {
		t.Error("E1's version not kept")
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND login_id = 'E8' AND status = 'retired'`, co); got != 1 {
		t.Error("E8 not imported retired")
	}
}

// A second file with changes: they apply with the consequences a
// directory event has, each audited; a row older than a versioned event
// already applied is stale.
func TestImportChangesAndTheirConsequences(t *testing.T) {
	b := setup(t)
	co := b.companies(t, 1)[0]
	dir := t.TempDir()
	write := func(name, header string, rows ...string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(header+strings.Join(rows, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	r := func(login, email, name, status string) string {
		return fmt.Sprintf("%s,%s,platform,%s,%s,営業部,false,false,2023-04-01,2026-11-01,%s\n", co, login, email, name, status)
	}
	withStatus := strings.TrimSuffix(header, "\n") + ",status\n"
	first := write("first.csv", withStatus,
		r("E1", "e1@example.com", "一", ""),
		r("E2", "e2@example.com", "二", ""),
		r("E3", "", "三", ""),
		r("E4", "", "四", ""))
	if s, _ := b.run(t, first, importer.Options{}); s.Created != 4 {
		t.Fatalf("first import = %+v", s)
	}
	ids := map[string]int64{}
	for _, login := range []string{"E1", "E2", "E3", "E4"} {
		var id int64
		if err := b.db.QueryRow(`SELECT id FROM accounts WHERE company_id = $1 AND login_id = $2`, co, login).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[login] = id
	}
	// E1 has a live link; E2 is a recipient; E4 was changed by a versioned event.
	if _, err := b.db.Exec(`INSERT INTO verification_tokens (account_id, token_hash, email, created_at, expires_at)
		VALUES ($1, decode(repeat('dd', 32), 'hex'), 'e1@example.com', $2, $3)`, ids["E1"], importNow, importNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.store.ReplaceLoginNotificationRecipients(b.ctx, co, 0, []int64{ids["E2"]}, time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	e4 := policy.Employee{CompanyID: co, LoginID: "E4", Name: "四 (host)", Department: "営業部",
		Account: policy.Account{IDKind: policy.IDKindPlatform, CreatedAt: importNow.Add(-time.Hour)}}
	if _, _, err := b.store.SyncAccount(b.ctx, e4, 5, importNow); err != nil {
		t.Fatal(err)
	}

	second := write("second.csv", withStatus,
		r("E1", "moved@example.com", "一", "active"),
		r("E2", "e2@example.com", "二", "retired"),
		r("E3", "", "三", ""),
		r("E4", "", "四", ""))
	s, rejects := b.run(t, second, importer.Options{})
	if want := (importer.Summary{Rows: 4, Updated: 2, Unchanged: 1, Stale: 1}); s != want {
		t.Errorf("second import = %+v, want %+v (rejects %s)", s, want, rejects)
	}
	if got := b.count(t, `SELECT count(*) FROM verification_tokens WHERE account_id = $1 AND revoked_reason = 'email_changed'`, ids["E1"]); got != 1 {
		t.Error("E1's link survived the address change")
	}
	if got := b.count(t, `SELECT count(*) FROM login_notification_recipients WHERE account_id = $1`, ids["E2"]); got != 0 {
		t.Error("retired E2 still a recipient")
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE account_id = ANY($1) AND kind IN ('account_updated', 'account_retired')
		AND detail->>'via' = 'import'`, fmt.Sprintf("{%d,%d}", ids["E1"], ids["E2"])); got != 2 {
		t.Errorf("per-account audit events = %d, want 2", got)
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE id = $1 AND name = '四 (host)'`, ids["E4"]); got != 1 {
		t.Error("an unversioned row overwrote a versioned event")
	}
}

func TestImportCreatesCompaniesOnlyWhenAsked(t *testing.T) {
	b := setup(t)
	co := testenv.UniqueID("new")
	path := filepath.Join(t.TempDir(), "e.csv")
	if err := os.WriteFile(path, []byte(header+co+",E1,platform,,一,,false,false,2023-04-01,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, _ := b.run(t, path, importer.Options{}); s.Rejected != 1 || s.Created != 0 {
		t.Errorf("without -create-companies: %+v", s)
	}
	if got := b.count(t, `SELECT count(*) FROM companies WHERE id = $1`, co); got != 0 {
		t.Fatal("company created without being asked")
	}
	if s, _ := b.run(t, path, importer.Options{CreateCompanies: true, CompanyLocale: policy.LocaleEN, CompanyContact: "help desk"}); s.Created != 1 {
		t.Errorf("with -create-companies: %+v", s)
	}
	if got := b.count(t, `SELECT count(*) FROM companies WHERE id = $1 AND locale = 'en' AND time_zone = 'Asia/Tokyo'
		AND fallback_contact = 'help desk'`, co); got != 1 {
		t.Error("company not created with defaults in the given locale and the fallback contact")
	}
	if got := b.count(t, `SELECT count(*) FROM audit_events WHERE company_id = $1 AND kind = 'company_created'`, co); got != 1 {
		t.Error("company creation not audited")
	}
}

// A file that cannot be read as a whole stops before touching anything.
func TestImportRefusesUnreadableFiles(t *testing.T) {
	b := setup(t)
	co := b.companies(t, 1)[0]
	cases := map[string]string{
		"empty":              "",
		"unknown column":     "company_id,login_id,id_kind,name,created_at,manager\n",
		"column twice":       "company_id,login_id,id_kind,name,name,created_at\n",
		"required missing":   "company_id,login_id,name,created_at\n",
		"quote left open":    header + co + ",E1,platform,,\"Taro" + strings.Repeat("x\n", importer.MaxRowBytes) + "\n",
		"bare quote header":  "company_id,lo\"gin_id\n",
		"header with spaces": "company_id, login_id ,id_kind,name,created_at,department\n" + co + ",E1,platform,一,2023-04-01,\"a,b\"\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := importer.Run(b.ctx, b.store, strings.NewReader(content), importer.Options{})
			if name == "header with spaces" {
				if err != nil {
					t.Errorf("spaces around header names: %v", err)
				}
				return
			}
			if err == nil {
				t.Error("imported")
			}
		})
	}
	if got := b.count(t, `SELECT count(*) FROM accounts WHERE company_id = $1 AND login_id = 'E1' AND department = 'a,b'`, co); got != 1 {
		t.Error("the valid file was not imported")
	}
	// A byte-order mark, as spreadsheets write, is not part of the first name.
	bom := "\ufeff" + header + co + ",E2,platform,,二,,false,false,2023-04-01,\r\n"
	if s, err := importer.Run(b.ctx, b.store, strings.NewReader(bom), importer.Options{}); err != nil || s.Created != 1 {
		t.Errorf("BOM and CRLF: %+v, %v", s, err)
	}
	// A JSON line beyond the limit is refused alone; the next line imports.
	long := `{"company_id":"` + co + `","login_id":"E3","id_kind":"platform","name":"` + strings.Repeat("x", importer.MaxRowBytes) + `","created_at":"2023-04-01"}` + "\n" +
		`{"company_id":"` + co + `","login_id":"E4","id_kind":"platform","name":"四","created_at":"2023-04-01"}`
	var rejects bytes.Buffer
	s, err := importer.Run(b.ctx, b.store, strings.NewReader(long), importer.Options{Format: importer.JSONL, Rejects: &rejects})
	if err != nil || s.Created != 1 || s.Rejected != 1 || rejects.String() != "line,field,reason\n1,(row),longer than 1 MiB\n" {
		t.Errorf("long JSON line: %+v, %v, rejects %q", s, err, rejects.String())
	}
}

func TestLineProgress(t *testing.T) {
	var out bytes.Buffer
	p := importer.LineProgress(&out)
	p(importer.Progress{Phase: importer.PhaseRead, Total: 10 << 20})
	for done := int64(0); done <= 10<<20; done += 1 << 19 {
		p(importer.Progress{Phase: importer.PhaseRead, Done: done, Total: 10 << 20})
	}
	p(importer.Progress{Phase: importer.PhaseMerge, Total: 3})
	p(importer.Progress{Phase: importer.PhaseMerge, Done: 3, Total: 3})
	p(importer.Progress{Phase: importer.PhaseMerge, Done: 3, Total: 3})
	want := `import: read 1.0 MiB of 10.0 MiB (10%)
import: read 2.0 MiB of 10.0 MiB (20%)
import: read 3.0 MiB of 10.0 MiB (30%)
import: read 4.0 MiB of 10.0 MiB (40%)
import: read 5.0 MiB of 10.0 MiB (50%)
import: read 6.0 MiB of 10.0 MiB (60%)
import: read 7.0 MiB of 10.0 MiB (70%)
import: read 8.0 MiB of 10.0 MiB (80%)
import: read 9.0 MiB of 10.0 MiB (90%)
import: read 10.0 MiB of 10.0 MiB (100%)
import: merged 3 of 3 rows (100%)
`
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
}

// An import leaves the planner's statistics of accounts current, so the
// first logins of a company it filled use the (company, login ID) key.
func TestImportAnalyzesAccounts(t *testing.T) {
	b := setup(t)
	co := b.companies(t, 1)[0]
	var before sql.NullTime
	if err := b.db.QueryRow(`SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'accounts' AND schemaname = current_schema()`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "one.csv")
	if err := os.WriteFile(path, []byte(header+co+",E1,platform,,山田,総務,false,false,2024-01-01,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, _ := b.run(t, path, importer.Options{}); s.Created != 1 {
		t.Fatalf("import: %+v", s)
	}
	var after sql.NullTime
	if err := b.db.QueryRow(`SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'accounts' AND schemaname = current_schema()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if !after.Valid || before.Valid && !after.Time.After(before.Time) {
		t.Errorf("accounts last analyzed %v, before the import %v", after, before)
	}
}
