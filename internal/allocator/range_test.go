package allocator

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// boundarySizes straddle the 64-bit words of the bitmap and include sizes that are not multiples of 64.
var boundarySizes = []int{1, 2, 63, 64, 65, 100, 127, 128, 129, 200}

func TestRangeSetClearHasUsed(t *testing.T) {
	for _, size := range boundarySizes {
		t.Run(fmt.Sprint("size", size), func(t *testing.T) {
			r := NewRange(size, 0)
			if r.Size() != size || r.Used() != 0 {
				t.Fatalf("new range: Size=%d Used=%d, want %d 0", r.Size(), r.Used(), size)
			}
			// Out of range is never taken and never settable.
			for _, i := range []int{-1, -64, size, size + 1, size + 64} {
				if r.Has(i) {
					t.Errorf("Has(%d) on a range of %d", i, size)
				}
				if r.Set(i) {
					t.Errorf("Set(%d) succeeded on a range of %d", i, size)
				}
				r.Clear(i) // must not panic or change anything
			}
			if r.Used() != 0 {
				t.Fatalf("Used=%d after out-of-range calls", r.Used())
			}
			// Interesting offsets: both ends, both sides of each word boundary.
			var offs []int
			for _, i := range []int{0, 1, 62, 63, 64, 65, 126, 127, 128, 129, size - 2, size - 1} {
				if i >= 0 && i < size && !contains(offs, i) {
					offs = append(offs, i)
				}
			}
			rand.Shuffle(len(offs), func(a, b int) { offs[a], offs[b] = offs[b], offs[a] })
			for n, i := range offs {
				if !r.Set(i) {
					t.Fatalf("Set(%d) of a free offset returned false", i)
				}
				if r.Set(i) {
					t.Fatalf("second Set(%d) returned true", i)
				}
				if !r.Has(i) {
					t.Fatalf("Has(%d) false after Set", i)
				}
				if r.Used() != n+1 {
					t.Fatalf("Used=%d after %d sets", r.Used(), n+1)
				}
			}
			// No other offset is taken: bits do not leak across words.
			for i := 0; i < size; i++ {
				if r.Has(i) != contains(offs, i) {
					t.Fatalf("Has(%d)=%v, want %v", i, r.Has(i), contains(offs, i))
				}
			}
			for n, i := range offs {
				r.Clear(i)
				r.Clear(i) // clearing a free offset is a no-op
				if r.Has(i) {
					t.Fatalf("Has(%d) after Clear", i)
				}
				if want := len(offs) - n - 1; r.Used() != want {
					t.Fatalf("Used=%d after clearing, want %d", r.Used(), want)
				}
			}
		})
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRangeCandidateFindsTheOnlyFreeOffset(t *testing.T) {
	// With every offset taken but one, Candidate must return exactly that one, wherever it sits
	// relative to word boundaries and to the static band.
	for _, size := range boundarySizes {
		for _, static := range []int{0, 1, size / 2, size - 1, size} {
			for free := 0; free < size; free++ {
				r := NewRange(size, static)
				for i := 0; i < size; i++ {
					if i != free {
						r.Set(i)
					}
				}
				for try := 0; try < 3; try++ {
					got, ok := r.Candidate()
					if !ok || got != free {
						t.Fatalf("size %d static %d free %d: Candidate()=%d,%v", size, static, free, got, ok)
					}
				}
				if r.Has(free) {
					t.Fatalf("Candidate took offset %d; it must only propose it", free)
				}
			}
		}
	}
}

func TestRangeCandidateBands(t *testing.T) {
	type tc struct {
		name        string
		size        int
		static      int
		taken       func(i int) bool // offsets set before asking
		wantLo      int              // every candidate must fall in [wantLo, wantHi)
		wantHi      int
		wantFull    bool
		wantStatic  int // Range's static band after NewRange's cap
		wantAllSeen []int
	}
	cases := []tc{
		{name: "empty prefers dynamic band", size: 256, static: 16, taken: none, wantLo: 16, wantHi: 256, wantStatic: 16},
		{name: "dynamic band full falls back to static", size: 256, static: 16, taken: func(i int) bool { return i >= 16 }, wantLo: 0, wantHi: 16, wantStatic: 16},
		{name: "one free in each band prefers dynamic", size: 130, static: 65, taken: func(i int) bool { return i != 3 && i != 129 }, wantLo: 129, wantHi: 130, wantStatic: 65},
		{name: "static band full stays dynamic", size: 100, static: 64, taken: func(i int) bool { return i < 64 }, wantLo: 64, wantHi: 100, wantStatic: 64},
		{name: "no static band", size: 65, static: 0, taken: none, wantLo: 0, wantHi: 65, wantStatic: 0},
		{name: "all static", size: 65, static: 65, taken: none, wantLo: 0, wantHi: 65, wantStatic: 65},
		{name: "static larger than size is capped", size: 10, static: 16, taken: none, wantLo: 0, wantHi: 10, wantStatic: 10},
		{name: "full range", size: 129, static: 16, taken: all, wantFull: true, wantStatic: 16},
		{name: "full range all static", size: 64, static: 64, taken: all, wantFull: true, wantStatic: 64},
		{name: "empty size zero", size: 0, static: 0, taken: none, wantFull: true, wantStatic: 0},
		{name: "two free dynamic offsets are both reachable", size: 128, static: 0, taken: func(i int) bool { return i != 10 && i != 100 }, wantLo: 10, wantHi: 101, wantStatic: 0, wantAllSeen: []int{10, 100}},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewRange(c.size, c.static)
			if r.static != c.wantStatic {
				t.Fatalf("static band = %d, want %d", r.static, c.wantStatic)
			}
			for i := 0; i < c.size; i++ {
				if c.taken(i) {
					r.Set(i)
				}
			}
			used := r.Used()
			seen := map[int]bool{}
			for try := 0; try < 500; try++ {
				got, ok := r.Candidate()
				if c.wantFull {
					if ok {
						t.Fatalf("Candidate()=%d,true on a full range", got)
					}
					continue
				}
				if !ok {
					t.Fatalf("Candidate() = _,false with %d of %d used", r.Used(), c.size)
				}
				if got < c.wantLo || got >= c.wantHi {
					t.Fatalf("Candidate()=%d, want in [%d,%d)", got, c.wantLo, c.wantHi)
				}
				if r.Has(got) {
					t.Fatalf("Candidate()=%d is taken", got)
				}
				seen[got] = true
			}
			if r.Used() != used {
				t.Fatalf("Candidate changed Used from %d to %d", used, r.Used())
			}
			for _, v := range c.wantAllSeen {
				if !seen[v] {
					t.Errorf("offset %d never proposed in 500 tries (random start should reach it)", v)
				}
			}
		})
	}
}

