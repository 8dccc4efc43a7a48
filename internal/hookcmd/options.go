package hookcmd

import (
	"encoding/base64"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/hooks/delivery"
	"github.com/vmglue/vmglue/hooks/opennebula"
)

// Defaults of Options.
const (
	// DefaultSpoolDir is under oneadmin's home (/var/lib/one), where the
	// user that HEM runs hooks as can write without extra set-up.
	DefaultSpoolDir = "/var/lib/one/vmglue/spool"
	// DefaultCloud names the cloud in subjects and sources: opennebula://one.
	DefaultCloud = "one"
	// DefaultTimeout bounds connect + flush + publish + ack. Set the hook's
	// TIMEOUT in OpenNebula a few seconds above it.
	DefaultTimeout = 5 * time.Second
)

// DefaultMaxInput is the stdin cap: the base64 of the largest VM XML the
// parser accepts, plus room for the event words.
var DefaultMaxInput = int64(base64.StdEncoding.EncodedLen(opennebula.MaxInputSize)) + 64<<10

// Options configure one hook run. Secrets are taken from the environment or
// from files, never from flags, so they do not show in `ps` or in the hook
// template.
type Options struct {
	URL      string // NATS URL(s), comma separated; VMGLUE_NATS_URL
	Cloud    string // cloud name; VMGLUE_CLOUD
	SpoolDir string // VMGLUE_SPOOL_DIR

	User         string // VMGLUE_NATS_USER
	Password     string // VMGLUE_NATS_PASSWORD
	PasswordFile string // VMGLUE_NATS_PASSWORD_FILE, read when Password is empty
	Token        string // VMGLUE_NATS_TOKEN
	TokenFile    string // VMGLUE_NATS_TOKEN_FILE, read when Token is empty
	CredsFile    string // VMGLUE_NATS_CREDS
	CAFile       string // VMGLUE_NATS_CA

	Timeout  time.Duration // VMGLUE_HOOK_TIMEOUT (Go duration or seconds)
	MaxInput int64         // largest stdin accepted, in bytes

	// SecretAttributes are name patterns of secret attributes added to
	// eventbus.DefaultSecretPatterns, comma separated ("!" exempts);
	// VMGLUE_SECRET_ATTRIBUTES.
	SecretAttributes string
	// ChallengeAttribute is the attribute sent as a MAC keyed with the
	// challenge key (VMGLUE_CHALLENGE_ATTRIBUTE, default PUPPET_CHALLENGE).
	ChallengeAttribute string
	// ChallengeKeyFile holds the challenge key (VMGLUE_CHALLENGE_KEY_FILE,
	// default /etc/vmglue/challenge.key). It is read only for a VM with
	// the challenge attribute; without it the attribute is left out.
	ChallengeKeyFile string

	// FlushOnly sends the spool and exits, reading no input (-flush: the
	// spool flush timer runs the hook this way, with the hook's settings).
	FlushOnly bool

	// Notes are configuration problems that the run worked around (an
	// invalid VMGLUE_HOOK_TIMEOUT is ignored: -timeout or the default
	// applies): a typo in HEM's environment must not lose events, so the
	// run goes on and its one stderr line says what is wrong.
	Notes []string
}

// Env names the environment variable of each option.
var Env = struct {
	URL, Cloud, SpoolDir, User, Password, PasswordFile, Token, TokenFile, Creds, CA, Timeout string
	SecretAttributes, ChallengeAttribute, ChallengeKeyFile                                   string
}{
	"VMGLUE_NATS_URL", "VMGLUE_CLOUD", "VMGLUE_SPOOL_DIR", "VMGLUE_NATS_USER",
	"VMGLUE_NATS_PASSWORD", "VMGLUE_NATS_PASSWORD_FILE", "VMGLUE_NATS_TOKEN",
	"VMGLUE_NATS_TOKEN_FILE", "VMGLUE_NATS_CREDS", "VMGLUE_NATS_CA", "VMGLUE_HOOK_TIMEOUT",
	"VMGLUE_SECRET_ATTRIBUTES", "VMGLUE_CHALLENGE_ATTRIBUTE", "VMGLUE_CHALLENGE_KEY_FILE",
}

