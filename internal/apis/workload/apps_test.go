package workload

import (
	"math/rand/v2"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var appLabels = map[string]string{"app": "web"}

func minimalTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "nginx"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
	}
}

const defaultedTemplateYAML = `  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - image: nginx
        imagePullPolicy: Always
        name: nginx
        resources: {}
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      securityContext: {}
      terminationGracePeriodSeconds: 30
`

func TestDefaultDeploymentMatchesKube(t *testing.T) {
	// `kubectl create deployment nginx --image=nginx` as kube-apiserver 1.35 returns it.
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nginx"}},
		Template: minimalTemplate(),
	}}
	DefaultDeployment(d)
	got := mustYAML(t, map[string]any{"spec": d.Spec})
	want := `spec:
  progressDeadlineSeconds: 600
  replicas: 1
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      app: nginx
  strategy:
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 25%
    type: RollingUpdate
` + defaultedTemplateYAML
	if got != want {
		t.Errorf("defaulted deployment:\n%s\nwant:\n%s", got, want)
	}

	// Recreate gets no rollingUpdate block.
	r := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
	DefaultDeployment(r)
	if r.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("Recreate strategy must not get rollingUpdate defaults")
	}
	// Explicit values survive.
	e := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Strategy: appsv1.DeploymentStrategy{
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(0))}}}}
	DefaultDeployment(e)
	if *e.Spec.Replicas != 0 || e.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 0 || e.Spec.Strategy.RollingUpdate.MaxUnavailable.StrVal != "25%" {
		t.Errorf("explicit values overwritten: %+v", e.Spec)
	}
}

func TestDefaultReplicaSetMatchesKube(t *testing.T) {
	rs := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nginx"}},
		Template: minimalTemplate(),
	}}
	DefaultReplicaSet(rs)
	got := mustYAML(t, map[string]any{"spec": rs.Spec})
	want := `spec:
  replicas: 1
  selector:
    matchLabels:
      app: nginx
` + defaultedTemplateYAML
	if got != want {
		t.Errorf("defaulted replicaset:\n%s\nwant:\n%s", got, want)
	}
}

func TestDefaultStatefulSetMatchesKube(t *testing.T) {
	s := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
		ServiceName: "nginx",
		Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nginx"}},
		Template:    minimalTemplate(),
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}},
	}}
	DefaultStatefulSet(s)
	got := mustYAML(t, map[string]any{"spec": s.Spec})
	want := `spec:
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Retain
  podManagementPolicy: OrderedReady
  replicas: 1
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      app: nginx
  serviceName: nginx
` + defaultedTemplateYAML + `  updateStrategy:
    rollingUpdate:
      maxUnavailable: 1
      partition: 0
    type: RollingUpdate
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes:
      - ReadWriteOnce
      resources:
        requests:
          storage: 1Gi
      volumeMode: Filesystem
    status:
      phase: Pending
`
	if got != want {
		t.Errorf("defaulted statefulset:\n%s\nwant:\n%s", got, want)
	}

	// OnDelete keeps no rollingUpdate block; an explicit rollingUpdate still gets its partition.
	o := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}}}
	DefaultStatefulSet(o)
	if o.Spec.UpdateStrategy.RollingUpdate != nil {
		t.Errorf("OnDelete must not get rollingUpdate defaults")
	}
	r := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
		Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](2)}}}}
	DefaultStatefulSet(r)
	if *r.Spec.UpdateStrategy.RollingUpdate.Partition != 2 || r.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() != 1 {
		t.Errorf("rollingUpdate defaults: %+v", r.Spec.UpdateStrategy.RollingUpdate)
	}
}

func validDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: appLabels},
			Template: validTemplate(map[string]string{"app": "web", "tier": "front"}),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr.To(intstr.FromString("25%")), MaxSurge: ptr.To(intstr.FromString("25%"))}},
			RevisionHistoryLimit:    ptr.To[int32](10),
			ProgressDeadlineSeconds: ptr.To[int32](600),
		},
	}
}

