package bench

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
)

// row is one line of the results table: a figure and its baseline.
type row struct {
	name, value, baseline, ratio, target string
}

var (
	tableMu sync.Mutex
	table   []row
)

// rateRow is a row of a rate beside a baseline rate, with their ratio;
// label names the baseline.
func rateRow(name string, rate, base float64, label, target string) row {
	return row{name: name, value: fmt.Sprintf("%.0f/s", rate), baseline: fmt.Sprintf("%.0f/s %s", base, label),
		ratio: fmt.Sprintf("%.2f", rate/base), target: target}
}

func record(r row) {
	tableMu.Lock()
	table = append(table, r)
	tableMu.Unlock()
}

func TestMain(m *testing.M) { testenv.MainThen(m, printTable) }

func printTable() {
	if len(table) == 0 {
		return
	}
	w := [5]int{len("measure"), len("dormancy"), len("baseline"), len("ratio"), len("target")}
	for _, r := range table {
		for i, s := range []string{r.name, r.value, r.baseline, r.ratio, r.target} {
			w[i] = max(w[i], len([]rune(s)))
		}
	}
	line := func(cells ...string) {
		var b strings.Builder
		for i, c := range cells {
			fmt.Fprintf(&b, "| %s%s ", c, strings.Repeat(" ", w[i]-len([]rune(c))))
		}
		fmt.Fprintln(os.Stdout, b.String()+"|")
	}
	fmt.Println()
	line("measure", "dormancy", "baseline", "ratio", "target")
	line(strings.Repeat("-", w[0]), strings.Repeat("-", w[1]), strings.Repeat("-", w[2]), strings.Repeat("-", w[3]), strings.Repeat("-", w[4]))
	for _, r := range table {
		line(r.name, r.value, r.baseline, r.ratio, r.target)
	}
}
