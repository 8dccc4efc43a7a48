// Package cli is the `vmglue` command line: serve and the ops commands. Each
// command parses its flags into options and calls the package that owns the
// work: serve.Run, or for vm, status, tail, replay and dlq the functions of
// internal/ops, whose results it prints as text or JSON.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/config"
)

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"

type globals struct {
	configPath string
	natsURL    string
	// showSecrets prints secret VM attributes (eventbus.SecretAttribute)
	// in JSON output instead of eventbus.RedactedValue.
	showSecrets bool
	// secrets are the secret attribute names of the loaded config.
	secrets *eventbus.SecretNames
	stdout  io.Writer
	stderr  io.Writer
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return ExecuteIO(ctx, args, os.Stdin, stdout, stderr)
}

// ExecuteIO is Execute with an explicit stdin (vmglue autosign reads the CSR
// from it).
func ExecuteIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "vmglue",
		Short:         "vmglue keeps DNS, Puppet, monitoring and load balancers in step with your cloud's VMs",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", os.Getenv("VMGLUE_CONFIG"), "config file (env VMGLUE_CONFIG)")
	root.PersistentFlags().BoolVar(&g.showSecrets, "show-secrets", false, "print secret VM attributes (PUPPET_CHALLENGE, *PASSWORD*, *TOKEN*, ...) in JSON output instead of "+eventbus.RedactedValue)
	root.PersistentFlags().StringVarP(&g.natsURL, "server", "s", os.Getenv("VMGLUE_NATS_URL"), "NATS URL for the ops commands (env VMGLUE_NATS_URL; default: nats.url of the config, else the embedded server's address)")
	root.AddCommand(serveCmd(g), tailCmd(g), spoolCmd(g), configCmd(g))
	root.AddCommand(vmCmd(g), statusCmd(g), dlqCmd(g), replayCmd(g), reconcileCmd(g), autosignCmd(g), sweepCmd(g), bridgeCmd(g), listenCmd(g))
	if err := root.ExecuteContext(ctx); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintf(stderr, "vmglue: %v\n", ee.err)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "vmglue: %v\n", err)
		return 1
	}
	return 0
}

// exitError makes Execute return code instead of 1. Its err, when set, is
// printed as the one error line; a nil err means the command already wrote
// its own line (autosign, for Puppet Server's log).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func (g *globals) load() (*config.Config, error) {
	cfg, err := config.Load(g.configPath)
	if err == nil {
		g.secrets = cfg.SecretNames()
	}
	return cfg, err
}

// defaultWorkers gives serve's workers when there is no configuration
// file at all: the monitor worker's file_sd output into the data directory
// (config.DefaultWorkers). A configuration file replaces it.
func (g *globals) defaultWorkers(cfg *config.Config) {
	if g.configPath == "" {
		cfg.Workers = config.DefaultWorkers(cfg.NATS.Embedded.DataDir)
	}
}

// clientURL is where the ops commands connect.
func (g *globals) clientURL(cfg *config.Config) string {
	switch {
	case g.natsURL != "":
		return g.natsURL
	case cfg.NATS.URL != "":
		return cfg.NATS.URL
	default:
		return "nats://" + cfg.NATS.Embedded.Listen
	}
}

func newLogger(cfg config.Log, w io.Writer) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(cfg.Level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	out := w
	console := cfg.Format == "console"
	if cfg.Format == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	}
	if console {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}
