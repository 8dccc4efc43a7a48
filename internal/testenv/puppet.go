package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// PuppetEnv names the directory of a Puppet stack started by
// scripts/puppet-stack.sh (the Makefile starts one per `make test` run).
const PuppetEnv = "VMGLUE_TEST_PUPPET"

// PuppetStack is a running Puppet Server (CA) + PuppetDB + PostgreSQL, as
// described by DIR/env of scripts/puppet-stack.sh.
type PuppetStack struct {
	Dir         string
	CAURL       string // https://127.0.0.1:<port>: the Puppet Server and its CA
	ServerPort  string
	PuppetDBURL string // https, client certificate required
	PDBHTTPURL  string // plain http, for test queries
	CAFile      string
	CertFile    string // the worker's certificate "vmglue-worker"
	KeyFile     string
	Certname    string // "vmglue-worker"
	// IntruderCertFile/KeyFile are a valid node certificate that neither
	// the CA's auth.conf nor PuppetDB's allowlist lets in.
	IntruderCertFile string
	IntruderKeyFile  string
	AgentsDir        string // scratch room for agent confdirs/ssldirs
	// AutosignTargetFile holds the path of the executable Puppet Server's
	// autosign wrapper runs; rewrite it to change the policy (no reload).
	AutosignTargetFile string
	ServerLog          string
	Env                map[string]string // all of DIR/env
}

var puppet struct {
	once    sync.Once
	stack   *PuppetStack
	err     error
	started string // the DIR this process started, stopped by StopPuppet
}

// Puppet returns the test Puppet stack. With VMGLUE_TEST_PUPPET set it waits
// for the stack in that directory (started by the Makefile); otherwise it
// starts one in a temporary directory, once per test binary: call
// StopPuppet from TestMain. It fails the test when the stack is not
// usable; it never skips.
func Puppet(t testing.TB) *PuppetStack {
	t.Helper()
	puppet.once.Do(func() { puppet.stack, puppet.err = startPuppet() })
	if puppet.err != nil {
		t.Fatalf("puppet test stack: %v", puppet.err)
	}
	return puppet.stack
}

// StopPuppet stops the stack Puppet started itself (not the Makefile's).
func StopPuppet() {
	if puppet.started == "" {
		return
	}
	stopStack("puppet-stack.sh", puppet.started)
}

func startPuppet() (*PuppetStack, error) {
	dir, err := runStack("puppet-stack.sh", PuppetEnv, &puppet.started)
	if err != nil {
		return nil, err
	}
	env, err := readEnvFile(filepath.Join(dir, "env"), "PUPPET_CA_URL", "PUPPETDB_URL", "PUPPET_CERT_FILE", "PUPPET_KEY_FILE", "PUPPET_CA_FILE")
	if err != nil {
		return nil, err
	}
	return &PuppetStack{
		Dir: dir, CAURL: env["PUPPET_CA_URL"], ServerPort: env["PUPPET_SERVER_PORT"],
		PuppetDBURL: env["PUPPETDB_URL"], PDBHTTPURL: env["PUPPETDB_HTTP_URL"],
		CAFile: env["PUPPET_CA_FILE"], CertFile: env["PUPPET_CERT_FILE"], KeyFile: env["PUPPET_KEY_FILE"],
		Certname:         env["PUPPET_WORKER_CERTNAME"],
		IntruderCertFile: env["PUPPET_INTRUDER_CERT_FILE"], IntruderKeyFile: env["PUPPET_INTRUDER_KEY_FILE"],
		AgentsDir: env["PUPPET_AGENTS_DIR"], AutosignTargetFile: env["PUPPET_AUTOSIGN_TARGET_FILE"],
		ServerLog: env["PUPPET_SERVER_LOG"], Env: env,
	}, nil
}

// readEnvFile reads KEY=value lines; each of required must have a value.
func readEnvFile(path string, required ...string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read stack env: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	for _, k := range required {
		if env[k] == "" {
			return nil, fmt.Errorf("stack env %s: no %s", path, k)
		}
	}
	return env, sc.Err()
}

// runStack waits for the stack of scripts/<script> in the directory named by
// envVar or, when it is unset, starts one in a new temporary directory and
// records that directory in *started (for stopStack). It returns the
// stack's directory.
func runStack(script, envVar string, started *string) (string, error) {
	path := stackScript(script)
	if path == "" {
		return "", fmt.Errorf("scripts/%s not found above the working directory", script)
	}
	dir := os.Getenv(envVar)
	action := "wait"
	if dir == "" {
		d, err := os.MkdirTemp("", "vmglue-"+strings.TrimSuffix(script, "-stack.sh")+"-")
		if err != nil {
			return "", fmt.Errorf("make stack dir: %w", err)
		}
		dir, action, *started = d, "start", d
	}
	var out bytes.Buffer
	cmd := exec.Command(path, action, dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s %s: %v\n%s", script, action, dir, err, out.String())
	}
	return dir, nil
}

// stopStack stops the stack of scripts/<script> in dir and removes dir.
func stopStack(script, dir string) {
	if out, err := exec.Command(stackScript(script), "stop", dir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "stop %s: %v\n%s", script, err, out)
		return
	}
	os.RemoveAll(dir)
}

// stackScript finds scripts/<name> in the module root above the working
// directory (go test runs in the package directory).
func stackScript(name string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "scripts", name)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
