package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/admin"
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
	APIKeyCacheTTL  time.Duration
	CompanyCacheTTL time.Duration
	Throttle        admin.Throttle
	TrustedProxies  []netip.Prefix
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
	if d, err := time.ParseDuration(get("ADMIN_API_KEY_CACHE_TTL")); err != nil || d < 0 || d > 5*time.Minute {
		bad("ADMIN_API_KEY_CACHE_TTL", fmt.Errorf("want a duration from 0s (off) to 5m, got %q", get("ADMIN_API_KEY_CACHE_TTL")))
	} else {
		c.APIKeyCacheTTL = d
		if d == 0 {
			c.APIKeyCacheTTL = -1 // off
		}
	}
	if d, err := time.ParseDuration(get("ADMIN_COMPANY_CACHE_TTL")); err != nil || d < 0 || d > 5*time.Minute {
		bad("ADMIN_COMPANY_CACHE_TTL", fmt.Errorf("want a duration from 0s (off) to 5m, got %q", get("ADMIN_COMPANY_CACHE_TTL")))
	} else {
		c.CompanyCacheTTL = d
	}
	if n, err := strconv.Atoi(get("ADMIN_THROTTLE_ATTEMPTS")); err != nil || n < 1 || n > 10000 {
		bad("ADMIN_THROTTLE_ATTEMPTS", fmt.Errorf("want a number from 1 to 10000, got %q", get("ADMIN_THROTTLE_ATTEMPTS")))
	} else {
		c.Throttle.Attempts = n
	}
	if d, err := time.ParseDuration(get("ADMIN_THROTTLE_WINDOW")); err != nil || d < time.Second || d > 24*time.Hour {
		bad("ADMIN_THROTTLE_WINDOW", fmt.Errorf("want a duration from 1s to 24h, got %q", get("ADMIN_THROTTLE_WINDOW")))
	} else {
		c.Throttle.Window = d
	}
	for _, s := range strings.Split(get("ADMIN_TRUSTED_PROXIES"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			bad("ADMIN_TRUSTED_PROXIES", fmt.Errorf("want CIDRs such as 10.0.0.0/8, got %q", s))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p.Masked())
	}
	return c
}

// runAdmin serves the admin server until ctx ends.
func runAdmin(ctx context.Context, cfg *Config, log *slog.Logger, watch watches) error {
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
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	store.CacheCompanies(cfg.Admin.CompanyCacheTTL, nil)
	srv, err := admin.New(admin.Config{
		Store: store, Redis: cfg.Redis, LinkSecret: secret,
		OperatorUser: cfg.Admin.OperatorUser, OperatorPassword: cfg.Admin.OperatorPassword,
		MonitoringReadOnly: cfg.Admin.MonitoringReadOnly, DevMailbox: dev,
		SessionTTL: cfg.Admin.SessionTTL, SessionIdle: cfg.Admin.SessionIdle, APIKeyCacheTTL: cfg.Admin.APIKeyCacheTTL,
		Throttle: cfg.Admin.Throttle, TrustedProxies: cfg.Admin.TrustedProxies, InsecureCookies: cfg.Admin.InsecureCookies, Logger: log, RedisWatch: watch.redis, Trace: cfg.tracing(),
		Layout: cfg.Layout, Replication: cfg.Replication, Webhooks: cfg.Webhooks.settings(),
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	// Bind first: "started" is said only once the address is ours.
	ln, err := net.Listen("tcp", cfg.Admin.Addr)
	if err != nil {
		return fmt.Errorf("ADMIN_ADDR %s: %w", cfg.Admin.Addr, err)
	}
	watch.probe(ctx, cfg, store)
	log.Info("admin server started", "addr", ln.Addr().String(), "dev_mailbox", dev, "monitoring_readonly", cfg.Admin.MonitoringReadOnly)
	return srv.Serve(ctx, ln)
}

// apiKeyUsage is what apikey takes.
const apiKeyUsage = "apikey wants create NAME (-companies a,b | -platform), list or revoke ID"

// parseCreateKey reads "NAME -companies a,b" or "NAME -platform" (flags
// before or after the name): a key is scoped to named companies, and
// platform-wide only when asked.
func parseCreateKey(args []string) (name string, companies []string, err error) {
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	list := fs.String("companies", "", "comma-separated company ids the key may touch")
	platform := fs.Bool("platform", false, "the key may touch every company")
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return "", nil, fmt.Errorf("apikey create: %v: %w", err, errUsage)
		}
		if fs.NArg() > 0 {
			rest = append(rest, fs.Arg(0))
		}
		args = fs.Args()[min(1, fs.NArg()):]
	}
	if len(rest) != 1 {
		return "", nil, fmt.Errorf("%s: %w", apiKeyUsage, errUsage)
	}
	switch {
	case *platform && *list != "":
		return "", nil, fmt.Errorf("apikey create: -companies and -platform exclude each other: %w", errUsage)
	case *platform:
		return rest[0], nil, nil
	case *list == "":
		return "", nil, fmt.Errorf("apikey create: say which companies the key may touch (-companies a,b), or -platform for every company: %w", errUsage)
	}
	for _, c := range strings.Split(*list, ",") {
		if c = strings.TrimSpace(c); c != "" && !slices.Contains(companies, c) {
			companies = append(companies, c)
		}
	}
	if len(companies) == 0 {
		return "", nil, fmt.Errorf("apikey create: -companies names no company: %w", errUsage)
	}
	return rest[0], companies, nil
}

// runAPIKey creates, lists and revokes the API keys of host platforms. The
// new key alone goes to stdout, so K=$(dormancy apikey create …) captures
// it; what it is goes to stderr.
func runAPIKey(ctx context.Context, cfg *Config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: %w", apiKeyUsage, errUsage)
	}
	var name string
	var companies []string
	if args[0] == "create" {
		var err error
		if name, companies, err = parseCreateKey(args[1:]); err != nil {
			return err
		}
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	switch {
	case args[0] == "create":
		id, key, err := admin.CreateAPIKey(ctx, store, rand.Reader, name, companies, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", key)
		scope := "every company (platform-wide)"
		if companies != nil {
			scope = "companies " + strings.Join(companies, ", ")
		}
		fmt.Fprintf(stderr, "API key %d %q for %s: shown once, stored only as a hash. Send it as \"Authorization: Bearer <key>\".\n", id, name, scope)
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
			scope := "platform-wide"
			if k.Companies != nil {
				scope = strings.Join(k.Companies, ",")
			}
			fmt.Fprintf(stdout, "%d\t%s…\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, strings.ReplaceAll(k.Name, "\t", " "), scope, used, state)
		}
		return nil
	case args[0] == "revoke" && len(args) == 2:
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return fmt.Errorf("apikey revoke: %q is not a key id: %w", args[1], errUsage)
		}
		return store.RevokeAPIKey(ctx, id, time.Now())
	}
	return fmt.Errorf("%s: %w", apiKeyUsage, errUsage)
}
