// Command vmglue runs the workers (`vmglue serve`) and the ops commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmglue/vmglue/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