func TestValidateDeployment(t *testing.T) {
	ru := "spec.strategy.rollingUpdate"
	cases := []struct {
		name   string
		mutate func(d *appsv1.Deployment)
		want   []string
	}{
		{"valid", func(d *appsv1.Deployment) {}, nil},
		{"valid Recreate", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		}, nil},
		{"valid zero replicas and surge", func(d *appsv1.Deployment) {
			d.Spec.Replicas = ptr.To[int32](0)
			d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
		}, nil},
		{"bad name", func(d *appsv1.Deployment) { d.Name = "Web" }, want(inv("metadata.name"))},
		{"negative replicas", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](-1) }, want(inv("spec.replicas"))},
		{"missing selector", func(d *appsv1.Deployment) { d.Spec.Selector = nil }, want(req("spec.selector"), inv("spec.template.metadata.labels"))},
		{"empty selector", func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, want(inv("spec.selector"))},
		{"selector does not match", func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
		}, want(inv("spec.template.metadata.labels"))},
		{"invalid selector value", func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "no spaces"}}
		}, want(inv("spec.selector.matchLabels"), inv("spec.selector"))},
		{"bad selector operator", func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
		}, want(inv("spec.selector.matchExpressions[0].operator"), inv("spec.selector"))},
		{"invalid template label", func(d *appsv1.Deployment) { d.Spec.Template.Labels["bad key"] = "x" }, want(inv("spec.template.labels"))},
		{"template restartPolicy Never", func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever }, want(notSupp("spec.template.spec.restartPolicy"))},
		{"template activeDeadlineSeconds", func(d *appsv1.Deployment) { d.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](5) }, want(forbid("spec.template.spec.activeDeadlineSeconds"))},
		{"template container invalid", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" }, want(req("spec.template.spec.containers[0].image"))},
		{"template padded image allowed", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = " " }, nil},
		{"template hostNetwork hostPort 0 allowed", func(d *appsv1.Deployment) { d.Spec.Template.Spec.HostNetwork = true }, nil},
		{"template hostNetwork hostPort mismatch", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.HostNetwork = true
			d.Spec.Template.Spec.Containers[0].Ports[0].HostPort = 1
		}, want(inv("spec.template.spec.containers[0].ports[0].hostPort"))},
		{"template ephemeral containers", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "dbg", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent, TerminationMessagePolicy: corev1.TerminationMessageReadFile}}}
		}, want(forbid("spec.template.spec.ephemeralContainers"))},
		{"both surge and unavailable zero", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("0%"))
		}, want(inv(ru + ".maxUnavailable"))},
		{"bad percent", func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("25")) }, want(inv(ru + ".maxSurge"))},
		{"negative surge", func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(-1)) }, want(inv(ru + ".maxSurge"))},
		{"unavailable over 100%", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("110%"))
		}, want(inv(ru + ".maxUnavailable"))},
		{"surge over 100% allowed", func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("200%")) }, nil},
		{"Recreate with rollingUpdate", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType }, want(forbid(ru))},
		{"RollingUpdate without parameters", func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate = nil }, want(req(ru))},
		{"unknown strategy", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "BlueGreen" }, want(notSupp("spec.strategy"))},
		{"negative minReadySeconds", func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = -1 }, want(inv("spec.minReadySeconds"))},
		{"negative revisionHistoryLimit", func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = ptr.To[int32](-1) }, want(inv("spec.revisionHistoryLimit"))},
		{"progress deadline not above minReady", func(d *appsv1.Deployment) {
			d.Spec.MinReadySeconds = 600
		}, want(inv("spec.progressDeadlineSeconds"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			d := validDeployment()
			tc.mutate(d)
			assertErrs(t, ValidateDeployment(d), tc.want)
		})
	}

	d := validDeployment()
	d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
	d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromInt32(0))
	if e := findErr(ValidateDeployment(d), ru+".maxUnavailable"); e == nil ||
		e.Error() != "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0" {
		t.Errorf("surge/unavailable message = %v", e)
	}
	d = validDeployment()
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
	if e := findErr(ValidateDeployment(d), "spec.template.metadata.labels"); e == nil ||
		e.Error() != "spec.template.metadata.labels: Invalid value: {\"app\":\"web\",\"tier\":\"front\"}: `selector` does not match template `labels`" {
		t.Errorf("selector mismatch message = %v", e)
	}
}

func TestValidateDeploymentUpdate(t *testing.T) {
	old := validDeployment()
	d := old.DeepCopy()
	d.Spec.Replicas = ptr.To[int32](10)
	d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	assertErrs(t, ValidateDeploymentUpdate(d, old), nil)

	d = old.DeepCopy()
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "front"}}
	errs := ValidateDeploymentUpdate(d, old)
	assertErrs(t, errs, want(inv("spec.selector")))
	if e := findErr(errs, "spec.selector"); e == nil || e.Detail != "field is immutable" {
		t.Errorf("selector update error = %v", e)
	}

	d = old.DeepCopy()
	d.Spec.Replicas = ptr.To[int32](-2)
	assertErrs(t, ValidateDeploymentUpdate(d, old), want(inv("spec.replicas")))
}