// OptionsFromEnv returns the defaults overridden by the environment
// (getenv is os.Getenv outside tests). An invalid value is replaced by its
// default and named in Notes.
func OptionsFromEnv(getenv func(string) string) Options {
	o := Options{
		URL:          getenv(Env.URL),
		Cloud:        getenv(Env.Cloud),
		SpoolDir:     getenv(Env.SpoolDir),
		User:         getenv(Env.User),
		Password:     getenv(Env.Password),
		PasswordFile: getenv(Env.PasswordFile),
		Token:        getenv(Env.Token),
		TokenFile:    getenv(Env.TokenFile),
		CredsFile:    getenv(Env.Creds),
		CAFile:       getenv(Env.CA),

		SecretAttributes:   getenv(Env.SecretAttributes),
		ChallengeAttribute: getenv(Env.ChallengeAttribute),
		ChallengeKeyFile:   getenv(Env.ChallengeKeyFile),
	}
	if s := getenv(Env.Timeout); s != "" {
		d, err := parseTimeout(s)
		if err != nil {
			o.Notes = append(o.Notes, fmt.Sprintf("%s: %v, ignored", Env.Timeout, err))
		}
		o.Timeout = d
	}
	o.SetDefaults()
	return o
}

// parseTimeout accepts a Go duration ("5s", "1500ms") or whole seconds ("5").
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.Atoi(s)
		if nerr != nil {
			return 0, fmt.Errorf("timeout %q: want a duration like 5s", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("timeout %q: must be positive", s)
	}
	return d, nil
}

// SetDefaults fills zero values.
func (o *Options) SetDefaults() {
	if o.URL == "" {
		o.URL = eventbus.DefaultURL
	}
	if o.Cloud == "" {
		o.Cloud = DefaultCloud
	}
	if o.SpoolDir == "" {
		o.SpoolDir = DefaultSpoolDir
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxInput <= 0 {
		o.MaxInput = DefaultMaxInput
	}
	if o.ChallengeAttribute == "" {
		o.ChallengeAttribute = eventbus.DefaultChallengeAttribute
	}
	if o.ChallengeKeyFile == "" {
		o.ChallengeKeyFile = eventbus.DefaultChallengeKeyFile
	}
}

// RegisterFlags defines the hook's flags on fs, with the current values as
// defaults, so flags override the environment.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.URL, "url", o.URL, "NATS URL(s), comma separated (env "+Env.URL+")")
	fs.StringVar(&o.Cloud, "cloud", o.Cloud, "cloud name in subjects and sources (env "+Env.Cloud+")")
	fs.StringVar(&o.SpoolDir, "spool", o.SpoolDir, "spool directory for events NATS could not take (env "+Env.SpoolDir+")")
	fs.StringVar(&o.User, "user", o.User, "NATS user (env "+Env.User+"; password only from "+Env.Password+" or "+Env.PasswordFile+")")
	fs.StringVar(&o.PasswordFile, "password-file", o.PasswordFile, "file holding the NATS password (env "+Env.PasswordFile+")")
	fs.StringVar(&o.TokenFile, "token-file", o.TokenFile, "file holding the NATS token (env "+Env.TokenFile+")")
	fs.StringVar(&o.CredsFile, "creds", o.CredsFile, "NATS credentials file (env "+Env.Creds+")")
	fs.StringVar(&o.CAFile, "ca", o.CAFile, "CA bundle to verify the NATS server (env "+Env.CA+")")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "budget for connect, flush, publish and ack (env "+Env.Timeout+")")
	fs.Int64Var(&o.MaxInput, "max-input", o.MaxInput, "largest stdin accepted, in bytes")
	fs.StringVar(&o.SecretAttributes, "secret-attributes", o.SecretAttributes,
		"secret attribute name patterns added to the defaults, comma separated, \"!\" exempts (env "+Env.SecretAttributes+")")
	fs.StringVar(&o.ChallengeAttribute, "challenge-attribute", o.ChallengeAttribute, "attribute sent as a MAC keyed with the challenge key (env "+Env.ChallengeAttribute+")")
	fs.StringVar(&o.ChallengeKeyFile, "challenge-key-file", o.ChallengeKeyFile, "challenge key file; without it the challenge attribute is left out (env "+Env.ChallengeKeyFile+")")
	fs.BoolVar(&o.FlushOnly, "flush", false, "only send the spooled events, read no input (for a timer)")
}

