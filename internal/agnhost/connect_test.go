package agnhost

import (
	"net"
	"regexp"
	"strconv"
	"testing"
)

func TestConnect(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			if fam.host == "::1" {
				ipv6Available(t)
			}
			server := startOn(t, fam.host, netexecArgs(), nil)
			hp := func(port string) string { return net.JoinHostPort(fam.host, port) }
			open := hp(strconv.Itoa(server.port("http")))
			openUDP := hp(strconv.Itoa(server.port("udp")))
			closedTCP := hp(freePort(t, "tcp", fam.host))
			closedUDP := hp(freePort(t, "udp", fam.host))

			cases := []struct {
				name     string
				args     []string
				wantCode int
				wantErr  *regexp.Regexp // whole stderr
			}{
				{"tcp open", []string{"connect", open}, 0, regexp.MustCompile(`^$`)},
				{"tcp open with timeout", []string{"connect", open, "--timeout=5s", "--protocol=tcp"}, 0, regexp.MustCompile(`^$`)},
				{"tcp refused", []string{"connect", closedTCP, "--timeout=5s"}, 1, regexp.MustCompile(`^REFUSED\n$`)},
				{"tcp missing port", []string{"connect", fam.host}, 1, regexp.MustCompile(`^UNKNOWN: address .*: (missing port in address|too many colons in address)\n$`)},
				{"udp open", []string{"connect", openUDP, "--protocol=udp", "--timeout=5s"}, 0, regexp.MustCompile(`^$`)},
				{"udp custom data", []string{"connect", openUDP, "--protocol=udp", "--udp-data=echo hi", "--timeout=5s"}, 0, regexp.MustCompile(`^$`)},
				{"udp refused", []string{"connect", closedUDP, "--protocol=udp", "--timeout=5s"}, 1,
					regexp.MustCompile(`^REFUSED: read udp .*: connection refused\n$`)},
				// netexec does not answer unknown UDP commands, so the read times out.
				{"udp timeout", []string{"connect", openUDP, "--protocol=udp", "--udp-data=bogus", "--timeout=200ms"}, 1,
					regexp.MustCompile(`^TIMEOUT: read udp .*i/o timeout\n$`)},
				{"sctp unsupported", []string{"connect", open, "--protocol=sctp", "--timeout=1s"}, 1,
					regexp.MustCompile(`^OTHER: protocol not supported`)},
				{"bad protocol", []string{"connect", open, "--protocol=icmp"}, 1, regexp.MustCompile(`^Unsupported protocol\nicmp$`)},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					code, stdout, stderr := runSync(t, c.args...)
					if code != c.wantCode {
						t.Errorf("exit code %d, want %d (stderr %q)", code, c.wantCode, stderr)
					}
					if stdout != "" {
						t.Errorf("stdout %q, want nothing", stdout)
					}
					if !c.wantErr.MatchString(stderr) {
						t.Errorf("stderr %q does not match %s", stderr, c.wantErr)
					}
				})
			}
		})
	}
}
