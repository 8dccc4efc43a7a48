package deb_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/testenv"
)

func TestDebVersion(t *testing.T) {
	tests := []struct {
		name, describe, want string
	}{
		{"no tag", "30f377c", "0.0~git20261202.30f377c"},
		{"no tag, dirty", "30f377c-dirty", "0.0~git20261202.30f377c+dirty"},
		{"tag", "v1.2.0", "1.2.0"},
		{"after a tag", "v1.2.0-3-gabc1234", "1.2.0+git3.gabc1234"},
		{"after a tag, dirty", "v1.2.0-3-gabc1234-dirty", "1.2.0+git3.gabc1234+dirty"},
		{"release candidate sorts first", "v1.3.0-rc1", "1.3.0~rc1"},
		{"after a release candidate", "v1.3.0-rc1-2-gdef5678", "1.3.0~rc1+git2.gdef5678"},
		{"not a version", "release_one", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := command(repo, nil, "scripts/deb.sh", "version", tc.describe, "20261202")
			got := strings.TrimSpace(out)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("version of %q = %q, want an error", tc.describe, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("version of %q = %q (%v), want %q", tc.describe, got, err, tc.want)
			}
			// dpkg itself must accept it and order it after the tag.
			if err := exec.Command("dpkg", "--compare-versions", got, "gt", "0~").Run(); err != nil {
				t.Errorf("dpkg does not accept %q: %v", got, err)
			}
		})
	}
}

// entry is one file of a package's data archive.
type entry struct {
	mode  os.FileMode
	owner string
	dir   bool
	data  []byte
}

