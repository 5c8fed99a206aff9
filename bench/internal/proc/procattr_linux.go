package proc

import "syscall"

// SysProcAttr has the kernel send sig to the child should the benchmark itself die (no signal for 0).
func SysProcAttr(sig syscall.Signal) *syscall.SysProcAttr {
	if sig == 0 {
		return nil
	}
	return &syscall.SysProcAttr{Pdeathsig: sig}
}
