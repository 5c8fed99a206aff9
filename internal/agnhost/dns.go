package agnhost

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// panicExitCode is what the real agnhost's dns subcommands exit with: they panic on any failure.
const panicExitCode = 2

func newDNSSuffixCommand(e *env, code *int) *cobra.Command {
	return &cobra.Command{
		Use:   "dns-suffix",
		Short: "Prints the host's DNS suffix list",
		Long:  `Prints the DNS suffixes of this host.`,
		Args:  cobra.MaximumNArgs(0),
		Run: func(*cobra.Command, []string) {
			*code = printResolvConfList(e, "search")
		},
	}
}

func newDNSServerListCommand(e *env, code *int) *cobra.Command {
	return &cobra.Command{
		Use:   "dns-server-list",
		Short: "Prints the host's DNS Server list",
		Long:  `Prints the DNS Server list of this host.`,
		Args:  cobra.MaximumNArgs(0),
		Run: func(*cobra.Command, []string) {
			*code = printResolvConfList(e, "nameserver")
		},
	}
}

func newEtcHostsCommand(e *env, code *int) *cobra.Command {
	return &cobra.Command{
		Use:   "etc-hosts",
		Short: "Prints the host's /etc/hosts file",
		Long:  `Prints the "hosts" file of this host.`,
		Args:  cobra.MaximumNArgs(0),
		Run: func(*cobra.Command, []string) {
			data, err := os.ReadFile(e.opts.etcHosts)
			if err != nil {
				fmt.Fprintf(e.stderr, "Error: %v\n", err)
				*code = panicExitCode
				return
			}
			fmt.Fprintln(e.stdout, string(data))
		},
	}
}

// printResolvConfList prints, comma separated, the values of the first resolv.conf line starting with
// keyword, exactly as the real agnhost does (it splits on single spaces).
func printResolvConfList(e *env, keyword string) int {
	data, err := os.ReadFile(e.opts.resolvConf)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %v\n", err)
		return panicExitCode
	}
	values, ok := resolvConfList(string(data), keyword)
	if !ok {
		fmt.Fprintf(e.stderr, "Error: Could not find DNS %s list in %s!\n", keyword, e.opts.resolvConf)
		return panicExitCode
	}
	fmt.Fprintln(e.stdout, strings.Join(values, ","))
	return 0
}

func resolvConfList(data, keyword string) ([]string, bool) {
	for _, line := range strings.Split(data, "\n") {
		if strings.HasPrefix(line, keyword) {
			return strings.Split(line, " ")[1:], true
		}
	}
	return nil, false
}
