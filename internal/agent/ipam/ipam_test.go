package ipam

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// TestConcurrentAllocate: pod workers allocate at the same time; no address may go twice.
func TestConcurrentAllocate(t *testing.T) {
	p, _ := New(netip.MustParsePrefix("10.244.1.0/24"))
	var wg sync.WaitGroup
	got := make([]netip.Addr, 200)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := p.Allocate(fmt.Sprint(i))
			if err != nil {
				t.Error(err)
			}
			got[i] = a
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for _, a := range got {
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
}

func TestAllocate(t *testing.T) {
	p, err := New(netip.MustParsePrefix("10.244.1.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Gateway().String() != "10.244.1.1" {
		t.Fatalf("gateway %s", p.Gateway())
	}
	var got []string
	for _, o := range []string{"a", "b", "c", "d", "e"} {
		a, err := p.Allocate(o)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	want := []string{"10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocations %v, want %v", got, want)
		}
	}
	if a, _ := p.Allocate("c"); a.String() != "10.244.1.4" {
		t.Fatalf("same owner got %s", a)
	}
	if _, err := p.Allocate("f"); err == nil {
		t.Fatal("a full /29 handed out a 6th address")
	}
	p.Release("b")
	a, err := p.Allocate("g")
	if err != nil || a.String() != "10.244.1.3" {
		t.Fatalf("after release: %s %v", a, err)
	}
}

func TestRoundRobinAndReserve(t *testing.T) {
	p, _ := New(netip.MustParsePrefix("10.244.2.0/24"))
	if err := p.Reserve(netip.MustParseAddr("10.244.2.7"), "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(netip.MustParseAddr("10.244.2.7"), "y"); err == nil {
		t.Fatal("double reserve accepted")
	}
	for _, bad := range []string{"10.244.2.0", "10.244.2.1", "10.244.2.255", "10.244.3.4"} {
		if err := p.Reserve(netip.MustParseAddr(bad), "z"); err == nil {
			t.Errorf("reserved %s", bad)
		}
	}
	a1, _ := p.Allocate("a")
	p.Release("a")
	a2, _ := p.Allocate("b")
	if a1 == a2 {
		t.Fatalf("freed address %s handed out again at once", a1)
	}
	if _, err := New(netip.MustParsePrefix("fd00::/64")); err == nil {
		t.Fatal("IPv6 accepted")
	}
}
