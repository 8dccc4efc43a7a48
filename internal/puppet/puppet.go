// Package puppet is the puppet worker: when a VM is deleted it revokes and
// cleans the VM's certificate on the Puppet CA and deactivates its node in
// PuppetDB, so that the name can be reused and the node leaves exported
// resources and reports. It also holds the policy of `vmglue autosign`, which
// lets Puppet Server sign the CSR of a VM that is booting or booted.
//
// A name is not proof of ownership: tenants choose and change their VMs'
// names. So the binding certname ↔ VM is made once, when autosign signs:
// it records the VM and the CSR's public key (Bindings, the bucket
// eventbus.BucketCertBindings) and refuses a certname another live VM
// holds. While a VM lives the worker only records "cert <certname>" and
// "node <certname>" for every certname the VM has had (a rename never
// revokes anything); when it is deleted, Apply cleans a recorded
// certificate only when its binding names this VM and the CA's certificate
// carries the bound public key (cleanBound). Any other certificate (a
// tenant renamed its VM to another VM's name; signed by hand) is neither
// revoked nor cleaned, its node is not deactivated, and Apply returns a
// Permanent ErrConflict (dead letter "conflict"). Without bindings (a
// Target used without SetBindings) the certificate's age decides instead
// (verify_cert_age, see verifyCertOwner). See README.md.
package puppet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	// index, when set, is kept in step with the recorded certificates.
	index *CertIndex
	// bindings, when set, decide which certificate a delete may clean.
	bindings *Bindings
	// registry is the worker's registry, which RunBeside backfills the
	// index from.
	registry *worker.Registry
}

var _ worker.Target = (*Target)(nil)

