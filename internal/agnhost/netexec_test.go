package agnhost

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var families = []struct {
	name string
	host string
}{
	{"ipv4", "127.0.0.1"},
	{"ipv6", "::1"},
}

func netexecArgs(extra ...string) []string {
	return append([]string{"netexec", "--http-port=0", "--udp-port=0"}, extra...)
}

func TestNetexecHTTPHandlers(t *testing.T) {
	host := hostname(t)
	type tc struct {
		name       string
		path       string
		header     map[string]string
		wantStatus int
		want       string         // exact body; "{hostname}" and "{client}" are replaced
		wantRE     *regexp.Regexp // instead of want
		wantHeader map[string]string
	}
	cases := []tc{
		{name: "root", path: "/", wantStatus: 200,
			wantRE: regexp.MustCompile(`^NOW: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ [+-]\d{4} \S+( m=[+-]\d+\.\d+)?$`)},
		{name: "unknown path is root", path: "/no/such/thing", wantStatus: 200, wantRE: regexp.MustCompile(`^NOW: `)},
		{name: "clientip", path: "/clientip", wantStatus: 200, want: "{client}"},
		{name: "header key", path: "/header?key=X-Forwarded-For", header: map[string]string{"X-Forwarded-For": "10.0.0.7"},
			wantStatus: 200, want: "10.0.0.7"},
		{name: "header missing key", path: "/header?key=X-Nothing", wantStatus: 200, want: ""},
		{name: "header all", path: "/header", header: map[string]string{"User-Agent": "svcnet-test", "X-Test": "abc"},
			wantStatus: 200, want: `{"User-Agent":["svcnet-test"],"X-Test":["abc"]}`},
		{name: "echo", path: "/echo?msg=hello%20world", wantStatus: 200, want: "hello world"},
		{name: "echo empty", path: "/echo", wantStatus: 200, want: ""},
		{name: "echo code", path: "/echo?msg=gone&code=404", wantStatus: 404, want: "gone"},
		{name: "echo bad code", path: "/echo?msg=x&code=abc", wantStatus: 200,
			want: "argument 'code' must be an integer or empty, got \"abc\"\n"},
		{name: "hostname", path: "/hostname", wantStatus: 200, want: "{hostname}"},
		{name: "hostName", path: "/hostName", wantStatus: 200, want: "{hostname}"},
		{name: "healthz", path: "/healthz", wantStatus: 200, want: ""},
		{name: "readyz", path: "/readyz", wantStatus: 200, want: "ok"},
		{name: "shell cmd", path: "/shell?cmd=" + url.QueryEscape("echo hi; echo there"), wantStatus: 200,
			want: `{"output":"hi\nthere\n"}`},
		{name: "shell shellCommand", path: "/shell?shellCommand=" + url.QueryEscape("printf a-b"), wantStatus: 200,
			want: `{"output":"a-b"}`},
		{name: "shell failure", path: "/shell?cmd=" + url.QueryEscape("echo oops >&2; exit 3"), wantStatus: 200,
			want: `{"error":"exit status 3","output":"oops\n"}`},
		{name: "shell silent failure", path: "/shell?cmd=false", wantStatus: 200, want: `{"error":"exit status 1"}`},
		{name: "redirect", path: "/redirect?location=" + url.QueryEscape("/echo?msg=foobar") + "&code=307",
			wantStatus: 307, wantRE: regexp.MustCompile(`^<a href="/echo\?msg=foobar">Temporary Redirect</a>.\n\n$`),
			wantHeader: map[string]string{"Location": "/echo?msg=foobar"}},
		{name: "redirect default code", path: "/redirect?location=/hostname", wantStatus: 302,
			wantRE: regexp.MustCompile(`Found`), wantHeader: map[string]string{"Location": "/hostname"}},
		{name: "redirect bad code", path: "/redirect?location=/x&code=abc", wantStatus: 200,
			want: "argument 'code' must be an integer or empty, got \"abc\"\n"},
		{name: "exit bad code", path: "/exit?code=abc", wantStatus: 200,
			want: "argument 'code' must be an integer [0-127] or empty, got \"abc\"\n"},
		{name: "exit bad timeout", path: "/exit?timeout=abc", wantStatus: 200,
			want: "argument 'timeout' must be a valid golang duration or empty, got \"abc\"\n"},
		{name: "exit bad wait", path: "/exit?wait=abc", wantStatus: 200,
			want: "argument 'wait' must be a valid golang duration or empty, got \"abc\"\n"},
		{name: "upload without file", path: "/upload", wantStatus: 200, want: `{"error":"Unable to upload file."}`},
		{name: "dial without request", path: "/dial?host=127.0.0.1&port=80", wantStatus: 400,
			want: "request parameter not specified. <nil>\n"},
		{name: "dial bad tries", path: "/dial?host=127.0.0.1&port=80&request=hostname&tries=abc", wantStatus: 400,
			want: "tries parameter is invalid. strconv.Atoi: parsing \"abc\": invalid syntax\n"},
		{name: "dial bad protocol", path: "/dial?host=127.0.0.1&port=80&request=hostname&protocol=icmp", wantStatus: 400,
			want: "unsupported protocol. icmp\n"},
		{name: "dial bad port", path: "/dial?host=127.0.0.1&port=99999&request=hostname", wantStatus: 400,
			wantRE: regexp.MustCompile(`^host and/or port param are invalid\. .*invalid port`)},
	}
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			if fam.host == "::1" {
				ipv6Available(t)
			}
			in := startOn(t, fam.host, netexecArgs(), nil)
			base := "http://" + net.JoinHostPort(fam.host, strconv.Itoa(in.port("http")))
			client := newClient()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					res := httpGet(t, client, base+c.path, c.header)
					if res.err != nil {
						t.Fatalf("GET %s: %v", c.path, res.err)
					}
					if res.status != c.wantStatus {
						t.Errorf("GET %s: status %d, want %d (body %q)", c.path, res.status, c.wantStatus, res.body)
					}
					if c.wantRE != nil {
						if !c.wantRE.MatchString(res.body) {
							t.Errorf("GET %s: body %q does not match %s", c.path, res.body, c.wantRE)
						}
					} else {
						want := strings.NewReplacer("{hostname}", host, "{client}", res.local).Replace(c.want)
						if res.body != want {
							t.Errorf("GET %s: body %q, want %q", c.path, res.body, want)
						}
					}
					for k, v := range c.wantHeader {
						if got := res.header.Get(k); got != v {
							t.Errorf("GET %s: header %s = %q, want %q", c.path, k, got, v)
						}
					}
				})
			}
			if in.exited() {
				t.Fatalf("netexec exited during handler tests; stderr:\n%s", in.stderr.String())
			}
		})
	}
}

