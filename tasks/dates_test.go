package tasks_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dormancy/dormancy/tasks"
)

func TestResolveDates(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	asked := 0
	zone := func() (*time.Location, error) { asked++; return tokyo, nil }
	for _, body := range []string{
		`{"created_at":"2026-04-01T00:00:00Z"}`, `{"name":"2026-04-01"}`, `not json`, `{"created_at":"2026-02-30"}`, `{"created_at":20260401}`,
	} {
		got, err := tasks.ResolveDates([]byte(body), zone)
		if err != nil || string(got) != body {
			t.Errorf("%s → %s, %v; want it unchanged", body, got, err)
		}
	}
	if asked != 0 {
		t.Errorf("zone asked %d times with no date alone", asked)
	}
	got, err := tasks.ResolveDates([]byte(`{"created_at":"2026-04-01","last_login_at":"2026-11-20","name":"x"}`), zone)
	if err != nil {
		t.Fatal(err)
	}
	var a tasks.Account
	if err := tasks.DecodeStrict(got, &a); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if !a.CreatedAt.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, tokyo)) || !a.LastLoginAt.Equal(time.Date(2026, 11, 20, 0, 0, 0, 0, tokyo)) || a.Name != "x" || asked != 1 {
		t.Errorf("resolved %+v (zone asked %d times)", a, asked)
	}
	fail := errors.New("no zone")
	if _, err := tasks.ResolveDates([]byte(`{"created_at":"2026-04-01"}`), func() (*time.Location, error) { return nil, fail }); !errors.Is(err, fail) {
		t.Errorf("zone failure: %v", err)
	}
}
