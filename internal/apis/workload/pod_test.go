package workload

import (
	"math/rand/v2"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// mustYAML renders an object the way `kubectl get -o yaml` does (JSON field names, omitempty).
func mustYAML(t *testing.T, obj any) string {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDefaultPodMatchesKube(t *testing.T) {
	// `kubectl run nginx --image=nginx` as kube-apiserver 1.35 stores it, minus what admission adds
	// (service account, tolerations, priority).
	p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}}}
	DefaultPod(p)
	got := mustYAML(t, p.Spec)
	want := `containers:
- image: nginx
  imagePullPolicy: Always
  name: nginx
  resources: {}
  terminationMessagePath: /dev/termination-log
  terminationMessagePolicy: File
dnsPolicy: ClusterFirst
enableServiceLinks: true
restartPolicy: Always
schedulerName: default-scheduler
securityContext: {}
terminationGracePeriodSeconds: 30
`
	if got != want {
		t.Errorf("defaulted pod spec:\n%s\nwant:\n%s", got, want)
	}
}

func TestDefaultPodDetails(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{
		HostNetwork:              true,
		DeprecatedServiceAccount: "builder",
		Containers: []corev1.Container{{
			Name:  "app",
			Image: "registry.local:5000/app:v1",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
			Env:   []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
			Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.0001")},
			},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}}},
			Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}},
		}, {
			Name:  "digest",
			Image: "busybox@sha256:" + strings.Repeat("a", 64),
		}},
		Volumes: []corev1.Volume{
			{Name: "scratch"},
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"}}},
		},
	}, Status: corev1.PodStatus{PodIP: "10.244.1.5"}}
	DefaultPod(p)
	c := p.Spec.Containers[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"pull policy for tagged image", c.ImagePullPolicy, corev1.PullIfNotPresent},
		{"pull policy for digest image", p.Spec.Containers[1].ImagePullPolicy, corev1.PullIfNotPresent},
		{"port protocol", c.Ports[0].Protocol, corev1.ProtocolTCP},
		{"host network host port", c.Ports[0].HostPort, int32(8080)},
		{"fieldRef apiVersion", c.Env[0].ValueFrom.FieldRef.APIVersion, "v1"},
		{"limit rounded to milli", c.Resources.Limits.Cpu().String(), "1m"},
		{"request copied from limit", c.Resources.Requests.Cpu().String(), "1m"},
		{"probe timeout", c.LivenessProbe.TimeoutSeconds, int32(1)},
		{"probe period", c.LivenessProbe.PeriodSeconds, int32(10)},
		{"probe success", c.LivenessProbe.SuccessThreshold, int32(1)},
		{"probe failure", c.LivenessProbe.FailureThreshold, int32(3)},
		{"httpGet path", c.LivenessProbe.HTTPGet.Path, "/"},
		{"httpGet scheme", c.LivenessProbe.HTTPGet.Scheme, corev1.URISchemeHTTP},
		{"grpc service", *c.ReadinessProbe.GRPC.Service, ""},
		{"preStop scheme", c.Lifecycle.PreStop.HTTPGet.Scheme, corev1.URISchemeHTTP},
		{"empty volume becomes emptyDir", p.Spec.Volumes[0].EmptyDir != nil, true},
		{"configMap mode", *p.Spec.Volumes[1].ConfigMap.DefaultMode, int32(0o644)},
		{"secret mode", *p.Spec.Volumes[2].Secret.DefaultMode, int32(0o644)},
		{"hostPath type", *p.Spec.Volumes[3].HostPath.Type, corev1.HostPathUnset},
		{"serviceAccountName from alias", p.Spec.ServiceAccountName, "builder"},
		{"alias mirrors name", p.Spec.DeprecatedServiceAccount, "builder"},
		{"podIPs from podIP", p.Status.PodIPs, []corev1.PodIP{{IP: "10.244.1.5"}}},
	}
	for _, c := range checks {
		if !equalAny(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// Defaulting is idempotent: a second decode must not change a stored object.
	again := p.DeepCopy()
	DefaultPod(again)
	if mustYAML(t, again) != mustYAML(t, p) {
		t.Errorf("defaulting is not idempotent")
	}
}

func equalAny(a, b any) bool { return mustYAMLNoT(a) == mustYAMLNoT(b) }

func mustYAMLNoT(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

func TestDefaultPodTemplateSpecSkipsPodOnlyDefaults(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		HostNetwork: true,
		Containers: []corev1.Container{{Name: "a", Image: "a:latest", Ports: []corev1.ContainerPort{{ContainerPort: 80}},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}},
	}}
	DefaultPodTemplateSpec(tmpl)
	c := tmpl.Spec.Containers[0]
	if tmpl.Spec.EnableServiceLinks != nil {
		t.Errorf("enableServiceLinks is a pod-only default")
	}
	if c.Ports[0].HostPort != 0 {
		t.Errorf("host ports are only defaulted on pods")
	}
	if c.Resources.Requests != nil {
		t.Errorf("requests are only copied from limits on pods")
	}
	if c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf(":latest must pull Always, got %s", c.ImagePullPolicy)
	}
}

