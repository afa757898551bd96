package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/webhook"
)

func TestWebhookCommand(t *testing.T) {
	ctx := context.Background()
	dsn, store := commandDatabase(t, postgres.CompanyRecord{ID: "acme"})
	getenv := env(map[string]string{"DATABASE_URL": dsn, "WEBHOOK_ALLOW_PRIVATE": "loopback", "WEBHOOK_ALLOW_HTTP": "true"})
	cmd := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"webhook"}, args...), getenv, &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
	secret, note, err := cmd("add", "-company", "acme", "-url", "http://127.0.0.1:9/hooks", "-events", "account.locked,account.unlocked")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := webhook.ParseSecret(strings.TrimSpace(secret)); err != nil || strings.Count(secret, "\n") != 1 {
		t.Fatalf("stdout %q is not the secret alone: %v", secret, err)
	}
	if !strings.Contains(note, "shown once") {
		t.Errorf("stderr: %q", note)
	}
	eps, err := store.WebhookEndpoints(ctx, nil)
	if err != nil || len(eps) != 1 {
		t.Fatalf("%+v, %v", eps, err)
	}
	id := strings.TrimSpace(strings.SplitN(mustOut(t, cmd, "list"), "\t", 2)[0])
	if out := mustOut(t, cmd, "show", id); !strings.Contains(out, "acme\thttp://127.0.0.1:9/hooks\taccount.locked,account.unlocked\tenabled") {
		t.Errorf("show: %q", out)
	}
	if out := mustOut(t, cmd, "disable", id); !strings.Contains(out, "disabled") {
		t.Errorf("disable: %q", out)
	}
	if out := mustOut(t, cmd, "enable", id); !strings.Contains(out, "\tenabled") {
		t.Errorf("enable: %q", out)
	}
	rotated := mustOut(t, cmd, "rotate", id)
	if rotated == secret || !strings.HasPrefix(rotated, webhook.SecretPrefix) {
		t.Errorf("rotate: %q", rotated)
	}
	if err := store.Audit(ctx, postgres.Event{Kind: postgres.EventLocked, CompanyID: "acme", OccurredAt: eps[0].CreatedAt}); err != nil {
		t.Fatal(err)
	}
	if out := mustOut(t, cmd, "deliveries", id); !strings.Contains(out, "msg_") || !strings.Contains(out, "pending") {
		t.Errorf("deliveries: %q", out)
	}
	// The window is the event's own hour, not fixed dates a run could
	// outlive.
	at := eps[0].CreatedAt
	since, until := at.Add(-time.Hour).Format(time.RFC3339), at.Add(time.Hour).Format(time.RFC3339)
	if out := mustOut(t, cmd, "replay", id, "-since", since, "-until", until); !strings.HasPrefix(out, "1 deliveries") {
		t.Errorf("replay: %q", out)
	}
	mustOut(t, cmd, "remove", id)
	if _, _, err := cmd("show", id); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("show after remove: %v", err)
	}

	// Bad input is named.
	for _, c := range []struct {
		args  []string
		usage bool
		says  string
	}{
		{[]string{}, true, ""},
		{[]string{"add", "-url", "http://127.0.0.1:9/"}, true, "-events"},
		{[]string{"add", "-url", "http://127.0.0.1:9/", "-events", "account.locked"}, true, "-platform"},
		{[]string{"add", "-url", "http://127.0.0.1:9/", "-events", "account.locked", "-company", "acme", "-platform"}, true, "-platform"},
		{[]string{"add", "-url", "https://169.254.169.254/", "-events", "account.locked", "-company", "acme"}, false, "link-local"},
		{[]string{"add", "-url", "http://127.0.0.1:9/", "-events", "locked", "-company", "acme"}, false, "not an event"},
		{[]string{"add", "-url", "http://127.0.0.1:9/", "-events", "account.locked", "-company", "nobody"}, false, "not found"},
		{[]string{"show"}, true, "endpoint id"},
		{[]string{"show", "x"}, true, "not an endpoint id"},
		{[]string{"replay", "1"}, false, "since"},
		{[]string{"replay", "1", "-since", "yesterday"}, true, "RFC 3339"},
		{[]string{"frobnicate"}, true, ""},
	} {
		_, _, err := cmd(c.args...)
		if err == nil || errors.Is(err, errUsage) != c.usage || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v, want usage=%v saying %q", c.args, err, c.usage, c.says)
		}
	}
}

func mustOut(t *testing.T, cmd func(...string) (string, string, error), args ...string) string {
	t.Helper()
	out, _, err := cmd(args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out
}
