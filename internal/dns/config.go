package dns

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"text/template"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/eventbus"
)

// Config is the dns worker's configuration (the "dns:" block of vmglue's
// YAML). Call SetDefaults, then Validate.
type Config struct {
	// Servers are the authoritative primaries, "host:port" (port 53 if
	// omitted). Every update goes to the first; the others are tried in
	// order only when the one before failed transiently (timeout, refused
	// connection, SERVFAIL).
	Servers []string `yaml:"servers"`
	// ZoneServers overrides Servers for one zone: {"10.in-addr.arpa.": [...]}.
	ZoneServers map[string][]string `yaml:"zone_servers"`
	TSIG        TSIG                `yaml:"tsig"`
	// ForwardZones hold the A, AAAA and ownership TXT records. A relative
	// name (the template gives no final dot) goes into the first one; an
	// absolute name must fall inside one of them.
	ForwardZones []string `yaml:"forward_zones"`
	// ReverseZones hold the PTR records: IPv4 (…in-addr.arpa.) and IPv6
	// (…ip6.arpa.). An address outside every reverse zone gets no PTR.
	ReverseZones []string `yaml:"reverse_zones"`
	// TTL of every record, in seconds. Default 60.
	TTL uint32 `yaml:"ttl"`
	// NameTemplate is a Go text/template over eventbus.VM giving the host
	// name. Default "{{.Name}}". The result is normalized (see Normalize).
	NameTemplate string `yaml:"name_template"`
	// DenyNames are glob patterns (path.Match, case-insensitive) of host
	// labels no VM may take: a VM name matching one is refused (a
	// permanent error, dead-lettered with the reason). Absent:
	// DefaultDenyNames; an explicit [] denies nothing.
	DenyNames []string `yaml:"deny_names"`
	// Networks, when not empty, is the allow-list of networks (name or id)
	// whose NICs get records.
	Networks []string `yaml:"networks"`
	// Aliases: NIC aliases get records too. Default true.
	Aliases *bool `yaml:"aliases"`
	// Addresses are the NIC fields published: ip, ip6, ip6_global, ip6_ula.
	// Default [ip, ip6, ip6_global].
	Addresses []string `yaml:"addresses"`
	// PresentKinds are the VM kinds that keep records. Default: every kind
	// but "deleted" (a stopped VM keeps its name).
	PresentKinds []string `yaml:"present_kinds"`
	// OwnerID goes into the ownership TXT record. Default "vmglue".
	OwnerID string `yaml:"owner_id"`
	// AdoptExisting takes over records that exist but are not ours,
	// replacing their A, AAAA, TXT (or PTR) RRsets. Default false: conflict.
	AdoptExisting bool `yaml:"adopt_existing"`
	// Timeout of one UPDATE or query exchange. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	Batch   Batch         `yaml:"batch"`
}

// TSIG names the key. Exactly one of SecretFile and SecretEnv is set; the
// secret is base64, as in a BIND key statement.
type TSIG struct {
	Name       string `yaml:"name"`
	Algorithm  string `yaml:"algorithm"` // hmac-sha256 (default), hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
}

// Batch bounds the per-zone batcher.
type Batch struct {
	// Window is how long the first update of a batch waits for others.
	// Default 2ms; 0 after SetDefaults is not possible, use 1ns to disable.
	Window time.Duration `yaml:"window"`
	// MaxRecords per UPDATE message (prerequisites plus updates). Default 500.
	MaxRecords int `yaml:"max_records"`
	// MaxBytes per UPDATE message, at most 65000. Default 60000.
	MaxBytes int `yaml:"max_bytes"`
}

var algorithms = map[string]string{
	"hmac-sha1":   mdns.HmacSHA1,
	"hmac-sha224": mdns.HmacSHA224,
	"hmac-sha256": mdns.HmacSHA256,
	"hmac-sha384": mdns.HmacSHA384,
	"hmac-sha512": mdns.HmacSHA512,
}

var addressFields = map[string]bool{"ip": true, "ip6": true, "ip6_global": true, "ip6_ula": true}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.TSIG.Algorithm == "" {
		c.TSIG.Algorithm = "hmac-sha256"
	}
	if c.TTL == 0 {
		c.TTL = 60
	}
	if c.NameTemplate == "" {
		c.NameTemplate = "{{.Name}}"
	}
	if c.DenyNames == nil {
		c.DenyNames = DefaultDenyNames
	}
	if c.Aliases == nil {
		yes := true
		c.Aliases = &yes
	}
	if len(c.Addresses) == 0 {
		c.Addresses = []string{"ip", "ip6", "ip6_global"}
	}
	if len(c.PresentKinds) == 0 {
		for _, k := range eventbus.Kinds {
			if k != eventbus.KindDeleted {
				c.PresentKinds = append(c.PresentKinds, k)
			}
		}
	}
	if c.OwnerID == "" {
		c.OwnerID = "vmglue"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Batch.Window == 0 {
		c.Batch.Window = 2 * time.Millisecond
	}
	if c.Batch.MaxRecords == 0 {
		c.Batch.MaxRecords = 500
	}
	if c.Batch.MaxBytes == 0 {
		c.Batch.MaxBytes = 60000
	}
}