func TestValidateDeploymentStatusUpdate(t *testing.T) {
	old := validDeployment()
	old.Status.CollisionCount = ptr.To[int32](2)
	cases := []struct {
		name   string
		status appsv1.DeploymentStatus
		want   []string
	}{
		{"valid", appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, CollisionCount: ptr.To[int32](2)}, nil},
		{"negative", appsv1.DeploymentStatus{UpdatedReplicas: -1, CollisionCount: ptr.To[int32](2)}, want(inv("status.updatedReplicas"))},
		{"more ready than replicas", appsv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 2, AvailableReplicas: 1, CollisionCount: ptr.To[int32](2)}, want(inv("status.readyReplicas"))},
		{"more available than ready", appsv1.DeploymentStatus{Replicas: 3, ReadyReplicas: 1, AvailableReplicas: 2, CollisionCount: ptr.To[int32](2)}, want(inv("status.availableReplicas"))},
		{"collision count decremented", appsv1.DeploymentStatus{CollisionCount: ptr.To[int32](1)}, want(inv("status.collisionCount"))},
		{"collision count removed", appsv1.DeploymentStatus{}, want(inv("status.collisionCount"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			d := old.DeepCopy()
			d.Status = tc.status
			assertErrs(t, ValidateDeploymentStatusUpdate(d, old), tc.want)
		})
	}
}

func validReplicaSet() *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f", Namespace: "default", ResourceVersion: "1"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: appLabels},
			Template: validTemplate(map[string]string{"app": "web"}),
		},
	}
}

func TestValidateReplicaSet(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(rs *appsv1.ReplicaSet)
		want   []string
	}{
		{"valid", func(rs *appsv1.ReplicaSet) {}, nil},
		{"negative replicas", func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas = ptr.To[int32](-1) }, want(inv("spec.replicas"))},
		{"negative minReadySeconds", func(rs *appsv1.ReplicaSet) { rs.Spec.MinReadySeconds = -1 }, want(inv("spec.minReadySeconds"))},
		{"missing selector", func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = nil }, want(req("spec.selector"), inv("spec.template.metadata.labels"))},
		{"empty selector", func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = &metav1.LabelSelector{} }, want(inv("spec.selector"))},
		{"selector mismatch", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Labels = map[string]string{"app": "x"} }, want(inv("spec.template.metadata.labels"))},
		{"restartPolicy OnFailure", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }, want(notSupp("spec.template.spec.restartPolicy"))},
		{"activeDeadlineSeconds", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](1) }, want(forbid("spec.template.spec.activeDeadlineSeconds"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			rs := validReplicaSet()
			tc.mutate(rs)
			assertErrs(t, ValidateReplicaSet(rs), tc.want)
		})
	}

	rs := validReplicaSet()
	rs.Spec.Selector = &metav1.LabelSelector{}
	if e := findErr(ValidateReplicaSet(rs), "spec.selector"); e == nil || e.Detail != "empty selector is invalid for deployment" {
		t.Errorf("empty selector error = %v", e)
	}
	rs = validReplicaSet()
	rs.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](1)
	if e := findErr(ValidateReplicaSet(rs), "spec.template.spec.activeDeadlineSeconds"); e == nil || e.Detail != "activeDeadlineSeconds in ReplicaSet is not Supported" {
		t.Errorf("activeDeadlineSeconds error = %v", e)
	}
}

func TestValidateReplicaSetUpdates(t *testing.T) {
	old := validReplicaSet()
	rs := old.DeepCopy()
	rs.Spec.Replicas = ptr.To[int32](0)
	assertErrs(t, ValidateReplicaSetUpdate(rs, old), nil)

	rs = old.DeepCopy()
	rs.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "x": "y"}}
	rs.Spec.Template.Labels = map[string]string{"app": "web", "x": "y"}
	assertErrs(t, ValidateReplicaSetUpdate(rs, old), want(inv("spec.selector")))

	rs = old.DeepCopy()
	rs.Status = appsv1.ReplicaSetStatus{Replicas: 2, FullyLabeledReplicas: 3, ReadyReplicas: 2, AvailableReplicas: 2}
	assertErrs(t, ValidateReplicaSetStatusUpdate(rs, old), want(inv("status.fullyLabeledReplicas")))
	rs.Status = appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 1, ObservedGeneration: -1}
	assertErrs(t, ValidateReplicaSetStatusUpdate(rs, old), want(inv("status.observedGeneration")))
}

