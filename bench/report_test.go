package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/dormancy/dormancy/internal/testenv"
)

// BenchmarkReport writes a company's compliance report as CSV with
// `dormancy report` (its own process, so its peak memory is its own) for
// companies of BENCH_REPORT_SIZES accounts (100,000 and 1,000,000), beside
// `COPY (SELECT the same columns) TO STDOUT` read to the end in the same
// run, each the median of three runs taken in turn, and reports the
// command's peak RSS at each size: streaming keeps it flat.
func BenchmarkReport(b *testing.B) {
	bin := build(b, "./cmd/dormancy")
	ctx := context.Background()
	db := bun.NewDB(testenv.DB(b), pgdialect.New())
	var rss []int64
	var sizes []int
	for _, f := range strings.Split(os.Getenv("BENCH_REPORT_SIZES")+"", ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			sizes = append(sizes, n)
		}
	}
	if len(sizes) == 0 {
		sizes = []int{100_000, 1_000_000}
	}
	for _, n := range sizes {
		fx := newFixture(b, n, 0, false)

		// copyAll reads the columns the report reads of each account, in
		// one statement. The fixture's id is testenv.UniqueID's: letters,
		// digits and a dash.
		copyAll := func() time.Duration {
			conn, err := db.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			began := time.Now()
			_, err = pgdriver.CopyTo(ctx, conn, io.Discard, `COPY (SELECT a.id, a.company_id, a.login_id, a.id_kind, a.email, a.name, a.department,
				a.can_manage_employees, a.status, a.exempt, a.created_at, a.last_login_at, a.lock_state, a.lock_reason,
				a.unlocked_until, a.locked_at, a.lapsed_unlock_until, a.exempt_reason, a.exempt_granted_by, a.exempt_until
				FROM accounts a WHERE a.company_id = '`+fx.company+`' ORDER BY a.login_id) TO STDOUT`)
			if err != nil {
				b.Fatal(err)
			}
			return time.Since(began)
		}
		// Rows just written get their hint bits set by the first read,
		// and autovacuum would come by in the middle of the runs: neither
		// side should pay for either.
		if _, err := db.ExecContext(ctx, `VACUUM ANALYZE accounts`); err != nil {
			b.Fatal(err)
		}
		// Each side is the median of three runs, taken in turn.
		var runs, copies []time.Duration
		var peak int64
		for range 3 {
			began := time.Now()
			cmd := exec.Command(bin, "report", "-company", fx.company, "-format", "csv", "-out", os.DevNull)
			cmd.Env, cmd.Stderr = serviceEnv(), io.Discard
			if err := cmd.Run(); err != nil {
				b.Fatalf("dormancy report: %v", err)
			}
			runs = append(runs, time.Since(began))
			peak = max(peak, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss*1024)
			copies = append(copies, copyAll())
		}
		rss = append(rss, peak)
		took, _ := percentiles(runs)
		copyTook, _ := percentiles(copies)
		// The target is the issue's, at a million accounts; below that the
		// process's start and the first, smaller chunks weigh more.
		target := "reported"
		if n >= 1_000_000 {
			target = "≤ 2"
		}
		record(row{
			name:     fmt.Sprintf("compliance report, CSV, %d accounts (`dormancy report`, process start included)", n),
			value:    fmt.Sprintf("%.2f s, peak RSS %.0f MiB", took.Seconds(), float64(peak)/(1<<20)),
			baseline: fmt.Sprintf("%.2f s COPY of the same columns", copyTook.Seconds()),
			ratio:    fmt.Sprintf("%.2f", took.Seconds()/copyTook.Seconds()),
			target:   target,
		})
	}
	if len(rss) > 1 {
		record(row{
			name:     fmt.Sprintf("report peak RSS at %d vs %d accounts", sizes[len(sizes)-1], sizes[0]),
			value:    fmt.Sprintf("%.0f MiB", float64(rss[len(rss)-1])/(1<<20)),
			baseline: fmt.Sprintf("%.0f MiB", float64(rss[0])/(1<<20)),
			ratio:    fmt.Sprintf("%.2f", float64(rss[len(rss)-1])/float64(rss[0])),
			target:   "flat (≈ 1)",
		})
	}
}
