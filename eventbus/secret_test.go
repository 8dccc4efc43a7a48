package eventbus_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s")
	if err := os.WriteFile(file, []byte("hunter2\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VMGLUE_TEST_SECRET", "fromenv")
	tests := []struct {
		name, file, env, want string
	}{
		{"file without its line break", file, "", "hunter2"},
		{"file wins over env", file, "VMGLUE_TEST_SECRET", "hunter2"},
		{"env", "", "VMGLUE_TEST_SECRET", "fromenv"},
		{"neither", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := eventbus.ReadSecret(tt.file, tt.env); err != nil || got != tt.want {
				t.Fatalf("ReadSecret = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	missing := filepath.Join(dir, "missing")
	if _, err := eventbus.ReadSecret(missing, ""); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v, want an error naming it", err)
	}
}
