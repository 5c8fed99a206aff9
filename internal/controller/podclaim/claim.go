// Package podclaim is kube's ControllerRefManager for pods, shared by the ReplicaSet and StatefulSet
// controllers: a controller adopts the matching orphans in its namespace and releases its pods that
// stopped matching, with patches that fail if the pod was replaced meanwhile.
package podclaim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Action is what a controller does with an object its selector may or may not match (kube's
// ControllerRefManager rules).
type Action int

const (
	Ignore  Action = iota // someone else's, or not ours to take
	Keep                  // ours and still matching
	Adopt                 // an orphan that matches: take it
	Release               // ours but no longer matching: let it go
)

// Decide is kube's ClaimObject decision: objects controlled by another owner are ignored; our
// own are kept while they match and released when they stop matching (unless we are being deleted);
// matching orphans in our namespace are adopted unless we or they are being deleted.
func Decide(owner, obj metav1.Object, matches bool) Action {
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		switch {
		case ref.UID != owner.GetUID():
			return Ignore
		case matches:
			return Keep
		case owner.GetDeletionTimestamp() != nil:
			return Ignore
		}
		return Release
	}
	if owner.GetDeletionTimestamp() != nil || !matches || obj.GetDeletionTimestamp() != nil {
		return Ignore
	}
	if owner.GetNamespace() != "" && owner.GetNamespace() != obj.GetNamespace() {
		return Ignore
	}
	return Adopt
}

// AdoptPatch is the strategic merge patch that makes owner the controller of the object with uid;
// the uid makes the patch fail if the object was replaced meanwhile.
func AdoptPatch(owner metav1.Object, kind schema.GroupVersionKind, uid types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": uid,
		"ownerReferences": []metav1.OwnerReference{{
			APIVersion: kind.GroupVersion().String(), Kind: kind.Kind, Name: owner.GetName(), UID: owner.GetUID(),
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}},
	}})
	return b
}

// ReleasePatch removes owner's reference from the object with uid.
func ReleasePatch(ownerUID, uid types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":             uid,
		"ownerReferences": []map[string]string{{"$patch": "delete", "uid": string(ownerUID)}},
	}})
	return b
}

// Claimer adopts and releases pods for one owner (a ReplicaSet, a StatefulSet).
type Claimer struct {
	Client   kubernetes.Interface
	Owner    metav1.Object
	Kind     schema.GroupVersionKind
	Selector labels.Selector
	// Member, when set, further restricts the pods Owner may claim (a StatefulSet's own names).
	Member func(*corev1.Pod) bool
	// Recheck is called once, before the first adoption, with an uncached read of the owner: a
	// controller that is being deleted must not adopt (kube #42639).
	Recheck func(ctx context.Context) error
	once    sync.Once
	err     error
}

func (c *Claimer) canAdopt(ctx context.Context) error {
	c.once.Do(func() { c.err = c.Recheck(ctx) })
	return c.err
}

// Claim returns the pods Owner controls after adopting matching orphans and releasing its pods
// that no longer match.
func (c *Claimer) Claim(ctx context.Context, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var claimed []*corev1.Pod
	var errs []error
	for _, p := range pods {
		switch Decide(c.Owner, p, c.Selector.Matches(labels.Set(p.Labels)) && (c.Member == nil || c.Member(p))) {
		case Keep:
			claimed = append(claimed, p)
		case Adopt:
			if err := c.canAdopt(ctx); err != nil {
				errs = append(errs, fmt.Errorf("adopt pod %s/%s: %w", p.Namespace, p.Name, err))
				continue
			}
			_, err := c.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType,
				AdoptPatch(c.Owner, c.Kind, p.UID), metav1.PatchOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				errs = append(errs, fmt.Errorf("adopt pod %s/%s: %w", p.Namespace, p.Name, err))
			default:
				claimed = append(claimed, p)
			}
		case Release:
			_, err := c.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType,
				ReleasePatch(c.Owner.GetUID(), p.UID), metav1.PatchOptions{})
			// Gone, or replaced by another pod of the same name (the uid precondition fails): nothing
			// left to release.
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
				errs = append(errs, fmt.Errorf("release pod %s/%s: %w", p.Namespace, p.Name, err))
			}
		}
	}
	return claimed, utilerrors.NewAggregate(errs)
}
