package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// roleEnv makes the test binary act as a client inside the cluster: tests run it with
// `svcnet exec POD|--outside -- <test binary>`, since they must send no packet from the host's
// namespace.
const roleEnv = "SVCNET_E2E_ROLE"

// runRole runs a client role and returns the exit status. Settings come from the environment:
// ADDR (host:port), DURATION, and role-specific ones.
func runRole(role string) int {
	addr := os.Getenv("ADDR")
	dur, _ := time.ParseDuration(os.Getenv("DURATION"))
	switch role {
	case "load":
		return loadRole(addr, dur)
	case "hosts":
		return hostsRole(addr, dur)
	case "keepalive":
		return keepaliveRole(addr, dur)
	case "udp":
		return udpRole(addr, dur)
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	return 2
}

// loadRole sends HTTP GET /hostname over new connections back to back for the duration and prints
// "ok N failed M" and each failure.
func loadRole(addr string, dur time.Duration) int {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	ok, failed := 0, 0
	for end := time.Now().Add(dur); time.Now().Before(end); {
		resp, err := client.Get("http://" + addr + "/hostname")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			failed++
			fmt.Printf("failure: %v\n", err)
			continue
		}
		ok++
	}
	fmt.Printf("ok %d failed %d\n", ok, failed)
	return 0
}

// keepaliveRole opens ONE TCP connection and sends HTTP requests on it every 100 ms for the
// duration (or until stdin says "stop"), printing "ok N failed M" at the end; a failure ends it.
func keepaliveRole(addr string, dur time.Duration) int {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		fmt.Printf("ok 0 failed 1\ndial: %v\n", err)
		return 0
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	ok := 0
	for end := time.Now().Add(dur); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			fmt.Printf("ok %d failed 1\nwrite: %v\n", ok, err)
			return 0
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			fmt.Printf("ok %d failed 1\nread: %v\n", ok, err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ok++
	}
	fmt.Printf("ok %d failed 0\n", ok)
	return 0
}

// udpRole sends "hostname" from ONE UDP socket (one source port, so one conntrack flow) every
// 100 ms for the duration and prints each answer (or "timeout") on its own line.
func udpRole(addr string, dur time.Duration) int {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	defer conn.Close()
	buf := make([]byte, 1500)
	for end := time.Now().Add(dur); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		_, _ = conn.Write([]byte("hostname"))
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			fmt.Println("timeout")
			continue
		}
		fmt.Println(strings.TrimSpace(string(buf[:n])))
	}
	return 0
}

// parseOKFailed reads the "ok N failed M" line of a role's output.
func parseOKFailed(out string) (ok, failed int, found bool) {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[0] == "ok" && f[2] == "failed" {
			ok, _ = strconv.Atoi(f[1])
			failed, _ = strconv.Atoi(f[3])
			return ok, failed, true
		}
	}
	return 0, 0, false
}

// hostsRole sends GET /hostname back to back for the duration and prints "<unix ms> <answer>" for
// each response.
func hostsRole(addr string, dur time.Duration) int {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for end := time.Now().Add(dur); time.Now().Before(end); {
		resp, err := client.Get("http://" + addr + "/hostname")
		if err != nil {
			fmt.Printf("%d error\n", time.Now().UnixMilli())
			time.Sleep(20 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s\n", time.Now().UnixMilli(), strings.TrimSpace(string(b)))
	}
	return 0
}
