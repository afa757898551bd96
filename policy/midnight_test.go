package policy_test

import (
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
)

func dateKey(t time.Time) int {
	y, m, d := t.Date()
	return y*10000 + int(m)*100 + d
}

// checkNextMidnight checks got = NextMidnight(tm, loc) against the rule, not
// against a precomputed value: strictly after tm, on a later local date than
// tm, the instant just before it still on tm's local date (so it is the
// first instant of the next date), either 00:00:00 local or the instant a
// zone change jumped over midnight, and at most 25 hours away.
func checkNextMidnight(tb testing.TB, tm time.Time, loc *time.Location, got time.Time) {
	tb.Helper()
	lt, lg := tm.In(loc), got.In(loc)
	where := func() string {
		return tm.UTC().Format(time.RFC3339Nano) + " (" + lt.Format("2006-01-02 15:04:05.999999999 MST") + ") in " + loc.String() +
			" -> " + lg.Format("2006-01-02 15:04:05.999999999 MST")
	}
	if got.Location() != loc {
		tb.Errorf("%s: result location %v, want %v", where(), got.Location(), loc)
	}
	if !got.After(tm) {
		tb.Errorf("%s: result is not strictly after t", where())
	}
	if dateKey(lg) <= dateKey(lt) {
		tb.Errorf("%s: result is not on a later local date", where())
	}
	before := got.Add(-time.Nanosecond).In(loc)
	if dateKey(before) != dateKey(lt) {
		tb.Errorf("%s: 1ns before the result is %s, not t's local date: not the first instant of the next day",
			where(), before.Format("2006-01-02 15:04:05.999999999 MST"))
	}
	midnight := lg.Hour() == 0 && lg.Minute() == 0 && lg.Second() == 0 && lg.Nanosecond() == 0
	_, offBefore := before.Zone()
	_, offGot := lg.Zone()
	if !midnight && offBefore == offGot {
		tb.Errorf("%s: result is neither 00:00 local nor a zone change", where())
	}
	if d := got.Sub(tm); d > 25*time.Hour {
		tb.Errorf("%s: result is %v after t, more than 25h", where(), d)
	}
}

