package postgres

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/policy"
)

// ImportRow is one row of an import file after the importer checked it. A
// row the importer refused carries only Line and the reject fields, so the
// refusals come back in line order with the ones found here.
type ImportRow struct {
	Line         int64
	RejectField  string
	RejectReason string

	CompanyID          string
	LoginID            string
	Version            int64
	IDKind             string
	Email              string
	Name               string
	Department         string
	CanManageEmployees bool
	Exempt             bool
	Retired            bool
	CreatedAt          time.Time
	// CreatedOn marks CreatedAt as a calendar date (held at UTC midnight)
	// that starts at midnight in the company's time zone.
	CreatedOn   bool
	LastLoginAt time.Time // zero: never logged in
	LastLoginOn bool
}

// Import is one bulk import on a connection of its own: rows are streamed
// with COPY into a temporary staging table, checked against each other and
// the companies there, then merged into accounts batch by batch, each
// batch one transaction. Memory stays flat however large the file: the
// rows live in the staging table, not in the process.
type Import struct {
	conn    bun.Conn
	pw      *io.PipeWriter
	w       *bufio.Writer
	copied  chan error
	buf     []byte
	copying bool
	// broken: the COPY failed or was cut short; see Close.
	broken bool
}

const importColumns = `line, reject_field, reject_reason, company_id, login_id, version, id_kind, email, name,
	department, can_manage_employees, exempt, retired, created_at, created_on, last_login_at, last_login_on`

// BeginImport opens the staging table and starts the COPY that Add feeds.
func (s *Store) BeginImport(ctx context.Context) (*Import, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres.BeginImport: %w", err)
	}
	_, err = conn.ExecContext(ctx, `CREATE TEMP TABLE import_rows (
			line bigint NOT NULL, reject_field text, reject_reason text,
			company_id text, login_id text, version bigint, id_kind text, email text, name text,
			department text, can_manage_employees boolean, exempt boolean, retired boolean,
			created_at timestamptz, created_on date, last_login_at timestamptz, last_login_on date)`)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("postgres.BeginImport: staging table: %w", err)
	}
	pr, pw := io.Pipe()
	im := &Import{conn: conn, pw: pw, w: bufio.NewWriterSize(pw, 256<<10), copied: make(chan error, 1), copying: true}
	go func() {
		_, err := pgdriver.CopyFrom(ctx, conn, pr, `COPY import_rows (`+importColumns+`) FROM STDIN`)
		// A failed COPY stops reading: make Add fail instead of blocking.
		pr.CloseWithError(cmpErr(err, io.ErrClosedPipe))
		im.copied <- err
	}()
	return im, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// Add streams one row into the staging table.
func (im *Import) Add(r ImportRow) error {
	b := strconv.AppendInt(im.buf[:0], r.Line, 10)
	if r.RejectField != "" {
		b = append(b, '\t')
		b = appendCopyText(b, copySafe(r.RejectField))
		b = append(b, '\t')
		b = appendCopyText(b, copySafe(r.RejectReason))
		b = append(b, strings.Repeat("\t\\N", 14)...)
	} else {
		b = append(b, "\t\\N\t\\N\t"...)
		for _, s := range []string{r.CompanyID, r.LoginID} {
			b = appendCopyText(b, s)
			b = append(b, '\t')
		}
		b = strconv.AppendInt(b, r.Version, 10)
		for _, s := range []string{r.IDKind, r.Email, r.Name, r.Department} {
			b = append(b, '\t')
			b = appendCopyText(b, s)
		}
		for _, v := range []bool{r.CanManageEmployees, r.Exempt, r.Retired} {
			b = append(b, '\t')
			b = strconv.AppendBool(b, v)
		}
		b = appendCopyTime(b, r.CreatedAt, r.CreatedOn)
		b = appendCopyTime(b, r.LastLoginAt, r.LastLoginOn)
	}
	b = append(b, '\n')
	im.buf = b
	if _, err := im.w.Write(b); err != nil {
		return fmt.Errorf("postgres.Import.Add(line %d): %w", r.Line, err)
	}
	return nil
}

// appendCopyTime appends two columns: the instant, and the calendar date.
func appendCopyTime(b []byte, t time.Time, date bool) []byte {
	switch {
	case t.IsZero():
		return append(b, "\t\\N\t\\N"...)
	case date:
		b = append(b, "\t\\N\t"...)
		return t.AppendFormat(b, time.DateOnly)
	}
	b = append(b, '\t')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.999999Z07:00")
	return append(b, "\t\\N"...)
}

