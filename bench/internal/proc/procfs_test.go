package proc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A /proc/PID/status as Linux writes it (abridged).
const sampleStatus = `Name:	svcnet
Umask:	0022
State:	S (sleeping)
Tgid:	8684
Pid:	8684
PPid:	8536
Uid:	0	0	0	0
VmPeak:	 2453360 kB
VmSize:	 2453360 kB
VmHWM:	  174080 kB
VmRSS:	  173548 kB
RssAnon:	   76088 kB
RssFile:	   97460 kB
RssShmem:	       0 kB
Threads:	14
voluntary_ctxt_switches:	1520
`

func TestKBFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte(sampleStatus), 0o600); err != nil {
		t.Fatal(err)
	}
	kb, err := KBFields(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		want int64
		ok   bool
	}{
		{"VmRSS", 173548, true},
		{"VmHWM", 174080, true},
		{"RssAnon", 76088, true},
		{"RssFile", 97460, true},
		{"RssShmem", 0, true},
		{"Threads", 0, false}, // no kB unit
		{"Uid", 0, false},
		{"Name", 0, false},
	} {
		got, ok := kb[tc.key]
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s = %d (present %v), want %d (present %v)", tc.key, got, ok, tc.want, tc.ok)
		}
	}
	if _, err := KBFields(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("KBFields of a missing file: no error")
	}
}

func TestStatusSelf(t *testing.T) {
	kb, err := Status(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if kb["VmRSS"] <= 0 || kb["VmHWM"] < kb["VmRSS"] {
		t.Errorf("VmRSS %d kB, VmHWM %d kB", kb["VmRSS"], kb["VmHWM"])
	}
}

func TestParseStatCPU(t *testing.T) {
	// Field 2, the command, is in parentheses and may hold spaces and parentheses itself.
	rest := " S 1 8684 8684 0 -1 4194560 31290 0 0 0 %s 0 0 20 0 14 0 123456 2453360000 43387 18446744073709551615"
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		err        string
	}{
		{"plain", "8684 (svcnet)" + strings.Replace(rest, "%s", "156 42", 1), 1980 * time.Millisecond, ""},
		{"spaces and parens in the name", "8684 (a (b) c)" + strings.Replace(rest, "%s", "1 2", 1), 30 * time.Millisecond, ""},
		{"too short", "8684 (svcnet) S 1 2 3", 0, "too few fields"},
		{"not numbers", "8684 (svcnet)" + strings.Replace(rest, "%s", "x y", 1), 0, "bad utime or stime"},
	} {
		got, err := parseStatCPU([]byte(tc.stat), 8684)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, %v; want %v, error with %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestCPUMeter(t *testing.T) {
	m := StartCPU(os.Getpid(), 1<<30) // the second PID does not exist
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	used, wall := m.Used()
	if len(used) != 2 || used[0] < 0 || used[1] != -1 || wall < 50*time.Millisecond {
		t.Errorf("Used = %v, %v", used, wall)
	}
	if s := m.Since(time.Second, 2); s != "" {
		t.Errorf("Since with an unreadable process = %q, want \"\"", s)
	}
	self := StartCPU(os.Getpid())
	if s := self.Since(time.Second, 2); !strings.HasSuffix(s, " of 2.00s (2 cores)") {
		t.Errorf("Since = %q", s)
	}
	if d := CPUOf([]int{os.Getpid(), 1 << 30}); d <= 0 {
		t.Errorf("CPUOf = %v", d)
	}
}

func TestLoadAvg(t *testing.T) {
	if f := strings.Fields(LoadAvg("unknown")); len(f) != 3 {
		t.Errorf("LoadAvg = %q", LoadAvg("unknown"))
	}
}
