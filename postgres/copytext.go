package postgres

import (
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

// errCopyText is a COPY text stream that does not follow the format.
var errCopyText = errors.New("postgres: malformed COPY text row")

// eachCopyRow splits the output of `COPY … TO STDOUT` (text format) into
// rows of n fields and calls fn with each. The fields are substrings of s
// unless they hold an escape, so a row costs no allocation of its own; a
// NULL (`\N`) is the empty string, which is all the report's columns need
// of it. The slice passed to fn is reused for the next row.
//
// Only the escapes PostgreSQL writes are read (`\\`, `\b`, `\f`, `\n`,
// `\r`, `\t`, `\v`); anything else is errCopyText, as is a row whose field
// count is not n.
func eachCopyRow(s string, n int, fn func(fields []string) error) error {
	fields := make([]string, n)
	for len(s) > 0 {
		end := strings.IndexByte(s, '\n')
		if end < 0 {
			return errCopyText // a row always ends with a newline
		}
		line := s[:end]
		s = s[end+1:]
		i := 0
		for {
			if i == n {
				return errCopyText
			}
			tab := strings.IndexByte(line, '\t')
			f := line
			if tab >= 0 {
				f = line[:tab]
			}
			v, err := unescapeCopy(f)
			if err != nil {
				return err
			}
			fields[i] = v
			i++
			if tab < 0 {
				break
			}
			line = line[tab+1:]
		}
		if i != n {
			return errCopyText
		}
		if err := fn(fields); err != nil {
			return err
		}
	}
	return nil
}

// unescapeCopy reads one field of a COPY text row.
func unescapeCopy(f string) (string, error) {
	if f == `\N` {
		return "", nil
	}
	if strings.IndexByte(f, '\\') < 0 {
		return f, nil
	}
	var b strings.Builder
	b.Grow(len(f))
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i++; i == len(f) {
			return "", errCopyText
		}
		switch f[i] {
		case '\\':
			b.WriteByte('\\')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		default:
			return "", errCopyText
		}
	}
	return b.String(), nil
}

// parseTimestamptz reads a timestamptz as PostgreSQL writes it in ISO
// style: "2006-01-02 15:04:05.999999+09" (or "+05:30"). That form is read
// without time.Parse's general layout machinery, which cost a tenth of the
// report; any other form goes to the driver's own parser.
func parseTimestamptz(s string) (time.Time, error) {
	if t, ok := isoTimestamptz(s); ok {
		return t, nil
	}
	return pgdriver.ParseTime(s)
}

// nullTimestamptz reads a nullable timestamptz field of a COPY row, where
// NULL is empty (eachCopyRow).
func nullTimestamptz(s string) (sql.NullTime, error) {
	if s == "" {
		return sql.NullTime{}, nil
	}
	t, err := parseTimestamptz(s)
	if err != nil {
		return sql.NullTime{}, err
	}
	return sql.NullTime{Time: t, Valid: true}, nil
}

func isoTimestamptz(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02 15:04:05+00") || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	var v [6]int
	for i, at := range [6]int{0, 5, 8, 11, 14, 17} {
		n := 2
		if i == 0 {
			n = 4
		}
		d, ok := digits(s[at : at+n])
		if !ok {
			return time.Time{}, false
		}
		v[i] = d
	}
	rest := s[19:]
	nsec := 0
	if rest[0] == '.' {
		k := 1
		for k < len(rest) && k <= 9 && rest[k] >= '0' && rest[k] <= '9' {
			k++
		}
		if k == 1 {
			return time.Time{}, false
		}
		f, _ := digits(rest[1:k])
		for range 10 - k {
			f *= 10
		}
		nsec, rest = f, rest[k:]
	}
	if len(rest) != 3 && (len(rest) != 6 || rest[3] != ':') || rest[0] != '+' && rest[0] != '-' {
		return time.Time{}, false
	}
	hh, ok := digits(rest[1:3])
	mm := 0
	if ok && len(rest) == 6 {
		mm, ok = digits(rest[4:6])
	}
	if !ok || hh > 23 || mm > 59 || v[1] < 1 || v[1] > 12 || v[3] > 23 || v[4] > 59 || v[5] > 59 {
		return time.Time{}, false
	}
	off := hh*3600 + mm*60
	if rest[0] == '-' {
		off = -off
	}
	t := time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], nsec, time.UTC)
	if t.Day() != v[2] { // a day the month does not have
		return time.Time{}, false
	}
	return t.Add(-time.Duration(off) * time.Second), true
}

// digits reads a run of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
