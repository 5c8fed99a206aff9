package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/svcnet/svcnet/internal/testenv"
)

// post sends a raw request and decodes the Status the server answers with.
func post(t *testing.T, env *testenv.Env, method, path, contentType string, body []byte) (int, metav1.Status) {
	t.Helper()
	tr, err := rest.TransportFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, env.Config.Host+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var st metav1.Status
	_ = json.Unmarshal(raw, &st)
	return resp.StatusCode, st
}

// Bad input of every kind gets a clear 4xx Status, never a 500, and the server keeps serving.
func TestBadInputGetsClear4xx(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	const svcs = "/api/v1/namespaces/default/services"
	big := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"big","annotations":{"a":"` + strings.Repeat("x", 4<<20) + `"}}}`
	cases := []struct {
		name, method, path, ctype, body string
		code                            int
		msg                             string
	}{
		{"malformed JSON", "POST", svcs, "application/json", `{"kind":"Service",`, 400, "json parse error"},
		{"malformed YAML", "POST", svcs, "application/yaml", "kind: Service\n  bad: [indent", 400, ""},
		{"not an object", "POST", svcs, "application/json", `[1,2,3]`, 400, ""},
		{"wrong kind", "POST", svcs, "application/json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}`, 400, "cannot be handled as a Service"},
		{"unknown kind", "POST", svcs, "application/json", `{"apiVersion":"v1","kind":"Nope","metadata":{"name":"x"}}`, 400, ""},
		{"unknown field, strict", "POST", svcs + "?fieldValidation=Strict", "application/json",
			`{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":80,"bogus":1}]}}`, 400, `unknown field "spec.ports[0].bogus"`},
		{"duplicate field, strict", "POST", svcs + "?fieldValidation=Strict", "application/json",
			`{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"type":"ClusterIP","type":"NodePort","ports":[{"port":80}]}}`, 400, `duplicate field "spec.type"`},
		{"wrong type of value", "POST", svcs, "application/json",
			`{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":"eighty"}]}}`, 400, ""},
		{"oversized body", "POST", svcs, "application/json", big, 413, ""},
		{"unsupported media type", "POST", svcs, "text/plain", `hello`, 415, ""},
		{"name mismatch on PUT", "PUT", svcs + "/a", "application/json",
			`{"apiVersion":"v1","kind":"Service","metadata":{"name":"b"},"spec":{"ports":[{"port":80}]}}`, 400, "does not match"},
		{"bad field selector", "GET", svcs + "?fieldSelector=spec.nope%3Dx", "application/json", ``, 400, "field label not supported"},
		{"bad label selector", "GET", svcs + "?labelSelector=a%20in%20(", "application/json", ``, 400, ""},
		{"bad patch", "PATCH", svcs + "/kubernetes", "application/merge-patch+json", `{"spec":`, 400, ""},
		{"bad JSON patch path", "PATCH", svcs + "/kubernetes", "application/json-patch+json", `[{"op":"replace","path":"/spec/nope/0","value":1}]`, 422, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, st := post(t, env, c.method, c.path, c.ctype, []byte(c.body))
			if code != c.code {
				t.Errorf("status %d, want %d: %s", code, c.code, st.Message)
			}
			if code >= 500 {
				t.Errorf("server error for bad input: %s", st.Message)
			}
			if c.msg != "" && !strings.Contains(st.Message, c.msg) {
				t.Errorf("message %q does not contain %q", st.Message, c.msg)
			}
		})
	}
	// Nothing was lost and the server still answers.
	if _, err := env.Client.CoreV1().Services("default").Get(context.Background(), "kubernetes", metav1.GetOptions{}); err != nil {
		t.Fatalf("server unhealthy after bad input: %v", err)
	}
}

