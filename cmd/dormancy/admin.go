package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/admin"
	"github.com/dormancy/dormancy/postgres"
)

// AdminConfig is the admin server's part of the configuration.
type AdminConfig struct {
	Addr               string
	OperatorUser       string
	OperatorPassword   string
	MonitoringReadOnly bool
	// LinkSecret is empty when ADMIN_LINK_SECRET is unset; runAdmin decides
	// whether that may start.
	LinkSecret      []byte
	SessionTTL      time.Duration
	SessionIdle     time.Duration
	InsecureCookies bool
}

func loadAdminConfig(get func(string) string, bad func(string, error)) AdminConfig {
	c := AdminConfig{
		Addr: get("ADMIN_ADDR"), OperatorUser: get("ADMIN_OPERATOR_USER"), OperatorPassword: get("ADMIN_OPERATOR_PASSWORD"),
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"ADMIN_MONITORING_READONLY", &c.MonitoringReadOnly}, {"ADMIN_INSECURE_COOKIES", &c.InsecureCookies}} {
		v, err := strconv.ParseBool(get(b.name))
		if err != nil {
			bad(b.name, fmt.Errorf("want true or false, got %q", get(b.name)))
		}
		*b.dst = v
	}
	if (c.OperatorUser == "") != (c.OperatorPassword == "") {
		bad("ADMIN_OPERATOR_PASSWORD", errors.New("set both ADMIN_OPERATOR_USER and ADMIN_OPERATOR_PASSWORD, or neither"))
	}
	if s := get("ADMIN_LINK_SECRET"); s != "" {
		if len(s) < admin.MinLinkSecret {
			bad("ADMIN_LINK_SECRET", fmt.Errorf("want at least %d bytes, got %d", admin.MinLinkSecret, len(s)))
		}
		c.LinkSecret = []byte(s)
	}
	if d, err := time.ParseDuration(get("ADMIN_SESSION_TTL")); err != nil || d <= 0 || d > 7*24*time.Hour {
		bad("ADMIN_SESSION_TTL", fmt.Errorf("want a duration up to 168h, got %q", get("ADMIN_SESSION_TTL")))
	} else {
		c.SessionTTL = d
	}
	if d, err := time.ParseDuration(get("ADMIN_SESSION_IDLE")); err != nil || d < time.Minute || d > c.SessionTTL && c.SessionTTL > 0 {
		bad("ADMIN_SESSION_IDLE", fmt.Errorf("want a duration from 1m up to ADMIN_SESSION_TTL, got %q", get("ADMIN_SESSION_IDLE")))
	} else {
		c.SessionIdle = d
	}
	return c
}

// runAdmin serves the admin server until ctx ends.
func runAdmin(ctx context.Context, cfg *Config, log *slog.Logger) error {
	secret := cfg.Admin.LinkSecret
	dev := cfg.ResendAPIKey == ""
	if len(secret) == 0 {
		if !dev {
			return errors.New("admin: ADMIN_LINK_SECRET is required (at least 32 bytes, shared with the host that signs admin links)")
		}
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		log.Warn("ADMIN_LINK_SECRET is not set: using a random secret for this process (dev mode); links signed by a host will not verify")
	}
	if cfg.Admin.OperatorUser == "" {
		log.Warn("ADMIN_OPERATOR_USER/ADMIN_OPERATOR_PASSWORD are not set: /monitoring/, /metrics and /dev/mailbox answer 401 to everyone")
	}
	store, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer store.Close()
	srv, err := admin.New(admin.Config{
		Store: store, Redis: cfg.Redis, LinkSecret: secret,
		OperatorUser: cfg.Admin.OperatorUser, OperatorPassword: cfg.Admin.OperatorPassword,
		MonitoringReadOnly: cfg.Admin.MonitoringReadOnly, DevMailbox: dev,
		SessionTTL: cfg.Admin.SessionTTL, SessionIdle: cfg.Admin.SessionIdle, InsecureCookies: cfg.Admin.InsecureCookies, Logger: log,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	log.Info("admin server started", "addr", cfg.Admin.Addr, "dev_mailbox", dev, "monitoring_readonly", cfg.Admin.MonitoringReadOnly)
	return srv.Run(ctx, cfg.Admin.Addr)
}

// runAPIKey creates, lists and revokes the API keys of host platforms.
func runAPIKey(ctx context.Context, cfg *Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("apikey wants create NAME, list or revoke ID: %w", errUsage)
	}
	store, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer store.Close()
	switch {
	case args[0] == "create" && len(args) == 2:
		id, key, err := admin.CreateAPIKey(ctx, store, rand.Reader, args[1], time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", key)
		fmt.Fprintf(stdout, "# API key %d %q: shown once, stored only as a hash. Send it as \"Authorization: Bearer <key>\".\n", id, args[1])
		return nil
	case args[0] == "list" && len(args) == 1:
		keys, err := store.ListAPIKeys(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			state := "live"
			if !k.RevokedAt.IsZero() {
				state = "revoked " + k.RevokedAt.UTC().Format(time.RFC3339)
			}
			used := "never used"
			if !k.LastUsedAt.IsZero() {
				used = "used " + k.LastUsedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%d\t%s…\t%s\t%s\t%s\n", k.ID, k.Prefix, strings.ReplaceAll(k.Name, "\t", " "), used, state)
		}
		return nil
	case args[0] == "revoke" && len(args) == 2:
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return fmt.Errorf("apikey revoke: %q is not a key id: %w", args[1], errUsage)
		}
		return store.RevokeAPIKey(ctx, id, time.Now())
	}
	return fmt.Errorf("apikey wants create NAME, list or revoke ID: %w", errUsage)
}
