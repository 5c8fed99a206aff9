package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	mdns "github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/svcnet/svcnet/internal/agent"
	"github.com/svcnet/svcnet/internal/cluster"
	"github.com/svcnet/svcnet/internal/dns"
	"github.com/svcnet/svcnet/internal/netns"
	"github.com/svcnet/svcnet/internal/podinit"
)

func dnsCmd(dir func() string) *cobra.Command {
	cmd := &cobra.Command{Use: "dns", Short: "Ask the cluster DNS"}
	var node, server string
	query := &cobra.Command{
		Use:   "query NAME [TYPE]",
		Short: "Query a node's DNS server (default: the first node's), as a pod on that node would",
		Example: `  svcnet dns query my-service.default.svc.cluster.local
  svcnet dns query _http._tcp.web.default.svc.cluster.local SRV --node node-2`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			qtype := mdns.TypeA
			if len(args) == 2 {
				t, ok := mdns.StringToType[strings.ToUpper(args[1])]
				if !ok {
					return fmt.Errorf("unknown record type %q (A, AAAA, SRV, PTR, CNAME, TXT, SOA, NS, ANY)", args[1])
				}
				qtype = t
			}
			if server == "" {
				// Run again inside the node's namespace, where its server's addresses are.
				st, err := cluster.ReadState(dir())
				if err != nil {
					return err
				}
				if node == "" && len(st.Nodes) > 0 {
					node = st.Nodes[0].Name
				}
				ns := ""
				for _, n := range st.Nodes {
					if n.Name == node {
						ns = n.Netns
					}
				}
				if ns == "" {
					return fmt.Errorf("no node %q in this cluster (nodes: %s)", node, nodeNames(st))
				}
				self, err := os.Executable()
				if err != nil {
					return err
				}
				spec := podinit.Spec{Netns: netns.Path(ns), Argv: append([]string{self, "dns", "query", "--server", agent.NodeLocalDNS}, args...)}
				c := exec.Command(self, spec.Args()...)
				c.Stdout, c.Stderr = os.Stdout, os.Stderr
				err = c.Run()
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					os.Exit(ee.ExitCode())
				}
				return err
			}
			m, err := dns.Query(cmd.Context(), server, args[0], qtype)
			if err != nil {
				return err
			}
			fmt.Print(m.String())
			if m.Rcode != mdns.RcodeSuccess {
				os.Exit(1)
			}
			return nil
		},
	}
	query.Flags().StringVar(&node, "node", "", "the node whose server to ask (default: the first)")
	query.Flags().StringVar(&server, "server", "", "ask this server (ip[:port]) from here instead")
	cmd.AddCommand(query)
	return cmd
}

func proxyRulesCmd(dir func() string) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "proxy-rules [--node NAME]",
		Short: "Print the Service proxy's live nftables table of a node (default: the first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := cluster.ReadState(dir())
			if err != nil {
				return err
			}
			if node == "" && len(st.Nodes) > 0 {
				node = st.Nodes[0].Name
			}
			ns := ""
			for _, n := range st.Nodes {
				if n.Name == node {
					ns = n.Netns
				}
			}
			if ns == "" {
				return fmt.Errorf("no node %q in this cluster (nodes: %s)", node, nodeNames(st))
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			spec := podinit.Spec{Netns: netns.Path(ns), Argv: []string{"nft", "list", "table", "inet", "svcnet"}}
			c := exec.Command(self, spec.Args()...)
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
			if err := c.Run(); err != nil {
				return fmt.Errorf("nft list table inet svcnet on %s: %w (is the nft tool installed?)", node, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node (default: the first)")
	return cmd
}
