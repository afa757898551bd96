package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/dormancy/dormancy/importer"
	"github.com/dormancy/dormancy/tasks"
)

const importUsage = `usage: dormancy import [-format csv|jsonl] [-rejects FILE] [-create-companies [-fallback-contact TEXT]] [-batch N] [-accept-rejects] [-lock-notices] FILE

Loads employees from FILE (CSV with a header row, or JSON Lines; "-" reads
standard input) into the companies they name, which must exist unless
-create-companies is given. Refused rows go to the rejects file (default
FILE.rejects.csv) with line, field and reason; the file is written only when
a row was refused, and the command then exits 3 (-accept-rejects: 0).
Running the same file again changes nothing. Nobody is emailed and nothing
is locked: the dormancy sweep locks accounts that arrive dormant. In the
companies that asked for lock notices, that first sweep sends none unless
-lock-notices is given.
`

// runImport is `dormancy import`. Progress goes to stderr (a bar on a
// terminal, plain lines otherwise), the summary to stdout.
func runImport(ctx context.Context, cfg *Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage) }
	formatFlag := fs.String("format", "", "csv or jsonl (default: from the file name, else csv)")
	rejectsPath := fs.String("rejects", "", "file for the refused rows (default FILE.rejects.csv)")
	batch := fs.Int("batch", 5000, "rows merged per transaction")
	contact := fs.String("fallback-contact", "", "with -create-companies: whom a locked user asks when no administrator of a created company can act")
	createCompanies := fs.Bool("create-companies", false, "create unknown companies with default settings (locale DEFAULT_LOCALE) instead of refusing their rows")
	acceptRejects := fs.Bool("accept-rejects", false, "exit 0 even when rows were rejected")
	lockNotices := fs.Bool("lock-notices", false, "let the next sweep send lock notices for the accounts it locks in these companies")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("import: %w", errUsage)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("import wants one FILE: %w", errUsage)
	}
	path := fs.Arg(0)
	if *contact != "" && !*createCompanies {
		return fmt.Errorf("import: -fallback-contact applies to the companies -create-companies creates: %w", errUsage)
	}
	if err := tasks.CheckFallbackContact(*contact); err != nil {
		return fmt.Errorf("import: -fallback-contact: %w", err)
	}

	format := importer.FormatOf(path)
	if *formatFlag != "" {
		f, err := importer.ParseFormat(*formatFlag)
		if err != nil {
			return err
		}
		format = f
	}
	in, size := io.Reader(os.Stdin), int64(0)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	if *rejectsPath == "" {
		*rejectsPath = "rejects.csv"
		if path != "-" {
			*rejectsPath = path + ".rejects.csv"
		}
	}
	// The rejects go to a temporary file beside the named one, which
	// appears only when something was rejected.
	rejects, err := os.CreateTemp(filepath.Dir(*rejectsPath), "."+filepath.Base(*rejectsPath)+".*")
	if err != nil {
		return fmt.Errorf("import: rejects file: %w", err)
	}
	defer func() {
		rejects.Close()
		os.Remove(rejects.Name())
	}()

	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintf(stderr, "import %s into %s\n", path, redacted(cfg.DatabaseURL))

	var named []string
	opts := importer.Options{
		Format: format, Rejects: rejects, BatchSize: *batch, Size: size,
		CreateCompanies: *createCompanies, CompanyLocale: cfg.DefaultLocale,
		CompanyContact: *contact, Companies: func(cos []string) { named = cos },
	}
	var bar *importer.Bar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = importer.NewBar(stderr)
		opts.ProgressFunc = bar.Report
	} else {
		opts.ProgressFunc = importer.LineProgress(stderr)
	}
	s, err := importer.Run(ctx, store, in, opts)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if err := rejects.Close(); err != nil {
		return fmt.Errorf("import: rejects file: %w", err)
	}
	if !*lockNotices {
		if err := store.PauseLockNotices(ctx, named); err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
	}
	if s.Rejected > 0 {
		if err := os.Rename(rejects.Name(), *rejectsPath); err != nil {
			return fmt.Errorf("import: rejects file: %w", err)
		}
	}
	fmt.Fprintf(stdout, "import %s: %d rows: %d created, %d updated, %d unchanged", path, s.Rows, s.Created, s.Updated, s.Unchanged)
	if s.Stale > 0 {
		fmt.Fprintf(stdout, ", %d stale (a newer version was stored)", s.Stale)
	}
	fmt.Fprintf(stdout, ", %d rejected", s.Rejected)
	if s.Rejected > 0 {
		fmt.Fprintf(stdout, " (see %s)", *rejectsPath)
	}
	fmt.Fprintln(stdout)
	if s.Rejected > 0 && !*acceptRejects {
		return fmt.Errorf("import %s: %d rows rejected (see %s; -accept-rejects exits 0): %w", path, s.Rejected, *rejectsPath, errRejected)
	}
	return nil
}

// errRejected ends an import that completed with rows refused: exit code 3,
// apart from a failed run (1) and bad usage (2), so a script can tell them
// apart.
var errRejected = errors.New("rows rejected")
