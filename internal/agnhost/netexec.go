package agnhost

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	netutils "k8s.io/utils/net"
)

// netexecConfig holds netexec's flags.
type netexecConfig struct {
	httpPort           int
	udpPort            int
	sctpPort           int
	certFile           string
	keyFile            string
	httpOverride       string
	udpListenAddresses string
	delayShutdown      int
}

func newNetexecCommand(e *env, code *int) *cobra.Command {
	cfg := netexecConfig{}
	cmd := &cobra.Command{
		Use:   "netexec",
		Short: "Creates HTTP(S), UDP, and (optionally) SCTP servers with various endpoints",
		Long: `Starts a HTTP(S) server on the given port with the endpoints /, /clientip, /header, /dial, /echo,
/exit, /healthz, /readyz, /hostname, /hostName, /redirect, /shell, /shutdown and /upload, and a UDP
server that answers "hostname", "echo <msg>" and "clientip". SCTP is accepted but not served.`,
		Args: cobra.MaximumNArgs(0),
		Run: func(cmd *cobra.Command, _ []string) {
			*code = runNetexec(cmd.Context(), e, cfg)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.httpPort, "http-port", 8080, "HTTP Listen Port")
	f.StringVar(&cfg.certFile, "tls-cert-file", "",
		"File containing an x509 certificate for HTTPS. (CA cert, if any, concatenated after server cert)")
	f.StringVar(&cfg.keyFile, "tls-private-key-file", "", "File containing an x509 private key matching --tls-cert-file")
	f.IntVar(&cfg.udpPort, "udp-port", 8081, "UDP Listen Port")
	f.IntVar(&cfg.sctpPort, "sctp-port", -1, "SCTP Listen Port (accepted; svcnet does not serve SCTP)")
	f.StringVar(&cfg.httpOverride, "http-override", "",
		"Override the HTTP handler to always respond as if it were a GET with this path & params")
	f.StringVar(&cfg.udpListenAddresses, "udp-listen-addresses", "",
		"A comma separated list of ip addresses the udp servers listen from")
	f.IntVar(&cfg.delayShutdown, "delay-shutdown", 0, "Number of seconds to delay shutdown when receiving SIGTERM.")
	return cmd
}

// exitRequest asks the netexec server to stop and Main to return code. A zero timeout stops at once,
// like the real agnhost's os.Exit; otherwise connections get timeout to finish.
type exitRequest struct {
	code    int
	timeout time.Duration
}

// netexec is one running netexec server.
type netexec struct {
	env *env
	cfg netexecConfig
	log *slog.Logger

	ready   atomic.Bool   // a UDP (or SCTP) server is up, as the real /healthz reports
	sigterm chan struct{} // closed when ctx ends: /readyz answers 503 from then on
	exitCh  chan exitRequest
	done    chan struct{} // closed when the server is going away
	life    context.Context
}

func runNetexec(ctx context.Context, e *env, cfg netexecConfig) int {
	log := e.log.With("cmd", "netexec")
	udpAddrs, err := parseUDPAddresses(cfg.udpListenAddresses, e.opts.listenHost)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %v\n", err)
		return 1
	}
	var tlsConfig *tls.Config
	if cfg.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: loading --tls-cert-file/--tls-private-key-file: %v\n", err)
			return 1
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	s := &netexec{
		env:     e,
		cfg:     cfg,
		log:     log,
		sigterm: make(chan struct{}),
		exitCh:  make(chan exitRequest, 1),
		done:    make(chan struct{}),
		life:    life,
	}

	bound := map[string]net.Addr{}
	ln, err := net.Listen("tcp", e.listenAddr(cfg.httpPort))
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: listening for HTTP: %v\n", err)
		return 1
	}
	bound["http"] = ln.Addr()

	var udpConns []*net.UDPConn
	closeUDP := func() {
		for _, c := range udpConns {
			c.Close()
		}
	}
	if cfg.udpPort != -1 {
		for _, a := range udpAddrs {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: a, Port: cfg.udpPort})
			if err != nil {
				ln.Close()
				closeUDP()
				fmt.Fprintf(e.stderr, "Error: failed to create listener for UDP port %d: %v\n", cfg.udpPort, err)
				return 1
			}
			udpConns = append(udpConns, c)
			if _, ok := bound["udp"]; !ok {
				bound["udp"] = c.LocalAddr()
			}
		}
		s.ready.Store(true)
	}
	if cfg.sctpPort != -1 {
		log.Warn("sctpNotServed", "sctpPort", cfg.sctpPort)
		// The real agnhost's SCTP server makes /healthz succeed.
		s.ready.Store(true)
	}

	srv := &http.Server{
		Handler:  s.handler(),
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError),
		BaseContext: func(net.Listener) context.Context {
			return life
		},
		TLSConfig: tlsConfig,
	}
	serveErr := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	var wg sync.WaitGroup
	for _, c := range udpConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveUDP(c)
		}()
	}
	defer func() {
		// Close the connections before releasing handlers blocked in requestExit, so that an
		// immediate exit answers nothing.
		stop()
		srv.Close()
		close(s.done)
		closeUDP()
		wg.Wait()
	}()
	log.Info("started", "http", ln.Addr().String(), "tls", tlsConfig != nil, "udpPort", cfg.udpPort)
	e.ready(bound)

	select {
	case <-ctx.Done():
		close(s.sigterm)
		if cfg.delayShutdown > 0 {
			log.Info("delayingShutdown", "seconds", cfg.delayShutdown)
			t := time.NewTimer(time.Duration(cfg.delayShutdown) * time.Second)
			defer t.Stop()
			select {
			case <-t.C:
			case req := <-s.exitCh:
				return s.exit(srv, req)
			case err := <-serveErr:
				return s.serveFailed(err)
			}
		}
		return 0
	case req := <-s.exitCh:
		return s.exit(srv, req)
	case err := <-serveErr:
		return s.serveFailed(err)
	}
}

