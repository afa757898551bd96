//go:build !linux

package testenv

import "os/exec"

// nodeCommand is a redis-server; only Linux can tie its life to the test
// binary's.
func nodeCommand(args []string) *exec.Cmd { return exec.Command("redis-server", args...) }