// readDeb reads the data archive of a .deb through dpkg-deb.
func readDeb(t *testing.T, deb string) map[string]entry {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", deb, err)
	}
	files := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("read %s: %v", deb, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "."), "/")
		files[name] = entry{mode: os.FileMode(h.Mode).Perm(), owner: h.Uname + ":" + h.Gname, dir: h.Typeflag == tar.TypeDir, data: data}
	}
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestPackageContents(t *testing.T) {
	vmglue, hook, describe := packages(t)
	version := strings.TrimSpace(run(t, filepath.Join(repo, "scripts/deb.sh"), "version", describe,
		strings.TrimSpace(run(t, "git", "-C", repo, "log", "-1", "--format=%cd", "--date=format:%Y%m%d"))))
	templates, _ := filepath.Glob(filepath.Join(repo, "deploy/onehook/*.tmpl"))
	hookFiles := map[string]os.FileMode{
		"/usr/bin/vmglue-hook": 0o755, "/etc/vmglue/hook.env": 0o640,
		"/lib/systemd/system/opennebula-hem.service.d/vmglue.conf": 0o644,
		"/lib/systemd/system/vmglue-spool-flush.service":           0o644,
		"/lib/systemd/system/vmglue-spool-flush.timer":             0o644,
		"/usr/share/man/man1/vmglue-hook.1.gz":                     0o644,
		"/usr/share/doc/vmglue-hook/changelog.gz":                  0o644,
		"/usr/share/doc/vmglue-hook/copyright":                     0o644,
		"/usr/share/lintian/overrides/vmglue-hook":                 0o644,
	}
	for _, f := range templates {
		hookFiles["/usr/share/vmglue/onehook/"+filepath.Base(f)] = 0o644
	}
	tests := []struct {
		name, deb, depends, conffiles string
		files                         map[string]os.FileMode
		dirs                          map[string]os.FileMode
	}{
		{name: "vmglue", deb: vmglue, depends: "adduser", conffiles: "/etc/vmglue/vmglue.yaml",
			files: map[string]os.FileMode{
				"/usr/bin/vmglue": 0o755, "/etc/vmglue/vmglue.yaml": 0o644,
				"/lib/systemd/system/vmglue.service":             0o644,
				"/usr/share/vmglue/prometheus/vmglue-rules.yaml": 0o644,
				"/usr/share/vmglue/puppet/vmglue-autosign":       0o755,
				"/usr/share/man/man1/vmglue.1.gz":                0o644,
				"/usr/share/doc/vmglue/changelog.gz":             0o644,
				"/usr/share/doc/vmglue/copyright":                0o644,
				"/usr/share/lintian/overrides/vmglue":            0o644,
			},
			dirs: map[string]os.FileMode{"/var/lib/vmglue": 0o755}},
		{name: "vmglue-hook", deb: hook, conffiles: "/etc/vmglue/hook.env", files: hookFiles},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fields := map[string]string{"Package": tc.name, "Version": version, "Architecture": "amd64",
				"Section": "admin", "Priority": "optional", "Depends": tc.depends,
				"Homepage": "https://github.com/vmglue/vmglue"}
			for k, want := range fields {
				if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", tc.deb, k)); got != want {
					t.Errorf("control %s = %q, want %q", k, got, want)
				}
			}
			if m := strings.TrimSpace(run(t, "dpkg-deb", "-f", tc.deb, "Maintainer")); !strings.Contains(m, "@") {
				t.Errorf("control Maintainer = %q, want a name and an address", m)
			}
			if got := strings.TrimSpace(run(t, "dpkg-deb", "--info", tc.deb, "conffiles")); got != tc.conffiles {
				t.Errorf("conffiles = %q, want %q", got, tc.conffiles)
			}
			files := readDeb(t, tc.deb)
			for name, e := range files {
				want, ok := tc.files[name]
				if wantDir, isDir := tc.dirs[name]; isDir {
					want, ok = wantDir, e.dir
				}
				switch {
				case e.owner != "root:root":
					t.Errorf("%s owned by %s, want root:root (the maintainer scripts hand out the rest)", name, e.owner)
				case ok && e.mode != want:
					t.Errorf("%s mode %o, want %o", name, e.mode, want)
				case !e.dir && !ok:
					t.Errorf("unexpected file %s", name)
				}
				if !e.dir && (strings.HasPrefix(name, "/lib/") || strings.HasPrefix(name, "/etc/") || strings.HasPrefix(name, "/usr/share/vmglue/")) &&
					bytes.Contains(e.data, []byte("/usr/local/bin")) {
					t.Errorf("%s names /usr/local/bin: the package installs into /usr/bin", name)
				}
			}
			for name := range tc.files {
				if _, ok := files[name]; !ok {
					t.Errorf("missing %s", name)
				}
			}
			if cl := gunzip(t, files["/usr/share/doc/"+tc.name+"/changelog.gz"].data); !strings.HasPrefix(cl, tc.name+" ("+version+") ") {
				t.Errorf("changelog starts %q, want %s (%s)", strings.SplitN(cl, "\n", 2)[0], tc.name, version)
			}
			man := gunzip(t, files["/usr/share/man/man1/"+tc.name+".1.gz"].data)
			if !strings.HasPrefix(man, ".TH "+strings.ToUpper(tc.name)+" 1 ") || !strings.Contains(man, "Usage") && !strings.Contains(man, "usage") {
				t.Errorf("man page of %s is not its help:\n%s", tc.name, man)
			}
		})
	}
	t.Run("vmglue.yaml has every worker off", func(t *testing.T) {
		e := readDeb(t, vmglue)["/etc/vmglue/vmglue.yaml"]
		path := filepath.Join(t.TempDir(), "vmglue.yaml")
		if err := os.WriteFile(path, e.data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("packaged config does not load: %v", err)
		}
		if names := cfg.Workers.Names(); len(names) != 0 {
			t.Errorf("packaged config turns on %v, want no worker", names)
		}
		if cfg.NATS.Embedded.Listen != "127.0.0.1:4222" || cfg.NATS.Embedded.DataDir != "/var/lib/vmglue" {
			t.Errorf("packaged config: embedded NATS %s in %s, want the example's 127.0.0.1:4222 in /var/lib/vmglue",
				cfg.NATS.Embedded.Listen, cfg.NATS.Embedded.DataDir)
		}
	})
}

func TestLintian(t *testing.T) {
	t.Parallel() // beside the install test
	testenv.Need(t, "lintian")
	vmglue, hook, _ := packages(t)
	out, err := command("", nil, "lintian", "--fail-on", "error", "--display-info", vmglue, hook)
	t.Logf("lintian:\n%s", out)
	if err != nil || strings.Contains(out, "\nE: ") || strings.HasPrefix(out, "E: ") {
		t.Fatalf("lintian reports errors: %v", err)
	}
}
