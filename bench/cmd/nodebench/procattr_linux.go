package main

import "syscall"

// sysProcAttr has the kernel send SIGTERM to `svcnet up` should the benchmark itself be killed, so
// that up still removes its namespaces and processes on its way out.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
