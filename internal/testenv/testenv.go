// Package testenv gives each test binary a Postgres database and a Redis
// database of its own, on the real servers, so test runs never see each
// other's data and nothing is faked.
//
// A package's TestMain calls Main; tests then call DSN, RedisOpt and DB.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/postgres"
)

// Env names the servers; DORMANCY_TEST_DATABASE_URL and
// DORMANCY_TEST_REDIS_ADDR override the local defaults.
var (
	baseDSN   = envOr("DORMANCY_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	redisAddr = envOr("DORMANCY_TEST_REDIS_ADDR", "127.0.0.1:6379")

	dsn     string
	redisDB int
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// redisClaimPrefix: Redis DBs 1-15 are handed out to test binaries by a key
// in DB 0, so two packages tested in parallel never share a queue.
const redisClaimPrefix = "dormancy:test:redis-db:"

// Main creates and migrates a fresh database and claims a Redis DB, runs
// the tests, then drops and releases them.
func Main(m *testing.M) { MainThen(m, nil) }

// MainThen is Main with a function run after the tests and before the
// database is dropped: the benchmarks print their table there.
func MainThen(m *testing.M, after func()) {
	code, err := run(m, after)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		fmt.Fprintln(os.Stderr, "testenv: Postgres and Redis must be running; .ci/run starts them (see README)")
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M, after func()) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var drop, release func()
	var err error
	if dsn, drop, err = CreateDatabase(ctx, "dormancy_test"); err != nil {
		return 0, err
	}
	defer drop()
	if redisDB, release, err = ClaimRedisDB(ctx); err != nil {
		return 0, err
	}
	defer release()
	code := m.Run()
	if after != nil {
		after()
	}
	return code, nil
}

// CreateDatabase creates and migrates a fresh database, prefix_<random>, on
// the test server, and returns its URL and the function that drops it.
// Test servers started outside go test (the browser tests') use it too.
func CreateDatabase(ctx context.Context, prefix string) (string, func(), error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + "_" + hex.EncodeToString(b[:])
	u, err := url.Parse(baseDSN)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() { dropDatabase(name) }
	if err := postgres.Migrate(ctx, u.String(), "up", io.Discard); err != nil {
		drop()
		return "", nil, err
	}
	return u.String(), drop, nil
}

// ClaimRedisDB claims a free Redis DB from 1 to 15 by a key in DB 0, so
// test binaries and test servers running at once never share a queue. It
// returns the DB, flushed, and the function that flushes and releases it.
func ClaimRedisDB(ctx context.Context) (int, func(), error) {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	for n := 1; n <= 15; n++ {
		ok, err := rdb.SetNX(ctx, redisClaimPrefix+strconv.Itoa(n), os.Getpid(), 30*time.Minute).Result()
		if err != nil {
			rdb.Close()
			return 0, nil, fmt.Errorf("redis %s: %w", redisAddr, err)
		}
		if !ok {
			continue
		}
		own := redis.NewClient(&redis.Options{Addr: redisAddr, DB: n})
		if err := own.FlushDB(ctx).Err(); err != nil {
			own.Close()
			rdb.Close()
			return 0, nil, err
		}
		return n, func() {
			own.FlushDB(context.Background())
			own.Close()
			rdb.Del(context.Background(), redisClaimPrefix+strconv.Itoa(n))
			rdb.Close()
		}, nil
	}
	rdb.Close()
	return 0, nil, fmt.Errorf("redis: all test databases 1-15 are claimed")
}

// RedisAddr is the test Redis server's address.
func RedisAddr() string { return redisAddr }

func dropDatabase(name string) {
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(baseDSN)))
	defer db.Close()
	_, _ = db.Exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`)
}

// DSN is this test binary's database.
func DSN() string { return dsn }

// RedisURL is this test binary's Redis DB as a REDIS_URL, for the
// processes a test starts (cmd/dormancy reads it with asynq.ParseRedisURI).
func RedisURL() string {
	return (&url.URL{Scheme: "redis", Host: redisAddr, Path: "/" + strconv.Itoa(redisDB)}).String()
}

// NewDatabase creates and migrates another fresh database, dropped when t
// ends, and returns its URL. It is for tests whose processes act on every
// row of the database (a maintenance sweep) and so must not meet the rows
// of the binary's other tests.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn, drop, err := CreateDatabase(ctx, "dormancy_test")
	if err != nil {
		t.Fatalf("testenv.NewDatabase: %v", err)
	}
	t.Cleanup(drop)
	return dsn
}

// RedisOpt is this test binary's Redis DB for asynq.
func RedisOpt() asynq.RedisClientOpt {
	return asynq.RedisClientOpt{Addr: redisAddr, DB: redisDB}
}

// Redis is a go-redis client on this test binary's Redis DB.
func Redis(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: redisAddr, DB: redisDB})
	t.Cleanup(func() { c.Close() })
	return c
}

// Store opens the test database through the production store.
func Store(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// DB opens the test database for fixtures and assertions on rows. A
// fixture of a million rows outlasts the driver's 10 s read timeout on a
// busy machine, so the timeout is the test binary's own (-timeout).
func DB(t testing.TB) *sql.DB {
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn), pgdriver.WithReadTimeout(0)))
	t.Cleanup(func() { db.Close() })
	return db
}

// Count runs a count query and fails the test on error.
func Count(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("count %q: %v", query, err)
	}
	return n
}

// UniqueID returns a fresh id for a company or login, so tests sharing
// one database never meet.
func UniqueID(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// TokenSecret is the verification-token secret the tests' workers share.
var TokenSecret = []byte("dormancy-test-verification-token-secret-0123456789")

// FreePort is a port of 127.0.0.1 that was free a moment ago, for a server
// a test starts (a Redis, a Sentinel, an admin process).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
