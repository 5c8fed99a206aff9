package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// findAgent returns the PID of the `svcnet agent` process running in the network namespace at nsPath:
// a process whose /proc/PID/ns/net is that namespace and whose command line has the argument "agent".
func findAgent(nsPath string) (int, error) {
	want, err := os.Stat(nsPath)
	if err != nil {
		return 0, fmt.Errorf("node namespace: %w", err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var found []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fi, err := os.Stat("/proc/" + e.Name() + "/ns/net")
		if err != nil || !os.SameFile(fi, want) {
			continue
		}
		if args := cmdline(pid); len(args) > 1 && args[1] == "agent" {
			found = append(found, pid)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("no process with the argument \"agent\" in %s", nsPath)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("%d agent processes in %s: %v", len(found), nsPath, found)
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// procStatus reads the kB fields of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...).
func procStatus(pid int) (map[string]int64, error) {
	return kBFields(fmt.Sprintf("/proc/%d/status", pid))
}

// kBFields reads the "Key: N kB" lines of a /proc file.
func kBFields(path string) (map[string]int64, error) {
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

// descendants lists every process below pid (children, their children, ...), in PID order.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the parenthesised command name start with state, then the parent's PID.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	slices.Sort(out)
	return out
}

// memUse is the resident memory of a set of processes.
type memUse struct {
	procs    int
	rss, pss int64 // kB; pss from /proc/PID/smaps_rollup (shared pages split between their users)
}

func memOf(pids []int) memUse {
	var m memUse
	for _, p := range pids {
		st, err := procStatus(p)
		if err != nil {
			continue // exited meanwhile
		}
		m.procs++
		m.rss += st["VmRSS"]
		if r, err := kBFields(fmt.Sprintf("/proc/%d/smaps_rollup", p)); err == nil {
			m.pss += r["Pss"]
		}
	}
	return m
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// cpuTime is the user+system CPU time of a process from /proc/PID/stat, assuming the usual 100 clock
// ticks per second.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
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

// cpuMeter measures the CPU time some processes use over an interval.
type cpuMeter struct {
	pids  []int
	start []time.Duration
	begin time.Time
}

func startCPU(pids ...int) *cpuMeter {
	m := &cpuMeter{pids: pids, begin: time.Now()}
	for _, p := range pids {
		d, _ := cpuTime(p)
		m.start = append(m.start, d)
	}
	return m
}

// used is each process's CPU time since startCPU (-1 when it could not be read) and the wall time.
func (m *cpuMeter) used() ([]time.Duration, time.Duration) {
	wall := time.Since(m.begin)
	out := make([]time.Duration, len(m.pids))
	for i, p := range m.pids {
		d, err := cpuTime(p)
		if err != nil {
			out[i] = -1
			continue
		}
		out[i] = d - m.start[i]
	}
	return out, wall
}

// cpuOf sums the CPU time the processes used since they started.
func cpuOf(pids []int) time.Duration {
	var total time.Duration
	for _, p := range pids {
		if d, err := cpuTime(p); err == nil {
			total += d
		}
	}
	return total
}
