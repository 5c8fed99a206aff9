package report

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestMain lets the test binary play a benchmark's main (REPORT_TEST_MAIN=ok|fail) for TestMainExit.
func TestMain(m *testing.M) {
	switch os.Getenv("REPORT_TEST_MAIN") {
	case "ok", "fail":
		Main("fakebench", time.Minute, "", func(ctx context.Context, t *Table) error {
			t.Add("a figure", "1.0ms", "< 2ms", true)
			if os.Getenv("REPORT_TEST_MAIN") == "fail" {
				return errors.New("it broke")
			}
			return ctx.Err()
		})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestMainExit(t *testing.T) {
	table := "FIGURE    MEASURED  TARGET  RESULT\na figure  1.0ms     < 2ms   ok\n"
	for _, tc := range []struct {
		mode, stderr string
		code         int
	}{
		{"ok", "", 0},
		{"fail", "fakebench: it broke\n", 1},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "REPORT_TEST_MAIN="+tc.mode)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || stdout.String() != table || stderr.String() != tc.stderr {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.mode, code, stdout.String(), stderr.String(), tc.code, table, tc.stderr)
		}
	}
}