func TestNetexecUDP(t *testing.T) {
	host := hostname(t)
	cases := []struct {
		name string
		send string
		want string // "{hostname}" and "{client}" are replaced
	}{
		{"hostname", "hostname", "{hostname}"},
		{"hostname is case and space insensitive", "  HostName\n", "{hostname}"},
		{"echo", "echo hello", "hello"},
		{"echo is lower-cased like agnhost", "echo Hello World\n", "hello world"},
		{"clientip", "clientip", "{client}"},
	}
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			if fam.host == "::1" {
				ipv6Available(t)
			}
			in := startOn(t, fam.host, netexecArgs(), nil)
			raddr := &net.UDPAddr{IP: net.ParseIP(fam.host), Port: in.port("udp")}
			conn, err := net.DialUDP("udp", nil, raddr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					want := strings.NewReplacer("{hostname}", host, "{client}", conn.LocalAddr().String()).Replace(c.want)
					if got := udpExchange(t, conn, c.send); got != want {
						t.Errorf("sent %q: got %q, want %q", c.send, got, want)
					}
				})
			}
			t.Run("unknown commands get no reply", func(t *testing.T) {
				// Datagrams on loopback keep their order: if "bogus" or "echo" were answered, that
				// answer would arrive before the reply to "echo marker".
				for _, msg := range []string{"bogus", "echo", ""} {
					if _, err := conn.Write([]byte(msg)); err != nil {
						t.Fatal(err)
					}
				}
				if got := udpExchange(t, conn, "echo marker"); got != "marker" {
					t.Errorf("got %q, want only the reply to the marker", got)
				}
			})
		})
	}
}