func none(int) bool { return false }
func all(int) bool  { return true }

func TestRangeCandidateFillsRangeWithFreeOffsets(t *testing.T) {
	// Taking candidates one after another from a randomly pre-filled range visits every free offset
	// exactly once, dynamic band first, and then reports full.
	for _, size := range boundarySizes {
		for _, static := range []int{0, StaticBand(size, 16, 16, 256), size} {
			r := NewRange(size, static)
			for i := 0; i < size; i++ {
				if rand.IntN(3) == 0 {
					r.Set(i)
				}
			}
			dynFree := 0
			for i := r.static; i < size; i++ {
				if !r.Has(i) {
					dynFree++
				}
			}
			free := size - r.Used()
			for n := 0; n < free; n++ {
				got, ok := r.Candidate()
				if !ok {
					t.Fatalf("size %d static %d: full after %d of %d free offsets", size, static, n, free)
				}
				if r.Has(got) {
					t.Fatalf("size %d static %d: candidate %d is taken", size, static, got)
				}
				if n < dynFree && got < r.static {
					t.Fatalf("size %d static %d: candidate %d from the static band while the dynamic band has free offsets", size, static, got)
				}
				r.Set(got)
			}
			if got, ok := r.Candidate(); ok {
				t.Fatalf("size %d static %d: Candidate()=%d on a full range", size, static, got)
			}
			if r.Used() != size {
				t.Fatalf("size %d: Used=%d after filling", size, r.Used())
			}
		}
	}
}

func TestStaticBand(t *testing.T) {
	cases := []struct {
		name                       string
		size, minSize, div, maxVal int
		want                       int
	}{
		// Cluster IPs: min(max(16, size/16), 256).
		{"ip /12", 1<<20 - 2, 16, 16, 256, 256},
		{"ip /20", 4094, 16, 16, 256, 255},
		{"ip /16", 65534, 16, 16, 256, 256},
		{"ip /24 rounds up to min", 254, 16, 16, 256, 16},
		{"ip /27", 30, 16, 16, 256, 16},
		{"ip /29 capped at size", 6, 16, 16, 256, 6},
		{"ip size 16 exactly min", 16, 16, 16, 256, 16},
		{"ip between min and max", 1024, 16, 16, 256, 64},
		{"ip exactly max", 4096, 16, 16, 256, 256},
		// Node ports: min(max(16, size/32), 128).
		{"ports default 30000-32767", 2768, 16, 32, 128, 86},
		{"ports small", 100, 16, 32, 128, 16},
		{"ports tiny capped at size", 10, 16, 32, 128, 10},
		{"ports huge", 35536, 16, 32, 128, 128},
		{"ports 1", 1, 16, 32, 128, 1},
		{"empty", 0, 16, 16, 256, 0},
	}
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := StaticBand(c.size, c.minSize, c.div, c.maxVal)
			if got != c.want {
				t.Fatalf("StaticBand(%d, %d, %d, %d) = %d, want %d", c.size, c.minSize, c.div, c.maxVal, got, c.want)
			}
			if got > c.size || got < 0 {
				t.Fatalf("band %d outside [0, %d]", got, c.size)
			}
		})
	}
}
