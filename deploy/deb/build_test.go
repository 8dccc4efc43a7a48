package deb_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vmglue/vmglue/internal/testenv"
)

// repo is the checkout's root, from this package's directory.
var repo = func() string {
	dir, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return dir
}()

// built is the one build of both packages that every test of the binary uses.
var built struct {
	once     sync.Once
	dir      string
	vmglue   string
	hook     string
	describe string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// packages builds vmglue and vmglue-hook with scripts/deb.sh (once) and
// returns their paths and the `git describe` the binaries report.
func packages(t *testing.T) (vmglue, hook, describe string) {
	t.Helper()
	testenv.Need(t, "dpkg-deb", "git")
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "vmglue-deb-")
		if built.err != nil {
			return
		}
		out, err := command(repo, nil, "git", "describe", "--tags", "--always", "--dirty")
		if err != nil {
			built.err = err
			return
		}
		built.describe = strings.TrimSpace(out)
		if _, err := command(repo, []string{"VERSION=" + built.describe}, "scripts/deb.sh", built.dir); err != nil {
			built.err = err
			return
		}
		built.vmglue, built.err = one(filepath.Join(built.dir, "vmglue_*_amd64.deb"))
		if built.err == nil {
			built.hook, built.err = one(filepath.Join(built.dir, "vmglue-hook_*_amd64.deb"))
		}
	})
	if built.err != nil {
		t.Fatalf("build the packages: %v", built.err)
	}
	return built.vmglue, built.hook, built.describe
}

// one is the single file that matches pattern.
func one(pattern string) (string, error) {
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) != 1 {
		return "", fmt.Errorf("want one %s, found %v (%v)", pattern, m, err)
	}
	return m[0], nil
}

// command runs name in dir with env added to the environment; the error
// carries its output.
func command(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// run is command that fails the test.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := command("", nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
