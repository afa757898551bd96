package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// EventCount is how many audit events of one kind exist.
type EventCount struct {
	Kind  EventKind
	Count int64
}

// EventCounter counts audit events by kind for /metrics without scanning
// the whole table at every scrape: it keeps the counts of the rows it has
// settled and counts only newer rows. A row is settled once a later scrape
// saw a higher id at least Settle earlier, which leaves time for the
// transactions that took lower ids to commit.
type EventCounter struct {
	store   *Store
	settle  time.Duration
	settled map[EventKind]int64
	// boundary: every row with id <= boundary is in settled.
	boundary int64
	// seen are the highest ids seen by earlier scrapes, oldest first.
	seen []idSeen
}

type idSeen struct {
	at time.Time
	id int64
}

// NewEventCounter returns a counter; settle is how long a transaction may
// stay open before its events are counted for good (a minute is plenty).
func (s *Store) NewEventCounter(settle time.Duration) *EventCounter {
	return &EventCounter{store: s, settle: settle, settled: map[EventKind]int64{}}
}

// Counts returns the number of audit events of each kind at now. It is
// not safe for concurrent use; the caller serialises scrapes.
func (c *EventCounter) Counts(ctx context.Context, now time.Time) ([]EventCount, error) {
	settleTo := c.boundary
	for len(c.seen) > 0 && !c.seen[0].at.After(now.Add(-c.settle)) {
		settleTo = max(settleTo, c.seen[0].id)
		c.seen = c.seen[1:]
	}
	var rows []struct {
		Kind    string
		Settled int64
		Total   int64
		MaxID   int64
	}
	err := c.store.db.NewRaw(`SELECT kind, count(*) FILTER (WHERE id <= ?) AS settled, count(*) AS total, max(id) AS max_id
		FROM audit_events WHERE id > ? GROUP BY kind ORDER BY kind`, settleTo, c.boundary).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("postgres.EventCounter.Counts: %w", err)
	}
	totals := make(map[EventKind]int64, len(c.settled)+len(rows))
	var maxID int64
	for k, n := range c.settled {
		totals[k] = n
	}
	for _, r := range rows {
		totals[EventKind(r.Kind)] += r.Total
		c.settled[EventKind(r.Kind)] += r.Settled
		maxID = max(maxID, r.MaxID)
	}
	c.boundary = settleTo
	if maxID > settleTo {
		c.seen = append(c.seen, idSeen{at: now, id: maxID})
	}
	out := make([]EventCount, 0, len(totals))
	for k, n := range totals {
		out = append(out, EventCount{Kind: k, Count: n})
	}
	slices.SortFunc(out, func(a, b EventCount) int {
		if a.Kind < b.Kind {
			return -1
		}
		if a.Kind > b.Kind {
			return 1
		}
		return 0
	})
	return out, nil
}
