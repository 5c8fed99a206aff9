package apiserver

import (
	"strings"
	"testing"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

func TestCheckFeatureGates(t *testing.T) {
	for _, c := range []struct {
		gates, wantErr string
	}{
		{"", ""},
		{"ListFromCacheSnapshot=true", ""},
		{"ListFromCacheSnapshot=false,ConsistentListFromCache=true", ""},
		{"NoSuchGate=true", "unrecognized feature gate: NoSuchGate"},
		{"ListFromCacheSnapshot=maybe", "invalid value of ListFromCacheSnapshot=maybe"},
		{"ListFromCacheSnapshot", "missing bool value for ListFromCacheSnapshot"},
	} {
		before := utilfeature.DefaultFeatureGate.Enabled("ListFromCacheSnapshot")
		err := CheckFeatureGates(c.gates)
		if c.wantErr == "" && err != nil {
			t.Errorf("CheckFeatureGates(%q) = %v, want nil", c.gates, err)
		}
		if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "--feature-gates")) {
			t.Errorf("CheckFeatureGates(%q) = %v, want an error naming --feature-gates and containing %q", c.gates, err, c.wantErr)
		}
		if after := utilfeature.DefaultFeatureGate.Enabled("ListFromCacheSnapshot"); after != before {
			t.Errorf("CheckFeatureGates(%q) changed the process's gates", c.gates)
		}
	}
}

func TestSetFeatureGatesAppliesDefaultsThenTheUsers(t *testing.T) {
	t.Cleanup(func() { _ = setFeatureGates("") })
	if err := setFeatureGates(""); err != nil {
		t.Fatal(err)
	}
	if utilfeature.DefaultFeatureGate.Enabled("ListFromCacheSnapshot") {
		t.Error("ListFromCacheSnapshot is on after svcnet's defaults, want off")
	}
	if err := setFeatureGates("ListFromCacheSnapshot=true"); err != nil {
		t.Fatal(err)
	}
	if !utilfeature.DefaultFeatureGate.Enabled("ListFromCacheSnapshot") {
		t.Error("--feature-gates ListFromCacheSnapshot=true did not turn it on")
	}
}
