package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Handler is the CoreDNS plugin contract (DESIGN convention 9): ServeDNS either writes a response and
// returns its rcode, or returns SERVFAIL, REFUSED, FORMERR or NOTIMP without writing, and the server
// answers with that rcode.
type Handler interface {
	ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error)

// ServeDNS calls f.
func (f HandlerFunc) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return f(ctx, w, r)
}

// clientWrite reports whether a handler returning rcode has written the response (CoreDNS's
// plugin.ClientWrite).
func clientWrite(rcode int) bool {
	switch rcode {
	case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented:
		return false
	}
	return true
}

const (
	// maxUDPSize is the largest UDP response sent, whatever a client's EDNS0 buffer size, and the size
	// advertised in responses.
	maxUDPSize = 4096
	// maxQuerySize is the largest query accepted; larger ones get FORMERR.
	maxQuerySize = 4096
	// tcpIdleTimeout closes a TCP connection that sends no query for that long.
	tcpIdleTimeout = 10 * time.Second
	// tcpWriteTimeout bounds writing one TCP response.
	tcpWriteTimeout = 5 * time.Second
	// maxTCPConns bounds concurrent TCP connections per listener; more are closed at once.
	maxTCPConns = 1024
	// maxTCPInflight bounds the queries of one TCP connection answered at the same time.
	maxTCPInflight = 64
)

// packBufs holds reusable pack buffers.
var packBufs = sync.Pool{New: func() any { b := make([]byte, 0, maxUDPSize); return &b }}

// transport runs the sockets of one server and feeds every query, UDP or TCP, through servePacket.
type transport struct {
	handler Handler
	metrics *metrics
	log     *slog.Logger
	packed  *packedCache // nil: disabled
	// bypass, when set, reports whether the packed cache must leave a client's question to the handler:
	// autopath answers a pod's search-path expansions for that pod alone.
	bypass func(peer netip.AddrPort, name []byte) bool

	mu     sync.Mutex
	closed bool
	conns  map[io.Closer]struct{} // listeners and TCP connections, closed on shutdown
	wg     sync.WaitGroup
}

func newTransport(h Handler, m *metrics, log *slog.Logger) *transport {
	return &transport{handler: h, metrics: m, log: log, conns: map[io.Closer]struct{}{}}
}

func (t *transport) track(c io.Closer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *transport) untrack(c io.Closer) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// listen opens UDP and TCP on addr ("ip:port"); readers is how many UDP sockets share the port
// (SO_REUSEPORT), each with its own reader. It returns the bound address (useful with port 0).
func (t *transport) listen(ctx context.Context, addr string, readers int) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: %w", addr, err)
	}
	wildcard := ap.Addr().IsUnspecified()
	if readers < 1 {
		readers = 1
	}
	lc := net.ListenConfig{Control: socketControl(readers > 1, wildcard)}
	// TCP first: with port 0 it picks the port, and UDP binds the same one.
	tl, err := lc.Listen(ctx, "tcp", ap.String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen tcp %s: %w", ap, err)
	}
	bound := tl.Addr().(*net.TCPAddr).AddrPort()
	bound = netip.AddrPortFrom(ap.Addr(), bound.Port())
	var udps []*net.UDPConn
	for i := 0; i < readers; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", bound.String())
		if err != nil {
			tl.Close()
			for _, u := range udps {
				u.Close()
			}
			return netip.AddrPort{}, fmt.Errorf("listen udp %s: %w", bound, err)
		}
		udps = append(udps, pc.(*net.UDPConn))
	}
	if !t.track(tl) {
		return netip.AddrPort{}, errors.New("server is shutting down")
	}
	t.wg.Add(1)
	go t.serveTCP(ctx, tl)
	for _, u := range udps {
		if !t.track(u) {
			return netip.AddrPort{}, errors.New("server is shutting down")
		}
		t.wg.Add(1)
		go t.serveUDP(ctx, u, wildcard)
	}
	return bound, nil
}

