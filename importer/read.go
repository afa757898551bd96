package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dormancy/dormancy/postgres"
)

// MaxRowBytes bounds one row. Real rows are a few hundred bytes; a CSV
// quote left open would otherwise make the rest of the file one field,
// read into memory whole.
const MaxRowBytes = 1 << 20

// rowReader yields the rows of a file one at a time, each checked: a
// staging row or a reject. io.EOF ends the file; any other error ends the
// import (the file cannot be read on).
type rowReader interface {
	next() (postgres.ImportRow, error)
	// offset is how many bytes of the file the rows so far took.
	offset() int64
}

func newRowReader(f Format, r io.Reader) (rowReader, error) {
	switch f {
	case CSV:
		return newCSVReader(r)
	case JSONL:
		return newJSONLReader(r), nil
	}
	return nil, fmt.Errorf("importer: unknown format %q (want csv or jsonl)", f)
}

// rowGuard fails a read once more than MaxRowBytes (plus the CSV reader's
// read-ahead) were read since the last row ended.
type rowGuard struct {
	r io.Reader
	n int64
}

var errRowTooLong = errors.New("row longer than 1 MiB")

func (g *rowGuard) Read(p []byte) (int, error) {
	if g.n > MaxRowBytes+64<<10 {
		return 0, errRowTooLong
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

type csvReader struct {
	r      *csv.Reader
	guard  *rowGuard
	cols   []int // column of each header position
	rec    record
	header int
}

// newCSVReader reads the header: every name must be a known column, none
// twice, and the required ones present. A header at fault stops the import
// before any row is read: every row would be misread.
func newCSVReader(r io.Reader) (*csvReader, error) {
	g := &rowGuard{r: r}
	c := &csvReader{r: csv.NewReader(g), guard: g}
	c.r.ReuseRecord = true
	header, err := c.r.Read()
	if err == io.EOF {
		return nil, errors.New("importer: the file is empty; it needs a header row")
	}
	if err != nil {
		return nil, fmt.Errorf("importer: header: %w", err)
	}
	g.n = 0
	c.header, _ = c.r.FieldPos(0)
	seen := map[int]bool{}
	for i, name := range header {
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff") // the byte-order mark spreadsheets write
		}
		col := columnIndex(strings.TrimSpace(name))
		switch {
		case col < 0:
			return nil, fmt.Errorf("importer: header: unknown column %q (known: %s)", name, strings.Join(columnNames[:], ", "))
		case seen[col]:
			return nil, fmt.Errorf("importer: header: column %q appears twice", name)
		}
		seen[col] = true
		c.cols = append(c.cols, col)
	}
	for _, col := range requiredColumns {
		if !seen[col] {
			return nil, fmt.Errorf("importer: header: required column %q is missing", columnNames[col])
		}
	}
	return c, nil
}

func (c *csvReader) offset() int64 { return c.r.InputOffset() }

func (c *csvReader) next() (postgres.ImportRow, error) {
	fields, err := c.r.Read()
	c.guard.n = 0
	var pe *csv.ParseError
	switch {
	case err == io.EOF:
		return postgres.ImportRow{}, io.EOF
	case errors.Is(err, errRowTooLong):
		line, _ := c.r.FieldPos(0)
		return postgres.ImportRow{}, fmt.Errorf("importer: after line %d: a row longer than 1 MiB; is a quote left open?", line)
	case errors.As(err, &pe) && errors.Is(err, csv.ErrFieldCount):
		return postgres.ImportRow{Line: int64(pe.StartLine), RejectField: rowField,
			RejectReason: fmt.Sprintf("%d fields, the header has %d", len(fields), len(c.cols))}, nil
	case errors.As(err, &pe):
		return postgres.ImportRow{Line: int64(pe.StartLine), RejectField: rowField,
			RejectReason: fmt.Sprintf("line %d, column %d: %v", pe.Line, pe.Column, pe.Err)}, nil
	case err != nil:
		return postgres.ImportRow{}, fmt.Errorf("importer: %w", err)
	}
	line, _ := c.r.FieldPos(0)
	c.rec = record{}
	for i, v := range fields {
		c.rec[c.cols[i]] = v
	}
	return check(int64(line), &c.rec), nil
}

type jsonlReader struct {
	r    *bufio.Reader
	buf  []byte
	line int64
	off  int64
	rec  record
}

func newJSONLReader(r io.Reader) *jsonlReader {
	return &jsonlReader{r: bufio.NewReaderSize(r, 64<<10)}
}

func (j *jsonlReader) offset() int64 { return j.off }

// next skips blank lines; a line too long is refused and skipped whole.
func (j *jsonlReader) next() (postgres.ImportRow, error) {
	for {
		line, tooLong, err := j.readLine()
		if err != nil {
			return postgres.ImportRow{}, err
		}
		switch {
		case tooLong:
			return postgres.ImportRow{Line: j.line, RejectField: rowField, RejectReason: "longer than 1 MiB"}, nil
		case len(bytes.TrimSpace(line)) == 0:
			continue
		}
		return j.parse(line), nil
	}
}

// readLine returns the next line without its line ending, io.EOF after
// the last.
func (j *jsonlReader) readLine() (line []byte, tooLong bool, err error) {
	j.buf = j.buf[:0]
	for {
		chunk, err := j.r.ReadSlice('\n')
		j.off += int64(len(chunk))
		if !tooLong {
			j.buf = append(j.buf, chunk...)
			if len(j.buf) > MaxRowBytes {
				tooLong, j.buf = true, j.buf[:0]
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(j.buf) == 0 && !tooLong:
			return nil, false, io.EOF
		case err != nil && err != io.EOF:
			return nil, false, fmt.Errorf("importer: after line %d: %w", j.line, err)
		}
		j.line++
		line = bytes.TrimSuffix(bytes.TrimSuffix(j.buf, []byte("\n")), []byte("\r"))
		return line, tooLong, nil
	}
}

// parse reads one JSON object. Values keep their JSON types (strings,
// true/false, a whole number for version, null for "not given"), and are
// checked for UTF-8 before decoding, which would otherwise replace bad
// bytes silently.
func (j *jsonlReader) parse(line []byte) postgres.ImportRow {
	reject := func(field, reason string) postgres.ImportRow {
		return postgres.ImportRow{Line: j.line, RejectField: field, RejectReason: reason}
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return reject(rowField, "not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return reject(rowField, "more than one JSON value on the line")
	}
	var unknown []string
	for k := range obj {
		if columnIndex(k) < 0 {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return reject(fieldName(unknown[0]), "unknown field")
	}
	j.rec = record{}
	for col, name := range columnNames {
		raw, ok := obj[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if !utf8.Valid(raw) {
			return reject(name, "not valid UTF-8")
		}
		switch col {
		case colCanManageEmployees, colExempt:
			if s := string(raw); s != "true" && s != "false" {
				return reject(name, "want true or false")
			}
			j.rec[col] = string(raw)
		case colVersion:
			if _, err := strconv.ParseInt(string(raw), 10, 64); err != nil {
				return reject(name, "want a whole number")
			}
			j.rec[col] = string(raw)
		default:
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return reject(name, "want a string")
			}
			j.rec[col] = s
		}
	}
	return check(j.line, &j.rec)
}

// fieldName is an unknown JSON key as a rejects file can show it: quoted
// when it has anything but letters, digits and _, and cut short.
func fieldName(key string) string {
	plain := key != "" && len(key) <= 64 && strings.IndexFunc(key, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0
	if plain {
		return key
	}
	if len(key) > 64 {
		key = strings.ToValidUTF8(key[:64], "") + "…"
	}
	return strconv.Quote(key)
}
