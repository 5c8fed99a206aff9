package deployment

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// claimAction is what a Deployment does with a ReplicaSet its selector may or may not match
// (kube's ControllerRefManager rules).
type claimAction int

const (
	claimIgnore claimAction = iota
	claimKeep
	claimAdopt
	claimRelease
)

// decideClaim: ReplicaSets controlled by someone else are ignored; ours are kept while they match
// and released when they stop (unless the Deployment is being deleted); matching orphans are
// adopted unless either side is being deleted.
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

func adoptPatch(owner metav1.Object, uid types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": uid,
		"ownerReferences": []metav1.OwnerReference{{
			APIVersion: controllerKind.GroupVersion().String(), Kind: controllerKind.Kind, Name: owner.GetName(),
			UID: owner.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}},
	}})
	return b
}

func releasePatch(ownerUID, uid types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":             uid,
		"ownerReferences": []map[string]string{{"$patch": "delete", "uid": string(ownerUID)}},
	}})
	return b
}

// claimReplicaSets returns the ReplicaSets d controls after adopting matching orphans and
// releasing its ReplicaSets that no longer match.
func claimReplicaSets(ctx context.Context, client kubernetes.Interface, d *appsv1.Deployment, sel labels.Selector, rss []*appsv1.ReplicaSet) ([]*appsv1.ReplicaSet, error) {
	var once sync.Once
	var canAdopt error
	recheck := func() error {
		once.Do(func() {
			// An uncached read: a Deployment being deleted must not adopt (kube #42639).
			fresh, err := client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
			switch {
			case err != nil:
				canAdopt = fmt.Errorf("recheck deletion of deployment %s/%s: %w", d.Namespace, d.Name, err)
			case fresh.UID != d.UID:
				canAdopt = fmt.Errorf("deployment %s/%s is gone: uid %s, wanted %s", d.Namespace, d.Name, fresh.UID, d.UID)
			case fresh.DeletionTimestamp != nil:
				canAdopt = fmt.Errorf("deployment %s/%s is being deleted", d.Namespace, d.Name)
			}
		})
		return canAdopt
	}
	var claimed []*appsv1.ReplicaSet
	var errs []error
	for _, rs := range rss {
		switch decideClaim(d, rs, sel.Matches(labels.Set(rs.Labels))) {
		case claimKeep:
			claimed = append(claimed, rs)
		case claimAdopt:
			if err := recheck(); err != nil {
				errs = append(errs, fmt.Errorf("adopt replicaset %s/%s: %w", rs.Namespace, rs.Name, err))
				continue
			}
			_, err := client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType,
				adoptPatch(d, rs.UID), metav1.PatchOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				errs = append(errs, fmt.Errorf("adopt replicaset %s/%s: %w", rs.Namespace, rs.Name, err))
			default:
				claimed = append(claimed, rs)
			}
		case claimRelease:
			_, err := client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType,
				releasePatch(d.UID, rs.UID), metav1.PatchOptions{})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
				errs = append(errs, fmt.Errorf("release replicaset %s/%s: %w", rs.Namespace, rs.Name, err))
			}
		}
	}
	return claimed, utilerrors.NewAggregate(errs)
}
