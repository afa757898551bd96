// Package importer loads a host's employees into dormancy in bulk: the day
// a platform adopts dormancy, every employee with their last interactive
// login date, from a CSV file with a header row or a JSON Lines file.
//
// An import streams: rows are checked one at a time and copied into a
// staging table in Postgres, where the rows that repeat a login ID or name
// an unknown company are refused too; then they are merged into the
// accounts in batches, each batch one transaction, by the same rules as the
// directory tasks (versions, consequences of a change). Memory stays flat
// whatever the file's size.
//
// An import never emails anyone and never locks an account: accounts that
// arrive already dormant are locked quietly by the next dormancy sweep.
// Running the same file again changes nothing.
package importer

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// Format is an import file's format.
type Format string

const (
	// CSV: RFC 4180, a header row naming the columns, UTF-8.
	CSV Format = "csv"
	// JSONL: one JSON object per line, with the same field names.
	JSONL Format = "jsonl"
)

// ParseFormat accepts csv and jsonl (and ndjson, another name for it).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return CSV, nil
	case "jsonl", "ndjson":
		return JSONL, nil
	}
	return "", fmt.Errorf("importer: unknown format %q (want csv or jsonl)", s)
}

// FormatOf guesses a file's format from its name: JSON Lines for .jsonl
// and .ndjson, CSV otherwise.
func FormatOf(name string) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson":
		return JSONL
	}
	return CSV
}

// Phase is a stage of an import, for progress reports.
type Phase string

const (
	// PhaseRead: checking rows and copying them to Postgres; Done and
	// Total count bytes of the file.
	PhaseRead Phase = "read"
	// PhaseMerge: applying them to the accounts; Done and Total count rows.
	PhaseMerge Phase = "merge"
)

// Progress is one progress report. Total is 0 when unknown (a pipe).
type Progress struct {
	Phase       Phase
	Done, Total int64
}

// Options tune an import; the zero value works.
type Options struct {
	Format Format // default CSV
	// Rejects receives the refused rows as CSV: line,field,reason, in line
	// order. Nil discards them (the count is in the Summary either way).
	Rejects io.Writer
	// BatchSize is how many rows one merge transaction applies; default
	// 5000. Larger batches hold more account rows locked at once.
	BatchSize int
	// Size is the file's size in bytes, for progress; 0 if unknown.
	Size int64
	// CreateCompanies creates the companies the file names that dormancy
	// does not know, with default settings in CompanyLocale (default ja).
	// Without it their rows are refused: a mistyped company ID must not
	// become a tenant.
	CreateCompanies bool
	// Companies, when set, is told the companies named by the rows that
	// passed the row checks (an unknown company among them), when the
	// import is done.
	Companies     func([]string)
	CompanyLocale policy.Locale
	// CompanyContact is the fallback contact of the companies it creates.
	CompanyContact string
	// Now is the clock for the audit trail; nil means time.Now.
	Now func() time.Time
	// ProgressFunc is called as the import advances; nil for silence.
	ProgressFunc func(Progress)
}

// Summary is what an import did. Every row read is counted once, in one
// of Created, Updated, Unchanged, Stale (a newer version was stored
// already) and Rejected.
type Summary struct {
	Rows      int64
	Created   int64
	Updated   int64
	Unchanged int64
	Stale     int64
	Rejected  int64
}

// maxCompanies bounds the companies a Summary names; a file naming more
// is not an import of one platform's directory.
const maxCompanies = 100_000

// progressEvery is how many rows pass between read-phase reports.
const progressEvery = 4096