func (t *transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// shutdown closes every socket and waits for the readers and in-flight TCP connections.
func (t *transport) shutdown() {
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// udpBatchSize is how many datagrams one recvmmsg/sendmmsg moves.
const udpBatchSize = 32

// errWouldBlock is returned by a handler running inline (see inline) that needs to wait, typically for
// an upstream; the transport then runs the query again on its own goroutine.
var errWouldBlock = errors.New("query would block")

type inlineKey struct{}

// inline reports whether the handler runs on a socket's reader goroutine and must not wait.
func inline(ctx context.Context) bool { return ctx.Value(inlineKey{}) != nil }

// serveUDP reads datagrams and answers them. On a specific address it reads and writes in batches
// (recvmmsg/sendmmsg) and answers inline whatever needs no waiting (names in the zone, cached names);
// a query that would wait moves to a goroutine of its own, so nothing ever waits behind it.
func (t *transport) serveUDP(ctx context.Context, conn *net.UDPConn, wildcard bool) {
	defer t.wg.Done()
	defer t.untrack(conn)
	if !wildcard {
		t.serveUDPBatch(ctx, conn)
		return
	}
	buf := make([]byte, 65536)
	for {
		var (
			n       int
			peer    netip.AddrPort
			session *dns.SessionUDP
			err     error
		)
		if wildcard {
			// Replies must leave from the address the query was sent to.
			n, session, err = dns.ReadFromSessionUDP(conn, buf)
			if session != nil {
				if a, ok := session.RemoteAddr().(*net.UDPAddr); ok {
					peer = a.AddrPort()
				}
			}
		} else {
			n, peer, err = conn.ReadFromUDPAddrPort(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.isClosed() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Errors such as ICMP port unreachable reported on the socket: keep serving.
			continue
		}
		pkt := make([]byte, n)
		copy(pkt, buf[:n])
		w := &writer{udp: conn, session: session, peer: peer, t: t}
		go t.servePacket(ctx, pkt, w)
	}
}

// batchConn is a socket that moves datagrams in batches: golang.org/x/net's ipv4 and ipv6 PacketConn.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpBatch collects the responses of one batch of queries.
type udpBatch struct {
	msgs []ipv4.Message
	bufs [][]byte
	n    int
}

func (b *udpBatch) add(p []byte, addr net.Addr) {
	i := b.n
	b.bufs[i] = append(b.bufs[i][:0], p...)
	b.msgs[i].Buffers[0] = b.bufs[i]
	b.msgs[i].Addr = addr
	b.n++
}

func (t *transport) serveUDPBatch(ctx context.Context, conn *net.UDPConn) {
	var bc batchConn = ipv4.NewPacketConn(conn)
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		bc = ipv6.NewPacketConn(conn)
	}
	in := make([]ipv4.Message, udpBatchSize)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, maxQuerySize+1)}
	}
	out := &udpBatch{msgs: make([]ipv4.Message, udpBatchSize), bufs: make([][]byte, udpBatchSize)}
	for i := range out.msgs {
		out.msgs[i].Buffers = make([][]byte, 1)
		out.bufs[i] = make([]byte, 0, 512)
	}
	inlineCtx := context.WithValue(ctx, inlineKey{}, true)
	// One writer for the reader: nothing keeps an inline query's writer once servePacket returns.
	w := new(writer)
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.isClosed() {
				return
			}
			continue // e.g. ICMP errors reported on the socket
		}
		out.n = 0
		for i := 0; i < n; i++ {
			m := &in[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			pkt := m.Buffers[0][:m.N]
			*w = writer{udp: conn, peer: ua.AddrPort(), addr: m.Addr, out: out, t: t}
			t.servePacket(inlineCtx, pkt, w)
			if w.deferred {
				w2 := &writer{udp: conn, peer: w.peer, t: t}
				go t.servePacket(ctx, bytes.Clone(pkt), w2)
			}
		}
		for sent := 0; sent < out.n; {
			k, err := bc.WriteBatch(out.msgs[sent:out.n], 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				sent++ // skip the datagram that failed (e.g. an unreachable client)
				continue
			}
			sent += k
		}
		for i := 0; i < out.n; i++ {
			out.msgs[i].Addr = nil
		}
	}
}

