package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/dormancy/dormancy/report"
)

// runReport writes a company's compliance report to -out (or stdout), with
// a progress bar on a terminal.
func runReport(ctx context.Context, cfg *Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	company := fs.String("company", "", "the company to report on (required)")
	format := fs.String("format", "json", "json or csv")
	out := fs.String("out", "", "file to write; empty writes to stdout")
	since := fs.String("since", "", "start of the period whose events the summary counts (RFC 3339); default 90 days before -until")
	until := fs.String("until", "", "end of that period (RFC 3339); default now")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("report: %w: %w", err, errUsage)
	}
	if *company == "" || fs.NArg() > 0 {
		return fmt.Errorf("report wants -company ID and no other arguments: %w", errUsage)
	}
	now := time.Now()
	o := report.Options{Format: report.Format(*format), Now: now, Until: now}
	if o.Format != report.JSON && o.Format != report.CSV {
		return fmt.Errorf("report: -format: want json or csv, got %q: %w", *format, errUsage)
	}
	for _, p := range []struct {
		name, v string
		to      *time.Time
	}{{"-until", *until, &o.Until}, {"-since", *since, &o.Since}} {
		if p.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, p.v)
		if err != nil {
			return fmt.Errorf("report: %s: want an RFC 3339 time, got %q: %w", p.name, p.v, errUsage)
		}
		*p.to = t
	}
	if o.Since.IsZero() {
		o.Since = o.Until.AddDate(0, 0, -90)
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		defer f.Close()
		w = f
	}
	var bar *progressbar.ProgressBar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.Progress = func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("accounts"),
					progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond))
			}
			_ = bar.Set(done)
		}
	}
	// A write to the file is a system call; the JSON rows are one each.
	bw := bufio.NewWriterSize(w, 64<<10)
	written, err := report.Write(ctx, store, *company, bw, o)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("report %s: %w", *company, err)
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if f, ok := w.(*os.File); ok && f != os.Stdout {
		if err := f.Close(); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	fmt.Fprintf(stderr, "report %s: %d accounts\n", *company, written)
	return nil
}
