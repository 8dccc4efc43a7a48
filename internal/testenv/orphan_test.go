package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A server started by a test dies with the test binary, even when the
// binary is killed before its Cleanup runs (go test's timeout panic): the
// test binary is re-run as a child that starts a process the way the
// servers are started and blocks; the child is SIGKILLed, and its process
// must be gone.
func TestDieWithTest(t *testing.T) {
	if os.Getenv("TESTENV_ORPHAN_CHILD") == "1" {
		cmd := exec.Command("sleep", "600")
		dieWithTest(cmd)
		if err := cmd.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		select {}
	}
	child := exec.Command(os.Args[0], "-test.run=^TestDieWithTest$")
	child.Env = append(os.Environ(), "TESTENV_ORPHAN_CHILD=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the child's process %d is not running: %v", pid, err)
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	WaitFor(t, 10*time.Second, fmt.Sprintf("process %d gone with the test binary", pid), func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) || zombie(pid)
	})
}

// zombie reports whether pid has exited and waits to be reaped by
// whoever adopted it.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}