func (t *transport) serveTCP(ctx context.Context, l net.Listener) {
	defer t.wg.Done()
	defer t.untrack(l)
	sem := make(chan struct{}, maxTCPConns)
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors: do not spin
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		if !t.track(c) {
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer func() { <-sem }()
			defer t.untrack(c)
			defer c.Close()
			t.serveConn(ctx, c)
		}()
	}
}

// serveConn answers length-prefixed queries on one TCP connection until it goes idle. Queries are
// answered concurrently (RFC 7766 6.2.1.1), so one waiting for an upstream does not hold up the others.
func (t *transport) serveConn(ctx context.Context, c net.Conn) {
	var peer netip.AddrPort
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		peer = a.AddrPort()
	}
	var (
		writeMu  sync.Mutex
		inflight sync.WaitGroup
		sem      = make(chan struct{}, maxTCPInflight)
	)
	defer inflight.Wait()
	var lenBuf [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdleTimeout))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if n < 12 {
			return
		}
		pkt := make([]byte, n)
		if _, err := io.ReadFull(c, pkt); err != nil {
			return
		}
		w := &writer{tcp: c, tcpMu: &writeMu, peer: peer, t: t}
		sem <- struct{}{}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-sem }()
			t.servePacket(ctx, pkt, w)
		}()
	}
}

// servePacket handles one query in wire format, whatever the transport: it drops what is not a query,
// answers NOTIMP for opcodes other than QUERY, FORMERR for malformed or oddly shaped queries and BADVERS
// for EDNS versions other than 0, and hands the rest to the handler. It never panics on input.
func (t *transport) servePacket(ctx context.Context, raw []byte, w *writer) {
	start := time.Now()
	w.size = dns.MinMsgSize
	defer func() {
		if v := recover(); v != nil {
			t.log.Error("dns handler panic", "panic", fmt.Sprint(v))
			if !w.written && w.req != nil {
				t.writeRcode(w, w.req, dns.RcodeServerFailure)
			}
		}
		if !w.deferred {
			t.metrics.observe(w.qtype, w.rcode, w.written, time.Since(start))
		}
	}()
	if len(raw) < 12 {
		return // not even a header: nothing to answer to
	}
	id := binary.BigEndian.Uint16(raw[0:])
	flags := binary.BigEndian.Uint16(raw[2:])
	if flags&(1<<15) != 0 {
		return // a response: never answer one (reflection loops)
	}
	opcode := int(flags>>11) & 0xF
	if opcode != dns.OpcodeQuery {
		t.writeHeader(w, id, flags, dns.RcodeNotImplemented)
		return
	}
	qd := binary.BigEndian.Uint16(raw[4:])
	an := binary.BigEndian.Uint16(raw[6:])
	ns := binary.BigEndian.Uint16(raw[8:])
	ar := binary.BigEndian.Uint16(raw[10:])
	if len(raw) > maxQuerySize || qd != 1 || an != 0 || ns != 0 || ar > 2 {
		t.writeHeader(w, id, flags, dns.RcodeFormatError)
		return
	}
	if t.packed != nil && parseWireQuery(raw, &w.wq) && (t.bypass == nil || !t.bypass(w.peer, w.wq.name())) {
		w.qtype = w.wq.qtype
		if e := t.packed.get(&w.wq); e != nil && t.serveKept(w, raw, e) {
			return
		}
		w.raw, w.fill = raw, true // the handler's response may be kept
	}
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil || len(req.Question) != 1 {
		t.writeHeader(w, id, flags, dns.RcodeFormatError)
		return
	}
	w.req = req
	w.qtype = req.Question[0].Qtype
	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil || o.Hdr.Name != "." {
				t.writeRcode(w, req, dns.RcodeFormatError) // RFC 6891 6.1.1: one OPT, owned by the root
				return
			}
			opt = o
		}
	}
	if opt != nil {
		w.edns, w.do = true, opt.Do()
		if s := int(opt.UDPSize()); s > w.size {
			w.size = min(s, maxUDPSize)
		}
		if opt.Version() != 0 {
			t.writeRcode(w, req, dns.RcodeBadVers)
			return
		}
	}
	rcode, err := t.handler.ServeDNS(ctx, w, req)
	if errors.Is(err, errWouldBlock) && !w.written {
		w.deferred = true // the reader runs it again on a goroutine
		return
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		t.log.Debug("dns handler error", "name", req.Question[0].Name, "qtype", req.Question[0].Qtype, "err", err)
	}
	if !w.written && !clientWrite(rcode) {
		t.writeRcode(w, req, rcode)
	}
}