func TestValidatePodValid(t *testing.T) {
	p := validPod()
	p.Spec.Containers[0].Env = []corev1.EnvVar{
		{Name: "A", Value: "1"},
		{Name: "my.weird-name", Value: "x"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
		{Name: "LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels['app']"}}},
		{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}},
		{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
	}
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:   corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
		TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 3, FailureThreshold: 3,
	}
	p.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:   corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
	}
	p.Spec.Containers[0].StartupProbe = &corev1.Probe{
		ProbeHandler:   corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: ptr.To("")}},
		TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 30,
	}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "cfg", MountPath: "/etc/cfg", ReadOnly: true}}
	p.Spec.Volumes = []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, DefaultMode: ptr.To[int32](0o644),
			Items: []corev1.KeyToPath{{Key: "a", Path: "a.conf"}}}}},
	}
	p.Spec.Hostname = "web-0"
	p.Spec.Subdomain = "web"
	p.Spec.NodeName = "node-1"
	p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	p.Spec.InitContainers = []corev1.Container{{
		Name: "init", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile, Command: []string{"true"},
	}}
	if errs := ValidatePod(p); len(errs) != 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
}

func TestValidatePodInvalid(t *testing.T) {
	c0 := "spec.containers[0]"
	cases := []struct {
		name   string
		mutate func(p *corev1.Pod)
		want   []string
	}{
		{"missing name", func(p *corev1.Pod) { p.Name = "" }, want(req("metadata.name"))},
		{"name not a subdomain", func(p *corev1.Pod) { p.Name = "Web_0" }, want(inv("metadata.name"))},
		{"missing namespace", func(p *corev1.Pod) { p.Namespace = "" }, want(req("metadata.namespace"))},
		{"bad label", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "no spaces"} }, want(inv("metadata.labels"))},
		{"non-standard finalizer", func(p *corev1.Pod) { p.Finalizers = []string{"custom"} }, want(inv("metadata.finalizers[0]"))},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, want(req("spec.containers"))},
		{"container name missing", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }, want(req(c0 + ".name"))},
		{"container name with dot", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "a.b" }, want(inv(c0 + ".name"))},
		{"duplicate container names", func(p *corev1.Pod) {
			c := p.Spec.Containers[0]
			c.Ports = nil
			p.Spec.Containers = append(p.Spec.Containers, c)
		}, want(dup("spec.containers[1].name"))},
		{"missing image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, want(req(c0 + ".image"))},
		{"padded image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = " nginx " }, want(inv(c0 + ".image"))},
		{"empty pull policy", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "" }, want(req(c0 + ".imagePullPolicy"))},
		{"bad pull policy", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, want(notSupp(c0 + ".imagePullPolicy"))},
		{"empty termination message policy", func(p *corev1.Pod) { p.Spec.Containers[0].TerminationMessagePolicy = "" }, want(req(c0 + ".terminationMessagePolicy"))},
		{"bad termination message policy", func(p *corev1.Pod) { p.Spec.Containers[0].TerminationMessagePolicy = "Loud" }, want(notSupp(c0 + ".terminationMessagePolicy"))},
		{"container port zero", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 0 }, want(req(c0 + ".ports[0].containerPort"))},
		{"container port too big", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 65536 }, want(inv(c0 + ".ports[0].containerPort"))},
		{"host port too big", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].HostPort = 70000 }, want(inv(c0 + ".ports[0].hostPort"))},
		{"port name too long", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "a-very-long-port-name" }, want(inv(c0 + ".ports[0].name"))},
		{"port name without letter", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "123" }, want(inv(c0 + ".ports[0].name"))},
		{"duplicate port name", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "http", ContainerPort: 9090, Protocol: corev1.ProtocolTCP})
		}, want(dup(c0 + ".ports[1].name"))},
		{"missing protocol", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "" }, want(req(c0 + ".ports[0].protocol"))},
		{"bad protocol", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "ICMP" }, want(notSupp(c0 + ".ports[0].protocol"))},
		{"host port conflict", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports[0].HostPort = 80
			c := p.Spec.Containers[0]
			c.Name = "other"
			c.Ports = []corev1.ContainerPort{{ContainerPort: 81, HostPort: 80, Protocol: corev1.ProtocolTCP}}
			p.Spec.Containers = append(p.Spec.Containers, c)
		}, want(dup("spec.containers[1].ports[0].hostPort"))},
		{"env name missing", func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Value: "x"}} }, want(req(c0 + ".env[0].name"))},
		{"env name with equals", func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A=B"}} }, want(inv(c0 + ".env[0].name"))},
		{"env valueFrom without source", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{}}}
		}, want(inv(c0 + ".env[0].valueFrom"))},
		{"env value and valueFrom", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "x", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}}
		}, want(inv(c0 + ".env[0].valueFrom"))},
		{"env two sources", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{
				FieldRef:     &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}}
		}, want(inv(c0 + ".env[0].valueFrom"))},
		{"fieldRef without apiVersion", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
		}, want(req(c0 + ".env[0].valueFrom.fieldRef.apiVersion"))},
		{"fieldRef not convertible", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.whoops"}}}}
		}, want(inv(c0 + ".env[0].valueFrom.fieldRef.fieldPath"))},
		{"fieldRef not offered to env", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"}}}}
		}, want(notSupp(c0 + ".env[0].valueFrom.fieldRef.fieldPath"))},
		{"resourceFieldRef unknown", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.gpu"}}}}
		}, want(notSupp(c0 + ".env[0].valueFrom.resourceFieldRef.resource"))},
		{"configMapKeyRef without key", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}}}
		}, want(req(c0 + ".env[0].valueFrom.configMapKeyRef.key"))},
		{"envFrom without source", func(p *corev1.Pod) { p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{Prefix: "P_"}} }, want(inv(c0 + ".envFrom"))},
		{"probe without handler", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3}
		}, want(req(c0 + ".livenessProbe"))},
		{"probe with two handlers", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				Exec: &corev1.ExecAction{Command: []string{"true"}}, TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}},
				SuccessThreshold: 1}
		}, want(forbid(c0 + ".livenessProbe.tcpSocket"))},
		{"liveness success threshold", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, SuccessThreshold: 2}
		}, want(inv(c0 + ".livenessProbe.successThreshold"))},
		{"startup success threshold", func(p *corev1.Pod) {
			p.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, SuccessThreshold: 2}
		}, want(inv(c0 + ".startupProbe.successThreshold"))},
		{"readiness negative timeout", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, TimeoutSeconds: -1}
		}, want(inv(c0 + ".readinessProbe.timeoutSeconds"))},
		{"readiness with grace period", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, TerminationGracePeriodSeconds: ptr.To[int64](10)}
		}, want(inv(c0 + ".readinessProbe.terminationGracePeriodSeconds"))},
		{"httpGet bad port and scheme", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(0), Scheme: "FTP"}}}
		}, want(inv(c0+".readinessProbe.httpGet.port"), notSupp(c0+".readinessProbe.httpGet.scheme"))},
		{"httpGet without path", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}}}
		}, want(req(c0 + ".readinessProbe.httpGet.path"))},
		{"tcpSocket bad named port", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("Bad_Name")}}}
		}, want(inv(c0 + ".readinessProbe.tcpSocket.port"))},
		{"grpc port zero", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 0}}}
		}, want(inv(c0 + ".readinessProbe.grpc.port"))},
		{"exec without command", func(p *corev1.Pod) {
			p.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}, SuccessThreshold: 1}
		}, want(req(c0 + ".startupProbe.exec.command"))},
		{"preStop sleep beyond grace period", func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 31}}}
		}, want(inv(c0 + ".lifecycle.preStop.sleep"))},
		{"init container with probe", func(p *corev1.Pod) {
			ic := p.Spec.Containers[0]
			ic.Name = "init"
			ic.Ports = nil
			ic.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, SuccessThreshold: 1}
			p.Spec.InitContainers = []corev1.Container{ic}
		}, want(forbid("spec.initContainers[0].livenessProbe"))},
		{"init container name clashes", func(p *corev1.Pod) {
			ic := p.Spec.Containers[0]
			ic.Ports = nil
			p.Spec.InitContainers = []corev1.Container{ic}
		}, want(dup("spec.initContainers[0].name"))},
		{"init container restartPolicy OnFailure", func(p *corev1.Pod) {
			ic := p.Spec.Containers[0]
			ic.Name = "init"
			ic.Ports = nil
			ic.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyOnFailure)
			p.Spec.InitContainers = []corev1.Container{ic}
		}, want(notSupp("spec.initContainers[0].restartPolicy"))},
		{"negative limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse("-1")
			delete(p.Spec.Containers[0].Resources.Requests, corev1.ResourceCPU)
		}, want(inv(c0 + ".resources.limits[cpu]"))},
		{"request above limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("2")
		}, want(inv(c0 + ".resources.requests"))},
		{"unknown resource name", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["gpu"] = resource.MustParse("1")
		}, want(inv(c0 + ".resources.limits[gpu]"))},
		{"fractional extended resource", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["example.com/gpu"] = resource.MustParse("500m")
			p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = resource.MustParse("500m")
		}, want(inv(c0+".resources.limits[example.com/gpu]"), inv(c0+".resources.requests[example.com/gpu]"))},
		{"extended resource request without limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = resource.MustParse("1")
		}, want(req(c0 + ".resources.limits"))},
		{"missing restartPolicy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "" }, want(req("spec.restartPolicy"))},
		{"bad restartPolicy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, want(notSupp("spec.restartPolicy"))},
		{"missing dnsPolicy", func(p *corev1.Pod) { p.Spec.DNSPolicy = "" }, want(req("spec.dnsPolicy"))},
		{"bad dnsPolicy", func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }, want(notSupp("spec.dnsPolicy"))},
		{"dnsPolicy None without config", func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }, want(req("spec.dnsConfig"))},
		{"dnsConfig bad nameserver", func(p *corev1.Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"not-an-ip"}}
		}, want(inv("spec.dnsConfig.nameservers[0]"))},
		{"missing grace period", func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = nil }, want(req("spec.terminationGracePeriodSeconds"))},
		{"activeDeadlineSeconds zero", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](0) }, want(inv("spec.activeDeadlineSeconds"))},
		{"hostname not a label", func(p *corev1.Pod) { p.Spec.Hostname = "web.0" }, want(inv("spec.hostname"))},
		{"subdomain not a label", func(p *corev1.Pod) { p.Spec.Subdomain = "Web" }, want(inv("spec.subdomain"))},
		{"nodeName invalid", func(p *corev1.Pod) { p.Spec.NodeName = "Node_1" }, want(inv("spec.nodeName"))},
		{"serviceAccountName invalid", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "SA!" }, want(inv("spec.serviceAccountName"))},
		{"nodeSelector invalid key", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"bad key": "x"} }, want(inv("spec.nodeSelector"))},
		{"hostNetwork port mismatch", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, want(inv(c0 + ".ports[0].hostPort"))},
		{"toleration without key needs Exists", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpEqual, Value: "x"}}
		}, want(inv("spec.tolerations[0].operator"))},
		{"toleration seconds need NoExecute", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](5)}}
		}, want(inv("spec.tolerations[0].effect"))},
		{"volume name missing", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, want(req("spec.volumes[0].name"))},
		{"duplicate volume", func(p *corev1.Pod) {
			v := corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
			p.Spec.Volumes = []corev1.Volume{v, v}
		}, want(dup("spec.volumes[1].name"))},
		{"volume without source", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "v"}} }, want(req("spec.volumes[0]"))},
		{"volume with two sources", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{}, Secret: &corev1.SecretVolumeSource{SecretName: "s"}}}}
		}, want(forbid("spec.volumes[0].secret"))},
		{"secret volume without name", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}}}
		}, want(req("spec.volumes[0].secret.secretName"))},
		{"configMap volume bad mode and item path", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, DefaultMode: ptr.To[int32](0o1000),
				Items: []corev1.KeyToPath{{Key: "k", Path: "../escape"}}}}}}
		}, want(inv("spec.volumes[0].configMap.defaultMode"), inv("spec.volumes[0].configMap.items[0].path"))},
		{"mount of unknown volume", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}
		}, want(notFound(c0 + ".volumeMounts[0].name"))},
		{"mount without path", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "v"}}
		}, want(req(c0 + ".volumeMounts[0].mountPath"))},
		{"ephemeral containers on create", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent, TerminationMessagePolicy: corev1.TerminationMessageReadFile}}}
		}, want(forbid("spec.ephemeralContainers"))},
		{"projected token without service account", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3600)}}}}}}}
		}, want(forbid("spec.volumes[0].projected.sources[0].serviceAccountToken"))},
		{"mirror pod without node", func(p *corev1.Pod) {
			p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
		}, want(inv("metadata.annotations[kubernetes.io/config.mirror]"))},
		{"bad deletion cost", func(p *corev1.Pod) {
			p.Annotations = map[string]string{corev1.PodDeletionCost: "+10"}
		}, want(inv("metadata.annotations[controller.kubernetes.io/pod-deletion-cost]"))},
		{"nodeName with scheduling gates", func(p *corev1.Pod) {
			p.Spec.NodeName = "node-1"
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/gate"}}
		}, want(forbid("spec.nodeName"))},
		{"runAsUser negative", func(p *corev1.Pod) { p.Spec.SecurityContext.RunAsUser = ptr.To[int64](-1) }, want(inv("spec.securityContext.runAsUser"))},
		{"container seccomp localhost without profile", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost}}
		}, want(req(c0 + ".securityContext.seccompProfile.localhostProfile"))},
		{"node affinity without terms", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{}}}
		}, want(req("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"))},
		{"node affinity In without values", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn}}}}}}}
		}, want(req("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values"))},
		{"pod anti-affinity without topology key", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 101, PodAffinityTerm: corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}}}}
		}, want(inv("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight"),
			req("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey"),
			inv("spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey"))},
		{"topology spread constraint", func(p *corev1.Pod) {
			c := corev1.TopologySpreadConstraint{MaxSkew: 0, TopologyKey: "zone", WhenUnsatisfiable: corev1.ScheduleAnyway, MinDomains: ptr.To[int32](2)}
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{c, c}
		}, want(inv("spec.topologySpreadConstraints[0].maxSkew"), inv("spec.topologySpreadConstraints[1].maxSkew"),
			dup("spec.topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}"),
			inv("spec.topologySpreadConstraints[0].minDomains"), inv("spec.topologySpreadConstraints[1].minDomains"))},
		{"topology spread unknown action", func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: "Maybe"}}
		}, want(notSupp("spec.topologySpreadConstraints[0].whenUnsatisfiable"))},
		{"os name unsupported", func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: "plan9"} }, want(notSupp("spec.os"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			p := validPod()
			tc.mutate(p)
			assertErrs(t, ValidatePod(p), tc.want)
		})
	}
}

