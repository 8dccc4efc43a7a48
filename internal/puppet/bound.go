package puppet

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// cleanBound cleans the certificate of certname for the deleted vm when,
// and only when, it is the one `vmglue autosign` signed for vm: the
// certname's binding names vm, and the certificate (or pending request) on
// the CA carries the bound public key. Then the binding goes.
//
//   - No binding and no certificate: nothing to clean (a name the VM had
//     before its agent asked for one); a pending request is discarded.
//   - No binding, or one naming another VM: the certificate was not signed
//     for vm (a tenant renamed vm to another VM's name, or an operator
//     signed it by hand): a Permanent ErrConflict, nothing revoked, and
//     Apply leaves the certname's node alone too.
//   - The CA has another key under the certname: vm's certificate is gone
//     and someone else's took its name: a Permanent ErrConflict as well.
//   - The CA knows nothing of the certname: already clean.
func (t *Target) cleanBound(ctx context.Context, log zerolog.Logger, vm *eventbus.VM, certname string) error {
	start := t.now()
	b, _, err := t.bindings.Get(ctx, certname)
	if err != nil {
		return &uncheckedError{err}
	}
	if b == nil {
		// A name the VM had but never got a certificate for (renamed
		// before its agent asked, or refused) is no conflict while the CA
		// has no certificate: at most a pending request, which grants
		// nothing and would block the name's next VM, so it goes.
		st, found, err := t.ca.certStatus(ctx, certname)
		switch {
		case err != nil:
			return &uncheckedError{err}
		case !found:
			log.Info().Str("certname", certname).Msg("no certificate and no binding: nothing to clean")
			return nil
		case st.State == "requested":
			if _, err := t.ca.cleanCert(ctx, certname); err != nil {
				return err
			}
			log.Info().Str("certname", certname).Msg("pending request discarded (no certificate was signed)")
			return nil
		}
	}
	if b == nil || b.VM != vm.Key() {
		holder := "no vm: not signed by vmglue autosign"
		if b != nil {
			holder = fmt.Sprintf("vm %s since %s", b.VM, b.Signed.Format(time.RFC3339))
		}
		return worker.Permanent(fmt.Errorf("certificate %s is bound to %s, not to vm %s: not revoked, its node not deactivated: %w",
			certname, holder, vm.Key(), worker.ErrConflict))
	}
	key, state, err := t.ca.publicKey(ctx, certname)
	if err != nil {
		return &uncheckedError{err}
	}
	switch {
	case state == "":
		log.Info().Str("certname", certname).Dur("took", time.Since(start)).Msg("certificate already gone")
	case key != b.PublicKey:
		return worker.Permanent(fmt.Errorf("certificate %s on the CA (%s) has another public key than the one signed for vm %s: "+
			"not revoked, its node not deactivated: %w", certname, state, vm.Key(), worker.ErrConflict))
	default:
		what, err := t.ca.cleanCert(ctx, certname)
		if err != nil {
			return err
		}
		log.Info().Str("certname", certname).Str("removed", what).Dur("took", time.Since(start)).Msg("certificate cleaned")
	}
	if err := t.bindings.Release(ctx, certname, vm.Key()); err != nil {
		// A stale binding of a deleted VM blocks nobody (Bind replaces it).
		log.Warn().Err(err).Str("certname", certname).Msg("certificate binding not removed")
	}
	return nil
}

// publicKey returns PublicKeyID of what the CA holds under certname, with
// its state ("signed", "revoked", "requested"); state "" when the CA
// knows nothing of it. It reads the certificate (or the pending request)
// through the endpoints every client may read.
func (c *client) publicKey(ctx context.Context, certname string) (key, state string, err error) {
	st, found, err := c.certStatus(ctx, certname)
	if err != nil || !found {
		return "", "", err
	}
	path, typ := "/puppet-ca/v1/certificate/", "CERTIFICATE"
	if st.State == "requested" {
		path, typ = "/puppet-ca/v1/certificate_request/", "CERTIFICATE REQUEST"
	}
	op := "get " + path + certname
	code, body, err := c.doAccept(ctx, http.MethodGet, path+url.PathEscape(certname), nil, nil, "text/plain")
	switch {
	case err != nil:
		return "", "", fmt.Errorf("%s: %w", op, err)
	case code == http.StatusNotFound:
		// Removed between the two reads: the next attempt looks again.
		return "", "", fmt.Errorf("%s: %s answered 404 after status %q", op, c.name, st.State)
	case code != http.StatusOK:
		return "", "", c.statusError(op, code, body)
	}
	block, _ := pem.Decode(body)
	if block == nil || block.Type != typ {
		return "", "", worker.Permanent(fmt.Errorf("%s: no PEM %s in the answer", op, typ))
	}
	var spki []byte
	if typ == "CERTIFICATE" {
		cert, perr := x509.ParseCertificate(block.Bytes)
		if perr == nil {
			spki = cert.RawSubjectPublicKeyInfo
		}
		err = perr
	} else {
		csr, perr := x509.ParseCertificateRequest(block.Bytes)
		if perr == nil {
			spki = csr.RawSubjectPublicKeyInfo
		}
		err = perr
	}
	if err != nil {
		return "", "", worker.Permanent(fmt.Errorf("%s: parse: %w", op, err))
	}
	return PublicKeyID(spki), st.State, nil
}