// copySafe makes a reject's text storable: a reason may quote what it
// refused, and Postgres takes neither bad UTF-8 nor NUL in text.
func copySafe(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// appendCopyText escapes s for COPY's text format.
func appendCopyText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, c)
		}
	}
	return b
}

// ImportCounts says how many rows are left to merge and how many the
// staging table refused, after Prepare.
type ImportCounts struct {
	Rows     int64
	Rejected int64
}

// ImportCompanies says what to do with companies an import names that
// dormancy does not know.
type ImportCompanies struct {
	// Create them with default settings in this locale (and an audit
	// event each); otherwise their rows are refused.
	Create bool
	Locale policy.Locale
	// FallbackContact is the created companies' fallback contact
	// (tasks.Company.FallbackContact).
	FallbackContact string
	At              time.Time
}

// Prepare ends the COPY and refuses, in the staging table, rows whose
// company dormancy does not know (unless c.Create) and every repeat of a
// login ID after its first line.
func (im *Import) Prepare(ctx context.Context, c ImportCompanies) (ImportCounts, error) {
	if err := im.endCopy(); err != nil {
		return ImportCounts{}, fmt.Errorf("postgres.Import.Prepare: copy: %w", err)
	}
	if c.Locale == "" {
		c.Locale = policy.DefaultLocale
	}
	if c.Create {
		_, err := im.conn.NewRaw(`WITH new AS (
				INSERT INTO companies (id, locale, fallback_contact, created_at, updated_at)
				SELECT DISTINCT company_id, ?, ?, ?::timestamptz, ?::timestamptz FROM import_rows WHERE reject_field IS NULL
				ORDER BY company_id
				ON CONFLICT (id) DO NOTHING RETURNING id)
			INSERT INTO audit_events (company_id, kind, detail, occurred_at)
			SELECT id, ?, jsonb_build_object('version', 0, 'via', 'import'), ? FROM new`,
			string(c.Locale), c.FallbackContact, c.At, c.At, string(EventCompanyCreated), c.At).Exec(ctx)
		if err != nil {
			return ImportCounts{}, fmt.Errorf("postgres.Import.Prepare: create companies: %w", err)
		}
	}
	for _, q := range []string{
		`ALTER TABLE import_rows ADD PRIMARY KEY (line)`,
		`ANALYZE import_rows`,
		`UPDATE import_rows s SET reject_field = 'company_id',
			reject_reason = 'unknown company ' || quote_literal(s.company_id) || ': create it first, or import with -create-companies'
		WHERE s.reject_field IS NULL AND NOT EXISTS (SELECT 1 FROM companies c WHERE c.id = s.company_id)`,
		`UPDATE import_rows s SET reject_field = 'login_id',
			reject_reason = 'duplicate of line ' || d.first || ' (same company_id and login_id)'
		FROM (SELECT line, first_value(line) OVER (PARTITION BY company_id, login_id ORDER BY line) AS first
			FROM import_rows WHERE reject_field IS NULL) d
		WHERE s.line = d.line AND d.line <> d.first`,
	} {
		if _, err := im.conn.ExecContext(ctx, q); err != nil {
			return ImportCounts{}, fmt.Errorf("postgres.Import.Prepare: %w", err)
		}
	}
	var n ImportCounts
	err := im.conn.NewRaw(`SELECT count(*) FILTER (WHERE reject_field IS NULL) AS rows,
			count(*) FILTER (WHERE reject_field IS NOT NULL) AS rejected
		FROM import_rows`).Scan(ctx, &n)
	if err != nil {
		return ImportCounts{}, fmt.Errorf("postgres.Import.Prepare: %w", err)
	}
	return n, nil
}

func (im *Import) endCopy() error {
	if !im.copying {
		return nil
	}
	im.copying = false
	flushErr := im.w.Flush()
	im.pw.Close()
	err := cmpErr(<-im.copied, flushErr)
	if err != nil {
		im.broken = true
	}
	return err
}

// ImportBatch is what one Merge did.
type ImportBatch struct {
	// Last is the line the batch ended at: the next batch starts after it.
	Last                               int64
	Rows                               int64
	Created, Updated, Unchanged, Stale int64
}

