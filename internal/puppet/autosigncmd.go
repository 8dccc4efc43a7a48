package puppet

import (
	"context"
	"fmt"
	"io"
)

// Exit codes of Main, i.e. of `vmglue autosign`. Puppet Server signs only on 0.
const (
	ExitSign   = 0
	ExitRefuse = 1
	ExitError  = 2
)

// maxCSR bounds what Main reads from stdin (a CSR is about 1.7 kB).
const maxCSR = 64 << 10

// Main is the body of `vmglue autosign <certname>` as Puppet Server runs it
// (policy-based autosigning): args holds the certname, stdin the CSR PEM.
// It writes one line to stderr (Puppet Server logs it) and returns
// ExitSign, ExitRefuse, or ExitError for a usage error or a failed lookup,
// which refuses too. The caller wires the policy (KVLookup, Bindings, the
// challenge key).
func Main(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer, p Policy) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: vmglue autosign <certname> < csr.pem (run by Puppet Server)")
		return ExitError
	}
	csr, err := io.ReadAll(io.LimitReader(stdin, maxCSR+1))
	if err != nil {
		fmt.Fprintf(stderr, "refused %s: read CSR from stdin: %v\n", excerpt([]byte(args[0])), err)
		return ExitError
	}
	if len(csr) > maxCSR {
		fmt.Fprintf(stderr, "refused %s: CSR larger than %d bytes\n", excerpt([]byte(args[0])), maxCSR)
		return ExitRefuse
	}
	d, err := Autosign(ctx, args[0], csr, p)
	if err != nil {
		fmt.Fprintf(stderr, "refused %s: %v\n", excerpt([]byte(args[0])), err)
		return ExitError
	}
	fmt.Fprintln(stderr, d.Reason)
	if d.Sign {
		return ExitSign
	}
	return ExitRefuse
}
