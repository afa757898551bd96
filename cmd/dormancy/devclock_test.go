package main

import (
	"testing"
	"time"
)

func TestDevClockMoves(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	real := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC) // 10:00 in Tokyo
	c := &devClock{real: func() time.Time { return real }}
	if got, _ := c.Move("+91d", tokyo); !got.Equal(real.Add(91 * 24 * time.Hour)) {
		t.Errorf("+91d = %v", got)
	}
	c.Move("reset", tokyo)
	got, err := c.Move("23:59", tokyo)
	if err != nil || got.In(tokyo).Format("2006-01-02 15:04") != "2026-11-26 23:59" {
		t.Errorf("23:59 = %v, %v", got.In(tokyo), err)
	}
	// 09:00 has passed today in Tokyo: the next one is tomorrow.
	got, _ = c.Move("09:00", tokyo)
	if got.In(tokyo).Format("2006-01-02 15:04") != "2026-11-27 09:00" {
		t.Errorf("09:00 = %v", got.In(tokyo))
	}
	for _, bad := range []string{"-1d", "+xd", "yesterday", "+-5h", "25:00"} {
		if _, err := c.Move(bad, tokyo); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