func TestValidatePodMessages(t *testing.T) {
	p := validPod()
	p.Spec.Containers[0].Name = "a.b"
	p.Spec.RestartPolicy = "Sometimes"
	errs := ValidatePod(p)
	if e := findErr(errs, "spec.containers[0].name"); e == nil || e.Error() != `spec.containers[0].name: Invalid value: "a.b": must not contain dots` {
		t.Errorf("container name error = %v", e)
	}
	if e := findErr(errs, "spec.restartPolicy"); e == nil || e.Error() != `spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"` {
		t.Errorf("restartPolicy error = %v", e)
	}

	p = validPod()
	p.Spec.Containers[0].Ports[0].Protocol = "ICMP"
	if e := findErr(ValidatePod(p), "spec.containers[0].ports[0].protocol"); e == nil ||
		e.Error() != `spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"` {
		t.Errorf("protocol error = %v", e)
	}
}

func TestValidatePodUpdate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(p *corev1.Pod)
		want   []string
	}{
		{"image change allowed", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }, nil},
		{"labels may change", func(p *corev1.Pod) { p.Labels = map[string]string{"x": "y"} }, nil},
		{"lower activeDeadlineSeconds", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](10) }, nil},
		{"raise activeDeadlineSeconds", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](100) }, want(inv("spec.activeDeadlineSeconds"))},
		{"unset activeDeadlineSeconds", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = nil }, want(inv("spec.activeDeadlineSeconds"))},
		{"add toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "b", Operator: corev1.TolerationOpExists})
		}, nil},
		{"change toleration", func(p *corev1.Pod) { p.Spec.Tolerations[0].Key = "c" }, want(forbid("spec.tolerations"))},
		{"add container", func(p *corev1.Pod) {
			c := p.Spec.Containers[0]
			c.Name = "b"
			c.Ports = nil
			p.Spec.Containers = append(p.Spec.Containers, c)
		}, want(forbid("spec.containers"))},
		{"change port", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 9000 }, want(forbid("spec"))},
		{"change restartPolicy", func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }, want(forbid("spec"))},
		{"rename", func(p *corev1.Pod) { p.Name = "other" }, want(inv("metadata.name"))},
		{"remove image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, want(req("spec.containers[0].image"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			old := validPod()
			old.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
			old.Spec.Tolerations = []corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpExists}}
			p := old.DeepCopy()
			tc.mutate(p)
			assertErrs(t, ValidatePodUpdate(p, old), tc.want)
		})
	}

	old := validPod()
	p := old.DeepCopy()
	p.Spec.Containers[0].Ports[0].ContainerPort = 9000
	e := findErr(ValidatePodUpdate(p, old), "spec")
	prefix := "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`," +
		"`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)," +
		"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
	if e == nil || !strings.HasPrefix(e.Error(), prefix) || !strings.Contains(e.Error(), "ContainerPort") {
		t.Errorf("spec update error = %v", e)
	}
}

