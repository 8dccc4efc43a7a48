package config

import (
	"errors"
	"fmt"

	"github.com/vmglue/vmglue/eventbus"
)

// NATS says which NATS to use. An empty URL means: start an embedded server.
type NATS struct {
	URL string `yaml:"url"`
	// Credentials are vmglue serve's (the workers' role). On an external
	// NATS, or an embedded one with auth open, the ops commands and
	// autosign use them too unless Ops or Autosign is set.
	Credentials `yaml:",inline"`
	CAFile      string `yaml:"ca_file"`
	// Ops are the ops commands' credentials (role ops), Autosign those of
	// vmglue autosign (role autosign): on an external NATS, or copies of
	// the embedded server's credential files for a user that cannot read
	// the data directory (Puppet Server's).
	Ops      Credentials               `yaml:"ops"`
	Autosign Credentials               `yaml:"autosign"`
	Embedded Embedded                  `yaml:"embedded"`
	Stream   eventbus.ProvisionOptions `yaml:"stream"`
}

// Credentials are one NATS client's: a user and password, a token, or a
// credentials file. Secrets only ever live in files or the environment.
type Credentials struct {
	User         string `yaml:"user,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	PasswordEnv  string `yaml:"password_env,omitempty"`
	TokenFile    string `yaml:"token_file,omitempty"`
	TokenEnv     string `yaml:"token_env,omitempty"`
	CredsFile    string `yaml:"creds_file,omitempty"`
}

// Values of Embedded.Auth.
const (
	// AuthRoles: vmglue serve makes a credential per role on first start
	// (<data_dir>/credentials) and the server enforces each role's
	// permissions. The default.
	AuthRoles = "roles"
	// AuthOpen: no roles. Every local client is accepted (loopback only),
	// or, with nats.user and a password (or a token), every client that
	// has that one credential, with every permission.
	AuthOpen = "open"
)

// Embedded configures the embedded nats-server.
type Embedded struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	Auth    string `yaml:"auth"`
}

func (c Credentials) set() bool { return c != Credentials{} }

func (c Credentials) validate(key string) error {
	if c.PasswordFile != "" && c.User == "" {
		return fmt.Errorf("%s.password_file: set %s.user too", key, key)
	}
	return nil
}

func (n *NATS) validate() error {
	for key, c := range map[string]Credentials{"nats": n.Credentials, "nats.ops": n.Ops, "nats.autosign": n.Autosign} {
		if err := c.validate(key); err != nil {
			return err
		}
	}
	if n.URL != "" {
		return nil
	}
	switch n.Embedded.Auth {
	case AuthRoles:
		// nats.ops and nats.autosign may name copies of those files (a
		// puppet user that cannot read the data directory).
		if n.Credentials.set() {
			return errors.New("nats.user: the embedded server (nats.embedded.auth: roles) gives each role its own credential in <data_dir>/credentials; remove the nats credentials or set nats.embedded.auth: open")
		}
	case AuthOpen:
	default:
		return fmt.Errorf("nats.embedded.auth: %q, want roles or open", n.Embedded.Auth)
	}
	return nil
}

// roles reports whether serve runs the embedded server with per-role
// credentials.
func (n *NATS) roles() bool { return n.URL == "" && n.Embedded.Auth == AuthRoles }

// ConnOptions returns vmglue serve's NATS connection options, reading
// secrets from their files or environment variables. With the embedded
// server's roles, serve adds its own credential.
func (c *Config) ConnOptions(name, url string) (eventbus.ConnOptions, error) {
	o := eventbus.ConnOptions{URL: url, CAFile: c.NATS.CAFile, Name: name}
	return o, c.NATS.Credentials.apply(&o, "nats")
}

// apply reads c's secrets into o.
func (c Credentials) apply(o *eventbus.ConnOptions, key string) error {
	o.User, o.CredsFile = c.User, c.CredsFile
	var err error
	if o.Password, err = eventbus.ReadSecret(c.PasswordFile, c.PasswordEnv); err != nil {
		return fmt.Errorf("%s.password_file: read secret: %w", key, err)
	}
	if o.Token, err = eventbus.ReadSecret(c.TokenFile, c.TokenEnv); err != nil {
		return fmt.Errorf("%s.token_file: read secret: %w", key, err)
	}
	return nil
}

// SystemDataDir is the data directory of the packaged vmglue serve, where
// the ops commands also look for their credential.
const SystemDataDir = "/var/lib/vmglue"

// Seams for the tests of the search for a role's credential.
var (
	systemDataDir  = SystemDataDir
	defaultDataDir = DefaultDataDir
)

// RoleConnOptions returns the connection options of a client in role
// (eventbus.RoleOps, eventbus.RoleAutosign, or eventbus.RoleHook for a
// resident source such as the OpenStack bridge) named name: its own
// credentials (nats.ops, nats.autosign; none for hook) when set; with the embedded
// server's roles, the role's password file in the data directory (when
// the config does not choose one, the default's, else /var/lib/vmglue's:
// readable by root and the vmglue user); else those
// of serve, as before roles existed. found says whether a credential was
// found; without one the client connects without credentials, which only
// an open server accepts.
func (c *Config) RoleConnOptions(role, name, url string) (o eventbus.ConnOptions, found bool, err error) {
	o = eventbus.ConnOptions{URL: url, CAFile: c.NATS.CAFile, Name: name, InboxPrefix: eventbus.InboxPrefix(role)}
	own := map[string]Credentials{eventbus.RoleOps: c.NATS.Ops, eventbus.RoleAutosign: c.NATS.Autosign}[role]
	switch {
	case own.set():
		return o, true, own.apply(&o, "nats."+role)
	case c.NATS.roles():
		dirs := []string{c.NATS.Embedded.DataDir}
		if dirs[0] == defaultDataDir() { // not chosen: maybe the packaged serve's
			dirs = append(dirs, systemDataDir)
		}
		for _, dir := range dirs {
			if pw, err := eventbus.ReadSecret(eventbus.CredentialPath(dir, role), ""); err == nil && pw != "" {
				o.User, o.Password = role, pw
				return o, true, nil
			}
		}
		return o, false, nil
	}
	return o, c.NATS.Credentials.set(), c.NATS.Credentials.apply(&o, "nats")
}
