package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rows parses `kubectl get` output into header and rows of fields.
func rows(out string) ([]string, map[string][]string) {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		// kube warns on every v1 Endpoints request; the warning is not part of the table.
		if !strings.HasPrefix(l, "Warning:") {
			lines = append(lines, l)
		}
	}
	byName := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > 0 {
			byName[f[0]] = f
		}
	}
	return strings.Fields(lines[0]), byName
}

var clusterIP = regexp.MustCompile(`^10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+$`)

// The seeds' Services apply with kubectl (the real one and svcnet's), show kube's columns and values
// in get / -o wide / -o yaml / describe, re-apply after an edit, `kubectl edit`, and delete.
func TestSeedServicesWithKubectl(t *testing.T) {
	dir := t.TempDir()
	up(t, dir)
	kc := filepath.Join(dir, "kubeconfig")
	seeds, err := os.ReadFile("testdata/seeds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kubectls(t) {
		t.Run(k.name, func(t *testing.T) {
			ns := "seeds-" + k.name
			k.must(t, kc, "create", "namespace", ns)
			out, err := k.run(t, kc, nil, string(seeds), "apply", "-n", ns, "-f", "-")
			if err != nil {
				t.Fatalf("apply: %v\n%s", err, out)
			}
			for _, name := range []string{"my-service", "internal-api", "web-nodeport", "web-lb", "my-db", "mongodb-headless", "mongodb"} {
				if !strings.Contains(out, "service/"+name+" created") {
					t.Errorf("apply output lacks service/%s created:\n%s", name, out)
				}
			}

			header, svcs := rows(k.must(t, kc, "get", "svc", "-n", ns))
			if strings.Join(header, " ") != "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE" {
				t.Errorf("header %v", header)
			}
			want := map[string][]string{ // name: type, cluster-ip ("ip" = any allocated), external-ip, ports
				"my-service":       {"ClusterIP", "ip", "<none>", "80/TCP"},
				"internal-api":     {"ClusterIP", "ip", "<none>", "80/TCP"},
				"web-nodeport":     {"NodePort", "ip", "<none>", "80:30007/TCP"},
				"web-lb":           {"LoadBalancer", "ip", "<pending>", `^80:3\d{4}/TCP$`},
				"my-db":            {"ExternalName", "<none>", "my.db.example.com", "<none>"},
				"mongodb-headless": {"ClusterIP", "None", "<none>", "27017/TCP"},
				"mongodb":          {"ClusterIP", "ip", "<none>", "27017/TCP,9216/TCP"},
			}
			for name, w := range want {
				got := svcs[name]
				if len(got) != 6 {
					t.Errorf("%s: row %v", name, got)
					continue
				}
				if got[1] != w[0] || got[3] != w[2] {
					t.Errorf("%s: type/external %v, want %v", name, got, w)
				}
				if w[1] == "ip" && !clusterIP.MatchString(got[2]) || w[1] != "ip" && got[2] != w[1] {
					t.Errorf("%s: cluster-ip %q, want %s", name, got[2], w[1])
				}
				if strings.HasPrefix(w[3], "^") && !regexp.MustCompile(w[3]).MatchString(got[4]) || !strings.HasPrefix(w[3], "^") && got[4] != w[3] {
					t.Errorf("%s: ports %q, want %s", name, got[4], w[3])
				}
			}

			header, wide := rows(k.must(t, kc, "get", "svc", "-n", ns, "-o", "wide"))
			if header[len(header)-1] != "SELECTOR" {
				t.Errorf("-o wide header %v", header)
			}
			if got := wide["my-service"]; got[len(got)-1] != "app=my-app" {
				t.Errorf("-o wide selector %v", got)
			}
			if got := wide["my-db"]; got[len(got)-1] != "<none>" {
				t.Errorf("-o wide selector for ExternalName %v", got)
			}

			yaml := k.must(t, kc, "get", "svc", "web-nodeport", "-n", ns, "-o", "yaml")
			for _, s := range []string{"nodePort: 30007", "type: NodePort", "externalTrafficPolicy: Cluster", "internalTrafficPolicy: Cluster",
				"ipFamilyPolicy: SingleStack", "- IPv4", "sessionAffinity: None", "targetPort: 8080", "protocol: TCP", "clusterIPs:"} {
				if !strings.Contains(yaml, s) {
					t.Errorf("-o yaml lacks %q:\n%s", s, yaml)
				}
			}

			desc := k.must(t, kc, "describe", "svc", "mongodb", "-n", ns)
			for _, s := range []string{"Name:", "mongodb", "Selector:", "app=mongodb", "Type:", "ClusterIP",
				"mongodb  27017/TCP", "mongodb-port/TCP", "mongodb-exporter  9216/TCP", "metrics/TCP", "Session Affinity:"} {
				if !strings.Contains(desc, s) {
					t.Errorf("describe lacks %q:\n%s", s, desc)
				}
			}

			// Re-apply after an edit: the change lands, the allocated ClusterIP stays.
			ipBefore := k.must(t, kc, "get", "svc", "my-service", "-n", ns, "-o", "jsonpath={.spec.clusterIP}")
			edited := strings.Replace(string(seeds), "targetPort: 8080\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: internal-api",
				"targetPort: 9090\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: internal-api", 1)
			out, err = k.run(t, kc, nil, edited, "apply", "-n", ns, "-f", "-")
			if err != nil || !strings.Contains(out, "service/my-service configured") || !strings.Contains(out, "service/my-db unchanged") {
				t.Fatalf("re-apply: %v\n%s", err, out)
			}
			if tp := k.must(t, kc, "get", "svc", "my-service", "-n", ns, "-o", "jsonpath={.spec.ports[0].targetPort}"); tp != "9090" {
				t.Errorf("targetPort after re-apply %q", tp)
			}
			if ip := k.must(t, kc, "get", "svc", "my-service", "-n", ns, "-o", "jsonpath={.spec.clusterIP}"); ip != ipBefore {
				t.Errorf("clusterIP changed on re-apply: %s -> %s", ipBefore, ip)
			}

			// kubectl edit through an editor that rewrites the selector.
			out, err = k.run(t, kc, []string{`KUBE_EDITOR=sed -i s/app:\ api/app:\ api-v2/`}, "", "edit", "svc", "internal-api", "-n", ns)
			if err != nil {
				t.Fatalf("edit: %v\n%s", err, out)
			}
			if sel := k.must(t, kc, "get", "svc", "internal-api", "-n", ns, "-o", "jsonpath={.spec.selector.app}"); sel != "api-v2" {
				t.Errorf("selector after edit %q\n%s", sel, out)
			}

			// Delete: gone, and the nodePort is free again.
			k.must(t, kc, "delete", "-n", ns, "-f", "testdata/seeds.yaml")
			if out := k.must(t, kc, "get", "svc", "-n", ns); !strings.Contains(out, "No resources found") {
				t.Errorf("services left after delete:\n%s", out)
			}
			k.must(t, kc, "delete", "namespace", ns)
		})
	}
}
