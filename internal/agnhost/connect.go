package agnhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// connectConfig holds connect's flags.
type connectConfig struct {
	timeout  time.Duration
	protocol string
	udpData  string
	sctpData string
}

func newConnectCommand(e *env, code *int) *cobra.Command {
	cfg := connectConfig{}
	cmd := &cobra.Command{
		Use:   "connect [host:port]",
		Short: "Attempts a TCP, UDP or SCTP connection and returns useful errors",
		Long: `Tries to open a TCP, UDP or SCTP connection to the given host and port. On error it prints an error message prefixed with a specific fixed string that test cases can check for:

* UNKNOWN - Generic/unknown (non-network) error (eg, bad arguments)
* TIMEOUT - The connection attempt timed out
* DNS - An error in DNS resolution
* REFUSED - Connection refused
* OTHER - Other networking error (eg, "no route to host")`,
		Args: cobra.ExactArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			*code = runConnect(cmd.Context(), e, args[0], cfg)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.timeout, "timeout", 0, "Maximum time before returning an error")
	f.StringVar(&cfg.protocol, "protocol", "tcp", "The protocol to use to perform the connection, can be tcp, udp or sctp")
	f.StringVar(&cfg.udpData, "udp-data", "hostname", "The UDP payload send to the server")
	f.StringVar(&cfg.sctpData, "sctp-data", "hostname", "The SCTP payload send to the server")
	return cmd
}

// runConnect returns 0 when the connection works and 1 otherwise, printing the reason with the real
// agnhost's fixed prefixes.
func runConnect(ctx context.Context, e *env, dest string, cfg connectConfig) int {
	var msg string
	switch cfg.protocol {
	case "", "tcp":
		msg = connectTCP(ctx, dest, cfg.timeout)
	case "udp":
		msg = connectUDP(ctx, dest, cfg.timeout, cfg.udpData)
	case "sctp":
		msg = connectSCTP(dest)
	default:
		msg = fmt.Sprint("Unsupported protocol\n", cfg.protocol)
	}
	if msg == "" {
		return 0
	}
	fmt.Fprint(e.stderr, msg)
	return 1
}

func connectTCP(ctx context.Context, dest string, timeout time.Duration) string {
	// Parse and resolve first so that the errors name the right cause.
	if _, _, err := net.SplitHostPort(dest); err != nil {
		return fmt.Sprintf("UNKNOWN: %v\n", err)
	}
	if _, err := net.ResolveTCPAddr("tcp", dest); err != nil {
		return fmt.Sprintf("DNS: %v\n", err)
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", dest)
	if err == nil {
		conn.Close()
		return ""
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		if opErr.Timeout() {
			return "TIMEOUT\n"
		}
		if errors.Is(opErr.Err, syscall.ECONNREFUSED) {
			return "REFUSED\n"
		}
	}
	return fmt.Sprintf("OTHER: %v\n", err)
}

func connectUDP(ctx context.Context, dest string, timeout time.Duration, data string) string {
	if _, err := net.ResolveUDPAddr("udp", dest); err != nil {
		return fmt.Sprintf("DNS: %v\n", err)
	}
	conn, err := net.Dial("udp", dest)
	if err != nil {
		return fmt.Sprintf("OTHER: %v\n", err)
	}
	defer conn.Close()
	// Without --timeout the read waits for ever, as in the real agnhost, unless ctx ends.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if timeout > 0 {
		if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
			return fmt.Sprintf("OTHER: %v\n", err)
		}
	}
	if _, err := conn.Write([]byte(data + "\n")); err != nil {
		return udpErrorMessage(err)
	}
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		return udpErrorMessage(err)
	}
	if n == 0 {
		return "OTHER: No data received from the server. Cannot guarantee the server received the request.\n"
	}
	return ""
}

func udpErrorMessage(err error) string {
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("TIMEOUT: %v\n", err)
	case strings.Contains(err.Error(), "connection refused"):
		return fmt.Sprintf("REFUSED: %v\n", err)
	default:
		return fmt.Sprintf("UNKNOWN: %v\n", err)
	}
}

// connectSCTP resolves dest like the real agnhost, then reports that svcnet does not speak SCTP.
func connectSCTP(dest string) string {
	host, _, err := net.SplitHostPort(dest)
	if err == nil {
		_, err = net.ResolveIPAddr("ip", host)
	}
	if err != nil {
		return fmt.Sprintf("DNS: %v\n", err)
	}
	return fmt.Sprintf("OTHER: %v\n", errSCTPUnsupported)
}
