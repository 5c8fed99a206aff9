package main

import "syscall"

// sysProcAttr has the kernel kill the server should the benchmark itself be killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
