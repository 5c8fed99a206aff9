package agent

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// agnhostImages are the repositories whose containers run svcnet's built-in agnhost, so that
// manifests from Kubernetes' own network tests run unchanged.
var agnhostImages = []string{
	"registry.k8s.io/e2e-test-images/agnhost",
	"k8s.gcr.io/e2e-test-images/agnhost",
	"gcr.io/kubernetes-e2e-test-images/agnhost",
}

// pauseImages run the built-in `agnhost pause`.
var pauseImages = []string{"registry.k8s.io/pause", "k8s.gcr.io/pause"}

func imageRepo(image string) string {
	repo := image
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	return repo
}

// ErrNoCommand is the reason a container cannot start: its image has no built-in implementation
// and it names no command to run.
const ErrNoCommand = "CommandRequired"

// containerArgv decides what process runs a container: the built-in agnhost for its images (the
// image's entrypoint is /agnhost, so args are its subcommand and flags), and otherwise the
// container's own command and args, found on the node. self is the svcnet binary.
func containerArgv(c *corev1.Container, self string, env map[string]string) ([]string, string, error) {
	command := expandAll(c.Command, env)
	args := expandAll(c.Args, env)
	repo := imageRepo(c.Image)
	for _, img := range agnhostImages {
		if repo == img {
			if len(command) > 0 && (command[0] == "/agnhost" || command[0] == "agnhost") {
				command = command[1:]
			} else if len(command) > 0 {
				// Another program of the image (a shell, say) is run from the node.
				return append(command, args...), "", nil
			}
			return append(append([]string{self, "agnhost"}, command...), args...), "", nil
		}
	}
	for _, img := range pauseImages {
		if repo == img && len(command) == 0 {
			return []string{self, "agnhost", "pause"}, "", nil
		}
	}
	if len(command) == 0 {
		return nil, ErrNoCommand, fmt.Errorf("svcnet runs containers as processes on the node and has no built-in implementation of image %q: "+
			"set the container's command (only %s and %s run without one)", c.Image, agnhostImages[0], pauseImages[0])
	}
	return append(command, args...), "", nil
}

// expandAll applies Kubernetes' $(VAR) expansion to each string.
func expandAll(in []string, env map[string]string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, env)
	}
	return out
}

// expand replaces $(VAR) with VAR's value when VAR is defined, leaves unknown references as they
// are, and turns $$ into $, as the kubelet does.
func expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// podFacts are the values the downward API and the service links draw on.
type podFacts struct {
	PodIP  netip.Addr
	HostIP netip.Addr
	// Services visible to the pod: its namespace's (for service links) and the master service.
	Services       []*corev1.Service
	MasterServices []*corev1.Service
	NodeCapacity   corev1.ResourceList
}

