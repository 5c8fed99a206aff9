package coordination

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func keys(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, string(e.Type)+" "+e.Field)
	}
	sort.Strings(out)
	return out
}

func k(t field.ErrorType, f string) string { return string(t) + " " + f }

func validLease() *coordinationv1.Lease {
	now := metav1.NowMicro()
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Namespace: "kube-node-lease", ResourceVersion: "1"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To("node-1"),
			LeaseDurationSeconds: ptr.To[int32](40),
			RenewTime:            &now,
			LeaseTransitions:     ptr.To[int32](0),
		},
	}
}

func TestValidateLease(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(l *coordinationv1.Lease)
		want   []string
	}{
		{"valid", func(l *coordinationv1.Lease) {}, nil},
		{"valid empty spec", func(l *coordinationv1.Lease) { l.Spec = coordinationv1.LeaseSpec{} }, nil},
		{"valid strategy and preferred holder", func(l *coordinationv1.Lease) {
			l.Spec.Strategy = ptr.To(coordinationv1.OldestEmulationVersion)
			l.Spec.PreferredHolder = ptr.To("node-2")
		}, nil},
		{"valid custom strategy", func(l *coordinationv1.Lease) {
			l.Spec.Strategy = ptr.To(coordinationv1.CoordinatedLeaseStrategy("example.com/mine"))
		}, nil},
		{"bad name", func(l *coordinationv1.Lease) { l.Name = "Node_1" }, []string{k(field.ErrorTypeInvalid, "metadata.name")}},
		{"missing namespace", func(l *coordinationv1.Lease) { l.Namespace = "" }, []string{k(field.ErrorTypeRequired, "metadata.namespace")}},
		{"zero duration", func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = ptr.To[int32](0) }, []string{k(field.ErrorTypeInvalid, "spec.leaseDurationSeconds")}},
		{"negative transitions", func(l *coordinationv1.Lease) { l.Spec.LeaseTransitions = ptr.To[int32](-1) }, []string{k(field.ErrorTypeInvalid, "spec.leaseTransitions")}},
		{"unknown strategy", func(l *coordinationv1.Lease) {
			l.Spec.Strategy = ptr.To(coordinationv1.CoordinatedLeaseStrategy("Newest"))
		}, []string{k(field.ErrorTypeNotSupported, "spec.strategy.strategy")}},
		{"bad qualified strategy", func(l *coordinationv1.Lease) {
			l.Spec.Strategy = ptr.To(coordinationv1.CoordinatedLeaseStrategy("a/b/c"))
		}, []string{k(field.ErrorTypeInvalid, "spec.strategy.strategy")}},
		{"preferred holder without strategy", func(l *coordinationv1.Lease) { l.Spec.PreferredHolder = ptr.To("node-2") }, []string{k(field.ErrorTypeForbidden, "spec.preferredHolder")}},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			l := validLease()
			tc.mutate(l)
			got := keys(ValidateLease(l))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}

	l := validLease()
	l.Spec.LeaseDurationSeconds = ptr.To[int32](-5)
	if errs := ValidateLease(l); len(errs) != 1 || errs[0].Error() != "spec.leaseDurationSeconds: Invalid value: -5: must be greater than 0" {
		t.Errorf("duration message: %v", errs)
	}
}

func TestValidateLeaseUpdate(t *testing.T) {
	old := validLease()
	l := old.DeepCopy()
	l.Spec.HolderIdentity = ptr.To("node-2")
	l.Spec.LeaseTransitions = ptr.To[int32](1)
	if errs := ValidateLeaseUpdate(l, old); len(errs) != 0 {
		t.Errorf("unexpected errors: %v", errs)
	}
	l = old.DeepCopy()
	l.Namespace = "other"
	l.Spec.LeaseDurationSeconds = ptr.To[int32](0)
	got := keys(ValidateLeaseUpdate(l, old))
	want := []string{k(field.ErrorTypeInvalid, "metadata.namespace"), k(field.ErrorTypeInvalid, "spec.leaseDurationSeconds")}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}
