package monitor

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/vmglue/vmglue/eventbus"
)

// Config is the monitor worker's configuration (workers.monitor). At least
// one of Icinga and FileSD is set. Call SetDefaults, then Validate.
type Config struct {
	// OwnerID is written into every host object (vars.vmglue_owner, as
	// "<owner_id>/<installation>" when serve knows the installation
	// identity): a host without it is foreign. Default "vmglue",
	// the same default as the dns worker's owner_id.
	OwnerID string        `yaml:"owner_id"`
	Icinga  *IcingaConfig `yaml:"icinga"`
	FileSD  *FileSDConfig `yaml:"file_sd"`
}

// IcingaConfig is the Icinga2 output: one Host object per VM through the
// REST API.
type IcingaConfig struct {
	// URL of the API, "https://icinga.example:5665".
	URL string `yaml:"url"`
	// User is the API user (least privilege: see README.md); its password
	// is read from PasswordFile or PasswordEnv, never logged.
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// CAFile is the Icinga CA that signed the API certificate (empty: the
	// system roots).
	CAFile string `yaml:"ca_file"`
	// Timeout of one API request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// HostName is a Go text/template over eventbus.VM giving the host
	// object's name. Default "{{.Name}}". A result that is not a valid
	// object name (see ValidHostName) is refused permanently.
	HostName string `yaml:"host_name"`
	// Templates are imported by every host (e.g. generic-host).
	Templates []string `yaml:"templates"`
	// LabelTemplates maps a VM label (LABELS=web) or a value of
	// TemplateAttribute to a template to import (web → web-server). A
	// tenant can only opt into the templates listed here.
	LabelTemplates map[string]string `yaml:"label_templates"`
	// TemplateAttribute names a user attribute whose comma-separated values
	// are looked up in LabelTemplates too. Empty: labels only.
	TemplateAttribute string `yaml:"template_attribute"`
	// CheckCommand is set on the host when not empty (otherwise a template
	// gives it).
	CheckCommand string `yaml:"check_command"`
	// Vars maps a host variable to a VM field: "attribute:<NAME>" (a user
	// attribute), "label:<label>" ("true" when the VM has the label) or
	// "field:<owner|group|project|host|hostname|cloud|id|name>".
	Vars map[string]string `yaml:"vars"`
	// PresentKinds are the kinds that keep a host. Default: every kind but
	// deleted.
	PresentKinds []string `yaml:"present_kinds"`
	// DowntimeKinds are the kinds that put the host and its services in a
	// downtime (a planned stop). Default [stopped]: poweroff, stop, suspend,
	// undeploy. An unknown VM gets none: an alert is wanted then.
	DowntimeKinds []string `yaml:"downtime_kinds"`
	// DowntimeDuration is how long a downtime lasts at most. Default 720h.
	DowntimeDuration time.Duration `yaml:"downtime_duration"`
}

// FileSDConfig is the Prometheus file_sd output.
type FileSDConfig struct {
	// Dir receives one file per job, <dir>/<job>.json.
	Dir  string `yaml:"dir"`
	Jobs []Job  `yaml:"jobs"`
}

// Job is one file_sd file.
type Job struct {
	// Name of the job ([A-Za-z0-9_-]); the file is <name>.json.
	Name string `yaml:"name"`
	// Port of every target of the job.
	Port int `yaml:"port"`
	// Addresses are the NIC fields used: ip, ip6, ip6_global, ip6_ula.
	// Default [ip].
	Addresses []string `yaml:"addresses"`
	// PresentKinds are the kinds whose VMs are targets. Default [running,
	// changing, migrating, unknown]: a VM being migrated or hot-plugged
	// stays, and so does one its hypervisor lost (its scrape failing is
	// the alert wanted then).
	PresentKinds []string `yaml:"present_kinds"`
	// Labels maps a Prometheus label name to a VM field, written like
	// IcingaConfig.Vars. The labels cloud, vm_id, vm_name and vm_owner are
	// always set.
	Labels map[string]string `yaml:"labels"`
}