func TestNextMidnight(t *testing.T) {
	tokyo := loadLocation(t, "Asia/Tokyo")
	ny := loadLocation(t, "America/New_York")
	havana := loadLocation(t, "America/Havana")
	santiago := loadLocation(t, "America/Santiago")
	beirut := loadLocation(t, "Asia/Beirut")
	amman := loadLocation(t, "Asia/Amman")
	apia := loadLocation(t, "Pacific/Apia")
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}

	cases := []struct {
		name string
		loc  *time.Location
		t    time.Time
		want time.Time
		dur  time.Duration // want - t
	}{
		// Asia/Tokyo: no DST, UTC+9.
		{"Tokyo 09:00", tokyo, time.Date(2026, 6, 15, 9, 0, 0, 0, tokyo), time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo), 15 * time.Hour},
		{"Tokyo exactly midnight -> the following midnight", tokyo, time.Date(2026, 6, 15, 0, 0, 0, 0, tokyo), time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo), 24 * time.Hour},
		{"Tokyo 1ns before midnight", tokyo, time.Date(2026, 6, 15, 23, 59, 59, 999_999_999, tokyo), time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo), time.Nanosecond},
		{"Tokyo 23:59:59.999", tokyo, time.Date(2026, 6, 15, 23, 59, 59, 999_000_000, tokyo), time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo), time.Millisecond},
		{"Tokyo month end", tokyo, time.Date(2026, 6, 30, 12, 0, 0, 0, tokyo), time.Date(2026, 7, 1, 0, 0, 0, 0, tokyo), 12 * time.Hour},
		{"Tokyo year end", tokyo, time.Date(2026, 12, 31, 23, 0, 0, 0, tokyo), time.Date(2027, 1, 1, 0, 0, 0, 0, tokyo), time.Hour},
		{"Tokyo Feb 28, leap year", tokyo, time.Date(2028, 2, 28, 10, 0, 0, 0, tokyo), time.Date(2028, 2, 29, 0, 0, 0, 0, tokyo), 14 * time.Hour},
		{"Tokyo Feb 28, common year", tokyo, time.Date(2026, 2, 28, 10, 0, 0, 0, tokyo), time.Date(2026, 3, 1, 0, 0, 0, 0, tokyo), 14 * time.Hour},

		// t carries UTC, the company is in Tokyo: the Tokyo calendar decides.
		{"UTC t, Tokyo 23:59:59.999", tokyo, utc(2026, 6, 15, 14, 59, 59, 999_000_000), utc(2026, 6, 15, 15, 0, 0, 0), time.Millisecond},
		{"UTC t, exactly Tokyo midnight", tokyo, utc(2026, 6, 15, 15, 0, 0, 0), utc(2026, 6, 16, 15, 0, 0, 0), 24 * time.Hour},
		{"UTC t, Tokyo already the next day", tokyo, utc(2026, 6, 15, 20, 0, 0, 0), utc(2026, 6, 16, 15, 0, 0, 0), 19 * time.Hour},
		{"UTC t, same UTC and Tokyo date", tokyo, utc(2026, 6, 15, 3, 0, 0, 0), utc(2026, 6, 15, 15, 0, 0, 0), 12 * time.Hour},

		// America/New_York, 2026-03-08: 02:00 EST -> 03:00 EDT, a 23-hour day.
		{"NY DST begins, 00:00 EST (whole day)", ny, time.Date(2026, 3, 8, 0, 0, 0, 0, ny), time.Date(2026, 3, 9, 0, 0, 0, 0, ny), 23 * time.Hour},
		{"NY DST begins, 00:30 EST", ny, time.Date(2026, 3, 8, 0, 30, 0, 0, ny), time.Date(2026, 3, 9, 0, 0, 0, 0, ny), 22*time.Hour + 30*time.Minute},
		{"NY DST begins, 1ns before the jump", ny, utc(2026, 3, 8, 6, 59, 59, 999_999_999), time.Date(2026, 3, 9, 0, 0, 0, 0, ny), 21*time.Hour + time.Nanosecond},
		{"NY DST begins, 03:00 EDT", ny, time.Date(2026, 3, 8, 3, 0, 0, 0, ny), time.Date(2026, 3, 9, 0, 0, 0, 0, ny), 21 * time.Hour},
		{"NY DST begins, 23:30 EDT", ny, time.Date(2026, 3, 8, 23, 30, 0, 0, ny), time.Date(2026, 3, 9, 0, 0, 0, 0, ny), 30 * time.Minute},
		{"NY the evening before DST begins", ny, time.Date(2026, 3, 7, 23, 30, 0, 0, ny), time.Date(2026, 3, 8, 0, 0, 0, 0, ny), 30 * time.Minute},

		// America/New_York, 2026-11-01: 02:00 EDT -> 01:00 EST, a 25-hour day.
		{"NY DST ends, 00:00 EDT (whole day)", ny, time.Date(2026, 11, 1, 0, 0, 0, 0, ny), time.Date(2026, 11, 2, 0, 0, 0, 0, ny), 25 * time.Hour},
		{"NY DST ends, 01:30 EDT (first pass)", ny, utc(2026, 11, 1, 5, 30, 0, 0), time.Date(2026, 11, 2, 0, 0, 0, 0, ny), 23*time.Hour + 30*time.Minute},
		{"NY DST ends, 01:30 EST (second pass)", ny, utc(2026, 11, 1, 6, 30, 0, 0), time.Date(2026, 11, 2, 0, 0, 0, 0, ny), 22*time.Hour + 30*time.Minute},
		{"NY DST ends, 23:30 EST", ny, time.Date(2026, 11, 1, 23, 30, 0, 0, ny), time.Date(2026, 11, 2, 0, 0, 0, 0, ny), 30 * time.Minute},

		// America/Havana skips midnight: 2025-03-08 24:00 CST -> 2025-03-09 01:00 CDT
		// (05:00 UTC). The 9th begins at 01:00 CDT.
		{"Havana skipped midnight, 23:30 CST", havana, utc(2025, 3, 9, 4, 30, 0, 0), utc(2025, 3, 9, 5, 0, 0, 0), 30 * time.Minute},
		{"Havana skipped midnight, 1ns before", havana, utc(2025, 3, 9, 4, 59, 59, 999_999_999), utc(2025, 3, 9, 5, 0, 0, 0), time.Nanosecond},
		{"Havana skipped midnight, 09:00 CST", havana, time.Date(2025, 3, 8, 9, 0, 0, 0, havana), utc(2025, 3, 9, 5, 0, 0, 0), 15 * time.Hour},
		{"Havana skipped midnight, 00:00 CST (whole day)", havana, time.Date(2025, 3, 8, 0, 0, 0, 0, havana), utc(2025, 3, 9, 5, 0, 0, 0), 24 * time.Hour},
		{"Havana the 23-hour day after", havana, utc(2025, 3, 9, 5, 0, 0, 0), time.Date(2025, 3, 10, 0, 0, 0, 0, havana), 23 * time.Hour},
		// America/Havana repeats midnight: 2025-11-02 01:00 CDT -> 00:00 CST (05:00 UTC).
		{"Havana repeated midnight, 23:30 CDT -> first 00:00", havana, utc(2025, 11, 2, 3, 30, 0, 0), utc(2025, 11, 2, 4, 0, 0, 0), 30 * time.Minute},
		{"Havana repeated midnight, 00:30 CST (second pass)", havana, utc(2025, 11, 2, 5, 30, 0, 0), time.Date(2025, 11, 3, 0, 0, 0, 0, havana), 23*time.Hour + 30*time.Minute},

		// America/Santiago skips midnight: 2025-09-06 24:00 -04 -> 2025-09-07 01:00 -03 (04:00 UTC).
		{"Santiago skipped midnight, 23:59:59.999 -04", santiago, utc(2025, 9, 7, 3, 59, 59, 999_000_000), utc(2025, 9, 7, 4, 0, 0, 0), time.Millisecond},
		{"Santiago skipped midnight, 12:00 -04", santiago, time.Date(2025, 9, 6, 12, 0, 0, 0, santiago), utc(2025, 9, 7, 4, 0, 0, 0), 12 * time.Hour},
		// America/Santiago falls back at midnight: 2025-04-05 24:00 -03 -> 23:00 -04 (03:00 UTC).
		{"Santiago fall back, 00:00 -03 (25-hour day)", santiago, time.Date(2025, 4, 5, 0, 0, 0, 0, santiago), utc(2025, 4, 6, 4, 0, 0, 0), 25 * time.Hour},
		{"Santiago fall back, 23:30 -03 (first pass)", santiago, utc(2025, 4, 6, 2, 30, 0, 0), utc(2025, 4, 6, 4, 0, 0, 0), 90 * time.Minute},
		{"Santiago fall back, 23:30 -04 (second pass)", santiago, utc(2025, 4, 6, 3, 30, 0, 0), utc(2025, 4, 6, 4, 0, 0, 0), 30 * time.Minute},

		// Asia/Beirut skips midnight east of Greenwich: 2026-03-28 24:00 EET -> 2026-03-29 01:00 EEST (22:00 UTC).
		{"Beirut skipped midnight, 23:30 EET", beirut, utc(2026, 3, 28, 21, 30, 0, 0), utc(2026, 3, 28, 22, 0, 0, 0), 30 * time.Minute},

		// Asia/Amman repeated midnight: 2021-10-29 01:00 EEST -> 00:00 EET (22:00 UTC).
		// The 29th begins at the first 00:00, 00:00 EEST (21:00 UTC).
		{"Amman repeated midnight, 23:30 EEST -> first 00:00", amman, utc(2021, 10, 28, 20, 30, 0, 0), utc(2021, 10, 28, 21, 0, 0, 0), 30 * time.Minute},
		{"Amman repeated midnight, 12:00 EEST -> first 00:00", amman, time.Date(2021, 10, 28, 12, 0, 0, 0, amman), utc(2021, 10, 28, 21, 0, 0, 0), 12 * time.Hour},
		{"Amman repeated midnight, 00:30 EEST (first pass)", amman, utc(2021, 10, 28, 21, 30, 0, 0), time.Date(2021, 10, 30, 0, 0, 0, 0, amman), 24*time.Hour + 30*time.Minute},
		{"Amman repeated midnight, 00:30 EET (second pass)", amman, utc(2021, 10, 28, 22, 30, 0, 0), time.Date(2021, 10, 30, 0, 0, 0, 0, amman), 23*time.Hour + 30*time.Minute},

		// Pacific/Apia skipped 2011-12-30 entirely: 12-29 24:00 -10 -> 12-31 00:00 +14 (12-30 10:00 UTC).
		{"Apia skipped day, 12:00 -10", apia, utc(2011, 12, 29, 22, 0, 0, 0), utc(2011, 12, 30, 10, 0, 0, 0), 12 * time.Hour},
		{"Apia skipped day, 00:00 -10", apia, time.Date(2011, 12, 29, 0, 0, 0, 0, apia), utc(2011, 12, 30, 10, 0, 0, 0), 24 * time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := policy.NextMidnight(c.t, c.loc)
			if !got.Equal(c.want) {
				t.Errorf("NextMidnight(%s) = %s, want %s",
					c.t.In(c.loc).Format("2006-01-02 15:04:05.999999999 MST"),
					got.In(c.loc).Format("2006-01-02 15:04:05.999999999 MST (UTC-0700)"),
					c.want.In(c.loc).Format("2006-01-02 15:04:05.999999999 MST (UTC-0700)"))
			}
			if got, want := got.Sub(c.t), c.dur; got != want {
				t.Errorf("NextMidnight - t = %v, want %v", got, want)
			}
			checkNextMidnight(t, c.t, c.loc, got)
		})
	}
}

