package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/admin"
	"github.com/dormancy/dormancy/cluster"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/scheduler"
	"github.com/dormancy/dormancy/tasks"
	"github.com/dormancy/dormancy/webhook"
	"github.com/dormancy/dormancy/worker"
)

// Config is the process configuration, read from the environment once at
// start. Every default works against Postgres and Redis on localhost.
type Config struct {
	DatabaseURL string
	// DatabaseMaxConns bounds each process's Postgres pool.
	DatabaseMaxConns int
	Redis            asynq.RedisConnOpt
	RedisURL         string
	MetricsAddr      string
	// OTelEndpoint is where traces go (OTLP over HTTP); empty turns
	// tracing off.
	OTelEndpoint  string
	ResendAPIKey  string
	ResendBaseURL string
	PlatformName  string
	HelpURL       string
	// TokenSecret is VERIFICATION_SECRET; empty when unset, which only dev
	// mail mode accepts (see workerTokenSecret).
	TokenSecret   []byte
	MailFrom      string
	PublicBaseURL *url.URL
	DefaultLocale policy.Locale
	LogLevel      slog.Level
	// StartupTimeout bounds the wait for Postgres and Redis at start.
	StartupTimeout time.Duration

	WorkerConcurrency       int
	WorkerTaskCheckInterval time.Duration
	WorkerShutdownTimeout   time.Duration
	// Retry is the workers' backoff (RETRY_BASE, RETRY_MAX, RETRY_BACKOFF).
	Retry         worker.RetryPolicy
	EmailMaxRetry int
	Retention     postgres.Retention
	// Layout is CRITICAL_QUEUES and the TASK_RETENTION_* settings: where
	// this process enqueues and how long Redis keeps done tasks.
	Layout tasks.Layout
	// Replication is REDIS_WAIT_REPLICAS and REDIS_WAIT_TIMEOUT: what an
	// enqueue of a login attempt waits for on a Redis Cluster.
	Replication cluster.Options
	// ServedCriticalQueues is CRITICAL_QUEUES_SERVED, the spread queues a
	// worker serves besides critical.
	ServedCriticalQueues int
	SweepGuard           policy.SweepGuard
	LockNoticeRate       int

	// Jobs are the scheduler's maintenance jobs (SCHEDULE_*, MAINTENANCE_*).
	Jobs []scheduler.Job

	// Admin is the admin server's configuration (ADMIN_*).
	Admin AdminConfig

	// Webhooks is how endpoints are registered and delivered to
	// (WEBHOOK_*).
	Webhooks WebhookConfig
}

// WebhookConfig is the WEBHOOK_* settings, read by the worker (delivery),
// the admin server and the webhook command (registration).
type WebhookConfig struct {
	Policy           webhook.AddressPolicy
	Timeout          time.Duration
	DisableAfter     time.Duration
	DispatchInterval time.Duration
	RequeueAfter     time.Duration
	SecretOverlap    time.Duration
}

func (w WebhookConfig) worker() worker.WebhookConfig {
	return worker.WebhookConfig{Policy: w.Policy, Timeout: w.Timeout, DisableAfter: w.DisableAfter,
		DispatchInterval: w.DispatchInterval, RequeueAfter: w.RequeueAfter}
}

func (w WebhookConfig) settings() admin.WebhookSettings {
	return admin.WebhookSettings{Policy: w.Policy, SecretOverlap: w.SecretOverlap}
}

// envVar documents one variable; README's configuration table lists the
// same names and defaults.
type envVar struct {
	name, def, doc string
}

