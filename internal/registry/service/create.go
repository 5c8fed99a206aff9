package service

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/storage"
)

// CreateStorage writes a new Service and the allocation records of every value it holds in one etcd
// transaction, conditional on none of those keys existing. A create therefore costs one etcd commit,
// and a crash can never leave a record without its Service or a Service without its records. Every
// other operation goes to the wrapped storage (the watch cache over etcd).
type CreateStorage struct {
	storage.Interface
	Allocators *Allocators
	Client     *clientv3.Client
	Codec      runtime.Codec
	// Prefix is the etcd key prefix the wrapped storage uses ("/registry/").
	Prefix string
}

var versioner = storage.APIObjectVersioner{}

// maxPicks bounds the re-picks when other API servers keep taking the values this one picks.
const maxPicks = 100

func (s *CreateStorage) Create(ctx context.Context, key string, obj, out runtime.Object, ttl uint64) error {
	svc, _ := obj.(*corev1.Service)
	var t *txn
	if svc != nil {
		if v, ok := s.Allocators.pending.Load(svc); ok {
			t = v.(*txn)
		}
	}
	if t == nil || len(t.wants) == 0 || ttl != 0 {
		return s.Interface.Create(ctx, key, obj, out, ttl)
	}
	etcdKey := s.Prefix + strings.TrimPrefix(key, "/")
	for attempt := 0; attempt < maxPicks; attempt++ {
		if err := versioner.PrepareObjectForStorage(obj); err != nil {
			return fmt.Errorf("prepare object for storage: %w", err)
		}
		data, err := runtime.Encode(s.Codec, obj)
		if err != nil {
			return err
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(etcdKey), "=", 0)}
		then := []clientv3.Op{clientv3.OpPut(etcdKey, string(data))}
		orElse := []clientv3.Op{clientv3.OpGet(etcdKey, clientv3.WithKeysOnly())}
		for _, w := range t.wants {
			rk := w.reg.RecordKey(w.off)
			if w.mine {
				cmps = append(cmps, clientv3.Compare(clientv3.Value(rk), "=", t.owner))
			} else {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(rk), "=", 0))
			}
			then = append(then, clientv3.OpPut(rk, t.owner))
			orElse = append(orElse, clientv3.OpGet(rk))
		}
		resp, err := s.Client.Txn(ctx).If(cmps...).Then(then...).Else(orElse...).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			if out != nil {
				if err := runtime.DecodeInto(s.Codec, data, out); err != nil {
					return err
				}
				if err := versioner.UpdateObject(out, uint64(resp.Header.Revision)); err != nil {
					return err
				}
			}
			return nil
		}
		if len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			return storage.NewKeyExistsError(etcdKey, 0)
		}
		for i := range t.wants {
			w := &t.wants[i]
			kvs := resp.Responses[i+1].GetResponseRange().Kvs
			switch {
			case len(kvs) == 0:
				w.mine = false
			case string(kvs[0].Value) == t.owner:
				// A record this Service's name already holds (a create of the same name whose
				// object never landed): ours to take over.
				w.mine = true
			case !w.auto:
				return w.taken()
			default:
				w.reg.Taken(w.off)
				off, ok := w.reg.Pick()
				if !ok {
					return apierrors.NewInternalError(errFull(w.reg == s.Allocators.IPs))
				}
				w.set(svc, off)
				w.off, w.mine = off, false
			}
		}
	}
	return apierrors.NewInternalError(fmt.Errorf("could not allocate after %d attempts: other API servers keep taking the same values", maxPicks))
}

func errFull(ip bool) error {
	if ip {
		return fmt.Errorf("failed to allocate a serviceIP: range is full")
	}
	return fmt.Errorf("failed to allocate a nodePort: range is full")
}
