package admin

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/dormancy/dormancy/postgres"
)

// DefaultAPIKeyCacheTTL is how long a verified API key is trusted without
// asking Postgres again: the bound on how long a revoked key keeps
// working in a running admin server. Every login a host reports carries
// its key; without the cache each one pays a second round trip to
// Postgres (BENCHMARKS.md).
const DefaultAPIKeyCacheTTL = 5 * time.Second

// apiKeyCache remembers keys Postgres verified, by hash, for ttl. Unknown
// and revoked keys are never remembered: a wrong key always reaches the
// database and its throttle.
type apiKeyCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[sha256.Size]byte]cachedKey
}

type cachedKey struct {
	key   postgres.APIKey
	until time.Time
}

// maxCachedKeys bounds the map; a platform has a handful of keys.
const maxCachedKeys = 10_000

func newAPIKeyCache(ttl time.Duration) *apiKeyCache {
	return &apiKeyCache{ttl: ttl, m: map[[sha256.Size]byte]cachedKey{}}
}

func (c *apiKeyCache) get(hash [sha256.Size]byte, now time.Time) (postgres.APIKey, bool) {
	if c.ttl <= 0 {
		return postgres.APIKey{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	if !ok || !now.Before(e.until) {
		return postgres.APIKey{}, false
	}
	return e.key, true
}

func (c *apiKeyCache) put(hash [sha256.Size]byte, k postgres.APIKey, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedKeys {
		clear(c.m)
	}
	c.m[hash] = cachedKey{key: k, until: now.Add(c.ttl)}
}
