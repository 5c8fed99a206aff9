package cli

import (
	"reflect"
	"testing"
)

func TestKubectlArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		ok      bool
		dataDir string
		kargs   []string
	}{
		{args: []string{"kubectl", "get", "svc"}, ok: true, kargs: []string{"get", "svc"}},
		{args: []string{"--data-dir", "/d", "kubectl", "get", "svc"}, ok: true, dataDir: "/d", kargs: []string{"get", "svc"}},
		{args: []string{"--data-dir=/d", "kubectl", "get"}, ok: true, dataDir: "/d", kargs: []string{"get"}},
		// The form `svcnet up` suggests: the flag right after the subcommand.
		{args: []string{"kubectl", "--data-dir", "/d", "get", "nodes", "-o", "wide"}, ok: true, dataDir: "/d", kargs: []string{"get", "nodes", "-o", "wide"}},
		{args: []string{"kubectl", "--data-dir=/d", "apply", "-f", "x.yaml"}, ok: true, dataDir: "/d", kargs: []string{"apply", "-f", "x.yaml"}},
		// Only leading flags are ours: later ones are kubectl's, untouched.
		{args: []string{"kubectl", "get", "--data-dir", "/d"}, ok: true, kargs: []string{"get", "--data-dir", "/d"}},
		{args: []string{"kubectl"}, ok: true, kargs: []string{}},
		{args: []string{"up", "kubectl"}},
		{args: []string{"--data-dir", "/d"}},
		{args: nil},
	} {
		dataDir, kargs, ok := kubectlArgs(tc.args)
		if ok != tc.ok || dataDir != tc.dataDir || (ok && !reflect.DeepEqual(kargs, tc.kargs)) {
			t.Errorf("kubectlArgs(%q) = %q, %q, %v; want %q, %q, %v", tc.args, dataDir, kargs, ok, tc.dataDir, tc.kargs, tc.ok)
		}
	}
}
