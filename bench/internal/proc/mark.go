package proc

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"time"
)

// A Mark is the first appearance of a pattern in a process's output.
type Mark struct {
	At   time.Time // when the write that completed the pattern (or its line) arrived
	Line string    // with whole lines: the line holding the pattern, without its newline
}

// MarkWriter copies what is written to it to another writer and sends, once, the Mark of the first
// appearance of a pattern, also when the pattern is split over several writes. It holds on to no
// more than it needs: a pattern-sized tail of the output, or with whole lines the current line.
type MarkWriter struct {
	mu         sync.Mutex
	pattern    []byte
	wholeLines bool
	held       []byte // the tail of the output that may start the pattern, or the current line
	found      bool
	at         chan<- Mark
	out        io.Writer
}

// NewMarkWriter returns a MarkWriter that copies to out and sends to at, which must have room for
// one Mark, the first appearance of pattern (not empty). With wholeLines the mark waits for the end
// of the line holding the pattern and carries that line.
func NewMarkWriter(out io.Writer, pattern string, wholeLines bool, at chan<- Mark) *MarkWriter {
	return &MarkWriter{pattern: []byte(pattern), wholeLines: wholeLines, at: at, out: out}
}

func (w *MarkWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.found {
		if w.wholeLines {
			w.lines(p, now)
		} else {
			w.match(p, now)
		}
	}
	return w.out.Write(p)
}

// match looks for the pattern in the held tail followed by p.
func (w *MarkWriter) match(p []byte, now time.Time) {
	buf := append(w.held, p...)
	if bytes.Contains(buf, w.pattern) {
		w.found, w.held = true, nil
		w.at <- Mark{At: now}
		return
	}
	w.held = append(w.held[:0], buf[max(0, len(buf)-len(w.pattern)+1):]...)
}

// lines looks for the pattern in every line p completes.
func (w *MarkWriter) lines(p []byte, now time.Time) {
	w.held = append(w.held, p...)
	for {
		i := bytes.IndexByte(w.held, '\n')
		if i < 0 {
			return
		}
		line := string(w.held[:i])
		w.held = w.held[i+1:]
		if strings.Contains(line, string(w.pattern)) {
			w.found, w.held = true, nil
			w.at <- Mark{At: now, Line: line}
			return
		}
	}
}
