package puppet

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// Config is the puppet worker's section of the vmglue configuration.
type Config struct {
	// CAURL is the Puppet Server CA base URL, "https://puppet:8140".
	CAURL string `yaml:"ca_url"`
	// PuppetDBURL is the PuppetDB base URL, "https://puppetdb:8081".
	PuppetDBURL string `yaml:"puppetdb_url"`
	// TLS is the worker's client certificate, signed by the Puppet CA.
	TLS TLSConfig `yaml:"tls"`
	// Domain is appended by the default certname template.
	Domain string `yaml:"domain"`
	// Certname is a text/template over the VM snapshot (eventbus.VM fields
	// plus .Domain); the result is lower-cased. Default "{{.Name}}.{{.Domain}}".
	Certname string `yaml:"certname"`
	// Timeout bounds one HTTP request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// PuppetDBWait is how long PuppetDB may take to process a command before
	// the call is retried (secondsToWaitForCompletion). Default 10s.
	PuppetDBWait time.Duration `yaml:"puppetdb_wait"`
	// OnRunning is what Apply does when a VM first becomes ours.
	OnRunning OnRunning `yaml:"on_running"`
	// VerifyCertAge makes a delete read the certificate's status first and
	// leave alone (Permanent ErrConflict) a certificate issued before the VM
	// was created (another host's) or after it ended (a successor's).
	// Default true.
	VerifyCertAge *bool `yaml:"verify_cert_age"`
	// OwnershipSkew is the clock skew allowed between the cloud (the VM's
	// creation time) and the CA (the certificate's issue time). Default 5m.
	OwnershipSkew time.Duration `yaml:"ownership_skew"`
	// Autosign is the policy of `vmglue autosign`.
	Autosign AutosignConfig `yaml:"autosign"`
}

// TLSConfig names PEM files.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// OnRunning lists what the worker may do for a live VM. By default it does
// nothing but record ownership of the VM's certificate and node.
type OnRunning struct {
	// CheckAccess makes the first Apply of a VM ask the CA for the
	// certificate's status, so that a CA that refuses the worker (auth.conf)
	// is reported when the VM boots, not only when it is deleted.
	CheckAccess bool `yaml:"check_access"`
}

// AutosignConfig is the policy of `vmglue autosign`.
type AutosignConfig struct {
	// RequireChallenge makes autosign compare the CSR's challengePassword
	// with the VM attribute ChallengeAttribute.
	RequireChallenge bool `yaml:"require_challenge"`
	// ChallengeAttribute is the user attribute (OpenNebula USER_TEMPLATE,
	// Nova metadata) holding the expected challenge. Default "PUPPET_CHALLENGE".
	// The hook sends it as a MAC keyed with the challenge key.
	ChallengeAttribute string `yaml:"challenge_attribute"`
	// ChallengeKeyFile holds the challenge key, the same as the hook's
	// (root:puppet 0640). Read only with require_challenge. Default
	// /etc/vmglue/challenge.key.
	ChallengeKeyFile string `yaml:"challenge_key_file"`
}

// DefaultCertname is the default certname template: the VM's DNS name.
const DefaultCertname = "{{.Name}}.{{.Domain}}"