// delivery reads the secret files and returns the settings of the run's
// delivery.
func (o *Options) delivery() (delivery.Options, error) {
	c, err := o.connOptions()
	return delivery.Options{Conn: c, SpoolDir: o.SpoolDir, Timeout: o.Timeout}, err
}

// secretPolicy returns how this run protects a VM's secrets. An invalid
// pattern list is noted and the defaults apply: a typo must not lose the
// event. The key file is read at most once, and only for a VM that has the
// challenge attribute.
func (o *Options) secretPolicy(notes *[]string) eventbus.Secrets {
	names, err := eventbus.ParseSecretNames(o.SecretAttributes)
	if err != nil {
		*notes = append(*notes, fmt.Sprintf("%s: %v, defaults used", Env.SecretAttributes, err))
		names = nil
	}
	var (
		key     []byte
		keyErr  error
		keyRead bool
	)
	return eventbus.Secrets{Names: names, ChallengeAttribute: o.ChallengeAttribute,
		ChallengeKey: func() ([]byte, error) {
			if !keyRead {
				key, keyErr = eventbus.ReadChallengeKey(o.ChallengeKeyFile)
				keyRead = true
			}
			return key, keyErr
		}}
}

// connOptions reads the secret files and returns the NATS settings.
func (o *Options) connOptions() (eventbus.ConnOptions, error) {
	c := eventbus.ConnOptions{
		URL: o.URL, User: o.User, Password: o.Password, Token: o.Token,
		CredsFile: o.CredsFile, CAFile: o.CAFile, Name: "vmglue-hook",
	}
	var err error
	if c.Password == "" && o.PasswordFile != "" {
		if c.Password, err = eventbus.ReadSecret(o.PasswordFile, ""); err != nil {
			return c, fmt.Errorf("read password file: %w", err)
		}
	}
	if c.Token == "" && o.TokenFile != "" {
		if c.Token, err = eventbus.ReadSecret(o.TokenFile, ""); err != nil {
			return c, fmt.Errorf("read token file: %w", err)
		}
	}
	return c, nil
}

// secrets lists every secret the options hold, to mask them in output: the
// password and token (also from their files) and the userinfo of every URL.
func (o *Options) secrets() []string {
	s := []string{o.Password, o.Token}
	for _, f := range []string{o.PasswordFile, o.TokenFile} {
		if f != "" {
			if v, err := eventbus.ReadSecret(f, ""); err == nil {
				s = append(s, v)
			}
		}
	}
	for _, raw := range strings.Split(o.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.User == nil {
			// An unparsable URL may still hold "user:pass@".
			if at := strings.LastIndex(raw, "@"); at >= 0 {
				cred := raw[:at]
				if i := strings.Index(cred, "://"); i >= 0 {
					cred = cred[i+3:]
				}
				if user, pass, ok := strings.Cut(cred, ":"); ok {
					s = append(s, pass)
				} else {
					s = append(s, user) // a lone user name is a token
				}
			}
			continue
		}
		if p, ok := u.User.Password(); ok {
			s = append(s, p)
		} else {
			s = append(s, u.User.Username()) // a lone user name is a token
		}
	}
	out := s[:0]
	for _, v := range s {
		if len(v) >= 4 { // masking a few characters would garble the line
			out = append(out, v)
		}
	}
	return out
}
