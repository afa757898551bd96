package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// companyCache keeps companies' settings for the host's checks. A company's
// settings change a few times a year and every login of its employees
// reads them, so the host API reads them from memory for ttl: a change
// reaches the checks within ttl (the workers, which record and apply the
// decisions, never read from the cache). A zero ttl reads Postgres every
// time.
type companyCache struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]cachedCompany
}

type cachedCompany struct {
	co    policy.Company
	until time.Time
}

// maxCachedCompanies bounds the map; past it the cache starts over.
const maxCachedCompanies = 100_000

// CacheCompanies lets CheckAccount use a company's settings for up to ttl
// after reading them. It is for the host-facing processes and is called
// before the store is shared; now is the cache's clock (time.Now when nil),
// real time rather than the domain clock, since ttl bounds staleness.
func (s *Store) CacheCompanies(ttl time.Duration, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.companies = &companyCache{ttl: ttl, now: now, m: map[string]cachedCompany{}}
}

func (c *companyCache) get(ctx context.Context, id string, load func(context.Context, string) (policy.Company, error)) (policy.Company, error) {
	if c == nil || c.ttl <= 0 {
		return load(ctx, id)
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.co, nil
	}
	co, err := load(ctx, id)
	if err != nil {
		return policy.Company{}, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedCompanies {
		clear(c.m)
	}
	c.m[id] = cachedCompany{co: co, until: now.Add(c.ttl)}
	c.mu.Unlock()
	return co, nil
}

func (c *companyCache) forget(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// zones keeps every time zone loaded once: time.LoadLocation reads and
// parses the zone file on each call, and every decision needs its
// company's zone.
var zones sync.Map // name → *time.Location

func loadLocation(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, l)
	return l, nil
}
