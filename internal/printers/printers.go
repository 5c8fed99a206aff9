// Package printers turns API objects into metav1.Table the way kube-apiserver
// does, so that `kubectl get` against svcnet prints exactly what it prints
// against Kubernetes.
//
// kubectl does no formatting of its own for built-in resources: it asks for
// application/json;as=Table and prints the cells it is given. Every column
// name, type, priority, description and cell string here therefore follows
// kube-apiserver v1.35 (pkg/printers/internalversion and the TableConvertor
// adapter in pkg/printers/storage). Kubernetes prints its internal types;
// svcnet has none, so the print functions read the versioned types and,
// where the v1-to-internal conversion would change a field (pod IP, cluster
// IP, nil replica counts), they apply that conversion's rule themselves.
package printers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apiserver/pkg/registry/rest"
)

// For returns the TableConvertor for a resource, or nil when it has none (the
// caller then uses rest.NewDefaultTableConvertor).
func For(gr schema.GroupResource) rest.TableConvertor {
	return ForWithClock(gr, time.Now)
}

// ForWithClock is For with the clock that ages are measured against, so that
// tests (and golden files) can pin "now".
func ForWithClock(gr schema.GroupResource, now func() time.Time) rest.TableConvertor {
	build, ok := registry[gr]
	if !ok {
		return nil
	}
	return build(now)
}

// Resources lists every resource that has a printer, for callers that want
// to check their registrations against it.
func Resources() []schema.GroupResource {
	out := make([]schema.GroupResource, 0, len(registry))
	for gr := range registry {
		out = append(out, gr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

var registry = map[schema.GroupResource]func(now func() time.Time) rest.TableConvertor{
	{Group: "", Resource: "pods"}:                           newConvertor(podColumns, printPod),
	{Group: "", Resource: "services"}:                       newConvertor(serviceColumns, printService),
	{Group: "", Resource: "endpoints"}:                      newConvertor(endpointsColumns, printEndpoints),
	{Group: "", Resource: "nodes"}:                          newConvertor(nodeColumns, printNode),
	{Group: "", Resource: "namespaces"}:                     newConvertor(namespaceColumns, printNamespace),
	{Group: "", Resource: "events"}:                         newConvertor(eventColumns, printEvent),
	{Group: "discovery.k8s.io", Resource: "endpointslices"}: newConvertor(endpointSliceColumns, printEndpointSlice),
	{Group: "apps", Resource: "deployments"}:                newConvertor(deploymentColumns, printDeployment),
	{Group: "apps", Resource: "replicasets"}:                newConvertor(replicaSetColumns, printReplicaSet),
	{Group: "apps", Resource: "statefulsets"}:               newConvertor(statefulSetColumns, printStatefulSet),
	{Group: "coordination.k8s.io", Resource: "leases"}:      newConvertor(leaseColumns, printLease),
}

// printFunc renders one object. It returns the row's cells and conditions;
// the convertor attaches the object itself. now is read once per table so
// every row of a list is aged against the same instant.
type printFunc[T runtime.Object] func(obj T, now time.Time) metav1.TableRow

// convertor is the equivalent of kube's printers/storage.TableConvertor
// wrapping a HumanReadableGenerator with one type registered: it always
// prints wide (the client drops Priority>0 columns itself) and accepts the
// object or a list of them.
type convertor[T runtime.Object] struct {
	columns []metav1.TableColumnDefinition
	print   printFunc[T]
	now     func() time.Time
}

func newConvertor[T runtime.Object](columns []metav1.TableColumnDefinition, print printFunc[T]) func(func() time.Time) rest.TableConvertor {
	return func(now func() time.Time) rest.TableConvertor {
		return &convertor[T]{columns: columns, print: print, now: now}
	}
}

// ConvertToTable implements rest.TableConvertor.
func (c *convertor[T]) ConvertToTable(_ context.Context, obj runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	noHeaders := false
	switch t := tableOptions.(type) {
	case nil:
	case *metav1.TableOptions:
		if t != nil {
			noHeaders = t.NoHeaders
		}
	default:
		return nil, fmt.Errorf("unrecognized type %T for table options, can't display tabular output", tableOptions)
	}

	now := c.now()
	// A non-nil slice so an empty list serializes as "rows": [] like kube.
	table := &metav1.Table{Rows: []metav1.TableRow{}}
	add := func(o runtime.Object) error {
		item, ok := o.(T)
		if !ok {
			return fmt.Errorf("no table handler registered for this type %T", o)
		}
		row := c.print(item, now)
		// The generic handler replaces this according to includeObject
		// (PartialObjectMetadata by default), so it must be the item itself.
		row.Object = runtime.RawExtension{Object: o}
		table.Rows = append(table.Rows, row)
		return nil
	}
	if meta.IsListType(obj) {
		if err := meta.EachListItem(obj, add); err != nil {
			return nil, err
		}
	} else if err := add(obj); err != nil {
		return nil, err
	}

	if m, err := meta.ListAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
		table.Continue = m.GetContinue()
		table.RemainingItemCount = m.GetRemainingItemCount()
	} else if m, err := meta.CommonAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
	}
	if !noHeaders {
		table.ColumnDefinitions = c.columns
	}
	return table, nil
}

// Column descriptions shared by almost every resource, taken from the same
// swagger docs kube uses so `kubectl explain`-style tooling sees identical text.
var (
	objectMetaDoc = metav1.ObjectMeta{}.SwaggerDoc()
	nameColumn    = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc["name"]}
	ageColumn     = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: objectMetaDoc["creationTimestamp"]}
)

const (
	containersDescription = "Names of each container in the template."
	imagesDescription     = "Images referenced by each container in the template."
)

// age is kube's translateTimestampSince with the clock passed in.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// microAge is kube's translateMicroTimestampSince with the clock passed in.
func microAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// listWithMore joins the first max entries and summarises the rest the way
// kube does for endpoint slices ("a,b,c + 2 more...").
func listWithMore(list []string, more bool, count, max int) string {
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	if ret == "" {
		ret = "<unset>"
	}
	return ret
}
