package statefulset

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/kubectl/pkg/util/podutils"
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// statefulPodRegex splits a pod name into its StatefulSet and ordinal.
var statefulPodRegex = regexp.MustCompile("(.*)-([0-9]+)$")

// parentAndOrdinal returns the StatefulSet name and ordinal encoded in a pod's name, or ("", -1).
func parentAndOrdinal(p *corev1.Pod) (string, int) {
	m := statefulPodRegex.FindStringSubmatch(p.Name)
	if len(m) < 3 {
		return "", -1
	}
	ord, err := strconv.ParseInt(m[2], 10, 32)
	if err != nil {
		return m[1], -1
	}
	return m[1], int(ord)
}

func ordinalOf(p *corev1.Pod) int {
	_, o := parentAndOrdinal(p)
	return o
}

// isMemberOf: the pod's name says it belongs to set.
func isMemberOf(set *appsv1.StatefulSet, p *corev1.Pod) bool {
	parent, _ := parentAndOrdinal(p)
	return parent == set.Name
}

func podName(set *appsv1.StatefulSet, ordinal int) string {
	return fmt.Sprintf("%s-%d", set.Name, ordinal)
}

func replicasOf(set *appsv1.StatefulSet) int {
	if set.Spec.Replicas == nil {
		return 1
	}
	return int(*set.Spec.Replicas)
}

// startOrdinal is spec.ordinals.start (0 by default); the set's pods are start..start+replicas-1.
func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

func endOrdinal(set *appsv1.StatefulSet) int { return startOrdinal(set) + replicasOf(set) - 1 }

func inOrdinalRange(set *appsv1.StatefulSet, p *corev1.Pod) bool {
	o := ordinalOf(p)
	return o >= startOrdinal(set) && o <= endOrdinal(set)
}

// identityMatches: the pod has the name, namespace and pod-name label of its ordinal in set.
func identityMatches(set *appsv1.StatefulSet, p *corev1.Pod) bool {
	parent, ord := parentAndOrdinal(p)
	return ord >= 0 && parent == set.Name && p.Name == podName(set, ord) && p.Namespace == set.Namespace &&
		p.Labels[appsv1.StatefulSetPodNameLabel] == p.Name
}

// updateIdentity restores the identity labels of a pod (name, namespace, pod-name and pod-index).
func updateIdentity(set *appsv1.StatefulSet, p *corev1.Pod) {
	ord := ordinalOf(p)
	p.Name = podName(set, ord)
	p.Namespace = set.Namespace
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[appsv1.StatefulSetPodNameLabel] = p.Name
	p.Labels[appsv1.PodIndexLabel] = strconv.Itoa(ord)
}

// newPod is the pod of ordinal built from tmpl at revision: kube's newStatefulSetPod, with
// hostname <name>-<ordinal> and subdomain spec.serviceName so that the pod gets its stable DNS
// name under the governing Service. volumeClaimTemplates are not handled.
func newPod(set *appsv1.StatefulSet, tmpl *corev1.PodTemplateSpec, revision string, ordinal int) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            podName(set, ordinal),
			Namespace:       set.Namespace,
			GenerateName:    podPrefix(set.Name),
			Labels:          copyMap(tmpl.Labels),
			Annotations:     copyMap(tmpl.Annotations),
			Finalizers:      append([]string(nil), tmpl.Finalizers...),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, controllerKind)},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
	updateIdentity(set, p)
	p.Spec.Hostname = p.Name
	p.Spec.Subdomain = set.Spec.ServiceName
	p.Labels[appsv1.StatefulSetRevisionLabel] = revision
	return p
}

func podPrefix(name string) string {
	prefix := name + "-"
	if len(apivalidation.NameIsDNSSubdomain(prefix, true)) != 0 {
		return name
	}
	return prefix
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func podRevision(p *corev1.Pod) string { return p.Labels[appsv1.StatefulSetRevisionLabel] }

func isRunningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && podutils.IsPodReady(p)
}

// isRunningAndAvailable is kube's: ready for minReadySeconds (the phase is checked by callers).
func isRunningAndAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	return podutils.IsPodAvailable(p, minReadySeconds, metav1.Time{Time: now})
}

func isTerminating(p *corev1.Pod) bool { return p.DeletionTimestamp != nil }

func isFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

func isUnavailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	return !isRunningAndAvailable(p, minReadySeconds, now) || isTerminating(p)
}

// RevisionName is the name of the revision of set's current template, as kube names the
// ControllerRevision: <set>-<hash>, the hash being FNV-32 over the JSON patch that replaces
// spec.template plus the collision count. svcnet serves no ControllerRevisions; the name is only
// used as the pods' controller-revision-hash label and in status.currentRevision/updateRevision.
func RevisionName(set *appsv1.StatefulSet, collisionCount int32) (string, error) {
	patch, err := templatePatch(set)
	if err != nil {
		return "", err
	}
	h := fnv.New32()
	h.Write(patch)
	h.Write([]byte(strconv.FormatInt(int64(collisionCount), 10)))
	prefix := set.Name
	if len(prefix) > 223 {
		prefix = prefix[:223]
	}
	return prefix + "-" + rand.SafeEncodeString(fmt.Sprint(h.Sum32())), nil
}

// templatePatch is kube's getPatch: {"spec":{"template":{...,"$patch":"replace"}}} with sorted keys.
func templatePatch(set *appsv1.StatefulSet) ([]byte, error) {
	data, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encode statefulset: %w", err)
	}
	var raw map[string]interface{}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("decode statefulset: %w", err)
	}
	spec, _ := raw["spec"].(map[string]interface{})
	tmpl, _ := spec["template"].(map[string]interface{})
	if tmpl == nil {
		tmpl = map[string]interface{}{}
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]interface{}{"spec": map[string]interface{}{"template": tmpl}})
}

// maxUnavailable resolves spec.updateStrategy.rollingUpdate.maxUnavailable (default 1, rounded
// down, at least 1).
func maxUnavailable(set *appsv1.StatefulSet) (int, error) {
	var v *intstr.IntOrString
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		v = ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(v, intstr.FromInt32(1)), replicasOf(set), false)
	if err != nil {
		return 0, fmt.Errorf("maxUnavailable: %w", err)
	}
	return max(n, 1), nil
}

func partition(set *appsv1.StatefulSet) int {
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return int(*ru.Partition)
	}
	return 0
}
