package importer_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/importer"
	"github.com/dormancy/dormancy/internal/testenv"
)

// BenchmarkImport imports generated files of 100,000 and 1,000,000 rows
// and sets each beside COPY of the same file, in the same database, into
//   - a bare table of text columns (the baseline: x-copy), and
//   - a table shaped like accounts, with its indexes, checks and foreign
//     key (what any import into accounts pays: x-copy-accounts).
//
// It reports the importer's peak resident memory (peak-RSS-MiB, the
// process's high-water mark from the start of the import), which should
// not grow with the file. ns/op is the import alone.
//
//	go test -run '^$' -bench 'Import/rows=100000$' -benchtime 1x ./importer/
//	go test -run '^$' -bench 'Import' -benchtime 1x ./importer/   # adds 1M rows, a few minutes
func BenchmarkImport(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run("rows="+strconv.Itoa(n), func(b *testing.B) { benchImport(b, n) })
	}
}

func benchImport(b *testing.B, n int) {
	bb := setup(b)
	db := bun.NewDB(testenv.DB(b), pgdialect.New())
	var importTime, bareTime, shapedTime time.Duration
	var peak int64
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		cos := bb.companies(b, 10)
		path := filepath.Join(b.TempDir(), "employees.csv")
		generateFull(b, path, cos, n)

		bare := "bench_bare_" + strconv.Itoa(i)
		shaped := "bench_accounts_" + strconv.Itoa(i)
		mustExec(b, db, `CREATE TABLE `+bare+` (company_id text, login_id text, id_kind text, email text, name text,
			department text, can_manage_employees text, exempt text, created_at text, last_login_at text)`)
		mustExec(b, db, `CREATE TABLE `+shaped+` (LIKE accounts INCLUDING ALL)`)
		mustExec(b, db, `ALTER TABLE `+shaped+` ADD FOREIGN KEY (company_id) REFERENCES companies (id)`)
		bareTime += copyFile(b, db, path, bare)
		shapedTime += copyFile(b, db, path, shaped)
		mustExec(b, db, `DROP TABLE `+bare+`, `+shaped)

		runtime.GC()
		resetPeakRSS(b)
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		start := time.Now()
		b.StartTimer()
		s, err := importer.Run(bb.ctx, bb.store, f, importer.Options{Size: st.Size()})
		b.StopTimer()
		importTime += time.Since(start)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if s.Created != int64(n) {
			b.Fatalf("summary %+v, want %d created", s, n)
		}
		peak = max(peak, peakRSS(b))
	}
	b.ReportMetric(float64(importTime)/float64(bareTime), "x-copy")
	b.ReportMetric(float64(importTime)/float64(shapedTime), "x-copy-accounts")
	b.ReportMetric(float64(n)*float64(b.N)/importTime.Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
}

// generateFull writes n valid rows with every column the accounts table
// takes directly (an email for every email ID), so that COPY can load the
// same file into the accounts-shaped table.
func generateFull(b *testing.B, path string, companies []string, n int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(header)
	for i := range n {
		row := goodRow(companies, i)
		if i%3 == 0 {
			login := fmt.Sprintf("emp%07d@example.com", i)
			row = strings.Replace(row, login+",email,,", login+",email,"+login+",", 1)
		}
		w.WriteString(row)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

func mustExec(b *testing.B, db *bun.DB, q string) {
	b.Helper()
	if _, err := db.ExecContext(b.Context(), q); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
}

func copyFile(b *testing.B, db *bun.DB, path, table string) time.Duration {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	conn, err := db.Conn(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, err = pgdriver.CopyFrom(b.Context(), conn, bufio.NewReaderSize(f, 1<<20), `COPY `+table+
		` (company_id, login_id, id_kind, email, name, department, can_manage_employees, exempt, created_at, last_login_at)
		FROM STDIN WITH (FORMAT csv, HEADER true)`)
	if err != nil {
		b.Fatalf("COPY into %s: %v", table, err)
	}
	return time.Since(start)
}

// resetPeakRSS restarts the kernel's high-water mark of this process's
// resident memory (Linux: writing 5 to clear_refs).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS here: %v", err)
	}
}

func peakRSS(b *testing.B) int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
