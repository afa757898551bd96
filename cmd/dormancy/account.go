package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// runAccount is `dormancy account export|erase -company ID -login LOGIN`:
// a person's request for their data, or for its erasure once retired.
func runAccount(ctx context.Context, cfg *Config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "export" && args[0] != "erase" {
		return fmt.Errorf("account wants export or erase: %w", errUsage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("account "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	company := fs.String("company", "", "the account's company (required)")
	login := fs.String("login", "", "the account's login ID (required)")
	out := fs.String("out", "", "export: file to write; empty writes to stdout")
	by := fs.String("by", "operator", "erase: who asked, for the audit trail")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("account %s: %w: %w", verb, err, errUsage)
	}
	if *company == "" || *login == "" || fs.NArg() > 0 {
		return fmt.Errorf("account %s wants -company ID -login LOGIN: %w", verb, errUsage)
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	e, _, err := store.CheckAccount(ctx, *company, *login)
	if err != nil {
		return fmt.Errorf("account %s %s/%s: %w", verb, *company, *login, err)
	}
	if verb == "erase" {
		pseudonym, err := store.EraseAccount(ctx, e.ID, *by, now)
		if err != nil {
			return fmt.Errorf("account erase %s/%s: %w", *company, *login, err)
		}
		fmt.Fprintf(stdout, "account %d erased; its login ID is now %s\n", e.ID, pseudonym)
		return nil
	}
	doc, err := store.ExportAccount(ctx, e.ID)
	if err != nil {
		return fmt.Errorf("account export %s/%s: %w", *company, *login, err)
	}
	if *out == "" {
		_, err = fmt.Fprintf(stdout, "%s\n", doc)
		return err
	}
	if err := os.WriteFile(*out, append(doc, '\n'), 0o600); err != nil {
		return fmt.Errorf("account export: %w", err)
	}
	fmt.Fprintf(stderr, "account %d exported to %s\n", e.ID, *out)
	return nil
}
