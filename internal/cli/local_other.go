//go:build !unix

package cli

import "syscall"

func childProcAttr() *syscall.SysProcAttr { return nil }
