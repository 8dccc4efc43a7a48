// Command vmglue-hook is vmglue's OpenNebula VM state hook. It publishes the
// VM's event to NATS JetStream, or spools it on disk when NATS cannot take
// it. See package internal/hookcmd for input, options, output and exit codes.
//
// A hook template for `onehook create` (one per state of interest):
//
//	NAME            = vmglue-running
//	TYPE            = state
//	RESOURCE        = VM
//	ON              = RUNNING
//	COMMAND         = /usr/local/bin/vmglue-hook
//	ARGUMENTS       = "$TEMPLATE running"
//	ARGUMENTS_STDIN = yes
//	TIMEOUT         = 15
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/vmglue/vmglue/internal/hookcmd"
)

func main() {
	// A hook lives for a few milliseconds, once per VM state change, many at
	// once: one P spins less, and with at most a few MB of live heap a
	// collection is pure cost. The memory limit still bounds a huge input.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(256 << 20)
	opts := hookcmd.OptionsFromEnv(os.Getenv)
	fs := flag.NewFlagSet("vmglue-hook", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: vmglue-hook [flags] [<base64 VM XML> <word>...]  (default: read them from stdin)")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), hookcmd.UsageNotes)
	}
	opts.RegisterFlags(fs)
	fs.SetOutput(io.Discard) // one line in the hook log, not the whole usage
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.Usage()
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "vmglue-hook: usage: %v (see vmglue-hook -h)\n", err)
		os.Exit(hookcmd.ExitInvalid)
	}
	// HEM's TIMEOUT sends SIGTERM to the process group: Run then spools.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := hookcmd.Run(ctx, opts, os.Stdin, fs.Args(), os.Stderr)
	stop()
	os.Exit(code)
}