func TestNetexecDial(t *testing.T) {
	host := hostname(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			if fam.host == "::1" {
				ipv6Available(t)
			}
			client := startOn(t, fam.host, netexecArgs(), nil)
			target := startOn(t, fam.host, netexecArgs(), nil)
			closedTCP := freePort(t, "tcp", fam.host)
			closedUDP := freePort(t, "udp", fam.host)
			base := "http://" + net.JoinHostPort(fam.host, strconv.Itoa(client.port("http")))
			httpPort := strconv.Itoa(target.port("http"))
			udpPort := strconv.Itoa(target.port("udp"))
			hostPort := func(port string) string { return net.JoinHostPort(fam.host, port) }

			cases := []struct {
				name       string
				query      url.Values
				want       map[string][]string
				wantErrRE  *regexp.Regexp // every entry of "errors" must match
				wantNoResp bool
			}{
				{name: "http hostname",
					query: url.Values{"request": {"hostname"}, "protocol": {"http"}, "host": {fam.host}, "port": {httpPort}},
					want:  map[string][]string{"responses": {host}}},
				{name: "http is the default protocol, tries",
					query: url.Values{"request": {"echo?msg=hi"}, "host": {fam.host}, "port": {httpPort}, "tries": {"3"}},
					want:  map[string][]string{"responses": {"hi", "hi", "hi"}}},
				{name: "http clientip shows the dialing pod",
					query: url.Values{"request": {"clientip"}, "host": {fam.host}, "port": {httpPort}}},
				{name: "udp hostname",
					query: url.Values{"request": {"hostname"}, "protocol": {"udp"}, "host": {fam.host}, "port": {udpPort}, "tries": {"2"}},
					want:  map[string][]string{"responses": {host, host}}},
				{name: "udp echo",
					query: url.Values{"request": {"echo foo"}, "protocol": {"UDP"}, "host": {fam.host}, "port": {udpPort}},
					want:  map[string][]string{"responses": {"foo"}}},
				{name: "http refused",
					query: url.Values{"request": {"hostname"}, "host": {fam.host}, "port": {closedTCP}, "tries": {"2"}},
					wantErrRE: regexp.MustCompile(`^Get "http://` + regexp.QuoteMeta(hostPort(closedTCP)) +
						`/hostname": dial tcp ` + regexp.QuoteMeta(hostPort(closedTCP)) + `: connect: connection refused$`),
					wantNoResp: true},
				{name: "udp refused",
					query: url.Values{"request": {"hostname"}, "protocol": {"udp"}, "host": {fam.host}, "port": {closedUDP}},
					wantErrRE: regexp.MustCompile(`^reading from udp connection failed\. err:'read udp .*` +
						regexp.QuoteMeta(hostPort(closedUDP)) + `: read: connection refused'$`),
					wantNoResp: true},
				{name: "sctp is not served",
					query:      url.Values{"request": {"hostname"}, "protocol": {"sctp"}, "host": {fam.host}, "port": {"9"}},
					wantErrRE:  regexp.MustCompile(`^sctp dial failed\. err:protocol not supported`),
					wantNoResp: true},
			}
			c := newClient()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					res := httpGet(t, c, base+"/dial?"+tc.query.Encode(), nil)
					if res.err != nil || res.status != 200 {
						t.Fatalf("dial: status %d err %v body %q", res.status, res.err, res.body)
					}
					var got map[string][]string
					if err := json.Unmarshal([]byte(res.body), &got); err != nil {
						t.Fatalf("body %q: %v", res.body, err)
					}
					switch {
					case tc.want != nil:
						wantBody, _ := json.Marshal(tc.want)
						if res.body != string(wantBody) {
							t.Errorf("body %s, want %s", res.body, wantBody)
						}
					case tc.wantErrRE != nil:
						if len(got["errors"]) == 0 {
							t.Fatalf("no errors in %s", res.body)
						}
						for _, e := range got["errors"] {
							if !tc.wantErrRE.MatchString(e) {
								t.Errorf("error %q does not match %s", e, tc.wantErrRE)
							}
						}
						if _, ok := got["responses"]; ok && tc.wantNoResp {
							t.Errorf("unexpected responses key in %s", res.body)
						}
					default: // clientip
						resp := got["responses"]
						if len(resp) != 1 || len(got) != 1 {
							t.Fatalf("body %s, want one response", res.body)
						}
						h, _, err := net.SplitHostPort(resp[0])
						if err != nil || net.ParseIP(h).String() != net.ParseIP(fam.host).String() {
							t.Errorf("clientip %q, want %s:<port>", resp[0], fam.host)
						}
					}
				})
			}
		})
	}
}

