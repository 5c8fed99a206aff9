// Package agnhost is svcnet's own implementation of the Kubernetes e2e test image
// registry.k8s.io/e2e-test-images/agnhost. Containers that use that image run Main instead of the
// real binary, so manifests written for Kubernetes' network e2e tests run unchanged. The subcommands
// that matter for Service networking (netexec, serve-hostname, pause, connect, dns-suffix,
// dns-server-list, etc-hosts) follow the real agnhost's flags, paths and response formats.
package agnhost

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/spf13/cobra"
)

// version is reported by --version; it names the agnhost release whose behaviour this package follows.
const version = "2.53-svcnet"

// options are the knobs tests use; Main always runs with defaultOptions.
type options struct {
	// listenHost replaces the wildcard host in every listening address ("" listens on all addresses).
	listenHost string
	// onReady, when set, is called once a server subcommand has bound all its sockets, with the
	// bound address of each ("http", "udp", "tcp").
	onReady func(map[string]net.Addr)
	// resolvConf and etcHosts are the files the dns subcommands read.
	resolvConf string
	etcHosts   string
	// uploadDir is where netexec's /upload writes files.
	uploadDir string
	// shellPath runs netexec's /shell commands.
	shellPath string
}

func defaultOptions() options {
	return options{
		resolvConf: "/etc/resolv.conf",
		etcHosts:   "/etc/hosts",
		uploadDir:  "/uploads",
		shellPath:  "/bin/sh",
	}
}

// env is what every subcommand runs with.
type env struct {
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	opts   options
}

// listenAddr returns the address to listen on for port, honouring options.listenHost.
func (e *env) listenAddr(port int) string {
	return net.JoinHostPort(e.opts.listenHost, fmt.Sprint(port))
}

func (e *env) ready(addrs map[string]net.Addr) {
	if e.opts.onReady != nil {
		e.opts.onReady(addrs)
	}
}

// Main runs agnhost with the container's args (args[0] is the subcommand, e.g. "netexec"; a leading
// "/agnhost" or "agnhost" element, as in command: ["/agnhost","netexec"], is skipped). It returns the
// process exit code. It blocks for server subcommands until ctx ends or /exit or /shutdown is hit.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, stdout, stderr, defaultOptions())
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, opts options) int {
	if len(args) > 0 && filepath.Base(args[0]) == "agnhost" {
		args = args[1:]
	}
	if len(args) == 0 {
		// The image's CMD is ["pause"].
		args = []string{"pause"}
	}
	e := &env{
		stdout: stdout,
		stderr: stderr,
		log:    slog.New(slog.NewTextHandler(stderr, nil)),
		opts:   opts,
	}
	code := 0
	root := newRootCommand(e, &code)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		return 1
	}
	return code
}

// newRootCommand builds a fresh command tree; the chosen subcommand stores its exit code in *code.
func newRootCommand(e *env, code *int) *cobra.Command {
	root := &cobra.Command{
		Use:          "agnhost",
		Short:        "svcnet's implementation of the agnhost e2e test image",
		Version:      version,
		SilenceUsage: true,
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())
	})
	addLoggingFlags(root)

	for _, c := range []*cobra.Command{
		newNetexecCommand(e, code),
		newServeHostnameCommand(e, code),
		newPauseCommand(e, code),
		newConnectCommand(e, code),
		newDNSSuffixCommand(e, code),
		newDNSServerListCommand(e, code),
		newEtcHostsCommand(e, code),
	} {
		root.AddCommand(c)
	}
	return root
}

// addLoggingFlags accepts, and ignores, the klog flags the real agnhost registers on its root
// command: some e2e manifests pass them. They are not bound to klog so that running agnhost inside
// another process cannot change that process's logging.
func addLoggingFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	for _, name := range []string{"log_dir", "log_file", "log_file_max_size", "stderrthreshold", "vmodule", "log_backtrace_at"} {
		f.String(name, "", "accepted for compatibility with the real agnhost; ignored")
	}
	f.StringP("v", "v", "0", "accepted for compatibility with the real agnhost; ignored")
	for _, name := range []string{"logtostderr", "alsologtostderr", "add_dir_header", "skip_headers", "one_output", "skip_log_headers"} {
		f.Bool(name, false, "accepted for compatibility with the real agnhost; ignored")
	}
}
