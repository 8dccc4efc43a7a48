package deb_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The chroot comes from the mirror this machine's apt uses for bookworm:
// scripts/deb-chroot.sh reads it from apt's sources, in either format.
func TestChrootMirror(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // under the apt directory
		want  string
	}{
		{name: "deb822, as Debian 12 installs it", files: map[string]string{"sources.list.d/debian.sources": `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`}, want: "http://mirror.example/debian"},
		{name: "deb822, disabled and source stanzas skipped", files: map[string]string{"sources.list.d/debian.sources": `Types: deb
URIs: http://off.example/debian
Suites: bookworm
Enabled: no

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb deb-src
URIs: http://on.example/debian http://second.example/debian
Suites: bookworm
`}, want: "http://on.example/debian"},
		{name: "one-line sources.list with options", files: map[string]string{"sources.list": `# a comment
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
`}, want: "http://mirror.example/debian"},
		{name: "other releases only", files: map[string]string{"sources.list": "deb http://mirror.example/debian trixie main\n",
			"sources.list.d/x.sources": "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-updates\n"}, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			etc := t.TempDir()
			for name, data := range tc.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(etc, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(etc, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := command(repo, []string{"APT_ETC=" + etc}, "scripts/deb-chroot.sh", "mirror")
			if got := strings.TrimSpace(out); err != nil || got != tc.want {
				t.Errorf("mirror = %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}
