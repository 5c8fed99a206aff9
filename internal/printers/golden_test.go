package printers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	cliprinters "k8s.io/cli-runtime/pkg/printers"

	"github.com/svcnet/svcnet/internal/printers"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

type goldenCase struct {
	file string
	gr   schema.GroupResource
	list runtime.Object
}

func goldenCases() []goldenCase {
	core := func(r string) schema.GroupResource { return schema.GroupResource{Resource: r} }
	return []goldenCase{
		{"services", core("services"), serviceList()},
		{"pods", core("pods"), podList()},
		{"endpoints", core("endpoints"), endpointsList()},
		{"endpointslices", schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, endpointSliceList()},
		{"nodes", core("nodes"), nodeList()},
		{"namespaces", core("namespaces"), namespaceList()},
		{"events", core("events"), eventList()},
		{"deployments", schema.GroupResource{Group: "apps", Resource: "deployments"}, deploymentList()},
		{"replicasets", schema.GroupResource{Group: "apps", Resource: "replicasets"}, replicaSetList()},
		{"statefulsets", schema.GroupResource{Group: "apps", Resource: "statefulsets"}, statefulSetList()},
		{"leases", schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, leaseList()},
	}
}

// TestGolden renders every resource the way `kubectl get` and
// `kubectl get -o wide` would: the table goes over the wire as JSON and is
// printed by kubectl's own table printer from cli-runtime.
func TestGolden(t *testing.T) {
	cases := goldenCases()
	rand.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			c := printers.ForWithClock(tc.gr, clock)
			if c == nil {
				t.Fatalf("no convertor for %v", tc.gr)
			}
			table, err := c.ConvertToTable(context.Background(), tc.list, nil)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			for _, wide := range []bool{false, true} {
				cmd := "kubectl get " + tc.gr.String()
				if wide {
					cmd += " -o wide"
				}
				fmt.Fprintf(&out, "$ %s\n%s\n", cmd, kubectlPrint(t, table, wide))
			}
			checkGolden(t, tc.file, out.String())
		})
	}
}

// TestGoldenColumns pins every column's name, type, format, priority and
// description, which kubectl uses for headers, -o wide and column help.
func TestGoldenColumns(t *testing.T) {
	var out strings.Builder
	for _, gr := range printers.Resources() {
		table, err := printers.ForWithClock(gr, clock).ConvertToTable(context.Background(), emptyList(t, gr), nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "## %s\n", gr)
		for _, c := range table.ColumnDefinitions {
			fmt.Fprintf(&out, "%s | %s | %s | %d | %q\n", c.Name, c.Type, c.Format, c.Priority, c.Description)
		}
		out.WriteString("\n")
	}
	checkGolden(t, "columns", out.String())
}

func emptyList(t *testing.T, gr schema.GroupResource) runtime.Object {
	t.Helper()
	for _, tc := range goldenCases() {
		if tc.gr == gr {
			l := tc.list.DeepCopyObject()
			if err := setItemsEmpty(l); err != nil {
				t.Fatal(err)
			}
			return l
		}
	}
	t.Fatalf("no fixture for %v", gr)
	return nil
}

// kubectlPrint sends the table through JSON, as the apiserver does, and
// prints it with kubectl's printer.
func kubectlPrint(t *testing.T, table *metav1.Table, wide bool) string {
	t.Helper()
	data, err := json.Marshal(table)
	if err != nil {
		t.Fatalf("marshal table: %v", err)
	}
	var wire metav1.Table
	// kubectl's decoder turns whole JSON numbers into int64, like this one.
	if err := utiljson.Unmarshal(data, &wire); err != nil {
		t.Fatalf("unmarshal table: %v", err)
	}
	var buf bytes.Buffer
	if err := cliprinters.NewTablePrinter(cliprinters.PrintOptions{Wide: wide}).PrintObj(&wire, &buf); err != nil {
		t.Fatalf("print table: %v", err)
	}
	return buf.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/printers/ -update` to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is intended)\n--- got ---\n%s--- want ---\n%s", path, got, want)
	}
}