// Merge applies the next batch of up to limit rows after line `after`, in
// one transaction, with the versions rules and consequences of
// SyncAccount. Rows = 0 means nothing is left. A failed batch changed
// nothing and may be run again.
func (im *Import) Merge(ctx context.Context, after int64, limit int, at time.Time) (ImportBatch, error) {
	var span struct {
		Last sql.NullInt64
		Rows int64
	}
	err := im.conn.NewRaw(`SELECT max(line) AS last, count(*) AS rows FROM (
			SELECT line FROM import_rows WHERE reject_field IS NULL AND line > ? ORDER BY line LIMIT ?) b`,
		after, limit).Scan(ctx, &span)
	if err != nil {
		return ImportBatch{}, fmt.Errorf("postgres.Import.Merge(after %d): %w", after, err)
	}
	b := ImportBatch{Last: after, Rows: span.Rows}
	if span.Rows == 0 {
		return b, nil
	}
	b.Last = span.Last.Int64
	err = im.conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		source := func(lines []int64) *bun.RawQuery {
			q := `SELECT s.line, s.company_id, s.login_id, s.version, s.id_kind, s.email, s.name, s.department,
					s.can_manage_employees, s.exempt,
					coalesce(s.created_at, ` + sqlStartOfDate("s.created_on", "c.time_zone") + `) AS created_at,
					coalesce(s.last_login_at, ` + sqlStartOfDate("s.last_login_on", "c.time_zone") + `) AS last_login_at,
					s.retired, false AS exempt_terms, NULL::text AS exempt_reason, NULL::text AS exempt_granted_by,
					NULL::timestamptz AS exempt_until
				FROM import_rows s JOIN companies c ON c.id = s.company_id
				WHERE s.reject_field IS NULL AND s.line > ? AND s.line <= ?`
			if lines == nil {
				return tx.NewRaw(q, after, b.Last)
			}
			return tx.NewRaw(q+` AND s.line = ANY(?::bigint[])`, after, b.Last, pgdialect.Array(lines))
		}
		rows, err := mergeAccounts(ctx, tx, source, true, syncOpts{audit: true, via: "import", at: at})
		if err != nil {
			return err
		}
		b.Created, b.Updated, b.Unchanged, b.Stale = 0, 0, 0, 0
		for _, r := range rows {
			switch r.Outcome {
			case SyncCreated:
				b.Created += r.N
			case SyncUpdated:
				b.Updated += r.N
			case SyncUnchanged:
				b.Unchanged += r.N
			case SyncStale:
				b.Stale += r.N
			}
		}
		if n := b.Created + b.Updated + b.Unchanged + b.Stale; n != b.Rows {
			return fmt.Errorf("merged %d of %d rows", n, b.Rows)
		}
		return nil
	})
	if err != nil {
		return ImportBatch{}, fmt.Errorf("postgres.Import.Merge(after %d): %w", after, err)
	}
	return b, nil
}

// Analyze brings the planner's statistics of accounts up to date after an
// import: before autovacuum gets to it, a freshly filled company would be
// read through its listing index instead of the (company, login ID) key on
// every login, a cost that grows with the company.
func (im *Import) Analyze(ctx context.Context) error {
	if _, err := im.conn.ExecContext(ctx, `ANALYZE accounts`); err != nil {
		return fmt.Errorf("postgres.Import.Analyze: %w", err)
	}
	return nil
}

// Rejects calls fn for every refused row in line order: the importer's
// and the staging table's refusals together.
func (im *Import) Rejects(ctx context.Context, fn func(line int64, field, reason string) error) error {
	rows, err := im.conn.QueryContext(ctx, `SELECT line, reject_field, reject_reason FROM import_rows
		WHERE reject_field IS NOT NULL ORDER BY line`)
	if err != nil {
		return fmt.Errorf("postgres.Import.Rejects: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var line int64
		var field, reason string
		if err := rows.Scan(&line, &field, &reason); err != nil {
			return fmt.Errorf("postgres.Import.Rejects: %w", err)
		}
		if err := fn(line, field, reason); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres.Import.Rejects: %w", err)
	}
	return nil
}

// Close drops the staging table and returns the connection to the pool.
// A connection whose COPY was cut short is in the middle of the protocol
// and is discarded instead.
func (im *Import) Close() error {
	if im.copying {
		im.copying = false
		im.broken = true
		im.pw.CloseWithError(errors.New("import closed"))
		<-im.copied
	}
	if im.broken {
		_ = im.conn.Raw(func(any) error { return driver.ErrBadConn })
		return im.conn.Close()
	}
	_, err := im.conn.ExecContext(context.Background(), `DROP TABLE IF EXISTS pg_temp.import_rows`)
	return errors.Join(err, im.conn.Close())
}