// New validates cfg (SetDefaults is applied to a copy), loads the TLS files
// and returns the target. It does not contact the servers. Given
// deps.JS, it opens the certname index (see SetIndex) and backfills it in
// RunBeside.
func New(cfg Config, deps worker.Deps) (*Target, error) {
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
	t := &Target{cfg: cfg, certname: tmpl, ca: ca, pdb: pdb, now: time.Now,
		log: deps.Log.With().Str("worker", "puppet").Logger()}
	if deps.JS != nil {
		if err := t.openIndex(deps.JS); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// openIndex opens the certname index `vmglue autosign` reads, the
// certname bindings autosign records (which decide what a delete may clean)
// and the worker's registry, which RunBeside backfills the index from.
func (t *Target) openIndex(js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, err := OpenCertIndex(ctx, js)
	if err != nil {
		return err
	}
	reg, err := worker.OpenRegistry(ctx, js, t.Name())
	if err != nil {
		return err
	}
	bindings, err := OpenBindings(ctx, js)
	if err != nil {
		return err
	}
	t.index, t.registry, t.bindings = idx, reg, bindings
	return nil
}

// RunBeside backfills the certname index with the certificates recorded
// before the index existed (an upgrade), once, when New was given the
// JetStream handle.
func (t *Target) RunBeside(ctx context.Context, _ *worker.Runner) {
	if t.index == nil || t.registry == nil {
		return
	}
	n, err := t.index.Backfill(ctx, t.registry)
	if err != nil && ctx.Err() == nil {
		t.log.Error().Err(err).Msg("certname index backfill")
		return
	}
	t.log.Info().Int("certnames", n).Msg("certname index backfilled")
}

// SetIndex makes the target keep idx, the certname index `vmglue autosign`
// reads, in step with the certificates it records. Call it before the
// runtime starts.
func (t *Target) SetIndex(idx *CertIndex) { t.index = idx }

// SetBindings makes a delete clean only the certificate `vmglue autosign`
// bound to the VM (see cleanBound); without bindings a delete relies on
// the certificate's age (verify_cert_age). Call it before the runtime
// starts.
func (t *Target) SetBindings(b *Bindings) { t.bindings = b }

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
// cleans the certificate or deactivates the node. A certificate that is not
// the VM's is left alone with its node (Permanent ErrConflict, see
// verifyCertOwner); while the certificate cannot be checked (CA down) its
// node waits too. It tries every other delete: the error is permanent only
// when every failure is.
func (t *Target) Apply(ctx context.Context, req worker.Request) (worker.Objects, error) {
	vm, have, want := req.VM, req.Have, req.Want
	out := req.Result()
	if err := ctx.Err(); err != nil { // shutting down: change nothing
		return out, err
	}
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
		if name, ok := strings.CutPrefix(c.Key, prefixCert); ok && t.index != nil {
			if err := t.index.Add(ctx, name, vm.Key()); err != nil {
				return out, err
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
	// Certnames whose certificate is another host's: their node is too.
	// Certnames whose certificate could not be checked: their node waits
	// for the verdict (a retry), it may be another host's as well.
	foreign, unchecked := map[string]bool{}, map[string]bool{}
	for _, c := range dels {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if !vm.Deleted() {
			// A renamed live VM: its agent keeps its certificate (and node)
			// under the old certname. Never revoked while the VM lives.
			log.Debug().Str("object", c.Key).Msg("kept: the vm is alive (renamed)")
			continue
		}
		if name, ok := strings.CutPrefix(c.Key, prefixNode); ok && foreign[name] {
			log.Warn().Str("certname", name).Msg("node left active: its certificate is not the vm's")
			continue
		} else if ok && unchecked[name] {
			log.Info().Str("certname", name).Msg("node deactivation waits until its certificate can be checked")
			continue
		}
		if err := t.delete(ctx, log, vm, c.Key); err != nil {
			if name, ok := strings.CutPrefix(c.Key, prefixCert); ok {
				var u *uncheckedError
				switch {
				case errors.Is(err, worker.ErrConflict):
					foreign[name] = true
				case errors.As(err, &u):
					unchecked[name] = true
				}
			}
			if worker.IsPermanent(err) {
				permanent = append(permanent, err)
			} else {
				transient = append(transient, err)
			}
			continue
		}
		delete(out, c.Key)
		if name, ok := strings.CutPrefix(c.Key, prefixCert); ok && t.index != nil {
			// A stale entry only costs autosign a check of this VM's
			// snapshot: log, do not fail the delete for it.
			if err := t.index.Remove(ctx, name, vm.Key()); err != nil {
				log.Warn().Err(err).Str("certname", name).Msg("certname index not updated")
			}
		}
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
		if t.bindings != nil {
			return t.cleanBound(ctx, log, vm, name)
		}
		gone, err := t.verifyCertOwner(ctx, log, vm, name)
		if err != nil {
			if !errors.Is(err, worker.ErrConflict) {
				err = &uncheckedError{err}
			}
			return err
		}
		if gone {
			log.Info().Str("certname", name).Dur("took", time.Since(start)).Msg("certificate already gone")
			return nil
		}
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

// verifyCertOwner makes sure the certificate of certname may be cleaned
// for the deleted vm (verify_cert_age): it reads the certificate's status
// from the CA and refuses, with a Permanent ErrConflict, a certificate the
// CA issued before vm was created (minus ownership_skew): that one was
// another host's before the VM existed; and one issued after vm ended (plus
// ownership_skew): that one is a successor's. A pending CSR is the VM's agent's.
// gone reports that the CA knows nothing of certname. Without a creation
// or end time (the source gave neither) it checks nothing and logs a
// warning.
func (t *Target) verifyCertOwner(ctx context.Context, log zerolog.Logger, vm *eventbus.VM, certname string) (gone bool, err error) {
	if !*t.cfg.VerifyCertAge {
		return false, nil
	}
	known := func(t *time.Time) bool { return t != nil && !t.IsZero() }
	created, ended := vm.Times.Created, vm.Times.Ended
	if !known(created) && !known(ended) {
		log.Warn().Str("certname", certname).Msg("vm creation and end times unknown: cleaning the certificate without checking that it is the vm's")
		return false, nil
	}
	st, found, err := t.ca.certStatus(ctx, certname)
	switch {
	case err != nil:
		return false, err
	case !found:
		return true, nil
	case st.State == "requested":
		return false, nil
	}
	issued, err := st.issued()
	if err != nil {
		return false, worker.Permanent(fmt.Errorf("verify owner of certificate %s: %w", certname, err))
	}
	if known(created) && issued.Before(created.Add(-t.cfg.OwnershipSkew)) {
		return false, worker.Permanent(fmt.Errorf(
			"certificate %s (%s, serial %d) was issued at %s, before vm %s was created at %s (ownership_skew %s): "+
				"it is another host's, not revoked, its node not deactivated: %w",
			certname, st.State, st.SerialNumber, issued.Format(time.RFC3339), vm.Key(),
			created.UTC().Format(time.RFC3339), t.cfg.OwnershipSkew, worker.ErrConflict))
	}
	// A certificate issued after the VM ended is a successor's: a new VM
	// with the same name booted while this delete was retried or replayed.
	if known(ended) && issued.After(ended.Add(t.cfg.OwnershipSkew)) {
		return false, worker.Permanent(fmt.Errorf(
			"certificate %s (%s, serial %d) was issued at %s, after vm %s ended at %s (ownership_skew %s): "+
				"it is a successor's, not revoked, its node not deactivated: %w",
			certname, st.State, st.SerialNumber, issued.Format(time.RFC3339), vm.Key(),
			ended.UTC().Format(time.RFC3339), t.cfg.OwnershipSkew, worker.ErrConflict))
	}
	log.Debug().Str("certname", certname).Time("issued", issued).Msg("certificate is the vm's")
	return false, nil
}

// uncheckedError is a failure to check whose certificate a certname holds
// (the CA unreachable, an unreadable status): the certificate and its node
// are left for a retry. Its message is the cause's.
type uncheckedError struct{ err error }

func (e *uncheckedError) Error() string { return e.err.Error() }
func (e *uncheckedError) Unwrap() error { return e.err }

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
