package postgres

import (
	"slices"
	"strings"
	"testing"

	"github.com/uptrace/bun/driver/pgdriver"
)

// copyEscape writes a field the way PostgreSQL's COPY TO (text format)
// does: backslash and the control characters it names escaped, all else
// as it is.
func copyEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "\b", `\b`, "\f", `\f`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\v", `\v`)
	return r.Replace(s)
}

// Any rows of fields, escaped as PostgreSQL escapes them, read back as
// those fields; any other input is read or refused without a panic, and
// what is read escapes back to what reads the same.
func FuzzEachCopyRow(f *testing.F) {
	f.Add("a|b\tc|d\\e", uint8(3))
	f.Add("1\tx\t\\N\n2\ty\tz\n", uint8(3))
	f.Add("社員\n太郎|\b\f\v\r|", uint8(2))
	f.Add("\\q\n", uint8(1))
	f.Fuzz(func(t *testing.T, data string, n uint8) {
		fields := strings.Split(data, "|")
		if len(fields) > 8 {
			fields = fields[:8]
		}
		enc := make([]string, len(fields))
		for i, s := range fields {
			enc[i] = copyEscape(s)
		}
		line := strings.Join(enc, "\t") + "\n"
		rows := 0
		err := eachCopyRow(line+line, len(fields), func(got []string) error {
			rows++
			if !slices.Equal(got, fields) {
				t.Fatalf("read %q back as %q", fields, got)
			}
			return nil
		})
		if err != nil || rows != 2 {
			t.Fatalf("%q: %d rows, %v; want 2", line, rows, err)
		}

		width := int(n%8) + 1
		_ = eachCopyRow(data, width, func(got []string) error {
			if len(got) != width {
				t.Fatalf("a row of %d fields, want %d", len(got), width)
			}
			again := make([]string, len(got))
			for i, s := range got {
				again[i] = copyEscape(s)
			}
			want := slices.Clone(got)
			return eachCopyRow(strings.Join(again, "\t")+"\n", width, func(back []string) error {
				if !slices.Equal(back, want) {
					t.Fatalf("%q read back as %q", want, back)
				}
				return nil
			})
		})
	})
}

// The ISO fast path reads every timestamp it accepts as the driver's own
// parser does, to the nanosecond; what it does not accept goes there.
func FuzzParseTimestamptz(f *testing.F) {
	for _, s := range []string{"2026-05-06 07:08:09.123456+09", "2025-02-03 04:05:06.789123+00", "2026-12-01 00:00:00+00",
		"1999-12-31 23:59:59.5-05:30", "2026-02-29 00:00:00+00", "2026-02-28 24:00:00+00", "0001-01-01 00:00:00+00",
		"2026-05-06 07:08:09.+09", "2026-05-06T07:08:09Z", "294276-12-31 23:59:59.999999+00", "2026-05-06 07:08:09.1234567891+09"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := isoTimestamptz(s)
		if !ok {
			return
		}
		want, err := pgdriver.ParseTime(s)
		if err != nil || !fast.Equal(want) {
			t.Fatalf("%q: fast path %v, the driver %v (%v)", s, fast, want, err)
		}
	})
}
