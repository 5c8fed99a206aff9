package dns

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"strings"
)

// resolvConf is what the server uses of a resolv.conf: nameservers and search domains.
type resolvConf struct {
	nameservers []netip.Addr
	search      []string // lower case, fully qualified
}

func parseResolvConf(data []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil {
				rc.nameservers = append(rc.nameservers, a.Unmap())
			}
		case "search", "domain":
			// The last search or domain line wins, as in glibc.
			rc.search = rc.search[:0]
			for _, d := range f[1:] {
				d = strings.ToLower(strings.TrimSuffix(d, "."))
				if d != "" {
					rc.search = append(rc.search, d+".")
				}
			}
		}
	}
	return rc
}

// resolvConfPaths are read in order: the first with a usable nameserver wins. The second is
// systemd-resolved's list of real upstreams, for hosts whose /etc/resolv.conf names its 127.0.0.53 stub.
var resolvConfPaths = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// defaultUpstreams returns the nameservers of the node's resolv.conf as "ip:53", skipping loopback
// addresses and self (the stub resolver of the host is not reachable from the node's network namespace,
// and our own addresses would be a loop), and the search domains of the file they came from.
func defaultUpstreams(self []netip.Addr) ([]string, []string) {
	var firstSearch []string
	for i, p := range resolvConfPaths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		rc := parseResolvConf(data)
		if i == 0 {
			firstSearch = rc.search
		}
		var ups []string
		for _, a := range rc.nameservers {
			if a.IsLoopback() || a.IsUnspecified() || containsAddr(self, a) {
				continue
			}
			ups = append(ups, netip.AddrPortFrom(a, 53).String())
		}
		if len(ups) > 0 {
			return ups, rc.search
		}
	}
	return nil, firstSearch
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}