var envVars = []envVar{
	{"DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dormancy?sslmode=disable", "Postgres connection URL"},
	{"DATABASE_MAX_CONNS", "32", "Postgres connections one process may open; a fleet shares the server's max_connections"},
	{"REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL (redis://, rediss://, redis-socket://, redis-sentinel://, or redis-cluster://[:password@]host:port,host:port,... for a Redis Cluster: the nodes listed are seeds)"},
	{"REDIS_SENTINEL_PASSWORD", "", "with a redis-sentinel:// REDIS_URL, the Sentinels' own password when it differs from the URL's (which the master gets); none for Sentinels without one"},
	{"REDIS_WAIT_REPLICAS", "1", "with a redis-cluster:// REDIS_URL, how many replicas must hold a login attempt before its enqueue counts (WAIT); until then the attempt is held in Postgres, so a master lost just after it answered loses nothing. 0 waits for none"},
	{"REDIS_WAIT_TIMEOUT", "500ms", "how long an enqueue waits for REDIS_WAIT_REPLICAS before the attempt is held in Postgres instead"},
	{"CRITICAL_QUEUES", "1", "queues login attempts and directory events are spread over by company (critical-0 … critical-N-1, README's host contract says how); 1 keeps them on critical. Every host of a deployment uses the same N"},
	{"CRITICAL_QUEUES_SERVED", "", "spread queues a worker serves besides critical (critical-0 … critical-M-1): at least the largest CRITICAL_QUEUES of any host, and the old N while tasks queued under it drain; empty means CRITICAL_QUEUES (none when it is 1). Each costs a worker a Redis round trip per fetch that finds it empty"},
	{"TASK_RETENTION_LOGIN_ATTEMPTS", "10m", "how long Redis keeps a completed login attempt, refusing a repeat of it at the queue (Postgres refuses it after that); 0 keeps none"},
	{"TASK_RETENTION_EMAILS", "1h", "how long Redis keeps a completed email task; 0 keeps none"},
	{"TASK_RETENTION_DIRECTORY", "10m", "how long Redis keeps a completed directory event (versions make a repeat harmless); 0 keeps none"},
	{"RESEND_API_KEY", "", "Resend API key; empty sends mail to the dev mailbox instead"},
	{"VERIFICATION_SECRET", "", "secret the workers derive verification links with (>= 32 bytes, the same in every worker); required unless mail is in dev mode"},
	{"RESEND_BASE_URL", "", "Resend API base URL; empty means Resend's own"},
	{"MAIL_FROM", "dormancy <no-reply@dormancy.localhost>", "From address of every email"},
	{"PLATFORM_NAME", "", "the host platform's name, used in the emails where the manual's sentences name it; empty leaves it out"},
	{"ALERT_HELP_URL", "", "help page the dormant-login alert links to under the employee list; empty leaves it out"},
	{"PUBLIC_BASE_URL", "http://127.0.0.1:8080", "host platform URL that links in emails point at"},
	{"DEFAULT_LOCALE", "ja", "locale (ja or en) of the companies dormancy import -create-companies creates"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"METRICS_ADDR", "", "where worker and scheduler serve Prometheus /metrics (for example 127.0.0.1:9101); empty turns it off. The admin server has its own /metrics"},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "", "OTLP/HTTP collector that worker, scheduler, admin and dev send traces to (for example http://127.0.0.1:4318); empty turns tracing off. The other OTEL_* variables of the OTLP exporter apply"},
	{"STARTUP_TIMEOUT", "30s", "how long a process waits for Postgres and Redis to answer before it exits naming the one that does not"},
	{"WORKER_CONCURRENCY", "20", "tasks one worker process runs at once"},
	{"WORKER_TASK_CHECK_INTERVAL", "5ms", "how often an idle worker polls Redis (each hop of a task waits up to this)"},
	{"WORKER_SHUTDOWN_TIMEOUT", "25s", "how long SIGTERM waits for running tasks"},
	{"RETRY_BASE", "1s", "first retry delay of a failed task (doubles each retry)"},
	{"RETRY_MAX", "10m", "longest retry delay"},
	{"RETRY_BACKOFF", "", "per task type: prefix=base..max, comma-separated (email:=2s..15m,maintenance:=1m..1h)"},
	{"EMAIL_MAX_RETRY", "12", "retries of an email before the mail is marked failed (and its link revoked)"},
	{"SCHEDULE_RELOCK", defaultSpec(tasks.TypeMaintenanceRelock), "cron spec (UTC) of relocking passed same-day unlocks; off disables"},
	{"SCHEDULE_REQUEUE_MAIL", defaultSpec(tasks.TypeMaintenanceRequeueMail), "cron spec (UTC) of queueing again mail whose task was lost"},
	{"SCHEDULE_PURGE_TOKENS", defaultSpec(tasks.TypeMaintenancePurgeTokens), "cron spec (UTC) of deleting dead verification links"},
	{"SCHEDULE_SWEEP", defaultSpec(tasks.TypeMaintenanceSweep), "cron spec (UTC) of locking dormant accounts that did not try to log in"},
	{"SCHEDULE_PRELOCK_WARNING", defaultSpec(tasks.TypeMaintenancePrelockWarning), "cron spec (UTC) of pre-lock warnings (sent from 09:00 company time)"},
	{"SCHEDULE_RETENTION", defaultSpec(tasks.TypeMaintenanceRetention), "cron spec (UTC) of applying the RETENTION_* settings"},
	{"SCHEDULE_DIGEST", defaultSpec(tasks.TypeMaintenanceDigest), "cron spec (UTC) of the daily digest job; hourly, so each opted-in company gets its digest in its own 09:00 hour"},
	{"RETENTION_LOGIN_ATTEMPTS", "400d", "login attempts (with IP address and User-Agent) are deleted this long after they were made; 0 keeps them"},
	{"RETENTION_MAIL_PERSONAL", "90d", "a sent mail's address, subject and bodies are cleared this long after it was written (the row stays as evidence); 0 keeps them"},
	{"RETENTION_AUDIT_EVENTS", "400d", "audit events, and mail rows with them, are deleted this long after they happened (PCI DSS 10.5.1 asks for a year); 0 keeps them"},
	{"SWEEP_GUARD_SHARE", "0.25", "a sweep that would lock more than this share of a company's employees (and more than SWEEP_GUARD_MIN) locks nobody there until confirmed; 0 turns the guard off"},
	{"LOCK_NOTICE_RATE", "2", "lock notices queued per second after a sweep (the mail provider's rate; Resend allows 2 by default)"},
	{"SWEEP_GUARD_MIN", "50", "the guard holds a company's sweep only when it would lock more than this many accounts"},
	{"MAINTENANCE_MAX_RETRY", "3", "retries of a failed maintenance run before it is archived"},
	{"MAINTENANCE_BATCH_SIZE", "10000", "rows one maintenance statement changes"},
	{"TOKEN_RETENTION", "168h", "how long a dead verification link is kept before it is deleted"},
	{"MAIL_REQUEUE_AFTER", "2m", "age at which a pending mail without a task is queued again"},
	{"RETENTION_WEBHOOK_DELIVERIES", "30d", "delivered and failed webhook deliveries are deleted this long after their event; pending ones stay; 0 keeps them"},
	{"WEBHOOK_ALLOW_PRIVATE", "", "comma-separated address ranges webhook endpoints may reach although they are internal: loopback, private, link-local, cgnat, or CIDR prefixes; empty allows none"},
	{"WEBHOOK_ALLOW_HTTP", "false", "true lets webhook endpoints use plain http (https only otherwise)"},
	{"WEBHOOK_TIMEOUT", "10s", "how long one webhook request may take before it counts as failed (at most 50s)"},
	{"WEBHOOK_DISABLE_AFTER", "24h", "an endpoint failing continuously this long (from its first failure since its last success) is disabled and its company's administrators emailed; 0 never disables"},
	{"WEBHOOK_DISPATCH_INTERVAL", "1s", "how often each worker hands new webhook deliveries from Postgres to the queue: the delay from a change to its delivery"},
	{"WEBHOOK_REQUEUE_AFTER", "5m", "age at which a pending webhook delivery is handed to the queue again in case its task was lost"},
	{"WEBHOOK_SECRET_OVERLAP", "24h", "after a secret rotation, how long the old secret keeps signing beside the new one"},
	{"ADMIN_ADDR", "127.0.0.1:8081", "address the admin server listens on"},
	{"ADMIN_OPERATOR_USER", "", "operator user for /monitoring/, /metrics and /dev/mailbox; empty closes them"},
	{"ADMIN_OPERATOR_PASSWORD", "", "operator password (HTTP basic authentication)"},
	{"ADMIN_MONITORING_READONLY", "true", "false shows Asynqmon's buttons that change queues (pause, delete, run)"},
	{"ADMIN_LINK_SECRET", "", "HMAC secret shared with the host for signed admin links (>= 32 bytes); required unless mail is in dev mode"},
	{"ADMIN_SESSION_TTL", "8h", "how long an administrator's session lasts"},
	{"ADMIN_SESSION_IDLE", "30m", "an administrator's session ends after this long without a request"},
	{"ADMIN_API_KEY_CACHE_TTL", "5s", "how long a verified API key is trusted without asking Postgres: a revoked key stops working within this; 0s asks every time"},
	{"ADMIN_COMPANY_CACHE_TTL", "5s", "how long the host API's login checks use a company's settings without reading them again: a change of inactivity period, zone or locale reaches them within this; 0s reads every time"},
	{"ADMIN_THROTTLE_ATTEMPTS", "10", "failed operator logins, API keys or admin links per client address (and failed verification links per account) before 429"},
	{"ADMIN_THROTTLE_WINDOW", "15m", "the window of ADMIN_THROTTLE_ATTEMPTS: one more attempt each window/attempts after them"},
	{"ADMIN_TRUSTED_PROXIES", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client; empty trusts none"},
	{"ADMIN_INSECURE_COOKIES", "false", "true drops Secure from the session cookie (plain HTTP development only)"},
}

