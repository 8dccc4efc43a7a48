package puppet

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"

	"github.com/vmglue/vmglue/eventbus"
)

// Lookup finds the newest snapshot of the VM a certname belongs to.
type Lookup interface {
	// VMByCertname returns the VM whose certname is certname, or
	// (nil, nil) when no VM has it. An error means the answer is unknown.
	VMByCertname(ctx context.Context, certname string) (*eventbus.VM, error)
}

// Decision is the outcome of Autosign.
type Decision struct {
	Sign   bool
	Reason string // one line, for Puppet Server's log
	VM     string // the VM's key when one was found
}

// SignKinds are the kinds of a VM whose CSR may be signed: it exists and is
// on its way to running or running. A stopped, failed, unknown or deleted VM
// gets nothing.
var SignKinds = []string{eventbus.KindCreated, eventbus.KindStarting, eventbus.KindRunning,
	eventbus.KindChanging, eventbus.KindMigrating}

// Autosign decides whether Puppet Server may sign the CSR certname sent:
// the CSR must parse, carry a valid self-signature and the certname as its
// subject CN, and ask for nothing but a node certificate (overreach: no
// subject alternative name but DNS:<certname>, no authorization
// extension); a VM with that certname must be known, not deleted and in one
// of SignKinds; with require_challenge its challengePassword must match
// the VM's challenge attribute (sealed by the hook, or in clear text from
// older events: eventbus.MatchSecret). Every refusal carries one reason. An error
// (the lookup failed) is a refusal too, never a signature.
func Autosign(ctx context.Context, certname string, csrPEM []byte, lookup Lookup, cfg AutosignConfig) (Decision, error) {
	refuse := func(format string, a ...any) (Decision, error) {
		return Decision{Reason: fmt.Sprintf("refused %s: ", certname) + fmt.Sprintf(format, a...)}, nil
	}
	if !ValidCertname(certname) {
		return Decision{Reason: fmt.Sprintf("refused %q: not a valid certname", excerpt([]byte(certname)))}, nil
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return refuse("no PEM certificate request on stdin")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return refuse("unparsable CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return refuse("CSR signature invalid: %v", err)
	}
	if csr.Subject.CommonName != certname {
		return refuse("CSR subject CN %q does not match the certname", csr.Subject.CommonName)
	}
	if reason := overreach(csr, certname); reason != "" {
		return refuse("%s", reason)
	}
	vm, err := lookup.VMByCertname(ctx, certname)
	if err != nil {
		d, _ := refuse("vm lookup failed")
		return d, fmt.Errorf("look up vm of %s: %w", certname, err)
	}
	if vm == nil {
		return refuse("no VM known with this certname")
	}
	d := Decision{VM: vm.Key()}
	if !slices.Contains(SignKinds, vm.Kind) {
		d.Reason = fmt.Sprintf("refused %s: vm %s is %s", certname, vm.Key(), vm.Kind)
		return d, nil
	}
	if cfg.RequireChallenge {
		want := vm.Attributes[cfg.ChallengeAttribute]
		got, err := challengePassword(csr)
		switch {
		case want == "":
			d.Reason = fmt.Sprintf("refused %s: vm %s has no %s attribute", certname, vm.Key(), cfg.ChallengeAttribute)
			return d, nil
		case err != nil:
			d.Reason = fmt.Sprintf("refused %s: %v", certname, err)
			return d, nil
		case !eventbus.MatchSecret(vm, want, got):
			d.Reason = fmt.Sprintf("refused %s: challengePassword does not match vm %s's %s", certname, vm.Key(), cfg.ChallengeAttribute)
			return d, nil
		}
	}
	d.Sign = true
	d.Reason = fmt.Sprintf("signed %s: vm %s is %s", certname, vm.Key(), vm.Kind)
	return d, nil
}