func validStatefulSet() *appsv1.StatefulSet {
	tmpl := validTemplate(map[string]string{"app": "web"})
	tmpl.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](3),
			ServiceName:         "web",
			Selector:            &metav1.LabelSelector{MatchLabels: appLabels},
			Template:            tmpl,
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0), MaxUnavailable: ptr.To(intstr.FromInt32(1))}},
			RevisionHistoryLimit: ptr.To[int32](10),
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.RetainPersistentVolumeClaimRetentionPolicyType},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
					VolumeMode:  ptr.To(corev1.PersistentVolumeFilesystem),
				},
			}},
		},
	}
}

func TestValidateStatefulSet(t *testing.T) {
	ru := "spec.updateStrategy.rollingUpdate"
	vct := "spec.volumeClaimTemplates[0].spec"
	cases := []struct {
		name   string
		mutate func(s *appsv1.StatefulSet)
		want   []string
	}{
		{"valid", func(s *appsv1.StatefulSet) {}, nil},
		{"valid headless-less", func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "" }, nil},
		{"template hostname and subdomain are ignored", func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Hostname = "Not_Valid"
			s.Spec.Template.Spec.Subdomain = "Not_Valid"
		}, nil},
		{"name must be a DNS label", func(s *appsv1.StatefulSet) { s.Name = "web.v1" }, want(inv("metadata.name"))},
		{"bad podManagementPolicy", func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = "Random" }, want(inv("spec.podManagementPolicy"))},
		{"missing podManagementPolicy", func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = "" }, want(req("spec.podManagementPolicy"))},
		{"missing updateStrategy", func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.Type = "" }, want(req("spec.updateStrategy"))},
		{"unknown updateStrategy", func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.Type = "Rolling" }, want(inv("spec.updateStrategy"))},
		{"OnDelete with rollingUpdate", func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType }, want(inv(ru))},
		{"negative partition", func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](-1) }, want(inv(ru + ".partition"))},
		{"maxUnavailable zero", func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("0%"))
		}, want(inv(ru + ".maxUnavailable"))},
		{"maxUnavailable over 100%", func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("101%"))
		}, want(inv(ru + ".maxUnavailable"))},
		{"negative replicas", func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](-1) }, want(inv("spec.replicas"))},
		{"negative ordinals start", func(s *appsv1.StatefulSet) { s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: -1} }, want(inv("spec.ordinals.start"))},
		{"bad serviceName", func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "Web.Svc" }, want(inv("spec.serviceName"))},
		{"missing selector", func(s *appsv1.StatefulSet) { s.Spec.Selector = nil }, want(req("spec.selector"), inv("spec.template.metadata.labels"))},
		{"empty selector", func(s *appsv1.StatefulSet) { s.Spec.Selector = &metav1.LabelSelector{} }, want(inv("spec.selector"))},
		{"selector mismatch", func(s *appsv1.StatefulSet) { s.Spec.Template.Labels = map[string]string{"app": "db"} }, want(inv("spec.template.metadata.labels"))},
		{"restartPolicy Never", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever }, want(notSupp("spec.template.spec.restartPolicy"))},
		{"activeDeadlineSeconds", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](1) }, want(forbid("spec.template.spec.activeDeadlineSeconds"))},
		{"bad retention policy", func(s *appsv1.StatefulSet) { s.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = "Keep" }, want(notSupp("spec.persistentVolumeClaimRetentionPolicy.whenScaled"))},
		{"mount of unknown volume", func(s *appsv1.StatefulSet) { s.Spec.VolumeClaimTemplates = nil }, want(notFound("spec.template.spec.containers[0].volumeMounts[0].name"))},
		{"claim template without access modes or storage", func(s *appsv1.StatefulSet) {
			s.Spec.VolumeClaimTemplates[0].Spec.AccessModes = nil
			s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = nil
		}, want(req(vct+".accessModes"), req(vct+".resources[storage]"))},
		{"claim template bad mode", func(s *appsv1.StatefulSet) {
			s.Spec.VolumeClaimTemplates[0].Spec.AccessModes = []corev1.PersistentVolumeAccessMode{"ReadWriteSometimes"}
		}, want(notSupp(vct + ".accessModes"))},
		{"template container invalid", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Name = "" }, want(req("spec.template.spec.containers[0].name"))},
		{"invalid template label reported twice as kube does", func(s *appsv1.StatefulSet) { s.Spec.Template.Labels["bad key"] = "x" }, want(inv("spec.template.labels"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			s := validStatefulSet()
			tc.mutate(s)
			assertErrs(t, ValidateStatefulSet(s), tc.want)
		})
	}

	s := validStatefulSet()
	s.Spec.PodManagementPolicy = "Random"
	if e := findErr(ValidateStatefulSet(s), "spec.podManagementPolicy"); e == nil ||
		e.Error() != `spec.podManagementPolicy: Invalid value: "Random": must be 'OrderedReady' or 'Parallel'` {
		t.Errorf("podManagementPolicy message = %v", e)
	}
}

