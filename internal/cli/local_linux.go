package cli

import "syscall"

// childProcAttr puts a local cluster's node in its own process group and
// has the kernel send it SIGTERM if this command dies without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
