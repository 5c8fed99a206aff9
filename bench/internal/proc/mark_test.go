package proc

import (
	"bytes"
	"strings"
	"testing"
)

// write feeds chunks to a MarkWriter and reports after which chunk (0-based) the mark came, -1 for
// none, with the mark and what the writer copied.
func write(t *testing.T, pattern string, wholeLines bool, chunks []string) (int, Mark, string) {
	t.Helper()
	var out bytes.Buffer
	at := make(chan Mark, 1)
	w := NewMarkWriter(&out, pattern, wholeLines, at)
	after, mark := -1, Mark{}
	for i, c := range chunks {
		n, err := w.Write([]byte(c))
		if err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
		select {
		case mark = <-at:
			if after >= 0 {
				t.Fatalf("a second mark after chunk %d", i)
			}
			after = i
		default:
		}
	}
	return after, mark, out.String()
}

func TestMarkWriter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pattern    string
		wholeLines bool
		chunks     []string
		after      int    // index of the chunk that completes the mark, -1 for none
		line       string // the mark's line, with wholeLines
	}{
		{"in one write", "svcnet ready", false, []string{"starting\n", "svcnet ready in 1.2s\n"}, 1, ""},
		{"split over two writes", "svcnet ready", false, []string{"starting\nsvcnet re", "ady in 1.2s\n"}, 1, ""},
		{"split over many writes", "svcnet ready", false, []string{"svc", "net", " ", "r", "e", "a", "dy", "\n"}, 6, ""},
		{"after a long output", "ready", false, []string{strings.Repeat("x", 10000), "rea", "dy"}, 2, ""},
		{"split at the very start", "abc", false, []string{"a", "bc"}, 1, ""},
		{"marked once only", "ready", false, []string{"ready\n", "ready again\n"}, 0, ""},
		{"a near miss", "ready", false, []string{"rea", "xdy", "read"}, -1, ""},
		{"a near miss across writes", "ready", false, []string{"readread", "yx"}, 1, ""},
		{"not there", "controllers started", false, []string{"controllers", " stopped\n"}, -1, ""},
		{"whole line: waits for the newline", "ready", true, []string{"svcnet ready in 1.2s", ": 3 nodes", "\nmore\n"}, 2, "svcnet ready in 1.2s: 3 nodes"},
		{"whole line: pattern split, line in one write", "ready", true, []string{"a\nsvcnet re", "ady\n"}, 1, "svcnet ready"},
		{"whole line: the first matching line", "ready", true, []string{"x\nready 1\nready 2\n"}, 0, "ready 1"},
		{"whole line: none complete", "ready", true, []string{"svcnet ready"}, -1, ""},
	} {
		after, mark, out := write(t, tc.pattern, tc.wholeLines, tc.chunks)
		if after != tc.after {
			t.Errorf("%s: marked after chunk %d, want %d", tc.name, after, tc.after)
		}
		if after >= 0 && (mark.At.IsZero() || mark.Line != tc.line) {
			t.Errorf("%s: mark %+v, want a time and line %q", tc.name, mark, tc.line)
		}
		if want := strings.Join(tc.chunks, ""); out != want {
			t.Errorf("%s: copied %q, want %q", tc.name, out, want)
		}
	}
}