// Validate checks the configuration and names the offending key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("dns."+key+": "+format, a...))
	}
	if len(c.Servers) == 0 {
		bad("servers", "at least one server is required")
	}
	for i, s := range c.Servers {
		if err := checkServer(s); err != nil {
			bad(fmt.Sprintf("servers[%d]", i), "%v", err)
		}
	}
	for z, list := range c.ZoneServers {
		if !c.hasZone(z) {
			bad("zone_servers", "%q is not in forward_zones or reverse_zones", z)
		}
		for i, s := range list {
			if err := checkServer(s); err != nil {
				bad(fmt.Sprintf("zone_servers[%q][%d]", z, i), "%v", err)
			}
		}
	}
	if _, ok := mdns.IsDomainName(c.TSIG.Name); !ok || c.TSIG.Name == "" {
		bad("tsig.name", "a key name is required")
	}
	if _, ok := algorithms[strings.ToLower(c.TSIG.Algorithm)]; !ok {
		bad("tsig.algorithm", "%q is not one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512", c.TSIG.Algorithm)
	}
	if (c.TSIG.SecretFile == "") == (c.TSIG.SecretEnv == "") {
		bad("tsig", "set exactly one of secret_file and secret_env")
	}
	if len(c.ForwardZones) == 0 {
		bad("forward_zones", "at least one zone is required")
	}
	for i, z := range c.ForwardZones {
		if _, ok := mdns.IsDomainName(z); !ok || z == "" || z == "." {
			bad(fmt.Sprintf("forward_zones[%d]", i), "%q is not a zone name", z)
		}
	}
	for i, z := range c.ReverseZones {
		fz := mdns.CanonicalName(z)
		if !mdns.IsSubDomain("in-addr.arpa.", fz) && !mdns.IsSubDomain("ip6.arpa.", fz) {
			bad(fmt.Sprintf("reverse_zones[%d]", i), "%q is not under in-addr.arpa. or ip6.arpa.", z)
		}
	}
	if c.TTL == 0 || c.TTL > 1<<31-1 {
		bad("ttl", "must be between 1 and 2147483647")
	}
	if _, err := template.New("name").Option("missingkey=error").Parse(c.NameTemplate); err != nil {
		bad("name_template", "%v", err)
	}
	for i, p := range c.DenyNames {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			bad(fmt.Sprintf("deny_names[%d]", i), "%q is not a glob pattern", p)
		}
	}
	for i, a := range c.Addresses {
		if !addressFields[a] {
			bad(fmt.Sprintf("addresses[%d]", i), "%q is not one of ip, ip6, ip6_global, ip6_ula", a)
		}
	}
	for i, k := range c.PresentKinds {
		if !eventbus.ValidKind(k) || k == eventbus.KindDeleted {
			bad(fmt.Sprintf("present_kinds[%d]", i), "%q is not a kind (or is deleted)", k)
		}
	}
	if strings.ContainsAny(c.OwnerID, `",\ `) || c.OwnerID == "" {
		bad("owner_id", "%q: must be non-empty without quotes, commas, spaces or backslashes", c.OwnerID)
	}
	if c.Timeout <= 0 {
		bad("timeout", "must be positive")
	}
	if c.Batch.Window <= 0 || c.Batch.Window > time.Second {
		bad("batch.window", "must be between 1ns and 1s")
	}
	if c.Batch.MaxRecords < 1 {
		bad("batch.max_records", "must be at least 1")
	}
	if c.Batch.MaxBytes < 512 || c.Batch.MaxBytes > 65000 {
		bad("batch.max_bytes", "must be between 512 and 65000")
	}
	return errors.Join(errs...)
}

func checkServer(s string) error {
	host, port, err := net.SplitHostPort(withPort(s))
	if err != nil || host == "" {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number between 1 and 65535", s, port)
	}
	if _, ok := mdns.IsDomainName(host); net.ParseIP(host) == nil && (!ok || strings.Contains(host, ":")) {
		return fmt.Errorf("%q: %q is neither an ip address nor a host name", s, host)
	}
	return nil
}

// withPort adds ":53" to a server without a port.
func withPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), "53")
}

func (c *Config) hasZone(z string) bool {
	z = mdns.CanonicalName(z)
	for _, l := range [][]string{c.ForwardZones, c.ReverseZones} {
		for _, x := range l {
			if mdns.CanonicalName(x) == z {
				return true
			}
		}
	}
	return false
}

// secret reads the TSIG secret from the file or the environment. The value
// never appears in an error.
func (c *Config) secret() (string, error) {
	s, err := eventbus.ReadSecret(c.TSIG.SecretFile, c.TSIG.SecretEnv)
	if err != nil {
		return "", fmt.Errorf("read dns.tsig.secret_file: %w", err)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("dns.tsig: the secret is empty")
	}
	if _, err := base64.StdEncoding.DecodeString(s); err != nil {
		return "", errors.New("dns.tsig: the secret is not valid base64")
	}
	return s, nil
}
