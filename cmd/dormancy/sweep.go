package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/dormancy/dormancy/postgres"
)

// runSweep is `dormancy sweep -dry-run [-company ID]`, which lists what the
// sweep would lock now, and `dormancy sweep confirm -company ID`, which lets
// a held sweep proceed at its next run.
func runSweep(ctx context.Context, cfg *Config, args []string, stdout, stderr io.Writer) error {
	confirm := len(args) > 0 && args[0] == "confirm"
	if confirm {
		args = args[1:]
	}
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dry := fs.Bool("dry-run", false, "list the accounts the sweep would lock now, and lock nothing")
	company := fs.String("company", "", "one company (required with confirm)")
	by := fs.String("by", "operator", "who confirms, for the audit trail")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("sweep: %w: %w", err, errUsage)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("sweep: unexpected %q: %w", fs.Args(), errUsage)
	case confirm && *company == "":
		return fmt.Errorf("sweep confirm wants -company ID: %w", errUsage)
	case !confirm && !*dry:
		return fmt.Errorf("sweep runs from the scheduler; here it takes -dry-run or confirm: %w", errUsage)
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	if confirm {
		h, err := store.ConfirmSweep(ctx, *company, *by, now)
		if err != nil {
			return fmt.Errorf("sweep confirm: %w", err)
		}
		fmt.Fprintf(stdout, "sweep of %s confirmed: its next run locks the %d accounts held on %s\n",
			h.CompanyID, h.WouldLock, h.HeldAt.Format(time.RFC3339))
		return nil
	}
	fmt.Fprintln(stdout, "company_id\tlogin_id\tlast_activity\tdays_inactive\theld")
	n := 0
	err = store.SweepPreview(ctx, now, *company, func(c postgres.SweepCandidate) error {
		n++
		held := ""
		if c.Held {
			held = "held"
		}
		_, err := fmt.Fprintf(stdout, "%s\t%s\t%s\t%d\t%s\n", c.CompanyID, c.LoginID, c.LastActivity.UTC().Format(time.RFC3339),
			int(now.Sub(c.LastActivity)/(24*time.Hour)), held)
		return err
	})
	if err != nil {
		return fmt.Errorf("sweep -dry-run: %w", err)
	}
	fmt.Fprintf(stderr, "sweep -dry-run: %d accounts would be locked now\n", n)
	return nil
}
