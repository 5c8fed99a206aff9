package replicaset

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

// claimAction is what a controller does with an object its selector may or may not match (kube's
// ControllerRefManager rules).
type claimAction int

const (
	claimIgnore  claimAction = iota // someone else's, or not ours to take
	claimKeep                       // ours and still matching
	claimAdopt                      // an orphan that matches: take it
	claimRelease                    // ours but no longer matching: let it go
)

// decideClaim is kube's ClaimObject decision: objects controlled by another owner are ignored; our
// own are kept while they match and released when they stop matching (unless we are being deleted);
// matching orphans in our namespace are adopted unless we or they are being deleted.
func decideClaim(owner, obj metav1.Object, matches bool) claimAction {
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		switch {
		case ref.UID != owner.GetUID():
			return claimIgnore
		case matches:
			return claimKeep
		case owner.GetDeletionTimestamp() != nil:
			return claimIgnore
		}
		return claimRelease
	}
	if owner.GetDeletionTimestamp() != nil || !matches || obj.GetDeletionTimestamp() != nil {
		return claimIgnore
	}
	if owner.GetNamespace() != "" && owner.GetNamespace() != obj.GetNamespace() {
		return claimIgnore
	}
	return claimAdopt
}

// adoptPatch is the strategic merge patch that makes owner the controller of the object with uid;
// the uid makes the patch fail if the object was replaced meanwhile.
func adoptPatch(owner metav1.Object, kind schema.GroupVersionKind, uid types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": uid,
		"ownerReferences": []metav1.OwnerReference{{
			APIVersion: kind.GroupVersion().String(), Kind: kind.Kind, Name: owner.GetName(), UID: owner.GetUID(),
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}},
	}})
	return b
}

// releasePatch removes owner's reference from the object with uid.
func releasePatch(ownerUID, uid types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":             uid,
		"ownerReferences": []map[string]string{{"$patch": "delete", "uid": string(ownerUID)}},
	}})
	return b
}

// podClaimer adopts and releases pods for one ReplicaSet.
type podClaimer struct {
	client   kubernetes.Interface
	owner    metav1.Object
	kind     schema.GroupVersionKind
	selector labels.Selector
	// recheck is called once, before the first adoption, with an uncached read of the owner: a
	// controller that is being deleted must not adopt (kube #42639).
	recheck func(ctx context.Context) error
	once    sync.Once
	err     error
}

func (c *podClaimer) canAdopt(ctx context.Context) error {
	c.once.Do(func() { c.err = c.recheck(ctx) })
	return c.err
}

// claim returns the pods owner controls after adopting matching orphans and releasing its pods
// that no longer match.
func (c *podClaimer) claim(ctx context.Context, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var claimed []*corev1.Pod
	var errs []error
	for _, p := range pods {
		switch decideClaim(c.owner, p, c.selector.Matches(labels.Set(p.Labels))) {
		case claimKeep:
			claimed = append(claimed, p)
		case claimAdopt:
			if err := c.canAdopt(ctx); err != nil {
				errs = append(errs, fmt.Errorf("adopt pod %s/%s: %w", p.Namespace, p.Name, err))
				continue
			}
			_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType,
				adoptPatch(c.owner, c.kind, p.UID), metav1.PatchOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				errs = append(errs, fmt.Errorf("adopt pod %s/%s: %w", p.Namespace, p.Name, err))
			default:
				claimed = append(claimed, p)
			}
		case claimRelease:
			_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType,
				releasePatch(c.owner.GetUID(), p.UID), metav1.PatchOptions{})
			// Gone, or replaced by another pod of the same name (the uid precondition fails): nothing
			// left to release.
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
				errs = append(errs, fmt.Errorf("release pod %s/%s: %w", p.Namespace, p.Name, err))
			}
		}
	}
	return claimed, utilerrors.NewAggregate(errs)
}
