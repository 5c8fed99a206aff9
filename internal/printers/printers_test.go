package printers_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/svcnet/svcnet/internal/printers"
)

func setItemsEmpty(list runtime.Object) error { return meta.SetList(list, nil) }

func TestForUnknownResource(t *testing.T) {
	for _, gr := range []schema.GroupResource{
		{Resource: "configmaps"},
		{Group: "apps", Resource: "services"},
		{Group: "events.k8s.io", Resource: "events"},
	} {
		if c := printers.For(gr); c != nil {
			t.Errorf("For(%v) = %T, want nil so the caller falls back to the default convertor", gr, c)
		}
	}
}

func TestEveryResourceHasFixture(t *testing.T) {
	have := map[schema.GroupResource]bool{}
	for _, tc := range goldenCases() {
		have[tc.gr] = true
	}
	for _, gr := range printers.Resources() {
		if !have[gr] {
			t.Errorf("%v has a printer but no golden fixture", gr)
		}
		if printers.For(gr) == nil {
			t.Errorf("For(%v) = nil although Resources lists it", gr)
		}
	}
}

// TestCellsMatchColumns guards against a print function and its column
// list drifting apart: kubectl silently drops extra cells and shifts short
// rows, so a mismatch shows wrong data under the wrong header.
func TestCellsMatchColumns(t *testing.T) {
	for _, tc := range goldenCases() {
		table, err := printers.ForWithClock(tc.gr, clock).ConvertToTable(context.Background(), tc.list, nil)
		if err != nil {
			t.Fatalf("%v: %v", tc.gr, err)
		}
		n := meta.LenList(tc.list)
		if len(table.Rows) != n {
			t.Errorf("%v: %d rows for %d items", tc.gr, len(table.Rows), n)
		}
		for i, row := range table.Rows {
			if len(row.Cells) != len(table.ColumnDefinitions) {
				t.Errorf("%v row %d: %d cells for %d columns", tc.gr, i, len(row.Cells), len(table.ColumnDefinitions))
			}
			for j, cell := range row.Cells {
				switch table.ColumnDefinitions[j].Type {
				case "integer":
					if _, ok := cell.(int64); !ok {
						t.Errorf("%v row %d column %q: %T, want int64", tc.gr, i, table.ColumnDefinitions[j].Name, cell)
					}
				case "string":
					switch cell.(type) {
					case string, int64: // kube prints event COUNT as an int64 in a string column
					default:
						t.Errorf("%v row %d column %q: unexpected %T", tc.gr, i, table.ColumnDefinitions[j].Name, cell)
					}
				}
			}
		}
	}
}

func TestListMetaAndRowObjects(t *testing.T) {
	list := podList()
	table, err := printers.ForWithClock(schema.GroupResource{Resource: "pods"}, clock).ConvertToTable(context.Background(), list, nil)
	if err != nil {
		t.Fatal(err)
	}
	if table.ResourceVersion != "5000" || table.Continue != list.Continue || table.RemainingItemCount == nil || *table.RemainingItemCount != 12 {
		t.Errorf("list meta = %+v, want rv 5000, continue %q, remaining 12", table.ListMeta, list.Continue)
	}
	for i := range table.Rows {
		// The apiserver rewrites Object per includeObject; it must start as
		// the very item so no copy of a large list is made.
		if got, want := table.Rows[i].Object.Object, runtime.Object(&list.Items[i]); got != want {
			t.Errorf("row %d object = %p, want item %p", i, got, want)
		}
	}
	if table.Rows[0].Conditions != nil {
		t.Errorf("running pod has row conditions %v", table.Rows[0].Conditions)
	}
}

