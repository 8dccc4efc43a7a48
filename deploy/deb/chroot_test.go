package deb_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vmglue/vmglue/internal/testenv"
)

// chroot is a disposable Debian 12 root in a test's temporary directory,
// unpacked from the cached debootstrap of scripts/deb-chroot.sh. Commands
// run in it through unshare --net (no network: nothing in it reaches a
// server) and chroot, with a policy-rc.d that lets no service start.
type chroot struct {
	t   *testing.T
	dir string
}

func newChroot(t *testing.T) *chroot {
	t.Helper()
	testenv.Need(t, "chroot", "unshare", "tar", "debootstrap", "flock")
	if os.Geteuid() != 0 {
		t.Fatal("installing the packages in a chroot needs root: run make test as root")
	}
	// Waits for the one `make test` started in the background, if any.
	out, err := command(repo, nil, "scripts/deb-chroot.sh")
	if err != nil {
		t.Fatalf("make the Debian 12 root: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tarball := lines[len(lines)-1]
	c := &chroot{t: t, dir: t.TempDir()}
	run(t, "tar", "--numeric-owner", "-xzf", tarball, "-C", c.dir)
	// Runs before t.TempDir's removal.
	t.Cleanup(func() {
		c.checkNoMounts()
		c.checkNothingRunning()
	})
	c.write("/usr/sbin/policy-rc.d", "#!/bin/sh\n# vmglue's package tests: no service starts in this root.\nexit 101\n", 0o755)
	return c
}

// path is p inside the root.
func (c *chroot) path(p string) string { return filepath.Join(c.dir, p) }

func (c *chroot) write(p, data string, mode os.FileMode) {
	c.t.Helper()
	if err := os.MkdirAll(filepath.Dir(c.path(p)), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.path(p), []byte(data), mode); err != nil {
		c.t.Fatal(err)
	}
}

// sh runs script with /bin/sh in the root, as user ("" is root), with stdin.
func (c *chroot) sh(user, script string, stdin io.Reader) (string, error) {
	c.t.Helper()
	args := []string{"--net", "chroot"}
	if user != "" {
		uid, gid := c.ids(user)
		args = append(args, "--userspec="+uid+":"+gid)
	}
	args = append(args, c.dir, "/bin/sh", "-c", script)
	cmd := exec.Command("unshare", args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s in the root: %w\n%s", script, err, out.String())
	}
	return out.String(), err
}

// must is sh that fails the test.
func (c *chroot) must(user, script string) string {
	c.t.Helper()
	out, err := c.sh(user, script, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// ids are user's uid and primary gid from the root's /etc/passwd.
func (c *chroot) ids(user string) (string, string) {
	c.t.Helper()
	for _, line := range c.lines("/etc/passwd") {
		f := strings.Split(line, ":")
		if len(f) > 3 && f[0] == user {
			return f[2], f[3]
		}
	}
	c.t.Fatalf("no user %s in the root", user)
	return "", ""
}

// name is the user or group name of id in the root's passwd or group file.
func (c *chroot) name(file string, id uint32) string {
	for _, line := range c.lines(file) {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == strconv.FormatUint(uint64(id), 10) {
			return f[0]
		}
	}
	return strconv.FormatUint(uint64(id), 10)
}

func (c *chroot) lines(p string) []string {
	b, err := os.ReadFile(c.path(p))
	if err != nil && !os.IsNotExist(err) {
		c.t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// owner is "user:group mode" of p in the root, or "absent".
func (c *chroot) owner(p string) string {
	fi, err := os.Lstat(c.path(p))
	if err != nil {
		return "absent"
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%s:%s %o", c.name("/etc/passwd", st.Uid), c.name("/etc/group", st.Gid), fi.Mode().Perm())
}

// volatile are the trees a snapshot skips: kernel file systems, and apt's
// and dpkg's own bookkeeping (checked by what it records, not byte by byte).
var volatile = map[string]bool{"/proc": true, "/sys": true, "/dev": true, "/tmp": true, "/run": true,
	"/var/cache/apt": true, "/var/lib/apt": true, "/var/lib/dpkg": true, "/var/log": true,
	"/var/cache/debconf": true, "/var/cache/ldconfig": true, "/etc/ld.so.cache": true}

// accounts are the files a snapshot compares as sets of lines.
var accounts = []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"}

// snapshot maps every path of the root but the volatile ones to its type,
// owner, mode and (for a file) size; account files map to their lines.
func (c *chroot) snapshot() map[string]string {
	c.t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, c.dir), "/")
		if volatile[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(rel, "/etc/") && strings.HasSuffix(rel, "-") {
			return nil // passwd-, group-, ...: the previous versions
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		v := fmt.Sprintf("%s %d:%d %o", fi.Mode().Type(), st.Uid, st.Gid, fi.Mode().Perm())
		if fi.Mode().IsRegular() {
			v += fmt.Sprintf(" %d", fi.Size())
		}
		snap[rel] = v
		return nil
	})
	if err != nil {
		c.t.Fatalf("snapshot the root: %v", err)
	}
	for _, f := range accounts {
		delete(snap, f)
		for _, line := range c.lines(f) {
			snap[f+" "+line] = "line"
		}
	}
	return snap
}

// checkNoMounts fails the test when anything is mounted in the root.
func (c *chroot) checkNoMounts() {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		c.t.Error(err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4]+"/", c.dir+"/") {
			c.t.Errorf("left mounted: %s", fields[4])
		}
	}
}

// running lists the processes whose root is the chroot.
func (c *chroot) running() []string {
	var procs []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		root, err := os.Readlink(p + "/root")
		if err == nil && (root == c.dir || strings.HasPrefix(root, c.dir+"/")) {
			cmdline, _ := os.ReadFile(p + "/cmdline")
			procs = append(procs, filepath.Base(p)+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return procs
}

func (c *chroot) checkNothingRunning() {
	if procs := c.running(); len(procs) > 0 {
		c.t.Errorf("still running in the root: %v", procs)
	}
}