// TestNextMidnightZonePremises checks that the zone data the tests above rely
// on says what they assume, so a tzdata change fails here, clearly, rather
// than silently turning an edge case into an ordinary day.
func TestNextMidnightZonePremises(t *testing.T) {
	const layout = "2006-01-02 15:04:05.999999999 MST"
	cases := []struct {
		zone       string
		transition time.Time // UTC instant of the zone change
		before     string    // local time 1ns earlier
		at         string    // local time at the change
	}{
		{"America/Havana", time.Date(2025, 3, 9, 5, 0, 0, 0, time.UTC), "2025-03-08 23:59:59.999999999 CST", "2025-03-09 01:00:00 CDT"},
		{"America/Havana", time.Date(2025, 11, 2, 5, 0, 0, 0, time.UTC), "2025-11-02 00:59:59.999999999 CDT", "2025-11-02 00:00:00 CST"},
		{"America/Santiago", time.Date(2025, 9, 7, 4, 0, 0, 0, time.UTC), "2025-09-06 23:59:59.999999999 -04", "2025-09-07 01:00:00 -03"},
		{"America/Santiago", time.Date(2025, 4, 6, 3, 0, 0, 0, time.UTC), "2025-04-05 23:59:59.999999999 -03", "2025-04-05 23:00:00 -04"},
		{"Asia/Beirut", time.Date(2026, 3, 28, 22, 0, 0, 0, time.UTC), "2026-03-28 23:59:59.999999999 EET", "2026-03-29 01:00:00 EEST"},
		{"Asia/Amman", time.Date(2021, 10, 28, 22, 0, 0, 0, time.UTC), "2021-10-29 00:59:59.999999999 EEST", "2021-10-29 00:00:00 EET"},
		{"Pacific/Apia", time.Date(2011, 12, 30, 10, 0, 0, 0, time.UTC), "2011-12-29 23:59:59.999999999 -10", "2011-12-31 00:00:00 +14"},
		{"America/New_York", time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), "2026-03-08 01:59:59.999999999 EST", "2026-03-08 03:00:00 EDT"},
		{"America/New_York", time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC), "2026-11-01 01:59:59.999999999 EDT", "2026-11-01 01:00:00 EST"},
	}
	for _, c := range cases {
		loc := loadLocation(t, c.zone)
		if got, want := c.transition.Add(-time.Nanosecond).In(loc).Format(layout), c.before; got != want {
			t.Errorf("%s: 1ns before %v is %s, want %s", c.zone, c.transition, got, want)
		}
		if got, want := c.transition.In(loc).Format(layout), c.at; got != want {
			t.Errorf("%s: %v is %s, want %s", c.zone, c.transition, got, want)
		}
	}
}