func (s *netexec) exit(srv *http.Server, req exitRequest) int {
	if req.timeout > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), req.timeout)
		defer cancel()
		err := srv.Shutdown(ctx)
		s.log.Info("gracefulShutdownCompleted", "err", err)
	}
	return req.code
}

func (s *netexec) serveFailed(err error) int {
	fmt.Fprintf(s.env.stderr, "Error: serving HTTP: %v\n", err)
	return 1
}

// requestExit hands req to the main loop and, for an immediate exit, waits for the server to go away
// so that, like the real agnhost, no response is written.
func (s *netexec) requestExit(req exitRequest) {
	select {
	case s.exitCh <- req:
	case <-s.done:
		return
	}
	if req.timeout == 0 {
		<-s.done
	}
}

func (s *netexec) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.rootHandler)
	mux.HandleFunc("/clientip", s.clientIPHandler)
	mux.HandleFunc("/header", s.headerHandler)
	mux.HandleFunc("/dial", s.dialHandler)
	mux.HandleFunc("/echo", s.echoHandler)
	mux.HandleFunc("/exit", s.exitHandler)
	mux.HandleFunc("/healthz", s.healthzHandler)
	mux.HandleFunc("/readyz", s.readyzHandler)
	mux.HandleFunc("/hostname", s.hostnameHandler)
	mux.HandleFunc("/redirect", s.redirectHandler)
	mux.HandleFunc("/shell", s.shellHandler)
	mux.HandleFunc("/upload", s.uploadHandler)
	// older handlers
	mux.HandleFunc("/hostName", s.hostnameHandler)
	mux.HandleFunc("/shutdown", s.shutdownHandler)
	if s.cfg.httpOverride == "" {
		return s.logRequests(mux)
	}
	return s.logRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		override, err := http.NewRequestWithContext(r.Context(), http.MethodGet, s.cfg.httpOverride, nil)
		if err != nil {
			http.Error(w, fmt.Sprintf("override request failed: %v", err), http.StatusInternalServerError)
			return
		}
		override.RemoteAddr = r.RemoteAddr
		mux.ServeHTTP(w, override)
	}))
}

// logRequests logs every request, as the real agnhost does for each of its handlers.
func (s *netexec) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Info("request", "method", r.Method, "uri", r.URL.RequestURI(), "client", r.RemoteAddr)
		h.ServeHTTP(w, r)
	})
}

func (s *netexec) rootHandler(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "NOW: %v", time.Now())
}

func (s *netexec) echoHandler(w http.ResponseWriter, r *http.Request) {
	msg := r.FormValue("msg")
	codeString := r.FormValue("code")
	if codeString != "" {
		code, err := strconv.Atoi(codeString)
		if err != nil {
			fmt.Fprintf(w, "argument 'code' must be an integer or empty, got %q\n", codeString)
			return
		}
		w.WriteHeader(code)
	}
	fmt.Fprint(w, msg)
}

func (s *netexec) clientIPHandler(w http.ResponseWriter, r *http.Request) {
	fmt.Fprint(w, r.RemoteAddr)
}

func (s *netexec) headerHandler(w http.ResponseWriter, r *http.Request) {
	key := r.FormValue("key")
	if key != "" {
		fmt.Fprint(w, r.Header.Get(key))
		return
	}
	data, err := json.Marshal(r.Header)
	if err != nil {
		fmt.Fprintf(w, "error marshalling header, err: %v", err)
		return
	}
	w.Write(data)
}