// SetDefaults fills the unset fields.
func (c *Config) SetDefaults() {
	if c.Certname == "" {
		c.Certname = DefaultCertname
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.PuppetDBWait == 0 {
		c.PuppetDBWait = 10 * time.Second
	}
	if c.Autosign.ChallengeAttribute == "" {
		c.Autosign.ChallengeAttribute = eventbus.DefaultChallengeAttribute
	}
	if c.Autosign.ChallengeKeyFile == "" {
		c.Autosign.ChallengeKeyFile = eventbus.DefaultChallengeKeyFile
	}
	if c.VerifyCertAge == nil {
		verify := true
		c.VerifyCertAge = &verify
	}
	if c.OwnershipSkew == 0 {
		c.OwnershipSkew = DefaultOwnershipSkew
	}
}

// DefaultOwnershipSkew is the default ownership_skew.
const DefaultOwnershipSkew = 5 * time.Minute

// Validate checks the configuration (after SetDefaults); errors name the key.
func (c *Config) Validate() error {
	for _, u := range []struct{ key, val string }{{"ca_url", c.CAURL}, {"puppetdb_url", c.PuppetDBURL}} {
		if err := validURL(u.val); err != nil {
			return fmt.Errorf("puppet.%s: %w", u.key, err)
		}
	}
	for _, f := range []struct{ key, val string }{{"tls.ca_file", c.TLS.CAFile},
		{"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}} {
		if f.val == "" {
			return fmt.Errorf("puppet.%s: required", f.key)
		}
	}
	if c.Domain != "" && !ValidCertname(c.Domain) {
		return fmt.Errorf("puppet.domain: %q is not a valid DNS domain", c.Domain)
	}
	if _, err := parseCertname(c.Certname); err != nil {
		return fmt.Errorf("puppet.certname: %w", err)
	}
	if strings.Contains(c.Certname, ".Domain") && c.Domain == "" {
		return errors.New("puppet.domain: required by the certname template")
	}
	if c.Timeout < 0 || c.PuppetDBWait < time.Second {
		return errors.New("puppet.timeout / puppet.puppetdb_wait: must be positive (puppetdb_wait at least 1s)")
	}
	if c.OwnershipSkew < 0 {
		return errors.New("puppet.ownership_skew: must not be negative")
	}
	if c.Autosign.RequireChallenge && c.Autosign.ChallengeAttribute == "" {
		return errors.New("puppet.autosign.challenge_attribute: required with require_challenge")
	}
	if a := c.Autosign.ChallengeAttribute; a != "" && !eventbus.SecretAttribute(a) {
		return fmt.Errorf("puppet.autosign.challenge_attribute: %q is not a protected attribute name (eventbus.DefaultSecretPatterns: *CHALLENGE*, *TOKEN*, *PASS*, ...), "+
			"so a hook set up for another challenge attribute would send it in clear text; use e.g. PUPPET_CHALLENGE", a)
	}
	return nil
}

func validURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" {
		// The worker authenticates with its client certificate: only TLS
		// carries it.
		return fmt.Errorf("scheme %q: use https", u.Scheme)
	}
	if u.User != nil {
		return errors.New("must not carry credentials: the worker authenticates with its certificate")
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return errors.New("must be a base URL like https://host:port")
	}
	return nil
}

func parseCertname(text string) (*template.Template, error) {
	return template.New("certname").Option("missingkey=zero").Parse(text)
}

// certnameData is what the certname template sees: the VM and .Domain.
type certnameData struct {
	*eventbus.VM
	Domain string
}

// renderCertname renders tmpl for vm, lower-cases and validates the result.
func renderCertname(tmpl *template.Template, domain string, vm *eventbus.VM) (string, error) {
	var b strings.Builder
	if err := tmpl.Execute(&b, certnameData{VM: vm, Domain: domain}); err != nil {
		return "", fmt.Errorf("render certname of vm %s: %w", vm.Key(), err)
	}
	name := strings.ToLower(strings.TrimSpace(b.String()))
	if !ValidCertname(name) {
		return "", fmt.Errorf("certname %q of vm %s: %w", name, vm.Key(), ErrInvalidCertname)
	}
	return name, nil
}

// ErrInvalidCertname is wrapped when a certname breaks Puppet's rules.
var ErrInvalidCertname = errors.New("invalid certname: use lowercase letters, digits, '.', '-', '_', not starting or ending with '.' or '-'")

var certnameRE = regexp.MustCompile(`^[a-z0-9_]([a-z0-9._-]*[a-z0-9_])?$`)

// ValidCertname reports whether name is a certname Puppet accepts and that
// is safe in a URL path: lowercase [a-z0-9._-], at most 253 characters, no
// leading or trailing '.' or '-', no empty label.
func ValidCertname(name string) bool {
	return len(name) <= 253 && certnameRE.MatchString(name) && !strings.Contains(name, "..")
}
