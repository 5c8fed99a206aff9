package replicaset

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
)

// expectationsTimeout wakes a ReplicaSet whose expected pod events never arrived (kube: 5 minutes).
const expectationsTimeout = 5 * time.Minute

// expectations remember, per ReplicaSet key, how many pod creations and which pod deletions the
// controller has issued but not yet seen in its informer. While any are outstanding the ReplicaSet
// is not resized again, so a slow watch cannot make it create or delete twice. This is kube's
// UIDTrackingControllerExpectations: deletions are tracked by pod key so that a pod first seen with
// a deletionTimestamp and then seen gone counts once.
type expectations struct {
	mu  sync.Mutex
	m   map[string]*expectation
	now func() time.Time
}

type expectation struct {
	add, del int
	deletes  sets.Set[string]
	at       time.Time
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{m: map[string]*expectation{}, now: now}
}

// satisfied is true when nothing is outstanding for key, when key never set expectations, or when
// they are older than expectationsTimeout.
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	return (x.add <= 0 && x.del <= 0) || e.now().Sub(x.at) > expectationsTimeout
}

// expectCreations replaces key's expectations with n creations.
func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{add: n, deletes: sets.New[string](), at: e.now()}
}

// expectDeletions replaces key's expectations with the deletion of the given pods.
func (e *expectations) expectDeletions(key string, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := sets.New(podKeys...)
	e.m[key] = &expectation{del: d.Len(), deletes: d, at: e.now()}
}

// creationObserved lowers key's outstanding creations by one (also used for creations that failed).
func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.add--
	}
}

// deletionObserved counts the deletion of podKey if key was waiting for it.
func (e *expectations) deletionObserved(key, podKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok && x.deletes.Has(podKey) {
		x.deletes.Delete(podKey)
		x.del--
	}
}

// forget drops key's expectations (its ReplicaSet is gone).
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