func (s *netexec) exitHandler(w http.ResponseWriter, r *http.Request) {
	waitString := r.FormValue("wait")
	timeoutString := r.FormValue("timeout")
	codeString := r.FormValue("code")
	timeout, err := time.ParseDuration(timeoutString)
	if err != nil && timeoutString != "" {
		fmt.Fprintf(w, "argument 'timeout' must be a valid golang duration or empty, got %q\n", timeoutString)
		return
	}
	wait, err := time.ParseDuration(waitString)
	if err != nil && waitString != "" {
		fmt.Fprintf(w, "argument 'wait' must be a valid golang duration or empty, got %q\n", waitString)
		return
	}
	code, err := strconv.Atoi(codeString)
	if err != nil && codeString != "" {
		fmt.Fprintf(w, "argument 'code' must be an integer [0-127] or empty, got %q\n", codeString)
		return
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
			return
		}
	}
	s.requestExit(exitRequest{code: code, timeout: timeout})
}

func (s *netexec) shutdownHandler(w http.ResponseWriter, r *http.Request) {
	s.requestExit(exitRequest{code: 0})
}

func (s *netexec) hostnameHandler(w http.ResponseWriter, r *http.Request) {
	name, err := os.Hostname()
	if err != nil {
		http.Error(w, fmt.Sprintf("failed to get hostname: %v", err), http.StatusInternalServerError)
		return
	}
	fmt.Fprint(w, name)
}

// healthzHandler answers 200 while the UDP server is up, 412 otherwise, like the real agnhost.
func (s *netexec) healthzHandler(w http.ResponseWriter, r *http.Request) {
	if s.ready.Load() {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusPreconditionFailed)
}

// readyzHandler is healthz that answers 503 "shutting down" once SIGTERM (the end of ctx) is seen.
func (s *netexec) readyzHandler(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.sigterm:
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("shutting down"))
	default:
		if s.ready.Load() {
			w.Write([]byte("ok"))
			return
		}
		w.WriteHeader(http.StatusPreconditionFailed)
	}
}

func (s *netexec) redirectHandler(w http.ResponseWriter, r *http.Request) {
	location := r.FormValue("location")
	codeString := r.FormValue("code")
	code := http.StatusFound
	if codeString != "" {
		var err error
		code, err = strconv.Atoi(codeString)
		if err != nil {
			fmt.Fprintf(w, "argument 'code' must be an integer or empty, got %q\n", codeString)
			return
		}
	}
	http.Redirect(w, r, location, code)
}

func (s *netexec) shellHandler(w http.ResponseWriter, r *http.Request) {
	cmdline := r.FormValue("shellCommand")
	if cmdline == "" {
		cmdline = r.FormValue("cmd")
	}
	cmd := exec.CommandContext(s.life, s.env.opts.shellPath, "-c", cmdline)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	output := map[string]string{}
	if len(out) > 0 {
		output["output"] = string(out)
	}
	if err != nil {
		output["error"] = fmt.Sprintf("%v", err)
	}
	writeJSON(w, output)
}

func (s *netexec) uploadHandler(w http.ResponseWriter, r *http.Request) {
	fail := func(msg string, err error) {
		s.log.Error("uploadFailed", "reason", msg, "err", err)
		writeJSON(w, map[string]string{"error": msg})
	}
	file, _, err := r.FormFile("file")
	if err != nil {
		fail("Unable to upload file.", err)
		return
	}
	defer file.Close()
	f, err := os.CreateTemp(s.env.opts.uploadDir, "upload")
	if err != nil {
		fail("Unable to open file for write", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, file); err != nil {
		fail("Unable to write file.", err)
		return
	}
	if err := os.Chmod(f.Name(), 0o700); err != nil {
		fail("Unable to chmod file.", err)
		return
	}
	data, err := json.Marshal(map[string]string{"output": f.Name()})
	if err != nil {
		http.Error(w, fmt.Sprintf("response could not be serialized. %v", err), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusCreated)
	w.Write(data)
}

// writeJSON writes v as the real agnhost does: a bare JSON document with status 200.
func writeJSON(w http.ResponseWriter, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("response could not be serialized. %v", err), http.StatusExpectationFailed)
		return
	}
	w.Write(data)
}