// TestNextMidnightDayLengths walks whole days and checks that consecutive
// deadlines are one local day apart: 23 h and 25 h on the New York DST days.
func TestNextMidnightDayLengths(t *testing.T) {
	ny := loadLocation(t, "America/New_York")
	tokyo := loadLocation(t, "Asia/Tokyo")
	cases := []struct {
		loc  *time.Location
		day  time.Time // 00:00 local of the day
		want time.Duration
	}{
		{ny, time.Date(2026, 3, 7, 0, 0, 0, 0, ny), 24 * time.Hour},
		{ny, time.Date(2026, 3, 8, 0, 0, 0, 0, ny), 23 * time.Hour},
		{ny, time.Date(2026, 3, 9, 0, 0, 0, 0, ny), 24 * time.Hour},
		{ny, time.Date(2026, 10, 31, 0, 0, 0, 0, ny), 24 * time.Hour},
		{ny, time.Date(2026, 11, 1, 0, 0, 0, 0, ny), 25 * time.Hour},
		{ny, time.Date(2026, 11, 2, 0, 0, 0, 0, ny), 24 * time.Hour},
		{tokyo, time.Date(2026, 3, 8, 0, 0, 0, 0, tokyo), 24 * time.Hour},
	}
	for _, c := range cases {
		end := policy.NextMidnight(c.day, c.loc)
		if got, want := end.Sub(c.day), c.want; got != want {
			t.Errorf("%s %s: day length %v, want %v", c.loc, c.day.Format("2006-01-02"), got, want)
		}
		// Every instant of the day has the same deadline.
		for _, off := range []time.Duration{0, time.Nanosecond, time.Hour, 2 * time.Hour, c.want / 2, c.want - time.Nanosecond} {
			if got := policy.NextMidnight(c.day.Add(off), c.loc); !got.Equal(end) {
				t.Errorf("%s %s +%v: NextMidnight = %v, want %v", c.loc, c.day.Format("2006-01-02"), off, got, end)
			}
		}
	}
}

