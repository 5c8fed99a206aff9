// Package netnstest creates throwaway network namespaces for root tests (the proxy's, the load
// balancer announcer's): named svcnet-t-proxy-<random> (or another svcnet-t- prefix), wired with
// veth pairs, and removed when the test ends, pass or fail.
// Nothing here touches the host's own namespace beyond creating and deleting the namespaces and
// the veth pairs inside them.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Prefix is the name prefix of every namespace these tests create.
const Prefix = "svcnet-t-proxy-"

// RequireRoot skips the test when not running as root, except under CI=true, where it fails: the
// root tests must run in CI.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces, nftables) and CI=true forbids skipping it")
	}
	t.Skip("needs root: creates network namespaces and programs nftables in them (run with sudo, or CI=true to make this a failure)")
}

// NS is a named network namespace.
type NS struct {
	Name   string
	Handle netns.NsHandle
}

// New creates a namespace named Prefix<random> with lo up, removed at the end of the test.
func New(t testing.TB) *NS {
	t.Helper()
	return NewWithPrefix(t, Prefix)
}

// NewWithPrefix is New with another name prefix (it must start with "svcnet-t-").
func NewWithPrefix(t testing.TB, prefix string) *NS {
	t.Helper()
	if !strings.HasPrefix(prefix, "svcnet-t-") {
		t.Fatalf("test namespace prefix %q must start with svcnet-t-", prefix)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	h, err := onThread(func() (netns.NsHandle, error) {
		orig, err := netns.Get()
		if err != nil {
			return 0, err
		}
		defer orig.Close()
		h, err := netns.NewNamed(name) // also switches this thread into it
		if err != nil {
			return 0, err
		}
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("cannot return to the original network namespace: %v", err))
		}
		return h, nil
	})
	if err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	ns := &NS{Name: name, Handle: h}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	if err := ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	return ns
}

func onThread[T any](fn func() (T, error)) (T, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return fn()
}

// Do runs fn on an OS thread switched into the namespace: sockets it opens and processes it starts
// live there.
func (ns *NS) Do(fn func() error) error {
	_, err := onThread(func() (struct{}, error) {
		orig, err := netns.Get()
		if err != nil {
			return struct{}{}, err
		}
		defer orig.Close()
		if err := netns.Set(ns.Handle); err != nil {
			return struct{}{}, err
		}
		defer func() {
			if err := netns.Set(orig); err != nil {
				panic(fmt.Sprintf("cannot return to the original network namespace: %v", err))
			}
		}()
		return struct{}{}, fn()
	})
	return err
}

// Exec runs a command in the namespace and returns its combined output.
func (ns *NS) Exec(name string, args ...string) (string, error) {
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
		}
		return nil
	})
	return string(out), err
}

// MustExec is Exec failing the test on error.
func (ns *NS) MustExec(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Exec(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Link connects two namespaces with a veth pair: ifA with addrA in a, ifB with addrB in b.
func Link(t testing.TB, a *NS, ifA string, addrA netip.Prefix, b *NS, ifB string, addrB netip.Prefix) {
	t.Helper()
	err := a.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifA}, PeerName: ifB, PeerNamespace: netlink.NsFd(b.Handle)}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s/%s: %w", ifA, ifB, err)
		}
		return setup(ifA, addrA)
	})
	if err == nil {
		err = b.Do(func() error { return setup(ifB, addrB) })
	}
	if err != nil {
		t.Fatal(err)
	}
}

func setup(ifName string, addr netip.Prefix) error {
	l, err := netlink.LinkByName(ifName)
	if err != nil {
		return err
	}
	if addr.IsValid() {
		ipnet := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
			return fmt.Errorf("address %s on %s: %w", addr, ifName, err)
		}
	}
	return netlink.LinkSetUp(l)
}

// Route adds a route in the namespace: dst via gw (gw invalid: default route).
func (ns *NS) Route(t testing.TB, dst netip.Prefix, gw netip.Addr) {
	t.Helper()
	err := ns.Do(func() error {
		r := &netlink.Route{Gw: gw.AsSlice()}
		if dst.IsValid() {
			r.Dst = &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)}
		}
		return netlink.RouteAdd(r)
	})
	if err != nil {
		t.Fatalf("route %v via %v in %s: %v", dst, gw, ns.Name, err)
	}
}

// Sysctl writes a sysctl (e.g. "net/ipv4/ip_forward") in the namespace.
func (ns *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	if err := ns.Do(func() error { return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644) }); err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, ns.Name, err)
	}
}
