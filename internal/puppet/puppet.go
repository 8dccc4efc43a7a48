// Package puppet is the puppet worker: when a VM is deleted it revokes and
// cleans the VM's certificate on the Puppet CA and deactivates its node in
// PuppetDB, so that the name can be reused and the node leaves exported
// resources and reports. It also holds the policy of `vmglue autosign`, which
// lets Puppet Server sign the CSR of a VM vmglue saw boot.
//
// While a VM lives the worker only records ownership of "cert <certname>"
// and "node <certname>"; Apply does not call Puppet for them (unless
// on_running.check_access). Only objects in have, recorded for a live VM of
// ours, are ever cleaned: a certname vmglue never saw for a live VM is never
// touched. See README.md.
package puppet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// Object key prefixes: "cert web1.cloud.test", "node web1.cloud.test".
const (
	prefixCert = "cert "
	prefixNode = "node "
)

// Target is the puppet worker's worker.Target.
type Target struct {
	cfg      Config
	certname *template.Template
	ca       *client
	pdb      *client
	log      zerolog.Logger
	now      func() time.Time
}

var _ worker.Target = (*Target)(nil)

// New validates cfg (SetDefaults is applied to a copy), loads the TLS files
// and returns the target. It does not contact the servers.
func New(cfg Config, log zerolog.Logger) (*Target, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tmpl, err := parseCertname(cfg.Certname)
	if err != nil {
		return nil, fmt.Errorf("puppet.certname: %w", err)
	}
	tc, err := newTLSConfig(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("puppet.tls: %w", err)
	}
	ca, err := newClient("ca", cfg.CAURL, tc, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	pdb, err := newClient("puppetdb", cfg.PuppetDBURL, tc, cfg.Timeout+cfg.PuppetDBWait)
	if err != nil {
		return nil, err
	}
	return &Target{cfg: cfg, certname: tmpl, ca: ca, pdb: pdb, now: time.Now,
		log: log.With().Str("worker", "puppet").Logger()}, nil
}

// Name is "puppet".
func (t *Target) Name() string { return "puppet" }

// Certname renders the certname of vm; an invalid one is a Permanent error.
func (t *Target) Certname(vm *eventbus.VM) (string, error) {
	name, err := renderCertname(t.certname, t.cfg.Domain, vm)
	if err != nil {
		return "", worker.Permanent(err)
	}
	return name, nil
}

// Desired is {"cert <certname>", "node <certname>"} for a VM that is not
// deleted, and nothing once it is deleted.
func (t *Target) Desired(vm *eventbus.VM) (worker.Objects, error) {
	if vm.Deleted() {
		return worker.Objects{}, nil
	}
	name, err := t.Certname(vm)
	if err != nil {
		return nil, err
	}
	return worker.Objects{prefixCert + name: "", prefixNode + name: ""}, nil
}

// Apply records creates (checking CA access first with
// on_running.check_access) and, for each object of have absent from want,
// cleans the certificate or deactivates the node. It tries every delete:
// the error is permanent only when every failure is.
func (t *Target) Apply(ctx context.Context, vm *eventbus.VM, have, want worker.Objects) (worker.Objects, error) {
	out := have.Clone()
	plan := worker.Diff(have, want)
	log := t.log.With().Str("vm", vm.Key()).Str("cloud", vm.Cloud).Logger()
	for _, c := range append(plan.Create, plan.Update...) {
		if _, _, err := splitKey(c.Key); err != nil {
			return out, err
		}
		if t.cfg.OnRunning.CheckAccess && strings.HasPrefix(c.Key, prefixCert) {
			if _, _, err := t.ca.certStatus(ctx, strings.TrimPrefix(c.Key, prefixCert)); err != nil {
				return out, fmt.Errorf("check ca access: %w", err)
			}
		}
		out[c.Key] = c.New
		log.Debug().Str("object", c.Key).Msg("recorded")
	}
	var transient, permanent []error
	// Certificates first: revocation is what matters for security.
	dels := plan.Delete
	sort.SliceStable(dels, func(i, j int) bool {
		return strings.HasPrefix(dels[i].Key, prefixCert) && !strings.HasPrefix(dels[j].Key, prefixCert)
	})
	for _, c := range dels {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if err := t.delete(ctx, log, vm, c.Key); err != nil {
			if worker.IsPermanent(err) {
				permanent = append(permanent, err)
			} else {
				transient = append(transient, err)
			}
			continue
		}
		delete(out, c.Key)
	}
	switch {
	case len(transient) > 0:
		// Retrying helps at least part of the plan: report as transient
		// (the permanent reasons are kept in the text only).
		return out, errors.New(joinMessages(append(transient, permanent...)))
	case len(permanent) > 0:
		return out, worker.Permanent(errors.Join(permanent...))
	}
	return out, nil
}

func (t *Target) delete(ctx context.Context, log zerolog.Logger, vm *eventbus.VM, key string) error {
	kind, name, err := splitKey(key)
	if err != nil {
		return err
	}
	start := t.now()
	switch kind {
	case prefixCert:
		what, err := t.ca.cleanCert(ctx, name)
		if err != nil {
			return err
		}
		log.Info().Str("certname", name).Str("removed", what).Dur("took", time.Since(start)).Msg("certificate cleaned")
	case prefixNode:
		if err := t.pdb.deactivateNode(ctx, name, t.deletedAt(vm), t.cfg.PuppetDBWait); err != nil {
			return err
		}
		log.Info().Str("certname", name).Dur("took", time.Since(start)).Msg("node deactivated")
	}
	return nil
}

// deletedAt is the producer_timestamp of the deactivation: when the source
// says the VM ended, else its newest transition, else now.
func (t *Target) deletedAt(vm *eventbus.VM) time.Time {
	switch {
	case vm.Times.Ended != nil && !vm.Times.Ended.IsZero():
		return *vm.Times.Ended
	case vm.Times.Changed != nil && !vm.Times.Changed.IsZero():
		return *vm.Times.Changed
	}
	return t.now()
}

// splitKey parses "cert <certname>" or "node <certname>".
func splitKey(key string) (kind, certname string, err error) {
	for _, p := range []string{prefixCert, prefixNode} {
		if name, ok := strings.CutPrefix(key, p); ok {
			if !ValidCertname(name) {
				return "", "", worker.Permanent(fmt.Errorf("object %q: %w", key, ErrInvalidCertname))
			}
			return p, name, nil
		}
	}
	return "", "", worker.Permanent(fmt.Errorf("object %q: not a puppet object (want \"cert <certname>\" or \"node <certname>\")", key))
}

func joinMessages(errs []error) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}