// fuzzZones is the fixed list FuzzNextMidnight picks from by index; append
// only, or the committed corpus changes meaning. Every zone here moves its
// clocks by at most an hour at a time between 1900 and 2100, so no day is
// longer than 25 hours (Antarctica/Casey and Antarctica/Troll are left out
// for that reason).
var fuzzZones = []string{
	"UTC",
	"Asia/Tokyo",
	"America/New_York",
	"Europe/London",
	"America/Havana",
	"America/Santiago",
	"America/Asuncion",
	"America/Sao_Paulo",
	"Asia/Amman",
	"Asia/Gaza",
	"Asia/Beirut",
	"Pacific/Apia",
	"Australia/Lord_Howe",
	"Pacific/Chatham",
	"America/St_Johns",
	"Europe/Dublin",
	"Africa/Casablanca",
	"Asia/Kolkata",
}

// Unix seconds are folded into [1900-01-01, 2100-01-01) UTC.
var (
	fuzzMin  = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	fuzzSpan = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - fuzzMin
)

func FuzzNextMidnight(f *testing.F) {
	locs := make([]*time.Location, len(fuzzZones))
	for i, z := range fuzzZones {
		locs[i] = loadLocation(f, z)
	}
	zoneIndex := func(name string) uint8 {
		for i, z := range fuzzZones {
			if z == name {
				return uint8(i)
			}
		}
		f.Fatalf("zone %s not in fuzzZones", name)
		return 0
	}
	// The edges of TestNextMidnight, as seeds.
	f.Add(time.Date(2026, 6, 15, 15, 0, 0, 0, time.UTC).Unix(), uint32(0), zoneIndex("Asia/Tokyo"))               // exactly Tokyo midnight
	f.Add(time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC).Unix(), uint32(0), zoneIndex("America/New_York"))           // start of a 23 h day
	f.Add(time.Date(2026, 11, 1, 4, 0, 0, 0, time.UTC).Unix(), uint32(0), zoneIndex("America/New_York"))          // start of a 25 h day
	f.Add(time.Date(2025, 3, 9, 4, 59, 59, 0, time.UTC).Unix(), uint32(999_999_999), zoneIndex("America/Havana")) // 1ns before a skipped midnight
	f.Add(time.Date(2025, 9, 7, 3, 30, 0, 0, time.UTC).Unix(), uint32(0), zoneIndex("America/Santiago"))          // 23:30 before a skipped midnight
	f.Add(time.Date(2021, 10, 28, 20, 30, 0, 0, time.UTC).Unix(), uint32(0), zoneIndex("Asia/Amman"))             // 23:30 before a repeated midnight
	f.Add(time.Date(2011, 12, 29, 22, 0, 0, 0, time.UTC).Unix(), uint32(0), zoneIndex("Pacific/Apia"))            // the day before a skipped day

	f.Fuzz(func(t *testing.T, sec int64, nsec uint32, zone uint8) {
		// Identity inside the range (so seeds mean what they say); wraps outside.
		sec = fuzzMin + ((sec-fuzzMin)%fuzzSpan+fuzzSpan)%fuzzSpan
		tm := time.Unix(sec, int64(nsec%1_000_000_000))
		loc := locs[int(zone)%len(locs)]
		got := policy.NextMidnight(tm, loc)
		checkNextMidnight(t, tm, loc, got)
		// The same instant given in another zone has the same deadline.
		if again := policy.NextMidnight(tm.UTC(), loc); !again.Equal(got) {
			t.Errorf("NextMidnight depends on t's own location: %v vs %v", got, again)
		}
		// Every instant of the day up to the deadline shares it.
		if prev := got.Add(-time.Nanosecond); prev.After(tm) {
			if again := policy.NextMidnight(prev, loc); !again.Equal(got) {
				t.Errorf("NextMidnight(deadline-1ns) = %v, want %v", again, got)
			}
		}
	})
}

func TestUnlockDeadline(t *testing.T) {
	tokyo := loadLocation(t, "Asia/Tokyo")
	click := time.Date(2026, 6, 15, 23, 59, 50, 0, tokyo)
	midnight := time.Date(2026, 6, 16, 0, 0, 0, 0, tokyo)
	cases := []struct {
		name           string
		requested, now time.Time
		want           time.Time
		ok             bool
	}{
		{"run at once", click, click, midnight, true},
		{"run after midnight: too late, not tomorrow's midnight", click, midnight.Add(time.Second), midnight, false},
		{"run exactly at midnight", click, midnight, midnight, false},
		{"a click time ahead of the worker counts as the worker's now", midnight.Add(time.Hour), click, midnight, true},
		{"no click time: the worker's now", time.Time{}, click, midnight, true},
		{"clicked in the morning, run at noon", click.Add(-15 * time.Hour), click.Add(-12 * time.Hour), midnight, true},
	}
	for _, c := range cases {
		got, ok := policy.UnlockDeadline(c.requested, c.now, tokyo)
		if !got.Equal(c.want) || ok != c.ok {
			t.Errorf("%s: UnlockDeadline = %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
