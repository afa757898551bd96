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
// run, and reports the command's peak RSS at each size: streaming keeps it
// flat.
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

		began := time.Now()
		cmd := exec.Command(bin, "report", "-company", fx.company, "-format", "csv", "-out", os.DevNull)
		cmd.Env, cmd.Stderr = serviceEnv(), io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatalf("dormancy report: %v", err)
		}
		took := time.Since(began)
		peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
		rss = append(rss, peak)

		// The fixture's id is testenv.UniqueID's: letters, digits and a dash.
		conn, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		began = time.Now()
		_, err = pgdriver.CopyTo(ctx, conn, io.Discard, `COPY (SELECT a.id, a.company_id, a.login_id, a.id_kind, a.email, a.name, a.department,
			a.can_manage_employees, a.status, a.exempt, a.created_at, a.last_login_at, a.lock_state, a.lock_reason,
			a.unlocked_until, a.locked_at, a.lapsed_unlock_until, a.exempt_reason, a.exempt_granted_by, a.exempt_until,
			c.name, c.time_zone, c.inactivity_days
			FROM accounts a JOIN companies c ON c.id = a.company_id WHERE a.company_id = '`+fx.company+`' ORDER BY a.login_id) TO STDOUT`)
		copyTook := time.Since(began)
		conn.Close()
		if err != nil {
			b.Fatal(err)
		}
		record(row{
			name:     fmt.Sprintf("compliance report, CSV, %d accounts (`dormancy report`, process start included)", n),
			value:    fmt.Sprintf("%.2f s, peak RSS %.0f MiB", took.Seconds(), float64(peak)/(1<<20)),
			baseline: fmt.Sprintf("%.2f s COPY of the same columns", copyTook.Seconds()),
			ratio:    fmt.Sprintf("%.2f", took.Seconds()/copyTook.Seconds()),
			target:   "≤ 2",
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
