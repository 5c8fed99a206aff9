package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/svcnet/svcnet/internal/netns"
)

// sandbox is a pod's network: its namespace, the veth pair to the node's pod bridge and its
// address. Its record on disk lets a restarted agent adopt it (and the pod's running processes).
type sandbox struct {
	UID       string          `json:"uid"`
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Netns     string          `json:"netns,omitempty"` // "" for hostNetwork pods
	HostVeth  string          `json:"hostVeth,omitempty"`
	IP        netip.Addr      `json:"ip"`
	Hostname  string          `json:"hostname"`
	Resolv    string          `json:"resolv,omitempty"`
	Hosts     string          `json:"hosts,omitempty"`
	Procs     map[string]proc `json:"procs,omitempty"`
}

// proc identifies a running container process across agent restarts: a pid alone could be reused.
type proc struct {
	PID       int   `json:"pid"`
	StartTick int64 `json:"startTick"`
	StartedAt int64 `json:"startedAt"` // unix nanoseconds
	Restarts  int32 `json:"restarts"`
}

func (s *sandbox) dir(stateDir string) string { return filepath.Join(stateDir, "pods", s.UID) }

func (s *sandbox) save(stateDir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir(stateDir), "sandbox.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir(stateDir), "sandbox.json"))
}

// loadSandboxes reads every sandbox record of the node.
func loadSandboxes(stateDir string) ([]*sandbox, error) {
	entries, err := os.ReadDir(filepath.Join(stateDir, "pods"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*sandbox
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(stateDir, "pods", e.Name(), "sandbox.json"))
		if err != nil {
			continue
		}
		var s sandbox
		if json.Unmarshal(b, &s) == nil && s.UID == e.Name() {
			out = append(out, &s)
		}
	}
	return out, nil
}

// ReadSandbox is the record `svcnet exec` and `svcnet logs` use to find a pod on a local node.
func ReadSandbox(stateDir, uid string) (netnsPath, hostname, resolv, hosts string, err error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "pods", uid, "sandbox.json"))
	if err != nil {
		return "", "", "", "", err
	}
	var s sandbox
	if err := json.Unmarshal(b, &s); err != nil {
		return "", "", "", "", err
	}
	p := ""
	if s.Netns != "" {
		p = netns.Path(s.Netns)
	}
	return p, s.Hostname, s.Resolv, s.Hosts, nil
}

// LogPath is where a container's output is kept.
func LogPath(stateDir, uid, container string) string {
	return filepath.Join(stateDir, "pods", uid, container+".log")
}

// hostVethName is the node-side end of a pod's veth: "svcnet" and 8 hex digits of the pod's UID,
// within the kernel's 15-character limit.
func hostVethName(uid string) string {
	h := sha256.Sum256([]byte(uid))
	return "svcnet" + hex.EncodeToString(h[:4])
}

// podNetnsName names a pod's namespace readably and uniquely: a pod re-created under the same
// name (a StatefulSet's) gets a new UID, hence a new namespace while the old one is removed.
func podNetnsName(prefix, namespace, name, uid string) string {
	n := prefix + namespace + "-" + name + "-" + uid[:min(5, len(uid))]
	if len(n) > 200 {
		n = n[:200]
	}
	return n
}

// setupPodNetwork makes the pod's namespace and wires it to the bridge. The agent runs inside the
// node's namespace, so "here" is the node.
func setupPodNetwork(s *sandbox, bridge netlink.Link, gw netip.Addr, bits int) error {
	if err := netns.Ensure(s.Netns); err != nil {
		return err
	}
	pns, err := netns.Handle(s.Netns)
	if err != nil {
		return err
	}
	defer pns.Close()
	pl, err := netlink.NewHandleAt(pns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", s.Netns, err)
	}
	defer pl.Close()
	if _, err := netlink.LinkByName(s.HostVeth); err != nil {
		if old, err := pl.LinkByName("eth0"); err == nil {
			_ = pl.LinkDel(old)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = s.HostVeth
		attrs.MTU = bridge.Attrs().MTU
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(pns))}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("create veth %s: %w", s.HostVeth, err)
		}
	}
	host, err := netlink.LinkByName(s.HostVeth)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMaster(host, bridge); err != nil {
		return fmt.Errorf("attach %s to the pod bridge: %w", s.HostVeth, err)
	}
	// Hairpin: a pod reaching itself through a Service leaves and re-enters by the same port.
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin on %s: %w", s.HostVeth, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return err
	}
	lo, err := pl.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := pl.LinkSetUp(lo); err != nil {
		return err
	}
	eth, err := pl.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("find eth0 in %s: %w", s.Netns, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: s.IP.AsSlice(), Mask: net.CIDRMask(bits, 32)}}
	if err := pl.AddrReplace(eth, addr); err != nil {
		return fmt.Errorf("address %s in %s: %w", s.IP, s.Netns, err)
	}
	if err := pl.LinkSetUp(eth); err != nil {
		return err
	}
	route := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice(), Dst: nil}
	if err := pl.RouteReplace(route); err != nil {
		return fmt.Errorf("default route in %s: %w", s.Netns, err)
	}
	return nil
}

// teardownPodNetwork ends whatever still runs in the pod's namespace and removes it; the veth pair
// goes with it.
func teardownPodNetwork(s *sandbox) error {
	if s.Netns == "" {
		return nil
	}
	if err := netns.Remove(s.Netns, 0); err != nil {
		return err
	}
	if l, err := netlink.LinkByName(s.HostVeth); err == nil {
		_ = netlink.LinkDel(l)
	}
	return nil
}
