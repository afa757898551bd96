package importer

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// LineProgress reports in plain lines, one per tenth of each phase (every
// 64 MiB or 100,000 rows when the total is unknown): for logs and pipes,
// where a redrawn bar would be noise.
func LineProgress(w io.Writer) func(Progress) {
	var phase Phase
	var next, last int64
	return func(p Progress) {
		if p.Phase != phase {
			phase, next, last = p.Phase, 0, -1
		}
		step := p.Total / 10
		switch {
		case p.Total == 0 && p.Phase == PhaseRead:
			step = 64 << 20
		case p.Total == 0:
			step = 100_000
		}
		step = max(step, 1)
		if next == 0 {
			next = step
		}
		finished := p.Total > 0 && p.Done >= p.Total
		if p.Done == last || (p.Done < next && !finished) {
			return
		}
		last, next = p.Done, (p.Done/step+1)*step
		fmt.Fprintln(w, progressLine(p))
	}
}

func progressLine(p Progress) string {
	var done, total, what string
	switch p.Phase {
	case PhaseRead:
		done, total, what = mebibytes(p.Done), mebibytes(p.Total), "import: read"
	default:
		done, total, what = fmt.Sprint(p.Done), fmt.Sprintf("%d rows", p.Total), "import: merged"
	}
	if p.Total <= 0 {
		return fmt.Sprintf("%s %s", what, done)
	}
	return fmt.Sprintf("%s %s of %s (%d%%)", what, done, total, p.Done*100/p.Total)
}

func mebibytes(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Bar draws a progress bar per phase on a terminal.
type Bar struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	phase Phase
}

// NewBar returns a bar drawing on w, a terminal.
func NewBar(w io.Writer) *Bar { return &Bar{w: w} }

// Report is an Options.ProgressFunc.
func (b *Bar) Report(p Progress) {
	if p.Phase != b.phase {
		b.Finish()
		b.phase = p.Phase
		total := p.Total
		if total <= 0 {
			total = -1 // unknown: a spinner
		}
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
		}
		if p.Phase == PhaseRead {
			opts = append(opts, progressbar.OptionSetDescription("reading"), progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionSetDescription("merging"), progressbar.OptionShowCount(),
				progressbar.OptionSetItsString("rows"), progressbar.OptionShowIts())
		}
		b.bar = progressbar.NewOptions64(total, opts...)
	}
	if p.Total > 0 && b.bar.GetMax64() != p.Total {
		b.bar.ChangeMax64(p.Total)
	}
	_ = b.bar.Set64(p.Done)
}

// Finish completes the current bar and ends its line.
func (b *Bar) Finish() {
	if b.bar == nil {
		return
	}
	if b.bar.GetMax64() > 0 {
		_ = b.bar.Finish()
	}
	fmt.Fprintln(b.w)
	b.bar = nil
}