func TestValidatePodStatusUpdate(t *testing.T) {
	terminated := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}
	running := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	cases := []struct {
		name        string
		restart     corev1.RestartPolicy
		mutate      func(p *corev1.Pod)
		oldStatuses []corev1.ContainerStatus
		want        []string
	}{
		{"ips and phase", corev1.RestartPolicyAlways, func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIP = "10.244.1.5"
			p.Status.PodIPs = []corev1.PodIP{{IP: "10.244.1.5"}, {IP: "fd00::5"}}
			p.Status.HostIP = "172.31.0.11"
			p.Status.HostIPs = []corev1.HostIP{{IP: "172.31.0.11"}}
		}, nil, nil},
		{"nodeName is not a status field", corev1.RestartPolicyAlways, func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }, nil, want(forbid("status.nodeName"))},
		{"two IPv4 pod IPs", corev1.RestartPolicyAlways, func(p *corev1.Pod) {
			p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}}
		}, nil, want(inv("status.podIPs"))},
		{"bad pod IP", corev1.RestartPolicyAlways, func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "nope"}} }, nil, want(inv("status.podIPs[0]"))},
		{"hostIPs[0] differs from hostIP", corev1.RestartPolicyAlways, func(p *corev1.Pod) {
			p.Status.HostIP = "172.31.0.11"
			p.Status.HostIPs = []corev1.HostIP{{IP: "172.31.0.12"}}
		}, nil, want(inv("status.hostIPs[0].ip"))},
		{"restart terminated container under Never", corev1.RestartPolicyNever, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running}
		}, []corev1.ContainerStatus{terminated}, want(forbid("status.containerStatuses[0].state"))},
		{"restart under Always", corev1.RestartPolicyAlways, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running}
		}, []corev1.ContainerStatus{terminated}, nil},
		{"custom condition type must be qualified", corev1.RestartPolicyAlways, func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: "bad type", Status: corev1.ConditionTrue}}
		}, nil, want(inv("metadata.conditions[0].Type"))},
	}
	// Shuffled: validation is pure, so case order must not matter.
	for _, i := range rand.Perm(len(cases)) {
		tc := cases[i]
		t.Run(tc.name, func(t *testing.T) {
			old := validPod()
			old.Spec.RestartPolicy = tc.restart
			old.Status.ContainerStatuses = tc.oldStatuses
			p := old.DeepCopy()
			tc.mutate(p)
			assertErrs(t, ValidatePodStatusUpdate(p, old), tc.want)
		})
	}
}

func TestValidatePodDefaultedIsValid(t *testing.T) {
	// Whatever a user may minimally submit must validate after defaulting, as it does in kube.
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default",
			HostNetwork:        true,
			Containers: []corev1.Container{{Name: "c", Image: "busybox", Ports: []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}},
				LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9000}}},
				Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}}},
			Volumes: []corev1.Volume{{Name: "tmp"}, {Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}},
		},
	}
	DefaultPod(p)
	if errs := ValidatePod(p); len(errs) != 0 {
		t.Fatalf("defaulted pod is invalid: %v", errs)
	}
	// The same error type set comes back on every call: nothing depends on map order.
	bad := p.DeepCopy()
	bad.Spec.Containers[0].Resources.Limits["a"] = resource.MustParse("1")
	bad.Spec.Containers[0].Resources.Limits["b"] = resource.MustParse("1")
	first := errKeys(ValidatePod(bad))
	for i := 0; i < 20; i++ {
		if got := errKeys(ValidatePod(bad)); strings.Join(got, ",") != strings.Join(first, ",") {
			t.Fatalf("non-deterministic errors: %v vs %v", got, first)
		}
	}
}
