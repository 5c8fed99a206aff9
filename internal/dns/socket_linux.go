package dns

import (
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketControl sets SO_REUSEPORT when several sockets share a port, and asks UDP sockets bound to a
// wildcard address for each packet's destination address, so replies leave from it.
func socketControl(reusePort, wildcard bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) {
			if reusePort {
				opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
			if wildcard && strings.HasPrefix(network, "udp") {
				// One of the two fails depending on the socket's family; that is expected.
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			}
		})
		if err != nil {
			return err
		}
		return opErr
	}
}