// serveKept answers from a packed cache entry, unless it is stale or larger than the client takes.
func (t *transport) serveKept(w *writer, raw []byte, e *packedEntry) bool {
	limit := w.wq.size
	if w.tcp != nil {
		limit = dns.MaxMsgSize
	}
	if len(e.resp) > limit {
		return false
	}
	elapsed, ok := t.packed.fresh(e)
	if !ok {
		return false
	}
	bp := packBufs.Get().(*[]byte)
	b := e.serve(*bp, raw, &w.wq, elapsed)
	w.written, w.rcode = true, e.rcode
	if e.up {
		t.metrics.cacheHits.Inc()
	}
	w.Write(b)
	if cap(b) <= 2*maxUDPSize {
		*bp = b[:0]
	}
	packBufs.Put(bp)
	return true
}

// writeHeader answers with a bare header: for queries that could not be parsed, so the answer is never
// larger than the question.
func (t *transport) writeHeader(w *writer, id, flags uint16, rcode int) {
	m := new(dns.Msg)
	m.Id = id
	m.Response = true
	m.Opcode = int(flags>>11) & 0xF
	m.RecursionDesired = flags&(1<<8) != 0
	m.Rcode = rcode
	w.WriteMsg(m)
}

// writeRcode answers req with rcode and no records.
func (t *transport) writeRcode(w *writer, req *dns.Msg, rcode int) {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	w.WriteMsg(m)
}

// writer is the dns.ResponseWriter of one query. WriteMsg sets the response's ID, EDNS0 record and size:
// over UDP a response larger than the client's buffer (512 bytes without EDNS0) is truncated, with TC set.
type writer struct {
	t       *transport
	udp     *net.UDPConn
	session *dns.SessionUDP
	tcp     net.Conn
	tcpMu   *sync.Mutex // serializes the responses of one TCP connection
	peer    netip.AddrPort
	sink    func([]byte) // tests and the fuzz target: receives the packed response instead of a socket
	out     *udpBatch    // collects the response for the reader's next sendmmsg
	addr    net.Addr     // the client, as the batch read it

	deferred bool // the handler would have waited: the query moves to a goroutine

	// The packed cache: the query as its fast path read it, and whether the response may be kept
	// (the handler says so through hint).
	wq   wireQuery
	raw  []byte
	fill bool
	hint cacheHint

	req     *dns.Msg
	qtype   uint16
	size    int // the largest UDP response the client takes
	edns    bool
	do      bool
	written bool
	rcode   int
}

var _ dns.ResponseWriter = (*writer)(nil)