func TestSingleObject(t *testing.T) {
	svc := &serviceList().Items[0]
	svc.ResourceVersion = "42"
	table, err := printers.ForWithClock(schema.GroupResource{Resource: "services"}, clock).ConvertToTable(context.Background(), svc, &metav1.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if table.ResourceVersion != "42" {
		t.Errorf("resourceVersion = %q, want the object's 42", table.ResourceVersion)
	}
	if len(table.Rows) != 1 || table.Rows[0].Object.Object != runtime.Object(svc) {
		t.Fatalf("rows = %+v, want one row for the service", table.Rows)
	}
	want := []any{"kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP", "30d", "<none>"}
	for i := range want {
		if table.Rows[0].Cells[i] != want[i] {
			t.Errorf("cell %d = %#v, want %#v", i, table.Rows[0].Cells[i], want[i])
		}
	}
}

func TestNoHeaders(t *testing.T) {
	gr := schema.GroupResource{Resource: "nodes"}
	table, err := printers.ForWithClock(gr, clock).ConvertToTable(context.Background(), nodeList(), &metav1.TableOptions{NoHeaders: true})
	if err != nil {
		t.Fatal(err)
	}
	if table.ColumnDefinitions != nil {
		t.Errorf("columns = %v, want none with noHeaders", table.ColumnDefinitions)
	}
	if len(table.Rows) != len(nodeList().Items) {
		t.Errorf("%d rows, want %d", len(table.Rows), len(nodeList().Items))
	}
}

func TestEmptyListSerializesEmptyRows(t *testing.T) {
	list := serviceList()
	list.Items = nil
	table, err := printers.ForWithClock(schema.GroupResource{Resource: "services"}, clock).ConvertToTable(context.Background(), list, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(table)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"rows":[]`) {
		t.Errorf("empty list encodes as %s, want \"rows\":[] like kube-apiserver", data)
	}
}

func TestRejectsWrongInput(t *testing.T) {
	c := printers.For(schema.GroupResource{Resource: "services"})
	if _, err := c.ConvertToTable(context.Background(), &corev1.Pod{}, nil); err == nil {
		t.Error("services convertor accepted a pod")
	}
	if _, err := c.ConvertToTable(context.Background(), &corev1.PodList{Items: []corev1.Pod{{}}}, nil); err == nil {
		t.Error("services convertor accepted a pod list")
	}
	if _, err := c.ConvertToTable(context.Background(), &corev1.Service{}, &metav1.ListOptions{}); err == nil {
		t.Error("accepted ListOptions as table options")
	}
}

func TestPodRowConditions(t *testing.T) {
	pods := podList()
	table, err := printers.ForWithClock(schema.GroupResource{Resource: "pods"}, clock).ConvertToTable(context.Background(), pods, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pods.Items {
		conds := table.Rows[i].Conditions
		switch p.Status.Phase {
		case corev1.PodSucceeded, corev1.PodFailed:
			if len(conds) != 1 || conds[0].Type != metav1.RowCompleted || conds[0].Reason != string(p.Status.Phase) {
				t.Errorf("%s (%s): conditions %+v, want Completed/%s", p.Name, p.Status.Phase, conds, p.Status.Phase)
			}
		default:
			if conds != nil {
				t.Errorf("%s (%s): conditions %+v, want none", p.Name, p.Status.Phase, conds)
			}
		}
	}
}

// TestPodStatus states the STATUS/READY/RESTARTS rules directly, so a golden
// update cannot quietly change what users read.
func TestPodStatus(t *testing.T) {
	want := map[string][3]string{ // name: READY, STATUS, RESTARTS
		"web-7d4b9c-abcde":    {"1/1", "Running", "0"},
		"pending":             {"0/1", "Pending", "0"},
		"creating":            {"0/2", "ContainerCreating", "0"},
		"terminating":         {"1/1", "Terminating", "0"},
		"crashloop":           {"0/1", "CrashLoopBackOff", "5 (5m ago)"},
		"completed":           {"0/1", "Completed", "0"},
		"completed-deleting":  {"0/1", "Completed", "0"},
		"evicted":             {"0/1", "Evicted", "0"},
		"signal-killed":       {"0/1", "Signal:9", "0"},
		"half-failed":         {"0/2", "Error", "0"},
		"not-ready":           {"1/2", "NotReady", "0"},
		"init-progress":       {"0/1", "Init:1/2", "0"},
		"init-error":          {"0/1", "Init:Error", "2 (2m ago)"},
		"init-backoff":        {"0/1", "Init:CrashLoopBackOff", "3 (40s ago)"},
		"with-sidecar":        {"2/2", "Running", "1 (2d ago)"},
		"node-lost":           {"1/1", "Unknown", "0"},
		"gated":               {"0/1", "SchedulingGated", "0"},
		"gates-and-nominated": {"0/1", "Pending", "0"},
	}
	pods := podList()
	rand.Shuffle(len(pods.Items), func(i, j int) { pods.Items[i], pods.Items[j] = pods.Items[j], pods.Items[i] })
	table, err := printers.ForWithClock(schema.GroupResource{Resource: "pods"}, clock).ConvertToTable(context.Background(), pods, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(table.Rows), len(want))
	}
	for _, row := range table.Rows {
		name := row.Cells[0].(string)
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected pod %s", name)
			continue
		}
		got := [3]string{row.Cells[1].(string), row.Cells[2].(string), row.Cells[3].(string)}
		if got != w {
			t.Errorf("%s: READY/STATUS/RESTARTS = %v, want %v", name, got, w)
		}
	}
}

func TestAgeUsesClock(t *testing.T) {
	later := func() time.Time { return now.Add(365 * 24 * time.Hour) }
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", CreationTimestamp: ago(0)}}
	table, err := printers.ForWithClock(schema.GroupResource{Resource: "namespaces"}, later).ConvertToTable(context.Background(), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := table.Rows[0].Cells[2]; got != "365d" {
		t.Errorf("age = %v, want 365d", got)
	}
	ns.CreationTimestamp = metav1.Time{}
	table, _ = printers.For(schema.GroupResource{Resource: "namespaces"}).ConvertToTable(context.Background(), ns, nil)
	if got := table.Rows[0].Cells[2]; got != "<unknown>" {
		t.Errorf("age of a zero timestamp = %v, want <unknown>", got)
	}
}
