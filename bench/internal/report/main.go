package report

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main runs a benchmark as every command's main does: run gets a context that ends after timeout or
// on SIGINT or SIGTERM, which stay caught until run has returned (so that a second Ctrl-C does not
// cut its clean-up short), and a table to fill. The table goes to stdout whatever run returns. An
// error goes to stderr as "name: error" and the process exits with status 1; when onSignal is not ""
// and a signal ended the run, onSignal is put before the error (or is the error).
func Main(name string, timeout time.Duration, onSignal string, run func(context.Context, *Table) error) {
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(sigCtx, timeout)
	var t Table
	err := run(ctx, &t)
	interrupted := sigCtx.Err() != nil
	cancel()
	stop()
	t.Print(os.Stdout)
	if interrupted && onSignal != "" {
		err = errors.Join(errors.New(onSignal), err)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
