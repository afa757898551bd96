package testenv

import (
	"os/exec"
	"syscall"
)

// nodeCommand is a redis-server that dies with the test binary, even one
// killed before its cleanups run.
func nodeCommand(args []string) *exec.Cmd {
	cmd := exec.Command("redis-server", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