// A full ClusterIP range and a full NodePort range get kube's errors, and freed values are reused.
func TestFullRanges(t *testing.T) {
	// A /29 has 6 usable addresses; the kubernetes Service holds the first.
	env := testenv.Start(t, testenv.Options{ServiceCIDR: "10.96.0.0/29", NodePortRange: "30000-30002"})
	ctx := context.Background()
	svcs := env.Client.CoreV1().Services("default")
	var made []string
	var lastErr error
	for i := 0; i < 10; i++ {
		s, err := svcs.Create(ctx, svc(fmt.Sprintf("ip%d", i)), metav1.CreateOptions{})
		if err != nil {
			lastErr = err
			break
		}
		made = append(made, s.Name)
	}
	if len(made) != 5 {
		t.Fatalf("created %d services in a /29, want 5 (last error %v)", len(made), lastErr)
	}
	if !apierrors.IsInternalError(lastErr) || !strings.Contains(lastErr.Error(), "failed to allocate a serviceIP: range is full") {
		t.Fatalf("full IP range: got %v", lastErr)
	}
	if err := svcs.Delete(ctx, made[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Create(ctx, svc("reuse"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("freed address not reused: %v", err)
	}
	for _, n := range made[1:] {
		if err := svcs.Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	np := func(name string, port int32) *corev1.Service {
		s := svc(name)
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = port
		return s
	}
	for i := 0; i < 3; i++ {
		if _, err := svcs.Create(ctx, np(fmt.Sprintf("np%d", i), 0), metav1.CreateOptions{}); err != nil {
			t.Fatalf("nodeport %d: %v", i, err)
		}
	}
	_, err := svcs.Create(ctx, np("np-full", 0), metav1.CreateOptions{})
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "failed to allocate a nodePort: range is full") {
		t.Fatalf("full NodePort range: got %v", err)
	}
	_, err = svcs.Create(ctx, np("np-out", 31000), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided port is not in the valid range. The range of valid ports is 30000-30002") {
		t.Fatalf("nodePort outside the range: got %v", err)
	}
	if err := svcs.Delete(ctx, "np1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := svcs.Create(ctx, np("np-again", 0), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("freed nodePort not reused: %v", err)
	}
	// A requested port that is taken is kube's "already allocated".
	_, err = svcs.Create(ctx, np("np-taken", s.Spec.Ports[0].NodePort), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided port is already allocated") {
		t.Fatalf("taken nodePort: got %v", err)
	}
	// Type change to ClusterIP releases the nodePort.
	cur, _ := svcs.Get(ctx, "np-again", metav1.GetOptions{})
	cur.Spec.Type = corev1.ServiceTypeClusterIP
	if _, err := svcs.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("type change: %v", err)
	}
	if _, err := svcs.Create(ctx, np("np-after-type-change", s.Spec.Ports[0].NodePort), metav1.CreateOptions{}); err != nil {
		t.Fatalf("nodePort not released by type change: %v", err)
	}
}

// Objects cannot be created in a namespace that does not exist or is terminating, and the system
// namespaces cannot be deleted (kube's NamespaceLifecycle admission).
func TestNamespaceLifecycle(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	_, err := env.Client.CoreV1().Services("nope").Create(ctx, svc("x"), metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `namespaces "nope" not found`) {
		t.Errorf("create in a missing namespace: %v", err)
	}
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "this namespace may not be deleted") {
			t.Errorf("delete %s: %v", ns, err)
		}
	}
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "going"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.CoreV1().Namespaces().Delete(ctx, "going", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// No namespace controller runs here, so "going" stays Terminating.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, err := env.Client.CoreV1().Services("going").Create(ctx, svc("late"), metav1.CreateOptions{})
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "because it is being terminated"), nil
	})
	if err != nil {
		t.Errorf("create in a terminating namespace was not refused")
	}
}

// The kubernetes Service comes back after a delete, at the first address of the range.
func TestKubernetesServiceIsReconciled(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	svcs := env.Client.CoreV1().Services("default")
	if err := svcs.Delete(ctx, "kubernetes", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		s, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
		return err == nil && s.Spec.ClusterIP == "10.96.0.1", nil
	})
	if err != nil {
		t.Fatal("kubernetes service not recreated at 10.96.0.1")
	}
}

// metadata.generation follows kube: bumped by spec changes, and for EndpointSlices (no spec) by any
// change outside metadata or to the labels; annotations alone leave it.
func TestGeneration(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	port := int32(80)
	es, err := env.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "gen"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.1"}}},
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, mutate func(*discoveryv1.EndpointSlice), want int64) {
		t.Helper()
		mutate(es)
		es, err = env.Client.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if es.Generation != want {
			t.Errorf("after %s: generation %d, want %d", what, es.Generation, want)
		}
	}
	if es.Generation != 1 {
		t.Errorf("created with generation %d, want 1", es.Generation)
	}
	step("an annotation", func(s *discoveryv1.EndpointSlice) { s.Annotations = map[string]string{"a": "b"} }, 1)
	step("an endpoint", func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses[0] = "10.244.1.2" }, 2)
	step("a label", func(s *discoveryv1.EndpointSlice) { s.Labels = map[string]string{"x": "y"} }, 3)
}
