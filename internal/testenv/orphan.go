package testenv

import (
	"os/exec"
	"syscall"
)

// dieWithTest has the kernel SIGKILL cmd's process when the test binary
// dies, which t.Cleanup cannot do: go test's timeout panics, a SIGKILLed
// test run. Without it the servers a test started outlive it, holding
// their ports and memory. (Linux sends it when the thread that started
// the process exits; Go's runtime keeps its threads for the life of the
// process.)
func dieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
