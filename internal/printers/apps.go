package printers

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kube describes the apps columns with the extensions/v1beta1 docs; the text
// is what clients show as column help, so it is kept as is.
var deploymentColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
	{Name: "Up-to-date", Type: "string", Description: extensionsv1beta1.DeploymentStatus{}.SwaggerDoc()["updatedReplicas"]},
	{Name: "Available", Type: "string", Description: extensionsv1beta1.DeploymentStatus{}.SwaggerDoc()["availableReplicas"]},
	ageColumn,
	{Name: "Containers", Type: "string", Priority: 1, Description: containersDescription},
	{Name: "Images", Type: "string", Priority: 1, Description: imagesDescription},
	{Name: "Selector", Type: "string", Priority: 1, Description: extensionsv1beta1.DeploymentSpec{}.SwaggerDoc()["selector"]},
}

var replicaSetColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "Desired", Type: "integer", Description: extensionsv1beta1.ReplicaSetSpec{}.SwaggerDoc()["replicas"]},
	{Name: "Current", Type: "integer", Description: extensionsv1beta1.ReplicaSetStatus{}.SwaggerDoc()["replicas"]},
	{Name: "Ready", Type: "integer", Description: extensionsv1beta1.ReplicaSetStatus{}.SwaggerDoc()["readyReplicas"]},
	ageColumn,
	{Name: "Containers", Type: "string", Priority: 1, Description: containersDescription},
	{Name: "Images", Type: "string", Priority: 1, Description: imagesDescription},
	{Name: "Selector", Type: "string", Priority: 1, Description: extensionsv1beta1.ReplicaSetSpec{}.SwaggerDoc()["selector"]},
}

var statefulSetColumns = []metav1.TableColumnDefinition{
	nameColumn,
	{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
	ageColumn,
	{Name: "Containers", Type: "string", Priority: 1, Description: containersDescription},
	{Name: "Images", Type: "string", Priority: 1, Description: imagesDescription},
}

// replicas reads a v1 replica count the way conversion to the internal
// int32 does: an unset count is 0 (defaulting normally sets it to 1 first).
func replicas(p *int32) int64 {
	if p == nil {
		return 0
	}
	return int64(*p)
}

func printDeployment(d *appsv1.Deployment, now time.Time) metav1.TableRow {
	selector := "<invalid>"
	if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
		selector = s.String()
	}
	names, images := layoutContainerCells(d.Spec.Template.Spec.Containers)
	return metav1.TableRow{Cells: []any{
		d.Name,
		fmt.Sprintf("%d/%d", int64(d.Status.ReadyReplicas), replicas(d.Spec.Replicas)),
		int64(d.Status.UpdatedReplicas),
		int64(d.Status.AvailableReplicas),
		age(d.CreationTimestamp, now),
		names, images, selector,
	}}
}

func printReplicaSet(rs *appsv1.ReplicaSet, now time.Time) metav1.TableRow {
	names, images := layoutContainerCells(rs.Spec.Template.Spec.Containers)
	return metav1.TableRow{Cells: []any{
		rs.Name,
		replicas(rs.Spec.Replicas),
		int64(rs.Status.Replicas),
		int64(rs.Status.ReadyReplicas),
		age(rs.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(rs.Spec.Selector),
	}}
}

func printStatefulSet(ss *appsv1.StatefulSet, now time.Time) metav1.TableRow {
	names, images := layoutContainerCells(ss.Spec.Template.Spec.Containers)
	return metav1.TableRow{Cells: []any{
		ss.Name,
		fmt.Sprintf("%d/%d", int64(ss.Status.ReadyReplicas), replicas(ss.Spec.Replicas)),
		age(ss.CreationTimestamp, now),
		names, images,
	}}
}

// layoutContainerCells puts all containers of a template on one line.
func layoutContainerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, len(containers))
	i := make([]string, len(containers))
	for k, c := range containers {
		n[k], i[k] = c.Name, c.Image
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}
