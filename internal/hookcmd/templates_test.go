package hookcmd_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/hooks/opennebula"
	"github.com/vmglue/vmglue/internal/hookcmd"
)

// The onehook templates in deploy/onehook are what operators register: each
// must hand the VM on stdin (ARGUMENTS_STDIN, no argv length limit), give
// the hook more time than its own budget (so the hook, not HEM's SIGTERM,
// decides to spool), its word must be the kind vmglue maps its state to, and
// together they cover every state vmglue documents.
func TestOnehookTemplates(t *testing.T) {
	files, err := filepath.Glob("../../deploy/onehook/*.tmpl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates in deploy/onehook: %v", err)
	}
	names := map[string]bool{}
	covered := map[string]bool{}
	for _, f := range files {
		attrs := parseTemplate(t, f)
		check := func(key, want string) {
			if attrs[key] != want {
				t.Errorf("%s: %s = %q, want %q", filepath.Base(f), key, attrs[key], want)
			}
		}
		check("TYPE", "state")
		check("RESOURCE", "VM")
		check("COMMAND", "/usr/local/bin/vmglue-hook")
		check("ARGUMENTS_STDIN", "yes")
		if a := attrs["ARGUMENTS"]; !strings.HasPrefix(a, `"$TEMPLATE `) {
			t.Errorf("%s: ARGUMENTS = %s, want \"$TEMPLATE <word>\"", filepath.Base(f), a)
		}
		if sec, err := strconv.Atoi(attrs["TIMEOUT"]); err != nil || float64(sec) < 2*hookcmd.DefaultTimeout.Seconds() {
			t.Errorf("%s: TIMEOUT = %q, want at least twice the hook's %s", filepath.Base(f), attrs["TIMEOUT"], hookcmd.DefaultTimeout)
		}
		if names[attrs["NAME"]] {
			t.Errorf("%s: NAME %q used twice", filepath.Base(f), attrs["NAME"])
		}
		names[attrs["NAME"]] = true
		on := attrs["ON"]
		state, lcm := onStates[on][0], onStates[on][1]
		if on == "CUSTOM" {
			on = attrs["STATE"] + "/" + attrs["LCM_STATE"]
			state, lcm = attrs["STATE"], attrs["LCM_STATE"]
		}
		covered[on] = true
		word := strings.TrimSuffix(strings.TrimPrefix(attrs["ARGUMENTS"], `"$TEMPLATE `), `"`)
		if kind := templateKind(t, state, lcm); word != kind {
			t.Errorf("%s: word %q for %s/%s, want the kind %q", filepath.Base(f), word, state, lcm, kind)
		}
	}
	for _, on := range []string{"PENDING/LCM_INIT", "HOLD/LCM_INIT", "RUNNING", "POWEROFF/LCM_INIT", "STOP",
		"SUSPENDED/LCM_INIT", "UNDEPLOYED/LCM_INIT", "UNKNOWN", "DONE",
		// A VM shutting down leaves its pools before it is off.
		"ACTIVE/SHUTDOWN", "ACTIVE/SHUTDOWN_POWEROFF", "ACTIVE/SHUTDOWN_UNDEPLOY"} {
		if !covered[on] {
			t.Errorf("no template for %s", on)
		}
	}
}

// onStates are the STATE and LCM_STATE of oned's ON shortcuts
// (HookStateVM::parse_template): ON = SHUTDOWN is ACTIVE/EPILOG, not the
// LCM state SHUTDOWN.
var onStates = map[string][2]string{
	"PROLOG": {"ACTIVE", "PROLOG"}, "RUNNING": {"ACTIVE", "RUNNING"}, "SHUTDOWN": {"ACTIVE", "EPILOG"},
	"STOP": {"STOPPED", "LCM_INIT"}, "DONE": {"DONE", "LCM_INIT"}, "UNKNOWN": {"ACTIVE", "UNKNOWN"},
}

// templateKind is the kind the hook gives a VM in the named STATE and
// LCM_STATE.
func templateKind(t *testing.T, state, lcm string) string {
	t.Helper()
	number := func(name string, nameOf func(int) string) int {
		for n := 0; n < 100; n++ {
			if nameOf(n) == name {
				return n
			}
		}
		t.Fatalf("no OpenNebula state named %q", name)
		return 0
	}
	return opennebula.Kind(number(state, opennebula.StateName), number(lcm, opennebula.LCMStateName))
}

// parseTemplate reads the KEY = VALUE lines of an OpenNebula template.
func parseTemplate(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	attrs := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY = VALUE", path, line)
		}
		attrs[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return attrs
}
