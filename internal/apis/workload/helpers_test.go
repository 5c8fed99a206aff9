package workload

import (
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// errKeys renders an error list as the sorted, de-duplicated set of "Type field" pairs, which is what the
// validation tables assert: kube's own tests compare the same two things.
func errKeys(errs field.ErrorList) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range errs {
		k := string(e.Type) + " " + e.Field
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// want builds the expected key set from "Type field" strings written with the field.ErrorType constants.
func want(pairs ...string) []string {
	sort.Strings(pairs)
	return pairs
}

func req(f string) string      { return string(field.ErrorTypeRequired) + " " + f }
func inv(f string) string      { return string(field.ErrorTypeInvalid) + " " + f }
func forbid(f string) string   { return string(field.ErrorTypeForbidden) + " " + f }
func notSupp(f string) string  { return string(field.ErrorTypeNotSupported) + " " + f }
func dup(f string) string      { return string(field.ErrorTypeDuplicate) + " " + f }
func notFound(f string) string { return string(field.ErrorTypeNotFound) + " " + f }

func assertErrs(t *testing.T, got field.ErrorList, wantKeys []string) {
	t.Helper()
	g := errKeys(got)
	if strings.Join(g, "\n") != strings.Join(wantKeys, "\n") {
		t.Errorf("errors mismatch\n got: %q\nwant: %q\nfull: %v", g, wantKeys, got)
	}
}

// findErr returns the first error at the given field path.
func findErr(errs field.ErrorList, fieldPath string) *field.Error {
	for _, e := range errs {
		if e.Field == fieldPath {
			return e
		}
	}
	return nil
}

// validPodSpec is a fully defaulted pod spec of the kind kube's own validation tests start from.
func validPodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:                     "app",
			Image:                    "nginx:1.27",
			ImagePullPolicy:          corev1.PullIfNotPresent,
			TerminationMessagePath:   corev1.TerminationMessagePathDefault,
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			Ports:                    []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			},
		}},
		RestartPolicy:                 corev1.RestartPolicyAlways,
		DNSPolicy:                     corev1.DNSClusterFirst,
		TerminationGracePeriodSeconds: ptr.To[int64](30),
		SecurityContext:               &corev1.PodSecurityContext{},
		SchedulerName:                 corev1.DefaultSchedulerName,
	}
}

func validPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default", ResourceVersion: "1"},
		Spec:       validPodSpec(),
	}
}

func validTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: validPodSpec()}
}
