package proxy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
)

// TestWaitForSync: the wait ends as soon as every informer has handled its first list (checked
// every period, not client-go's 100 ms), and with false when the context ends first.
func TestWaitForSync(t *testing.T) {
	// after returns a synced function that turns true on its n-th call.
	after := func(n int32) cache.InformerSynced {
		var calls atomic.Int32
		return func() bool { return calls.Add(1) >= n }
	}
	never := func() bool { return false }
	for _, tc := range []struct {
		name    string
		synced  []cache.InformerSynced
		timeout time.Duration
		want    bool
		within  time.Duration
	}{
		{"already synced", []cache.InformerSynced{after(1), after(1)}, time.Minute, true, time.Second},
		{"synced after a few checks", []cache.InformerSynced{after(1), after(4)}, time.Minute, true, time.Second},
		{"nothing to wait for", nil, time.Minute, true, time.Second},
		{"never synced", []cache.InformerSynced{after(1), never}, 50 * time.Millisecond, false, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			start := time.Now()
			if got := waitForSync(ctx, time.Millisecond, tc.synced...); got != tc.want {
				t.Errorf("waitForSync = %v, want %v", got, tc.want)
			}
			if d := time.Since(start); d > tc.within {
				t.Errorf("took %v", d)
			}
		})
	}
}