func (s *netexec) dialHandler(w http.ResponseWriter, r *http.Request) {
	values, err := url.Parse(r.URL.RequestURI())
	if err != nil {
		http.Error(w, fmt.Sprintf("%v", err), http.StatusBadRequest)
		return
	}
	q := values.Query()
	host := q.Get("host")
	port := q.Get("port")
	request := q.Get("request")
	protocol := q.Get("protocol")
	tryParam := q.Get("tries")
	tries := 1
	if len(tryParam) > 0 {
		tries, err = strconv.Atoi(tryParam)
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("tries parameter is invalid. %v", err), http.StatusBadRequest)
		return
	}
	if len(request) == 0 {
		http.Error(w, fmt.Sprintf("request parameter not specified. %v", err), http.StatusBadRequest)
		return
	}

	hostPort := net.JoinHostPort(host, port)
	var addr net.Addr
	var dialer func(string, net.Addr) (string, error)
	switch strings.ToLower(protocol) {
	case "", "http":
		dialer = dialHTTP
		addr, err = net.ResolveTCPAddr("tcp", hostPort)
	case "udp":
		dialer = dialUDP
		addr, err = net.ResolveUDPAddr("udp", hostPort)
	case "sctp":
		// Resolved like an SCTP address would be; dialing reports that SCTP is not served.
		dialer = dialSCTP
		addr, err = net.ResolveIPAddr("ip", host)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
	default:
		http.Error(w, fmt.Sprintf("unsupported protocol. %s", protocol), http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("host and/or port param are invalid. %v", err), http.StatusBadRequest)
		return
	}

	errs := make([]string, 0)
	responses := make([]string, 0)
	var response string
	for range tries {
		response, err = dialer(request, addr)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%v", err))
		} else {
			responses = append(responses, response)
		}
	}
	// As in the real agnhost, "responses" is only present when the last try answered something.
	output := map[string][]string{}
	if len(response) > 0 {
		output["responses"] = responses
	}
	if len(errs) > 0 {
		output["errors"] = errs
	}
	writeJSON(w, output)
}

// dialHTTP fetches http://addr/request. Unlike the real agnhost's transport it never uses a proxy from
// the environment: pod traffic must go straight to the pod or Service it names, even when agnhost
// runs inside a process whose environment sets one.
func dialHTTP(request string, addr net.Addr) (string, error) {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://%s/%s", addr.String(), request))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	return string(body), nil
}

func dialUDP(request string, addr net.Addr) (string, error) {
	conn, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		return "", fmt.Errorf("udp dial failed. err:%v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(request)); err != nil {
		return "", fmt.Errorf("udp connection write failed. err:%v", err)
	}
	buf := make([]byte, 2048)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || n == 0 {
		return "", fmt.Errorf("reading from udp connection failed. err:'%v'", err)
	}
	return string(buf[:n]), nil
}

// errSCTPUnsupported is what every SCTP attempt reports: svcnet pods do not speak SCTP.
var errSCTPUnsupported = errors.New("protocol not supported: svcnet's agnhost does not implement SCTP")

func dialSCTP(string, net.Addr) (string, error) {
	return "", fmt.Errorf("sctp dial failed. err:%v", errSCTPUnsupported)
}

// serveUDP answers the "hostname", "echo <msg>" and "clientip" commands until conn is closed. Like the
// real agnhost it lower-cases the received text (so echo replies are lower case) and ignores anything
// else.
func (s *netexec) serveUDP(conn *net.UDPConn) {
	defer s.ready.Store(false)
	buf := make([]byte, 2048)
	for {
		n, client, err := conn.ReadFromUDP(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("udpReadFailed", "err", err)
			}
			return
		}
		text := strings.ToLower(strings.TrimSpace(string(buf[:n])))
		s.log.Info("udpRequest", "client", client.String(), "command", text)
		var reply string
		switch {
		case text == "hostname":
			name, err := os.Hostname()
			if err != nil {
				s.log.Error("hostnameFailed", "err", err)
				continue
			}
			reply = name
		case strings.HasPrefix(text, "echo "):
			reply = strings.SplitN(text, " ", 2)[1]
		case text == "clientip":
			reply = client.String()
		default: // unknown commands get no answer
			continue
		}
		if _, err := conn.WriteToUDP([]byte(reply), client); err != nil {
			s.log.Error("udpWriteFailed", "client", client.String(), "err", err)
		}
	}
}

// parseUDPAddresses parses --udp-listen-addresses: a comma separated list of IPs, deduplicated and
// sorted like the real agnhost's set, or the wildcard (listenHost in tests) when empty.
func parseUDPAddresses(addresses, listenHost string) ([]net.IP, error) {
	if addresses == "" {
		if listenHost == "" {
			return []net.IP{nil}, nil
		}
		addresses = listenHost
	}
	seen := map[string]bool{}
	var out []net.IP
	var keys []string
	for _, a := range strings.Split(addresses, ",") {
		ip := netutils.ParseIPSloppy(a)
		if ip == nil {
			return nil, fmt.Errorf("parseAddress: invalid address %s", a)
		}
		if !seen[a] {
			seen[a] = true
			keys = append(keys, a)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, netutils.ParseIPSloppy(k))
	}
	return out, nil
}