// containerEnv is the environment of a container, in the kubelet's order: service links first
// (so the container's own variables can refer to and override them), then the container's env in
// order, each expanded against what came before.
func containerEnv(pod *corev1.Pod, c *corev1.Container, f podFacts) ([]string, map[string]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	svcs := f.MasterServices
	if links {
		svcs = append(append([]*corev1.Service{}, f.MasterServices...), f.Services...)
	}
	for _, kv := range serviceEnv(svcs) {
		set(kv[0], kv[1])
	}
	set("HOSTNAME", podHostname(pod))
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, err := envFrom(pod, c, e.ValueFrom, f)
		if err != nil {
			return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		set(e.Name, v)
	}
	if len(c.EnvFrom) > 0 {
		return nil, nil, fmt.Errorf("envFrom: ConfigMaps and Secrets are not served by svcnet")
	}
	if _, ok := vars["PATH"]; !ok {
		set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out, vars, nil
}

func envFrom(pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource, f podFacts) (string, error) {
	switch {
	case src.FieldRef != nil:
		return fieldValue(pod, src.FieldRef.FieldPath, f)
	case src.ResourceFieldRef != nil:
		return resourceValue(c, src.ResourceFieldRef, f)
	case src.ConfigMapKeyRef != nil:
		return "", fmt.Errorf("configMapKeyRef: ConfigMaps are not served by svcnet")
	case src.SecretKeyRef != nil:
		return "", fmt.Errorf("secretKeyRef: Secrets are not served by svcnet")
	}
	return "", fmt.Errorf("unsupported valueFrom")
}

func fieldValue(pod *corev1.Pod, path string, f podFacts) (string, error) {
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	str := func(a netip.Addr) string {
		if a.IsValid() {
			return a.String()
		}
		return ""
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return str(f.HostIP), nil
	case "status.podIP", "status.podIPs":
		return str(f.PodIP), nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported", path)
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector, f podFacts) (string, error) {
	name := corev1.ResourceName(strings.TrimPrefix(strings.TrimPrefix(ref.Resource, "limits."), "requests."))
	var q resource.Quantity
	var ok bool
	if strings.HasPrefix(ref.Resource, "requests.") {
		q, ok = c.Resources.Requests[name]
	} else {
		q, ok = c.Resources.Limits[name]
		if !ok {
			q, ok = f.NodeCapacity[name]
		}
	}
	if !ok {
		return "0", nil
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == corev1.ResourceCPU {
		// CPU rounds up to whole divisors, as the kubelet does.
		v := (q.MilliValue() + divisor.MilliValue() - 1) / divisor.MilliValue()
		return strconv.FormatInt(v, 10), nil
	}
	return strconv.FormatInt((q.Value()+divisor.Value()-1)/divisor.Value(), 10), nil
}

// serviceEnv is the docker-links style variables for each service with a cluster IP, as the
// kubelet writes them: FOO_SERVICE_HOST, FOO_SERVICE_PORT, FOO_SERVICE_PORT_<NAME>, FOO_PORT,
// FOO_PORT_<port>_<PROTO>{,_PROTO,_PORT,_ADDR}.
func serviceEnv(svcs []*corev1.Service) [][2]string {
	var out [][2]string
	seen := map[string]bool{}
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone || seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		name := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		ip := s.Spec.ClusterIP
		if len(s.Spec.Ports) == 0 {
			continue
		}
		out = append(out, [2]string{name + "_SERVICE_HOST", ip}, [2]string{name + "_SERVICE_PORT", strconv.Itoa(int(s.Spec.Ports[0].Port))})
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out = append(out, [2]string{name + "_SERVICE_PORT_" + strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), strconv.Itoa(int(p.Port))})
			}
		}
		first := s.Spec.Ports[0]
		hostPort := ip
		if strings.Contains(ip, ":") {
			hostPort = "[" + ip + "]"
		}
		out = append(out, [2]string{name + "_PORT", fmt.Sprintf("%s://%s:%d", strings.ToLower(string(first.Protocol)), hostPort, first.Port)})
		for _, p := range s.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			pfx := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, strings.ToUpper(proto))
			out = append(out,
				[2]string{pfx, fmt.Sprintf("%s://%s:%d", proto, hostPort, p.Port)},
				[2]string{pfx + "_PROTO", proto},
				[2]string{pfx + "_PORT", strconv.Itoa(int(p.Port))},
				[2]string{pfx + "_ADDR", ip})
		}
	}
	return out
}

// podHostname is the kubelet's: spec.hostname or the pod's name, cut to 63 characters without a
// trailing dash or dot.
func podHostname(pod *corev1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// resolvConf is the pod's /etc/resolv.conf for its dnsPolicy; "" means the node's own file.
func resolvConf(pod *corev1.Pod, clusterDNS []string, domain string, hostResolv string) string {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	var servers, search, options []string
	switch {
	case policy == corev1.DNSNone:
	case policy == corev1.DNSDefault || (policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork):
		servers, search, options = parseResolv(hostResolv)
	default:
		servers = clusterDNS
		search = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
		options = []string{"ndots:5"}
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		servers = appendNew(servers, dc.Nameservers...)
		search = appendNew(search, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			options = mergeOption(options, opt)
		}
	}
	var b strings.Builder
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	return b.String()
}

func appendNew(list []string, more ...string) []string {
	for _, m := range more {
		dup := false
		for _, l := range list {
			dup = dup || l == m
		}
		if !dup {
			list = append(list, m)
		}
	}
	return list
}

func mergeOption(opts []string, opt string) []string {
	name, _, _ := strings.Cut(opt, ":")
	for i, o := range opts {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

func parseResolv(text string) (servers, search, options []string) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "nameserver":
			servers = append(servers, f[1])
		case "search", "domain":
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	return
}

// hostsFile is the kubelet-managed /etc/hosts of a pod not on the host network.
func hostsFile(pod *corev1.Pod, podIP netip.Addr, domain string) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	host := podHostname(pod)
	if podIP.IsValid() {
		if pod.Spec.Subdomain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.%s\t%s\n", podIP, host, pod.Spec.Subdomain, pod.Namespace, domain, host)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", podIP, host)
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, ha := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
		}
	}
	return b.String()
}