func TestNetexecExit(t *testing.T) {
	cases := []struct {
		name     string
		path     string
		wantCode int
		// wantResponse: graceful exits answer the request; immediate ones, like os.Exit, do not.
		wantResponse bool
	}{
		{"exit with code", "/exit?code=7", 7, false},
		{"exit default code", "/exit", 0, false},
		{"exit graceful", "/exit?code=5&timeout=2s", 5, true},
		{"exit after wait", "/exit?code=3&wait=10ms&timeout=1s", 3, true},
		{"shutdown", "/shutdown", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := start(t, netexecArgs()...)
			url := fmt.Sprintf("http://127.0.0.1:%d%s", in.port("http"), c.path)
			res := httpGet(t, newClient(), url, nil)
			if got := in.wait(); got != c.wantCode {
				t.Errorf("exit code %d, want %d", got, c.wantCode)
			}
			if c.wantResponse && (res.err != nil || res.status != 200 || res.body != "") {
				t.Errorf("graceful exit: got status %d body %q err %v, want an empty 200", res.status, res.body, res.err)
			}
			if !c.wantResponse && res.err == nil {
				t.Errorf("immediate exit answered the request: status %d body %q", res.status, res.body)
			}
			// The sockets are gone once Main has returned.
			if conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(in.port("http")))); err == nil {
				conn.Close()
				t.Errorf("HTTP port still open after exit")
			}
		})
	}
}

