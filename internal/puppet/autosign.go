package puppet

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vmglue/vmglue/eventbus"
)

// Lookup finds the newest snapshot of the VM a certname belongs to.
type Lookup interface {
	// VMByCertname returns the VM whose certname is certname, or
	// (nil, nil) when no VM has it. An error means the answer is unknown.
	VMByCertname(ctx context.Context, certname string) (*eventbus.VM, error)
}

// Binder records which VM a certificate is signed for (Bindings).
type Binder interface {
	// Bind binds certname to vm and the public key (PublicKeyID); an
	// error wrapping ErrHeld means another live VM holds certname.
	Bind(ctx context.Context, certname string, vm *eventbus.VM, publicKey string) error
}

// Policy is what Autosign decides with, besides the CSR.
type Policy struct {
	Lookup Lookup
	Binder Binder
	Config AutosignConfig
	// ChallengeKey checks the challenge (require_challenge); when it is
	// nil, KeyErr says why.
	ChallengeKey []byte
	KeyErr       error
}

// Decision is the outcome of Autosign.
type Decision struct {
	Sign   bool
	Reason string // one line, for Puppet Server's log
	VM     string // the VM's key when one was found
}

// SignKinds are the kinds of a VM whose CSR may be signed: it is booting
// (starting) or booted (running, changing, migrating). A VM that never
// booted (created: PENDING, HOLD), a stopped, stopping, failed, unknown or
// deleted VM gets nothing: its agent cannot be running, so a CSR in its
// name is someone else's.
var SignKinds = []string{eventbus.KindStarting, eventbus.KindRunning, eventbus.KindChanging, eventbus.KindMigrating}

// Autosign decides whether Puppet Server may sign the CSR certname sent:
// the CSR must parse, carry a valid self-signature and the certname as its
// subject CN, and ask for nothing but a node certificate (overreach: no
// subject alternative name but DNS:<certname>, no authorization
// extension); a VM with that certname must be known and in one of
// SignKinds; with require_challenge its challengePassword must match the
// MAC of the VM's challenge attribute under the challenge key
// (eventbus.MatchChallenge); last, the certname is bound to the VM and the
// CSR's public key (Binder), which fails when another live VM holds it.
// Every refusal carries one reason. An error (the lookup or the binding
// failed, no challenge key) is a refusal too, never a signature.
func Autosign(ctx context.Context, certname string, csrPEM []byte, p Policy) (Decision, error) {
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
	cfg := p.Config
	if cfg.RequireChallenge && len(p.ChallengeKey) == 0 {
		d, _ := refuse("require_challenge without a challenge key")
		return d, fmt.Errorf("challenge key: %w", cmp.Or(p.KeyErr, eventbus.ErrNoChallengeKey))
	}
	if p.Lookup == nil || p.Binder == nil {
		d, _ := refuse("no vm lookup or binder")
		return d, errors.New("autosign: policy without a vm lookup or binder")
	}
	vm, err := p.Lookup.VMByCertname(ctx, certname)
	if err != nil {
		d, _ := refuse("vm lookup failed")
		return d, fmt.Errorf("look up vm of %s: %w", certname, err)
	}
	if vm == nil {
		return refuse("no VM known with this certname")
	}
	d := Decision{VM: vm.Key()}
	if !slices.Contains(SignKinds, vm.Kind) {
		d.Reason = fmt.Sprintf("refused %s: vm %s is %s (autosign signs only a VM that is booting or booted)", certname, vm.Key(), vm.Kind)
		return d, nil
	}
	if cfg.RequireChallenge {
		want := vm.Attributes[cfg.ChallengeAttribute]
		got, err := challengePassword(csr)
		switch {
		case want == "":
			d.Reason = fmt.Sprintf("refused %s: vm %s has no %s attribute (or the hook has no challenge key)", certname, vm.Key(), cfg.ChallengeAttribute)
			return d, nil
		case !strings.HasPrefix(want, eventbus.ChallengePrefix):
			d.Reason = fmt.Sprintf("refused %s: vm %s's %s is not a keyed MAC (sent by an older hook, or the hook's challenge attribute differs)",
				certname, vm.Key(), cfg.ChallengeAttribute)
			return d, nil
		case err != nil:
			d.Reason = fmt.Sprintf("refused %s: %v", certname, err)
			return d, nil
		case !eventbus.MatchChallenge(p.ChallengeKey, vm, want, got):
			d.Reason = fmt.Sprintf("refused %s: challengePassword does not match vm %s's %s", certname, vm.Key(), cfg.ChallengeAttribute)
			return d, nil
		}
	}
	if err := p.Binder.Bind(ctx, certname, vm, PublicKeyID(csr.RawSubjectPublicKeyInfo)); err != nil {
		if errors.Is(err, ErrHeld) {
			d.Reason = fmt.Sprintf("refused %s for vm %s: %v", certname, vm.Key(), err)
			return d, nil
		}
		d.Reason = fmt.Sprintf("refused %s: binding to vm %s failed", certname, vm.Key())
		return d, fmt.Errorf("bind %s to vm %s: %w", certname, vm.Key(), err)
	}
	d.Sign = true
	d.Reason = fmt.Sprintf("signed %s: vm %s is %s", certname, vm.Key(), vm.Kind)
	return d, nil
}