// LoadConfig reads the environment; getenv is os.Getenv outside tests. The
// first bad value stops the process with the variable's name.
func LoadConfig(getenv func(string) string) (*Config, error) {
	return loadConfig(getenv, func(string) bool { return true })
}

// Sections of the configuration that only some processes read.
const (
	sectionScheduler = "scheduler" // SCHEDULE_*, MAINTENANCE_*, TOKEN_RETENTION, MAIL_REQUEUE_AFTER
	sectionAdmin     = "admin"     // ADMIN_*
)

// sectionsOf says which sections a command reads: a process refuses to
// start only on a bad setting it reads itself.
func sectionsOf(command string) func(string) bool {
	return func(section string) bool {
		switch command {
		case "dev":
			return true
		case "scheduler":
			return section == sectionScheduler
		case "admin":
			return section == sectionAdmin
		}
		return false
	}
}

func loadConfig(getenv func(string) string, reads func(section string) bool) (*Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, e := range envVars {
			if e.name == name {
				return e.def
			}
		}
		return ""
	}
	c := &Config{
		DatabaseURL:   get("DATABASE_URL"),
		ResendAPIKey:  get("RESEND_API_KEY"),
		ResendBaseURL: get("RESEND_BASE_URL"),
		MailFrom:      get("MAIL_FROM"),
	}
	var errs []string
	bad := func(name string, err error) { errs = append(errs, fmt.Sprintf("%s: %v", name, err)) }

	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL", fmt.Errorf("want postgres://user@host:port/database, got %q", c.DatabaseURL))
	} else if err := checkDSN(c.DatabaseURL); err != nil {
		bad("DATABASE_URL", err)
	}
	if n, err := strconv.Atoi(get("DATABASE_MAX_CONNS")); err != nil || n < 2 || n > 1000 {
		bad("DATABASE_MAX_CONNS", fmt.Errorf("want a number from 2 to 1000, got %q", get("DATABASE_MAX_CONNS")))
	} else {
		c.DatabaseMaxConns = n
	}
	c.RedisURL = get("REDIS_URL")
	c.MetricsAddr = get("METRICS_ADDR")
	if c.OTelEndpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT"); c.OTelEndpoint != "" {
		if u, err := url.Parse(c.OTelEndpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("OTEL_EXPORTER_OTLP_ENDPOINT", fmt.Errorf("want an http(s) URL of an OTLP/HTTP collector, such as http://127.0.0.1:4318, got %q", c.OTelEndpoint))
		}
	}
	if opt, err := parseRedisURL(get("REDIS_URL"), get("REDIS_SENTINEL_PASSWORD")); err != nil {
		bad("REDIS_URL", err)
	} else {
		c.Redis = opt
	}
	c.PlatformName = strings.TrimSpace(get("PLATFORM_NAME"))
	if len(c.PlatformName) > 100 || strings.ContainsAny(c.PlatformName, "\r\n") {
		bad("PLATFORM_NAME", fmt.Errorf("want one line of at most 100 bytes, got %q", c.PlatformName))
	}
	if s := get("ALERT_HELP_URL"); s != "" {
		if u, err := url.Parse(s); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("ALERT_HELP_URL", fmt.Errorf("want an absolute http(s) URL, got %q", s))
		}
		c.HelpURL = s
	}
	if s := get("VERIFICATION_SECRET"); s != "" {
		if len(s) < policy.MinTokenSecret {
			bad("VERIFICATION_SECRET", fmt.Errorf("want at least %d bytes, got %d", policy.MinTokenSecret, len(s)))
		}
		c.TokenSecret = []byte(s)
	}
	if c.ResendBaseURL != "" {
		if u, err := url.Parse(c.ResendBaseURL); err != nil || u.Host == "" {
			bad("RESEND_BASE_URL", fmt.Errorf("want an absolute URL, got %q", c.ResendBaseURL))
		}
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		bad("MAIL_FROM", err)
	}
	if u, err := url.Parse(get("PUBLIC_BASE_URL")); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		bad("PUBLIC_BASE_URL", fmt.Errorf("want an absolute http(s) URL, got %q", get("PUBLIC_BASE_URL")))
	} else {
		c.PublicBaseURL = u
	}
	if l, err := policy.ParseLocale(get("DEFAULT_LOCALE")); err != nil {
		bad("DEFAULT_LOCALE", err)
	} else {
		c.DefaultLocale = l
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL"))); err != nil {
		bad("LOG_LEVEL", fmt.Errorf("want debug, info, warn or error, got %q", get("LOG_LEVEL")))
	}
	if d, err := time.ParseDuration(get("STARTUP_TIMEOUT")); err != nil || d < time.Second || d > time.Hour {
		bad("STARTUP_TIMEOUT", fmt.Errorf("want a duration from 1s to 1h, got %q", get("STARTUP_TIMEOUT")))
	} else {
		c.StartupTimeout = d
	}
	if n, err := strconv.Atoi(get("WORKER_CONCURRENCY")); err != nil || n < 1 || n > 10000 {
		bad("WORKER_CONCURRENCY", fmt.Errorf("want a number from 1 to 10000, got %q", get("WORKER_CONCURRENCY")))
	} else {
		c.WorkerConcurrency = n
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{"WORKER_TASK_CHECK_INTERVAL", &c.WorkerTaskCheckInterval},
		{"WORKER_SHUTDOWN_TIMEOUT", &c.WorkerShutdownTimeout},
		{"RETRY_BASE", &c.Retry.Base},
		{"RETRY_MAX", &c.Retry.Max},
	} {
		v, err := time.ParseDuration(get(d.name))
		if err != nil || v <= 0 {
			bad(d.name, fmt.Errorf("want a positive duration such as 500ms or 2m, got %q", get(d.name)))
			continue
		}
		*d.dst = v
	}
	if n, err := strconv.Atoi(get("REDIS_WAIT_REPLICAS")); err != nil || n < 0 || n > 5 {
		bad("REDIS_WAIT_REPLICAS", fmt.Errorf("want a number from 0 to 5, got %q", get("REDIS_WAIT_REPLICAS")))
	} else {
		c.Replication.Replicas = n
	}
	if d, err := time.ParseDuration(get("REDIS_WAIT_TIMEOUT")); err != nil || d < time.Millisecond || d >= tasks.HoldAfter {
		bad("REDIS_WAIT_TIMEOUT", fmt.Errorf("want a duration from 1ms to under %s (a login waits no longer for Redis), got %q", tasks.HoldAfter, get("REDIS_WAIT_TIMEOUT")))
	} else {
		c.Replication.Timeout = d
	}
	if n, err := strconv.Atoi(get("CRITICAL_QUEUES")); err != nil || n < 1 || n > tasks.MaxCriticalQueues {
		bad("CRITICAL_QUEUES", fmt.Errorf("want a number from 1 to %d, got %q", tasks.MaxCriticalQueues, get("CRITICAL_QUEUES")))
	} else {
		c.Layout.CriticalQueues = n
	}
	if get("CRITICAL_QUEUES_SERVED") == "" {
		if c.Layout.CriticalQueues > 1 {
			c.ServedCriticalQueues = c.Layout.CriticalQueues
		}
	} else if n, err := strconv.Atoi(get("CRITICAL_QUEUES_SERVED")); err != nil || n < 0 || n > tasks.MaxCriticalQueues {
		bad("CRITICAL_QUEUES_SERVED", fmt.Errorf("want a number from 0 to %d, got %q", tasks.MaxCriticalQueues, get("CRITICAL_QUEUES_SERVED")))
	} else if c.Layout.CriticalQueues > 1 && n < c.Layout.CriticalQueues {
		bad("CRITICAL_QUEUES_SERVED", fmt.Errorf("%d leaves queues of CRITICAL_QUEUES=%d unserved", n, c.Layout.CriticalQueues))
	} else {
		c.ServedCriticalQueues = n
	}
	for _, v := range []struct {
		name string
		to   *time.Duration
	}{
		{"TASK_RETENTION_LOGIN_ATTEMPTS", &c.Layout.Retention.LoginAttempts},
		{"TASK_RETENTION_EMAILS", &c.Layout.Retention.Emails},
		{"TASK_RETENTION_DIRECTORY", &c.Layout.Retention.Directory},
	} {
		if get(v.name) == "0" {
			*v.to = tasks.KeepNone
			continue
		}
		d, err := time.ParseDuration(get(v.name))
		if err != nil || d < time.Second || d > 30*24*time.Hour {
			bad(v.name, fmt.Errorf("want 0 or a duration from 1s to 720h, such as 10m, got %q", get(v.name)))
			continue
		}
		*v.to = d
	}
	if by, err := worker.ParseTypeBackoffs(get("RETRY_BACKOFF")); err != nil {
		bad("RETRY_BACKOFF", err)
	} else {
		c.Retry.ByType = by
	}
	if n, err := strconv.Atoi(get("EMAIL_MAX_RETRY")); err != nil || n < 0 || n > 100 {
		bad("EMAIL_MAX_RETRY", fmt.Errorf("want a number from 0 to 100, got %q", get("EMAIL_MAX_RETRY")))
	} else {
		c.EmailMaxRetry = n
	}
	for _, v := range []struct {
		name string
		to   *time.Duration
		min  time.Duration
	}{
		{"RETENTION_LOGIN_ATTEMPTS", &c.Retention.LoginAttempts, 24 * time.Hour},
		{"RETENTION_MAIL_PERSONAL", &c.Retention.MailPersonal, 24 * time.Hour},
		// Not under a year unless turned off: the assessor's minimum.
		{"RETENTION_AUDIT_EVENTS", &c.Retention.AuditEvents, 365 * 24 * time.Hour},
		{"RETENTION_WEBHOOK_DELIVERIES", &c.Retention.WebhookDeliveries, 24 * time.Hour},
	} {
		d, err := parseDays(get(v.name))
		if err != nil || d != 0 && d < v.min {
			bad(v.name, fmt.Errorf("want 0 (keep forever) or a number of days of at least %d, such as 400d, got %q", int(v.min.Hours()/24), get(v.name)))
			continue
		}
		*v.to = d
	}
	if f, err := strconv.ParseFloat(get("SWEEP_GUARD_SHARE"), 64); err != nil || f < 0 || f > 1 {
		bad("SWEEP_GUARD_SHARE", fmt.Errorf("want a share from 0 (off) to 1, such as 0.25, got %q", get("SWEEP_GUARD_SHARE")))
	} else {
		c.SweepGuard.Share = f
	}
	if n, err := strconv.Atoi(get("LOCK_NOTICE_RATE")); err != nil || n < 1 || n > 10000 {
		bad("LOCK_NOTICE_RATE", fmt.Errorf("want a number of emails a second from 1 to 10000, got %q", get("LOCK_NOTICE_RATE")))
	} else {
		c.LockNoticeRate = n
	}
	if n, err := strconv.Atoi(get("SWEEP_GUARD_MIN")); err != nil || n < 0 {
		bad("SWEEP_GUARD_MIN", fmt.Errorf("want a number of accounts from 0 up, got %q", get("SWEEP_GUARD_MIN")))
	} else {
		c.SweepGuard.Floor = n
	}
	if allow, err := webhook.ParseAllow(get("WEBHOOK_ALLOW_PRIVATE")); err != nil {
		bad("WEBHOOK_ALLOW_PRIVATE", err)
	} else {
		c.Webhooks.Policy.Allow = allow
	}
	if b, err := strconv.ParseBool(get("WEBHOOK_ALLOW_HTTP")); err != nil {
		bad("WEBHOOK_ALLOW_HTTP", fmt.Errorf("want true or false, got %q", get("WEBHOOK_ALLOW_HTTP")))
	} else {
		c.Webhooks.Policy.AllowHTTP = b
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
		zero bool
	}{
		{"WEBHOOK_TIMEOUT", &c.Webhooks.Timeout, false},
		{"WEBHOOK_DISABLE_AFTER", &c.Webhooks.DisableAfter, true},
		{"WEBHOOK_DISPATCH_INTERVAL", &c.Webhooks.DispatchInterval, false},
		{"WEBHOOK_REQUEUE_AFTER", &c.Webhooks.RequeueAfter, false},
		{"WEBHOOK_SECRET_OVERLAP", &c.Webhooks.SecretOverlap, true},
	} {
		v, err := time.ParseDuration(get(d.name))
		if err != nil || v < 0 || v == 0 && !d.zero {
			bad(d.name, fmt.Errorf("want a positive duration such as 10s or 24h, got %q", get(d.name)))
			continue
		}
		*d.dst = v
	}
	// A request must end within the delivery task's own deadline
	// (tasks.NewWebhookDeliveryTask: one minute), leaving time to record it.
	if c.Webhooks.Timeout > 50*time.Second {
		bad("WEBHOOK_TIMEOUT", fmt.Errorf("want at most 50s, got %q", get("WEBHOOK_TIMEOUT")))
	}
	if c.Webhooks.DisableAfter == 0 {
		c.Webhooks.DisableAfter = -1 // never
	}
	if c.Webhooks.SecretOverlap == 0 {
		c.Webhooks.SecretOverlap = time.Nanosecond // the old secret stops at once
	}
	ignore := func(string, error) {}
	only := func(section string) func(string, error) {
		if reads(section) {
			return bad
		}
		return ignore
	}
	c.Jobs = loadJobs(get, only(sectionScheduler))
	c.Admin = loadAdminConfig(get, only(sectionAdmin))
	if len(errs) > 0 {
		return nil, fmt.Errorf("configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return c, nil
}

// osGetenv is the production environment.
var osGetenv = os.Getenv

// checkDSN asks the Postgres driver whether it takes the URL: the driver
// panics on a URL it cannot use (an unknown sslmode), which must be an error
// naming DATABASE_URL instead.
func checkDSN(dsn string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v (sslmode is one of disable, allow, prefer, require, verify-ca, verify-full)", p)
		}
	}()
	pgdriver.NewConnector(pgdriver.WithDSN(dsn))
	return nil
}

// openStore opens Postgres at DATABASE_URL; a failure names the variable
// and the server it tried, never the password.
func openStore(ctx context.Context, cfg *Config) (*postgres.Store, error) {
	store, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL (%s): %w", redacted(cfg.DatabaseURL), err)
	}
	if cfg.tracing() {
		store.Trace()
	}
	return store, nil
}

// parseDays reads a span given in days ("400d") or as a Go duration
// ("9600h"); "0" is zero.
func parseDays(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("not a number of days: %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
