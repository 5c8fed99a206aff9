package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/svcnet/svcnet/bench/internal/report"
)

// Status reads the kB fields of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...).
func Status(pid int) (map[string]int64, error) {
	return KBFields(fmt.Sprintf("/proc/%d/status", pid))
}

// KBFields reads the "Key: N kB" lines of a /proc file (status, smaps_rollup): N by Key.
func KBFields(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kb := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				kb[k] = n
			}
		}
	}
	return kb, sc.Err()
}

// CPUTime is the user+system CPU time of a process from /proc/PID/stat, assuming the usual 100
// clock ticks per second.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b, pid)
}

// parseStatCPU picks utime and stime out of the text of /proc/PID/stat.
func parseStatCPU(b []byte, pid int) (time.Duration, error) {
	// Fields after the parenthesised command name start at field 3 (state); utime and stime are 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// CPUMeter measures the CPU time some processes use over an interval.
type CPUMeter struct {
	pids  []int
	start []time.Duration // -1 where /proc could not be read
	begin time.Time
}

// StartCPU starts measuring the CPU time of pids (os.Getpid() for the benchmark itself).
func StartCPU(pids ...int) *CPUMeter {
	m := &CPUMeter{pids: pids, begin: time.Now()}
	for _, p := range pids {
		d, err := CPUTime(p)
		if err != nil {
			d = -1
		}
		m.start = append(m.start, d)
	}
	return m
}

// Used is each process's CPU time since StartCPU, in the order given, -1 for one whose /proc could
// not be read then or now, and the wall time since StartCPU.
func (m *CPUMeter) Used() ([]time.Duration, time.Duration) {
	wall := time.Since(m.begin)
	out := make([]time.Duration, len(m.pids))
	for i, p := range m.pids {
		d, err := CPUTime(p)
		if err != nil || m.start[i] < 0 {
			out[i] = -1
			continue
		}
		out[i] = d - m.start[i]
	}
	return out, wall
}

// Since renders what Used says as report.CPUShare does, "1.20s / 300.0ms of 4.00s (2 cores)", for
// wall time wall (which need not be the meter's own) on cores cores; "" when a process's CPU time
// could not be read.
func (m *CPUMeter) Since(wall time.Duration, cores int) string {
	used, _ := m.Used()
	for _, d := range used {
		if d < 0 {
			return ""
		}
	}
	return report.CPUShare(used, wall, cores)
}

// CPUOf sums the CPU time the processes used since they started, leaving out those it cannot read.
func CPUOf(pids []int) time.Duration {
	var total time.Duration
	for _, p := range pids {
		if d, err := CPUTime(p); err == nil {
			total += d
		}
	}
	return total
}

// LoadAvg is the first three fields of /proc/loadavg ("0.52 0.58 0.59"), or unknown when they
// cannot be read.
func LoadAvg(unknown string) string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return unknown
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return unknown
	}
	return strings.Join(f[:3], " ")
}
