//go:build unix && !linux

package cli

import "syscall"

// childProcAttr puts a local cluster's node in its own process group.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