func TestValidateStatefulSetUpdate(t *testing.T) {
	const forbiddenMsg = "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', " +
		"'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
	cases := []struct {
		name   string
		mutate func(s *appsv1.StatefulSet)
		want   []string
	}{
		{"scale, new image, strategy, retention", func(s *appsv1.StatefulSet) {
			s.Spec.Replicas = ptr.To[int32](5)
			s.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
			s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
			s.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
			s.Spec.MinReadySeconds = 5
			s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 2}
			s.Spec.RevisionHistoryLimit = ptr.To[int32](2)
		}, nil},
		{"serviceName", func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "other" }, want(forbid("spec"))},
		{"selector", func(s *appsv1.StatefulSet) {
			s.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "x": "y"}}
			s.Spec.Template.Labels["x"] = "y"
		}, want(forbid("spec"))},
		{"podManagementPolicy", func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement }, want(forbid("spec"))},
		{"volumeClaimTemplates", func(s *appsv1.StatefulSet) {
			s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		}, want(forbid("spec"))},
		{"negative replicas", func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](-1) }, want(inv("spec.replicas"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			old := validStatefulSet()
			s := old.DeepCopy()
			tc.mutate(s)
			errs := ValidateStatefulSetUpdate(s, old)
			assertErrs(t, errs, tc.want)
			if e := findErr(errs, "spec"); e != nil && e.Error() != forbiddenMsg {
				t.Errorf("message = %q", e.Error())
			}
		})
	}

	// An object stored under the old subdomain name rule stays updatable.
	old := validStatefulSet()
	old.Name = "web.v1"
	s := old.DeepCopy()
	s.Spec.Replicas = ptr.To[int32](1)
	assertErrs(t, ValidateStatefulSetUpdate(s, old), nil)
}

func TestValidateStatefulSetStatusUpdate(t *testing.T) {
	old := validStatefulSet()
	old.Status.CollisionCount = ptr.To[int32](1)
	cases := []struct {
		name   string
		status appsv1.StatefulSetStatus
		want   []string
	}{
		{"valid", appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 3, CurrentReplicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3, CollisionCount: ptr.To[int32](1)}, nil},
		{"ready above replicas", appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 2, CollisionCount: ptr.To[int32](1)}, want(inv("status.readyReplicas"))},
		{"available above ready", appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 1, AvailableReplicas: 2, CollisionCount: ptr.To[int32](1)}, want(inv("status.availableReplicas"))},
		{"negative current", appsv1.StatefulSetStatus{CurrentReplicas: -1, CollisionCount: ptr.To[int32](1)}, want(inv("status.currentReplicas"))},
		{"collision count decremented", appsv1.StatefulSetStatus{CollisionCount: ptr.To[int32](0)}, want(inv("status.collisionCount"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			s := old.DeepCopy()
			s.Status = tc.status
			assertErrs(t, ValidateStatefulSetStatusUpdate(s, old), tc.want)
		})
	}
}

func TestDefaultedWorkloadsValidate(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "nginx", Namespace: "default"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nginx"}}, Template: minimalTemplate()}}
	DefaultDeployment(d)
	assertErrs(t, ValidateDeployment(d), nil)

	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "nginx-1", Namespace: "default"}, Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nginx"}}, Template: minimalTemplate()}}
	DefaultReplicaSet(rs)
	assertErrs(t, ValidateReplicaSet(rs), nil)

	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "nginx", Namespace: "default"}, Spec: appsv1.StatefulSetSpec{
		ServiceName: "nginx", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "nginx"}}, Template: minimalTemplate()}}
	DefaultStatefulSet(s)
	assertErrs(t, ValidateStatefulSet(s), nil)
}
