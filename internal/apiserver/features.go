package apiserver

import (
	"fmt"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

// DefaultFeatureGates are where svcnet's API server departs from kube-apiserver's feature defaults,
// each for a measured reason; --feature-gates can set them back.
var DefaultFeatureGates = map[string]bool{
	// ListFromCacheSnapshot (beta, on in kube 1.34+) keeps a copy-on-write clone of each resource's
	// watch-cache tree for every event the cache holds, so that paginated and exact-resourceVersion
	// lists can be served from memory rather than etcd. Every write clones a path of that tree, and
	// the clones live as long as the events (up to 100k per resource). Off, such lists are read from
	// etcd, as before kube 1.33; answers are the same. Measured (bench/README.md): at 100,000 pods
	// the API server held 2.45-2.50 GB instead of 2.96-3.14 GB, and used 396 s instead of 423 s of
	// CPU for the setup writes; at 10,000 Services `svcnet up` held 25-30 MB less.
	"ListFromCacheSnapshot": false,
}

// setFeatureGates applies svcnet's defaults, then the user's "Name=true,Other=false" list, to the
// process's feature gates, as kube-apiserver's --feature-gates does.
func setFeatureGates(user string) error {
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(DefaultFeatureGates); err != nil {
		return fmt.Errorf("svcnet's default feature gates: %w", err)
	}
	if user == "" {
		return nil
	}
	return utilfeature.DefaultMutableFeatureGate.Set(user) // checked by Validate
}

// CheckFeatureGates reports what setFeatureGates would refuse, without changing the process's gates.
func CheckFeatureGates(user string) error {
	if user == "" {
		return nil
	}
	if err := utilfeature.DefaultMutableFeatureGate.DeepCopy().Set(user); err != nil {
		return fmt.Errorf("--feature-gates %q: %w (a comma-separated list of Name=true|false; kube-apiserver -h lists the names)", user, err)
	}
	return nil
}
