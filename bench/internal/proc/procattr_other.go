//go:build !linux

package proc

import "syscall"

// SysProcAttr is nil: only Linux has a parent-death signal.
func SysProcAttr(sig syscall.Signal) *syscall.SysProcAttr { return nil }
