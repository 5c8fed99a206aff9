package service

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/apiserver/pkg/storage"

	"github.com/svcnet/svcnet/internal/allocator"
	"github.com/svcnet/svcnet/internal/apiserver/scheme"
	"github.com/svcnet/svcnet/internal/etcd"
)

// newCreateEnv returns allocators over a /29 (6 addresses) and 4 node ports whose registries were never
// started: they know nothing of etcd, as an API server that has not yet seen another's writes, so
// every conflict must be caught by the create transaction itself.
func newCreateEnv(t *testing.T) (*Allocators, *CreateStorage, *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e, err := etcd.Start(ctx, etcd.Config{DataDir: filepath.Join(t.TempDir(), "etcd"), ClientURL: "http://127.0.0.1:0", Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.ClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ipc, err := allocator.NewIPCodec("10.96.0.0/29")
	if err != nil {
		t.Fatal(err)
	}
	a := &Allocators{
		IPs:      allocator.NewRegistry(cli, "/registry/svcnet/clusterips/", ipc, ipc.Size(), 0),
		IPCodec:  ipc,
		Ports:    allocator.NewRegistry(cli, "/registry/svcnet/nodeports/", allocator.PortCodec{Base: 30000, Size: 4}, 4, 0),
		PortBase: 30000, PortSize: 4,
	}
	codec, _, err := serverstorage.NewStorageCodec(serverstorage.StorageCodecConfig{
		StorageMediaType: runtime.ContentTypeProtobuf, StorageSerializer: scheme.Codecs,
		StorageVersion: corev1.SchemeGroupVersion, MemoryVersion: schema.GroupVersion{Version: runtime.APIVersionInternal},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, &CreateStorage{Allocators: a, Client: cli, Codec: codec, Prefix: "/registry/"}, cli
}

func create(t *testing.T, a *Allocators, s *CreateStorage, svc *corev1.Service) (*corev1.Service, error) {
	t.Helper()
	ctx := genericapirequest.WithNamespace(context.Background(), "default")
	finish, err := a.BeginCreate(ctx, svc, &metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	out := &corev1.Service{}
	err = s.Create(ctx, "/services/specs/default/"+svc.Name, svc, out, 0)
	finish(ctx, err == nil)
	return out, err
}

func TestCreateWritesObjectAndRecordsInOneTransaction(t *testing.T) {
	a, s, cli := newCreateEnv(t)
	ctx := context.Background()
	// Five of the six addresses and three of the four ports are held by other Services.
	for _, ip := range []string{"10.96.0.1", "10.96.0.2", "10.96.0.3", "10.96.0.5", "10.96.0.6"} {
		if _, err := cli.Put(ctx, "/registry/svcnet/clusterips/"+ip, "other/x"); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"30000", "30001", "30003"} {
		if _, err := cli.Put(ctx, "/registry/svcnet/nodeports/"+p, "other/x"); err != nil {
			t.Fatal(err)
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}}
	out, err := create(t, a, s, svc)
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.ClusterIP != "10.96.0.4" || out.Spec.ClusterIPs[0] != "10.96.0.4" || out.Spec.Ports[0].NodePort != 30002 {
		t.Fatalf("got %s / %d, want the only free values 10.96.0.4 / 30002", out.Spec.ClusterIP, out.Spec.Ports[0].NodePort)
	}
	if out.ResourceVersion == "" {
		t.Error("no resourceVersion on the created object")
	}
	for key, owner := range map[string]string{
		"/registry/svcnet/clusterips/10.96.0.4": "default/web",
		"/registry/svcnet/nodeports/30002":      "default/web",
	} {
		r, err := cli.Get(ctx, key)
		if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != owner {
			t.Errorf("record %s: %v %v", key, r, err)
		}
	}
	r, err := cli.Get(ctx, "/registry/services/specs/default/web")
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("object not stored: %v", err)
	}

	// The range is now full: kube's error, and nothing is written.
	_, err = create(t, a, s, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "late"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}})
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "failed to allocate a serviceIP: range is full") {
		t.Errorf("full range: %v", err)
	}
	// The same name again: AlreadyExists from the storage layer, no record changes.
	_, err = create(t, a, s, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		ClusterIP: "10.96.0.4", Ports: []corev1.ServicePort{{Port: 80}}}})
	if !storage.IsExist(err) {
		t.Errorf("duplicate name: %v", err)
	}
}

func TestCreateRequestedValueHeldElsewhere(t *testing.T) {
	a, s, cli := newCreateEnv(t)
	ctx := context.Background()
	if _, err := cli.Put(ctx, "/registry/svcnet/clusterips/10.96.0.3", "other/x"); err != nil {
		t.Fatal(err)
	}
	_, err := create(t, a, s, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "want3"}, Spec: corev1.ServiceSpec{
		ClusterIP: "10.96.0.3", Ports: []corev1.ServicePort{{Port: 80}}}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.clusterIPs: Invalid value") || !strings.Contains(err.Error(), "provided IP is already allocated") {
		t.Fatalf("requested IP held elsewhere: %v", err)
	}
	if r, _ := cli.Get(ctx, "/registry/services/specs/default/want3"); len(r.Kvs) != 0 {
		t.Error("object stored despite the conflict")
	}
	// A record that already names this Service (its earlier create never landed) is taken over.
	if _, err := cli.Put(ctx, "/registry/svcnet/clusterips/10.96.0.5", "default/mine"); err != nil {
		t.Fatal(err)
	}
	if _, err := create(t, a, s, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Spec: corev1.ServiceSpec{
		ClusterIP: "10.96.0.5", Ports: []corev1.ServicePort{{Port: 80}}}}); err != nil {
		t.Fatalf("own stale record: %v", err)
	}
}