// Run imports the employees in r into store.
//
// A file that cannot be read as a whole (a bad header, a broken stream)
// fails with an error. Rows that are refused are counted and written to
// Options.Rejects; the other rows are imported. A failure during the merge
// leaves the batches merged so far in place; running the import again
// finishes it, since rows already applied are unchanged the second time.
func Run(ctx context.Context, store *postgres.Store, r io.Reader, o Options) (Summary, error) {
	if o.Format == "" {
		o.Format = CSV
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	report := o.ProgressFunc
	if report == nil {
		report = func(Progress) {}
	}
	rows, err := newRowReader(o.Format, r)
	if err != nil {
		return Summary{}, err
	}
	im, err := store.BeginImport(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("importer: %w", err)
	}
	defer im.Close()

	var s Summary
	companies := map[string]bool{}
	report(Progress{Phase: PhaseRead, Total: o.Size})
	for {
		row, err := rows.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, err
		}
		s.Rows++
		if row.RejectField == "" {
			row = refuseFuture(row, o.Now())
		}
		if row.RejectField == "" && len(companies) < maxCompanies {
			companies[row.CompanyID] = true
		}
		if err := im.Add(row); err != nil {
			return s, fmt.Errorf("importer: %w", err)
		}
		if s.Rows%progressEvery == 0 {
			report(Progress{Phase: PhaseRead, Done: rows.offset(), Total: o.Size})
		}
	}
	report(Progress{Phase: PhaseRead, Done: rows.offset(), Total: max(o.Size, rows.offset())})

	counts, err := im.Prepare(ctx, postgres.ImportCompanies{Create: o.CreateCompanies, Locale: o.CompanyLocale,
		FallbackContact: o.CompanyContact, At: o.Now()})
	if err != nil {
		return s, fmt.Errorf("importer: %w", err)
	}
	s.Rejected = counts.Rejected
	if err := writeRejects(ctx, im, o.Rejects); err != nil {
		return s, err
	}

	report(Progress{Phase: PhaseMerge, Total: counts.Rows})
	var done int64
	for after := int64(0); ; {
		b, err := merge(ctx, im, after, o.BatchSize, o.Now)
		if err != nil {
			return s, err
		}
		if b.Rows == 0 {
			break
		}
		s.Created += b.Created
		s.Updated += b.Updated
		s.Unchanged += b.Unchanged
		s.Stale += b.Stale
		done += b.Rows
		after = b.Last
		report(Progress{Phase: PhaseMerge, Done: done, Total: counts.Rows})
	}
	if s.Created > 0 || s.Updated > 0 {
		if err := im.Analyze(ctx); err != nil {
			return s, fmt.Errorf("importer: %w", err)
		}
	}
	if o.Companies != nil {
		o.Companies(slices.Sorted(maps.Keys(companies)))
	}
	return s, nil
}

// merge runs one batch, again when the database says the failure was
// passing (a deadlock with another import, a serialisation failure): a
// failed batch changed nothing.
func merge(ctx context.Context, im *postgres.Import, after int64, limit int, now func() time.Time) (postgres.ImportBatch, error) {
	var err error
	for range 3 {
		var b postgres.ImportBatch
		if b, err = im.Merge(ctx, after, limit, now()); err == nil {
			return b, nil
		}
		if !postgres.Retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return postgres.ImportBatch{}, fmt.Errorf("importer: %w", err)
}

func writeRejects(ctx context.Context, im *postgres.Import, w io.Writer) error {
	if w == nil {
		return nil
	}
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"line", "field", "reason"}); err != nil {
		return fmt.Errorf("importer: rejects: %w", err)
	}
	err := im.Rejects(ctx, func(line int64, field, reason string) error {
		return cw.Write([]string{strconv.FormatInt(line, 10), field, reason})
	})
	if err != nil {
		return fmt.Errorf("importer: rejects: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("importer: rejects: %w", err)
	}
	return nil
}

// refuseFuture rejects a row whose creation or login lies in the future, as
// the API refuses the same employee: a login date from the future would put
// the lock off. A date alone is held at UTC midnight and starts at midnight
// in the company's zone, up to 14 hours either way, so it counts as future
// only from the day after today.
func refuseFuture(row postgres.ImportRow, now time.Time) postgres.ImportRow {
	for _, t := range []struct {
		field string
		at    time.Time
		date  bool
	}{{"created_at", row.CreatedAt, row.CreatedOn}, {"last_login_at", row.LastLoginAt, row.LastLoginOn}} {
		limit := now.Add(tasks.MaxAttemptSkew)
		if t.date {
			limit = now.Add(24 * time.Hour)
		}
		if t.at.After(limit) {
			return postgres.ImportRow{Line: row.Line, RejectField: t.field, RejectReason: t.at.UTC().Format(time.RFC3339) + " is in the future"}
		}
	}
	return row
}
