package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/admin"
	"github.com/dormancy/dormancy/postgres"
)

const webhookUsage = `webhook add -url URL -events a,b (-company ID | -platform) [-description TEXT]
  | list [-company ID] | show ID | remove ID | enable ID | disable ID | rotate ID
  | replay ID (-event N | -since T -until T) | deliveries ID [-limit N]`

// runWebhook manages webhook endpoints from the command line, with the
// same checks as the API (address rules, event names). A new or rotated
// secret goes to stdout alone, once.
func runWebhook(ctx context.Context, cfg *Config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: %w", webhookUsage, errUsage)
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("webhook "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("url", "", "the endpoint's URL")
	events := fs.String("events", "", "comma-separated event names: "+strings.Join(postgres.WebhookTypes(), ", "))
	company := fs.String("company", "", "the company whose events the endpoint gets")
	platform := fs.Bool("platform", false, "the endpoint gets every company's events")
	description := fs.String("description", "", "a note for people")
	event := fs.Int64("event", 0, "the audit event to replay")
	since := fs.String("since", "", "replay events at or after this time (RFC 3339)")
	until := fs.String("until", "", "replay events before this time (RFC 3339)")
	limit := fs.Int("limit", 50, "deliveries to list")
	// Flags may come before or after the id.
	var pos []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("webhook %s: %v: %w", sub, err, errUsage)
		}
		if fs.NArg() > 0 {
			pos = append(pos, fs.Arg(0))
		}
		rest = fs.Args()[min(1, fs.NArg()):]
	}
	var id int64
	switch sub {
	case "add", "list":
		if len(pos) != 0 {
			return fmt.Errorf("webhook %s takes no id: %w", sub, errUsage)
		}
	case "show", "remove", "enable", "disable", "rotate", "replay", "deliveries":
		if len(pos) != 1 {
			return fmt.Errorf("webhook %s: name one endpoint id: %w", sub, errUsage)
		}
		n, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("webhook %s: %q is not an endpoint id: %w", sub, pos[0], errUsage)
		}
		id = n
	default:
		return fmt.Errorf("%s: %w", webhookUsage, errUsage)
	}
	if sub == "add" {
		switch {
		case *url == "" || *events == "":
			return fmt.Errorf("webhook add: -url and -events are required: %w", errUsage)
		case *platform == (*company != ""):
			return fmt.Errorf("webhook add: name the company (-company ID), or -platform for every company's events: %w", errUsage)
		}
	}
	var from, to time.Time
	if sub == "replay" {
		var err error
		if *since != "" {
			if from, err = time.Parse(time.RFC3339Nano, *since); err != nil {
				return fmt.Errorf("webhook replay: -since %q: want an RFC 3339 time: %w", *since, errUsage)
			}
		}
		if *until != "" {
			if to, err = time.Parse(time.RFC3339Nano, *until); err != nil {
				return fmt.Errorf("webhook replay: -until %q: want an RFC 3339 time: %w", *until, errUsage)
			}
		}
	}
	if *limit < 1 || *limit > postgres.MaxEventsPage {
		return fmt.Errorf("webhook %s: -limit: want 1 to %d: %w", sub, postgres.MaxEventsPage, errUsage)
	}

	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	now := time.Now()
	settings := cfg.Webhooks.settings()
	show := func(ep postgres.WebhookEndpoint) {
		scope := ep.CompanyID
		if scope == "" {
			scope = "platform-wide"
		}
		state := "enabled"
		if !ep.Enabled {
			state = "disabled " + ep.DisabledAt.UTC().Format(time.RFC3339) + " (" + ep.DisabledReason + ")"
		} else if !ep.FailingSince.IsZero() {
			state = "failing since " + ep.FailingSince.UTC().Format(time.RFC3339)
		}
		names := make([]string, 0, len(ep.Kinds))
		for _, k := range ep.Kinds {
			names = append(names, postgres.WebhookType(k))
		}
		fmt.Fprintf(stdout, "%d\t%s\t%s\t%s\t%s\n", ep.ID, scope, ep.URL, strings.Join(names, ","), state)
	}
	switch sub {
	case "add":
		ep, secret, err := admin.RegisterWebhook(ctx, store, settings, admin.NewWebhook{CompanyID: *company, URL: *url,
			Events: strings.Split(*events, ","), Description: *description}, now)
		if err != nil {
			return cliError("webhook add", err)
		}
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "webhook endpoint %d: its signing secret is shown once, above; configure the receiver with it.\n", ep.ID)
		return nil
	case "list":
		var scope []string
		if *company != "" {
			scope = []string{*company}
		}
		eps, err := store.WebhookEndpoints(ctx, scope)
		if err != nil {
			return err
		}
		for _, ep := range eps {
			show(ep)
		}
		return nil
	case "show":
		ep, err := store.WebhookEndpoint(ctx, id)
		if err != nil {
			return cliError("webhook show", err)
		}
		show(ep)
		return nil
	case "remove":
		return cliError("webhook remove", store.DeleteWebhookEndpoint(ctx, id))
	case "enable", "disable":
		on := sub == "enable"
		ep, err := admin.UpdateWebhook(ctx, store, settings, id, admin.ChangeWebhook{Enabled: &on}, now)
		if err != nil {
			return cliError("webhook "+sub, err)
		}
		show(ep)
		return nil
	case "rotate":
		ep, secret, err := admin.RotateWebhookSecret(ctx, store, settings, id, now)
		if err != nil {
			return cliError("webhook rotate", err)
		}
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "webhook endpoint %d: new secret shown once, above; the old one signs too until %s.\n", ep.ID, ep.PreviousSecretUntil.UTC().Format(time.RFC3339))
		return nil
	case "replay":
		n, err := admin.ReplayWebhook(ctx, store, id, *event, from, to, now)
		if err != nil {
			return cliError("webhook replay", err)
		}
		fmt.Fprintf(stdout, "%d deliveries queued with their original webhook-id\n", n)
		return nil
	case "deliveries":
		if _, err := store.WebhookEndpoint(ctx, id); err != nil {
			return cliError("webhook deliveries", err)
		}
		ds, _, err := store.WebhookDeliveries(ctx, id, postgres.EventCursor{}, *limit)
		if err != nil {
			return err
		}
		for _, d := range ds {
			at := "-"
			if !d.LastAttemptAt.IsZero() {
				at = d.LastAttemptAt.UTC().Format(time.RFC3339)
			}
			status := "-"
			if d.LastStatus != 0 {
				status = strconv.Itoa(d.LastStatus)
			}
			fmt.Fprintf(stdout, "%d\t%s\t%s\tattempts %d\tlast %s HTTP %s\t%s\n", d.ID, d.MessageID, d.Status, d.Attempts, at, status, d.LastError)
		}
		return nil
	}
	return fmt.Errorf("%s: %w", webhookUsage, errUsage)
}

// cliError names what went wrong in the words the API would use: a bad
// field, or an endpoint that does not exist.
func cliError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, postgres.ErrNotFound) {
		return fmt.Errorf("%s: not found", op)
	}
	return fmt.Errorf("%s: %w", op, err)
}
