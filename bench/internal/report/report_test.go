package report

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond // 1ms .. 100ms
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 0.5, 0},
		{"one, median", []time.Duration{ms(7)}, 0.5, ms(7)},
		{"one, max", []time.Duration{ms(7)}, 1, ms(7)},
		{"two, median is the lower", []time.Duration{ms(1), ms(2)}, 0.5, ms(1)},
		{"three, median", []time.Duration{ms(1), ms(2), ms(3)}, 0.5, ms(2)},
		{"four, p99 is the max", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 0.99, ms(4)},
		{"hundred, p50", hundred, 0.5, ms(50)},
		{"hundred, p99", hundred, 0.99, ms(99)},
		{"hundred, max", hundred, 1, ms(100)},
		{"p 0 is the min", hundred, 0, ms(1)},
		{"p above 1 is the max", hundred, 1.5, ms(100)},
	} {
		if got := Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: Percentile(p=%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestDur(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0.0ms"},
		{50 * time.Microsecond, "0.1ms"},
		{ms(12.34), "12.3ms"},
		{ms(999.94), "999.9ms"},
		{time.Second, "1.00s"},
		{1234 * time.Millisecond, "1.23s"},
		{90 * time.Second, "90.00s"},
		{-ms(0.1), "-0.1ms"},
		{-1500 * time.Millisecond, "-1.50s"},
	} {
		if got := Dur(tc.d); got != tc.want {
			t.Errorf("Dur(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestSpreads(t *testing.T) {
	unsorted := []time.Duration{ms(30), ms(10), ms(20)}
	keep := slices.Clone(unsorted)
	for _, tc := range []struct {
		name, got, want string
	}{
		{"P50P99Max", P50P99Max(unsorted), "20.0ms / 30.0ms / 30.0ms"},
		{"P50P99Max none", P50P99Max(nil), "none measured"},
		{"MedianMax", MedianMax(unsorted), "20.0ms / 30.0ms"},
		{"MedianMax none", MedianMax(nil), "none measured"},
		{"SortedP50P99Max", SortedP50P99Max([]time.Duration{ms(1), ms(2), time.Second}), "2.0ms / 1.00s / 1.00s"},
		{"SortedP50P99Max none", SortedP50P99Max(nil), "0.0ms / 0.0ms / 0.0ms"},
		{"CPUShare", CPUShare([]time.Duration{1200 * time.Millisecond, ms(300)}, 2*time.Second, 2), "1.20s / 300.0ms of 4.00s (2 cores)"},
		{"CPUShare one", CPUShare([]time.Duration{ms(5)}, time.Second, 1), "5.0ms of 1.00s (1 cores)"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if !slices.Equal(unsorted, keep) {
		t.Errorf("the values were sorted in place: %v", unsorted)
	}
	if s := SortedCopy(unsorted); !slices.IsSorted(s) || !slices.Equal(unsorted, keep) {
		t.Errorf("SortedCopy = %v, input now %v", s, unsorted)
	}
}

func TestTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		fill func(*Table)
		want string
	}{
		{"empty prints nothing", func(*Table) {}, ""},
		{
			"columns two spaces apart, verdicts by target",
			func(t *Table) {
				t.Add("cold start (median / max of 5)", "1.07s / 1.43s", "< 2s (max)", true)
				t.Add("  create latency", "52.9ms", "", false) // no target: no verdict, met or not
				t.Add("deliveries", "19999 of 20000", "all", false)
				t.Row("raw row", "3", "-", "")
			},
			"FIGURE                          MEASURED        TARGET      RESULT\n" +
				"cold start (median / max of 5)  1.07s / 1.43s   < 2s (max)  ok\n" +
				"  create latency                52.9ms                      \n" +
				"deliveries                      19999 of 20000  all         MISSED\n" +
				"raw row                         3               -           \n",
		},
	} {
		var tab Table
		tc.fill(&tab)
		var b bytes.Buffer
		if err := tab.Print(&b); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if b.String() != tc.want {
			t.Errorf("%s: printed\n%s\nwant\n%s", tc.name, b.String(), tc.want)
		}
	}
}

func TestVerdict(t *testing.T) {
	if Verdict(true) != "ok" || Verdict(false) != "MISSED" {
		t.Errorf("Verdict: %q, %q", Verdict(true), Verdict(false))
	}
}