func TestNetexecSIGTERM(t *testing.T) {
	t.Run("returns 0 when ctx ends", func(t *testing.T) {
		in := start(t, netexecArgs()...)
		in.cancel()
		if got := in.wait(); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
	})
	t.Run("delay-shutdown keeps serving with readyz 503", func(t *testing.T) {
		in := start(t, netexecArgs("--delay-shutdown=30")...)
		base := fmt.Sprintf("http://127.0.0.1:%d", in.port("http"))
		c := newClient()
		in.cancel()
		// /readyz turns 503 as soon as the SIGTERM is seen; poll for it.
		deadline := time.Now().Add(waitLimit)
		for {
			res := httpGet(t, c, base+"/readyz", nil)
			if res.err != nil {
				t.Fatalf("readyz: %v", res.err)
			}
			if res.status == http.StatusServiceUnavailable {
				if res.body != "shutting down" {
					t.Errorf("readyz body %q, want %q", res.body, "shutting down")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz still %d", res.status)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if res := httpGet(t, c, base+"/healthz", nil); res.status != 200 {
			t.Errorf("healthz during shutdown delay: %d, want 200", res.status)
		}
		if in.exited() {
			t.Fatalf("returned before --delay-shutdown elapsed")
		}
		// /exit still works during the delay.
		httpGet(t, c, base+"/exit?code=4", nil)
		if got := in.wait(); got != 4 {
			t.Errorf("exit code %d, want 4", got)
		}
	})
}

func TestNetexecOptions(t *testing.T) {
	t.Run("udp disabled: healthz 412 like agnhost", func(t *testing.T) {
		in := start(t, "netexec", "--http-port=0", "--udp-port=-1")
		if _, ok := in.addrs["udp"]; ok {
			t.Errorf("UDP bound with --udp-port=-1")
		}
		base := fmt.Sprintf("http://127.0.0.1:%d", in.port("http"))
		for path, want := range map[string]int{"/healthz": 412, "/readyz": 412} {
			if res := httpGet(t, newClient(), base+path, nil); res.status != want {
				t.Errorf("%s: %d, want %d", path, res.status, want)
			}
		}
	})
	t.Run("sctp-port accepted and not served", func(t *testing.T) {
		in := start(t, "netexec", "--http-port=0", "--udp-port=-1", "--sctp-port=9999")
		res := httpGet(t, newClient(), fmt.Sprintf("http://127.0.0.1:%d/healthz", in.port("http")), nil)
		if res.status != 200 {
			t.Errorf("healthz: %d, want 200", res.status)
		}
	})
	t.Run("http-override", func(t *testing.T) {
		in := start(t, netexecArgs("--http-override=/echo?msg=overridden")...)
		for _, p := range []string{"/", "/hostname", "/shutdown", "/echo?msg=other"} {
			res := httpGet(t, newClient(), fmt.Sprintf("http://127.0.0.1:%d%s", in.port("http"), p), nil)
			if res.status != 200 || res.body != "overridden" {
				t.Errorf("GET %s: %d %q, want 200 %q", p, res.status, res.body, "overridden")
			}
		}
	})
	t.Run("udp-listen-addresses", func(t *testing.T) {
		ipv6Available(t)
		// The flag, not the test's listen host, decides where UDP listens.
		in := startOn(t, "::1", netexecArgs("--udp-listen-addresses=127.0.0.1,127.0.0.1"), nil)
		a := in.addrs["udp"].(*net.UDPAddr)
		if !a.IP.Equal(net.ParseIP("127.0.0.1")) {
			t.Errorf("UDP bound to %v, want 127.0.0.1", a)
		}
		conn, err := net.DialUDP("udp", nil, a)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := udpExchange(t, conn, "echo x"); got != "x" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("leading /agnhost element and klog flags", func(t *testing.T) {
		in := start(t, "/agnhost", "netexec", "--http-port=0", "--udp-port=0", "--v=4", "-v=2", "--logtostderr")
		res := httpGet(t, newClient(), fmt.Sprintf("http://127.0.0.1:%d/echo?msg=ok", in.port("http")), nil)
		if res.body != "ok" {
			t.Errorf("got %q", res.body)
		}
	})
}

func TestNetexecUpload(t *testing.T) {
	dir := t.TempDir()
	in := startOn(t, "127.0.0.1", netexecArgs(), func(o *options) { o.uploadDir = dir })
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "payload.txt")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte("uploaded bytes"))
	mw.Close()
	resp, err := newClient().Post(fmt.Sprintf("http://127.0.0.1:%d/upload", in.port("http")), mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || len(got) != 1 || filepath.Dir(got["output"]) != dir {
		t.Fatalf("upload: %d %v, want 201 {output: %s/upload...}", resp.StatusCode, got, dir)
	}
	data, err := os.ReadFile(got["output"])
	if err != nil || string(data) != "uploaded bytes" {
		t.Errorf("uploaded file: %q %v", data, err)
	}
}

func TestNetexecTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	in := start(t, netexecArgs("--tls-cert-file="+certFile, "--tls-private-key-file="+keyFile)...)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: waitLimit}
	res := httpGet(t, client, fmt.Sprintf("https://127.0.0.1:%d/echo?msg=secure", in.port("http")), nil)
	if res.err != nil || res.body != "secure" {
		t.Fatalf("https echo: %q %v", res.body, res.err)
	}
	if res := httpGet(t, newClient(), fmt.Sprintf("http://127.0.0.1:%d/echo?msg=plain", in.port("http")), nil); res.status == 200 {
		t.Errorf("plain HTTP served on a TLS port")
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
