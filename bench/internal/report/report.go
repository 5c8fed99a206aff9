// Package report is the benchmarks' result table (figure, measured value, target, verdict) and the
// latency figures that go in it: nearest-rank percentiles and durations in ms or s.
package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"
)

// Table collects the result rows: figure, measured value, target and verdict.
type Table struct{ rows [][4]string }

// Add records a row; target "" means the figure is informational: it gets no verdict.
func (t *Table) Add(figure, measured, target string, met bool) {
	result := ""
	if target != "" {
		result = Verdict(met)
	}
	t.Row(figure, measured, target, result)
}

// Row records a row as given; result is "" for a figure without a verdict.
func (t *Table) Row(figure, measured, target, result string) {
	t.rows = append(t.rows, [4]string{figure, measured, target, result})
}

// Print writes the table, under the header FIGURE MEASURED TARGET RESULT, in columns two spaces
// apart. A table without rows prints nothing.
func (t *Table) Print(w io.Writer) error {
	if len(t.rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tMEASURED\tTARGET\tRESULT")
	for _, r := range t.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r[0], r[1], r[2], r[3])
	}
	return tw.Flush()
}

// Verdict is the RESULT of a figure with a target: "ok" when met, "MISSED" when not.
func Verdict(met bool) string {
	if met {
		return "ok"
	}
	return "MISSED"
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 1) of sorted values, 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// SortedCopy returns d sorted, leaving d alone.
func SortedCopy(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// P50P99Max renders "p50 / p99 / max" of unsorted values, or "none measured".
func P50P99Max(d []time.Duration) string {
	if len(d) == 0 {
		return "none measured"
	}
	return SortedP50P99Max(SortedCopy(d))
}

// MedianMax renders "median / max" of unsorted values, or "none measured".
func MedianMax(d []time.Duration) string {
	if len(d) == 0 {
		return "none measured"
	}
	s := SortedCopy(d)
	return Dur(Percentile(s, 0.5)) + " / " + Dur(Percentile(s, 1))
}

// SortedP50P99Max renders "p50 / p99 / max" of sorted values ("0.0ms / 0.0ms / 0.0ms" for none).
func SortedP50P99Max(sorted []time.Duration) string {
	return Dur(Percentile(sorted, 0.5)) + " / " + Dur(Percentile(sorted, 0.99)) + " / " + Dur(Percentile(sorted, 1))
}

// Dur prints a duration in ms (one decimal) below a second and in s (two decimals) from a second on.
func Dur(d time.Duration) string {
	if d >= time.Second || d <= -time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// CPUShare renders the CPU time each of some processes used over wall time, out of what cores cores
// offered meanwhile: "1.20s / 300.0ms of 4.00s (2 cores)".
func CPUShare(used []time.Duration, wall time.Duration, cores int) string {
	s := ""
	for i, d := range used {
		if i > 0 {
			s += " / "
		}
		s += Dur(d)
	}
	return fmt.Sprintf("%s of %s (%d cores)", s, Dur(wall*time.Duration(cores)), cores)
}