// LocalAddr implements dns.ResponseWriter.
func (w *writer) LocalAddr() net.Addr {
	if w.udp == nil && w.tcp == nil {
		return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	if w.tcp != nil {
		return w.tcp.LocalAddr()
	}
	return w.udp.LocalAddr()
}

// RemoteAddr implements dns.ResponseWriter.
func (w *writer) RemoteAddr() net.Addr {
	if w.tcp != nil {
		return w.tcp.RemoteAddr()
	}
	return net.UDPAddrFromAddrPort(w.peer)
}

// Peer is the client's address.
func (w *writer) Peer() netip.AddrPort { return w.peer }

// cacheHint implements hinter: nil unless the response may be kept.
func (w *writer) cacheHint() *cacheHint {
	if !w.fill {
		return nil
	}
	return &w.hint
}

// WriteMsg implements dns.ResponseWriter. Only the first response is sent.
func (w *writer) WriteMsg(m *dns.Msg) error {
	if w.written {
		return errors.New("response already written")
	}
	w.written = true
	w.rcode = m.Rcode
	if w.req != nil {
		m.Id = w.req.Id
	}
	m.Response = true
	// Our EDNS0 record replaces any other (a forwarded answer's): present iff the query had one.
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if _, ok := rr.(*dns.OPT); !ok {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	if w.edns {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(maxUDPSize)
		if w.do {
			o.SetDo()
		}
		m.Extra = append(m.Extra, o)
	} else if m.Rcode > 0xF {
		m.Rcode = dns.RcodeServerFailure // an extended rcode needs EDNS0
		w.rcode = m.Rcode
	}
	// A response that may be kept is compressed: answer records owned by the question's name then point
	// to it and take the spelling of the question the response is patched with. Otherwise compression
	// costs more than it saves on small answers; it is used when the answer is large.
	m.Compress = w.fill || m.Len() > dns.MinMsgSize
	bp := packBufs.Get().(*[]byte)
	defer packBufs.Put(bp)
	out, err := m.PackBuffer((*bp)[:0])
	if err != nil {
		return fmt.Errorf("pack response: %w", err)
	}
	limit := dns.MaxMsgSize
	if w.tcp == nil {
		limit = w.size
	}
	if len(out) > limit {
		m.Truncate(limit)
		if out, err = m.PackBuffer((*bp)[:0]); err != nil {
			return fmt.Errorf("pack truncated response: %w", err)
		}
		w.t.metrics.truncated.Inc()
	} else if w.fill {
		w.t.packed.keep(&w.wq, w.raw, &w.hint, m, out)
	}
	if cap(out) <= 2*maxUDPSize {
		*bp = out[:0] // keep a buffer that grew, within reason
	}
	_, err = w.Write(out)
	return err
}

// Write implements dns.ResponseWriter: it sends one packed message.
func (w *writer) Write(b []byte) (int, error) {
	if w.sink != nil {
		w.sink(b)
		return len(b), nil
	}
	if w.out != nil {
		w.out.add(b, w.addr)
		return len(b), nil
	}
	if w.tcp != nil {
		buf := make([]byte, 2+len(b))
		binary.BigEndian.PutUint16(buf, uint16(len(b)))
		copy(buf[2:], b)
		w.tcpMu.Lock()
		defer w.tcpMu.Unlock()
		w.tcp.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
		if _, err := w.tcp.Write(buf); err != nil {
			w.tcp.Close() // the client is gone or stuck: stop reading its queries too
			return 0, err
		}
		return len(b), nil
	}
	if w.session != nil {
		return dns.WriteToSessionUDP(w.udp, b, w.session)
	}
	return w.udp.WriteToUDPAddrPort(b, w.peer)
}

// Close implements dns.ResponseWriter.
func (w *writer) Close() error {
	if w.tcp != nil {
		return w.tcp.Close()
	}
	return nil
}

// TsigStatus implements dns.ResponseWriter; TSIG is not supported.
func (w *writer) TsigStatus() error { return nil }

// TsigTimersOnly implements dns.ResponseWriter.
func (w *writer) TsigTimersOnly(bool) {}

// Hijack implements dns.ResponseWriter.
func (w *writer) Hijack() {}

// Network reports "udp" or "tcp".
func (w *writer) Network() string {
	if w.tcp != nil {
		return "tcp"
	}
	return "udp"
}