var (
	jobName   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	varName   = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`)
)

var addressFields = map[string]bool{"ip": true, "ip6": true, "ip6_global": true, "ip6_ula": true}

// fixedLabels are set on every file_sd target.
var fixedLabels = []string{"cloud", "vm_id", "vm_name", "vm_owner"}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.OwnerID == "" {
		c.OwnerID = "vmglue"
	}
	if i := c.Icinga; i != nil {
		if i.Timeout == 0 {
			i.Timeout = 10 * time.Second
		}
		if i.HostName == "" {
			i.HostName = "{{.Name}}"
		}
		if len(i.PresentKinds) == 0 {
			for _, k := range eventbus.Kinds {
				if k != eventbus.KindDeleted {
					i.PresentKinds = append(i.PresentKinds, k)
				}
			}
		}
		if i.DowntimeKinds == nil {
			i.DowntimeKinds = []string{eventbus.KindStopped}
		}
		if i.DowntimeDuration == 0 {
			i.DowntimeDuration = 720 * time.Hour
		}
	}
	if f := c.FileSD; f != nil {
		for i := range f.Jobs {
			j := &f.Jobs[i]
			if len(j.Addresses) == 0 {
				j.Addresses = []string{"ip"}
			}
			if len(j.PresentKinds) == 0 {
				j.PresentKinds = []string{eventbus.KindRunning, eventbus.KindChanging, eventbus.KindMigrating, eventbus.KindUnknown}
			}
		}
	}
}

// Validate checks the configuration and names the offending key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("monitor."+key+": "+format, a...))
	}
	if c.Icinga == nil && c.FileSD == nil {
		bad("icinga", "set icinga, file_sd or both")
	}
	if strings.ContainsAny(c.OwnerID, "\"\\ \n") || c.OwnerID == "" {
		bad("owner_id", "%q: must be non-empty without quotes, spaces or backslashes", c.OwnerID)
	}
	if i := c.Icinga; i != nil {
		u, err := url.Parse(i.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			bad("icinga.url", "want https://host:port without credentials")
		}
		if i.User == "" {
			bad("icinga.user", "an API user is required")
		}
		if (i.PasswordFile == "") == (i.PasswordEnv == "") {
			bad("icinga", "set exactly one of password_file and password_env")
		}
		if i.Timeout <= 0 {
			bad("icinga.timeout", "must be positive")
		}
		if _, err := template.New("host").Option("missingkey=error").Parse(i.HostName); err != nil {
			bad("icinga.host_name", "%v", err)
		}
		for k, src := range i.Vars {
			if !varName.MatchString(k) || strings.HasPrefix(k, "vmglue_") {
				bad("icinga.vars", "%q is not a variable name (letters, digits, _; vmglue_ is reserved)", k)
			}
			if err := checkSource(src); err != nil {
				bad("icinga.vars."+k, "%v", err)
			}
		}
		checkKinds(bad, "icinga.present_kinds", i.PresentKinds)
		checkKinds(bad, "icinga.downtime_kinds", i.DowntimeKinds)
		if i.DowntimeDuration <= 0 {
			bad("icinga.downtime_duration", "must be positive")
		}
	}
	if f := c.FileSD; f != nil {
		if f.Dir == "" || !filepath.IsAbs(f.Dir) {
			bad("file_sd.dir", "an absolute directory is required")
		}
		if len(f.Jobs) == 0 {
			bad("file_sd.jobs", "at least one job is required")
		}
		seen := map[string]bool{}
		for n, j := range f.Jobs {
			key := fmt.Sprintf("file_sd.jobs[%d]", n)
			if !jobName.MatchString(j.Name) || seen[j.Name] {
				bad(key+".name", "%q: want a unique name of letters, digits, _ and -", j.Name)
			}
			seen[j.Name] = true
			if j.Port < 1 || j.Port > 65535 {
				bad(key+".port", "must be between 1 and 65535")
			}
			for _, a := range j.Addresses {
				if !addressFields[a] {
					bad(key+".addresses", "%q is not one of ip, ip6, ip6_global, ip6_ula", a)
				}
			}
			checkKinds(bad, key+".present_kinds", j.PresentKinds)
			for l, src := range j.Labels {
				if !labelName.MatchString(l) || strings.HasPrefix(l, "__") || isFixedLabel(l) {
					bad(key+".labels", "%q is not a label name Prometheus keeps ([a-zA-Z_][a-zA-Z0-9_]*, no __ prefix, not %v)", l, fixedLabels)
				}
				if err := checkSource(src); err != nil {
					bad(key+".labels."+l, "%v", err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func isFixedLabel(l string) bool {
	for _, f := range fixedLabels {
		if f == l {
			return true
		}
	}
	return false
}

func checkKinds(bad func(string, string, ...any), key string, kinds []string) {
	for _, k := range kinds {
		if !eventbus.ValidKind(k) || k == eventbus.KindDeleted {
			bad(key, "%q is not a kind (or is deleted)", k)
		}
	}
}
