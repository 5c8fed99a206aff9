package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/svcnet/svcnet/bench/internal/proc"
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
		st, err := proc.Status(p)
		if err != nil {
			continue // exited meanwhile
		}
		m.procs++
		m.rss += st["VmRSS"]
		if r, err := proc.KBFields(fmt.Sprintf("/proc/%d/smaps_rollup", p)); err == nil {
			m.pss += r["Pss"]
		}
	}
	return m
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }
