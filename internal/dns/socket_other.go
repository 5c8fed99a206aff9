//go:build !linux

package dns

import "syscall"

// socketControl is a no-op outside Linux: one socket per address, replies from the default source.
func socketControl(reusePort, wildcard bool) func(network, address string, c syscall.RawConn) error {
	return nil
}
