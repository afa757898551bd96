package tasks_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dormancy/dormancy/tasks"
)

// The worker holds an attempt's time to its own clock: a little ahead for
// clock drift, up to a week behind for a queue that waited out an outage.
func TestCheckTimeBounds(t *testing.T) {
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at time.Time
		ok bool
	}{
		{now, true},
		{now.Add(tasks.MaxAttemptSkew), true},
		{now.Add(tasks.MaxAttemptSkew + time.Second), false},
		{now.Add(80 * 24 * time.Hour), false},
		{now.Add(-tasks.MaxAttemptAge), true},
		{now.Add(-tasks.MaxAttemptAge - time.Second), false},
		{time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		p := validAttempt()
		p.At = c.at
		err := p.CheckTime(now)
		if (err == nil) != c.ok {
			t.Errorf("at %v: %v, want ok=%v", c.at, err, c.ok)
		}
		var fe *tasks.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "at" || !errors.Is(err, tasks.ErrInvalidPayload)) {
			t.Errorf("at %v: %v does not name the field at", c.at, err)
		}
	}
}

// A login date from the future would put the lock off: refused, named.
func TestAccountTimesMayNotLieInTheFuture(t *testing.T) {
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	future := now.Add(80 * 24 * time.Hour)
	for _, c := range []struct {
		a     tasks.Account
		field string
	}{
		{tasks.Account{CreatedAt: now.Add(-time.Hour)}, ""},
		{tasks.Account{CreatedAt: now.Add(-time.Hour), LastLoginAt: &now}, ""},
		{tasks.Account{CreatedAt: future}, "created_at"},
		{tasks.Account{CreatedAt: now.Add(-time.Hour), LastLoginAt: &future}, "last_login_at"},
	} {
		err := c.a.CheckTimes(now)
		var fe *tasks.FieldError
		if c.field == "" && err != nil || c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field) {
			t.Errorf("%+v: %v, want field %q", c.a, err, c.field)
		}
	}
}
