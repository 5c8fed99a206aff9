package dns

import (
	"bytes"
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The packed cache keeps whole responses in wire format, so that a question asked again costs a map
// lookup and a copy instead of unpacking the query, building records and packing them. That path
// allocates a dozen objects per query, and with a large index every garbage collection is long enough to
// show in the latency tail: with the cache, a repeated question allocates nothing.
//
// A response is kept under what its bytes depend on: the question's name in wire format, lower-cased,
// its type, whether the query had EDNS0, and its DO and CD bits. What else differs between two such
// queries is patched into the copy: the ID, the RD and CD bits, the question itself (its spelling, which
// DNS 0x20 clients check; answer records owned by the question's name are compression pointers to it and
// take its spelling too), and the TTLs of records from upstream, which count down. A response larger
// than the client takes (512 bytes without EDNS0) is not served from here: the slow path truncates it.
//
// Responses built from the index carry the index generation they were built at and are dropped once it
// has moved on; responses with upstream records expire with the forwarder cache's entry they came from.

const (
	packedShards = 16
	// packedOverhead is charged per entry on top of its key and response: the entry, the map slot.
	packedOverhead = 160
	// maxKeyLen is the longest key: a 255-byte name, the type and the flags.
	maxKeyLen = 255 + 3
)

// DefaultPackedCacheBytes bounds the packed cache by default.
const DefaultPackedCacheBytes = 16 << 20

// Key flags: the query's parts, other than the name and type, that change the response's bytes.
const (
	keyEDNS = 1 << iota
	keyDO
	keyCD
)

// wireQuery is what the fast path reads of a query without unpacking it.
type wireQuery struct {
	qend  int // the end of the question section; the name starts at 12
	qtype uint16
	edns  bool
	do    bool
	size  int // the largest UDP response the client takes
	hash  uint32
	klen  int
	key   [maxKeyLen]byte // lower-cased name in wire format, type, flags
}

func (q *wireQuery) name() []byte { return q.key[:q.klen-3] }

// parseWireQuery reads a query the packed cache may answer: one question of class IN whose name is not
// compressed, and no other record than one OPT (EDNS version 0, no options). It returns false for any
// other query, which takes the slow path. The caller has checked the rest of the header.
func parseWireQuery(raw []byte, q *wireQuery) bool {
	if len(raw) < 12 || binary.BigEndian.Uint16(raw[4:]) != 1 || raw[6]|raw[7]|raw[8]|raw[9] != 0 {
		return false
	}
	ar := binary.BigEndian.Uint16(raw[10:])
	if ar > 1 {
		return false
	}
	off, n := 12, 0
	h := uint32(2166136261) // FNV-1a, for the shard
	for {
		if off >= len(raw) {
			return false
		}
		l := int(raw[off])
		if l > 63 || off+1+l > len(raw) || n+1+l > 255 {
			return false // a compression pointer, a reserved label type, or too long
		}
		q.key[n] = byte(l)
		h = (h ^ uint32(l)) * 16777619
		n++
		off++
		if l == 0 {
			break
		}
		for _, c := range raw[off : off+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			q.key[n] = c
			h = (h ^ uint32(c)) * 16777619
			n++
		}
		off += l
	}
	if off+4 > len(raw) || binary.BigEndian.Uint16(raw[off+2:]) != dns.ClassINET {
		return false
	}
	q.qtype = binary.BigEndian.Uint16(raw[off:])
	off += 4
	q.qend = off
	q.edns, q.do, q.size = false, false, dns.MinMsgSize
	if ar == 1 {
		// Root owner, type OPT, class = UDP size, TTL = extended rcode, version, flags; no options
		// (whose parsing the slow path owns).
		if off+11 > len(raw) || raw[off] != 0 || binary.BigEndian.Uint16(raw[off+1:]) != dns.TypeOPT ||
			raw[off+6] != 0 || binary.BigEndian.Uint16(raw[off+9:]) != 0 {
			return false
		}
		q.edns = true
		q.do = raw[off+7]&0x80 != 0
		if s := int(binary.BigEndian.Uint16(raw[off+3:])); s > q.size {
			q.size = min(s, maxUDPSize)
		}
	}
	var flags byte
	if q.edns {
		flags |= keyEDNS
	}
	if q.do {
		flags |= keyDO
	}
	if raw[3]&0x10 != 0 {
		flags |= keyCD
	}
	q.key[n], q.key[n+1], q.key[n+2] = byte(q.qtype>>8), byte(q.qtype), flags
	for _, c := range q.key[n : n+3] {
		h = (h ^ uint32(c)) * 16777619
	}
	q.klen = n + 3
	q.hash = h
	return true
}

// cacheHint is how a handler tells the transport whether the response it writes may be kept packed, and
// what it depends on. Handlers reach it with hintOf; a handler that does not set keep keeps nothing.
type cacheHint struct {
	keep bool

	// Built from the index at generation gen: valid while the index stays at it.
	fromIndex bool
	gen       uint64
	// up.ttl > 0: holds upstream records, valid while their forwarder cache entry is. They are the
	// answer records from index upFrom on, the authority records when upNs, the additional ones when
	// upExtra.
	up      stamp
	upFrom  int
	upNs    bool
	upExtra bool
}

// indexed records that the answer was built from the index at generation gen, which the caller read
// before reading the index.
func (h *cacheHint) indexed(gen uint64) {
	if !h.fromIndex {
		h.fromIndex, h.gen = true, gen
	}
}

// upstream records which records of the answer come from the forwarder cache, and their stamp.
func (h *cacheHint) upstream(st stamp, from int, ns, extra bool) {
	h.up, h.upFrom, h.upNs, h.upExtra = st, from, ns, extra
}

// hinter is implemented by the transport's response writer; its hint is nil when the response cannot
// be kept.
type hinter interface{ cacheHint() *cacheHint }

// hintOf returns w's cache hint, or nil when w keeps nothing (a recorder, a query the cache cannot hold).
func hintOf(w dns.ResponseWriter) *cacheHint {
	if h, ok := w.(hinter); ok {
		return h.cacheHint()
	}
	return nil
}

// ttlPatch is a TTL that counts down: at off in the response, ttl at the stamp's stored time.
type ttlPatch struct {
	off uint16
	ttl uint32
}

type packedEntry struct {
	resp      []byte // the response to the query that filled the entry
	rcode     int
	fromIndex bool
	gen       uint64
	// up: holds upstream records, and expires ttl seconds after stored.
	up      bool
	stored  time.Time
	ttl     uint32
	patches []ttlPatch
	size    int
	used    atomic.Bool // hit since the last eviction pass looked at it
}

type packedShard struct {
	mu    sync.RWMutex
	m     map[string]*packedEntry
	bytes int
	max   int
}

// packedCache maps keys to packed responses, bounded in bytes.
type packedCache struct {
	shards [packedShards]packedShard
	gen    *atomic.Uint64 // the index's
	now    func() time.Time
}

func newPackedCache(maxBytes int, gen *atomic.Uint64, now func() time.Time) *packedCache {
	c := &packedCache{gen: gen, now: now}
	for i := range c.shards {
		c.shards[i].m = map[string]*packedEntry{}
		c.shards[i].max = max(maxBytes/packedShards, 1)
	}
	return c
}

func (c *packedCache) shard(q *wireQuery) *packedShard { return &c.shards[q.hash%packedShards] }

// get returns the entry for q, valid or not.
func (c *packedCache) get(q *wireQuery) *packedEntry {
	s := c.shard(q)
	s.mu.RLock()
	e := s.m[string(q.key[:q.klen])]
	s.mu.RUnlock()
	return e
}

// fresh reports whether e may still be served and, for upstream records, how many whole seconds they
// have aged since stored (as the forwarder cache counts).
func (c *packedCache) fresh(e *packedEntry) (elapsed uint32, ok bool) {
	if e.fromIndex && e.gen != c.gen.Load() {
		return 0, false
	}
	if e.up {
		age := c.now().Sub(e.stored)
		if age < 0 {
			age = 0
		}
		secs := age / time.Second
		if secs >= time.Duration(e.ttl) {
			return 0, false
		}
		elapsed = uint32(secs)
	}
	return elapsed, true
}

// serve writes e's response, patched for the query raw, into b (grown as needed) and returns it.
func (e *packedEntry) serve(b, raw []byte, q *wireQuery, elapsed uint32) []byte {
	b = append(b[:0], e.resp...)
	b[0], b[1] = raw[0], raw[1]
	b[2] = b[2]&^0x01 | raw[2]&0x01 // RD
	b[3] = b[3]&^0x10 | raw[3]&0x10 // CD
	copy(b[12:q.qend], raw[12:q.qend])
	for _, p := range e.patches {
		ttl := uint32(0)
		if p.ttl > elapsed {
			ttl = p.ttl - elapsed
		}
		binary.BigEndian.PutUint32(b[p.off:], ttl)
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	return b
}

// keep stores resp, the packed form of m and the whole answer to the query raw (parsed into q), as h
// allows. It checks what serving it to other queries relies on and keeps nothing when that fails: the
// question echoes the query's, the answer records owned by the question's name point to it, and every
// record can be walked.
func (c *packedCache) keep(q *wireQuery, raw []byte, h *cacheHint, m *dns.Msg, resp []byte) {
	if !h.keep || m.Truncated || (m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError) ||
		len(resp) < q.qend || len(resp) > math.MaxUint16 || !bytes.Equal(resp[12:q.qend], raw[12:q.qend]) ||
		binary.BigEndian.Uint16(resp[4:]) != 1 {
		return
	}
	e := &packedEntry{rcode: m.Rcode, fromIndex: h.fromIndex, gen: h.gen}
	if h.up.ttl > 0 {
		e.up, e.stored, e.ttl = true, h.up.stored, h.up.ttl
	}
	qname := m.Question[0].Name
	an := int(binary.BigEndian.Uint16(resp[6:]))
	ns := int(binary.BigEndian.Uint16(resp[8:]))
	ar := int(binary.BigEndian.Uint16(resp[10:]))
	if an != len(m.Answer) {
		return
	}
	off := q.qend
	for i := 0; i < an+ns+ar; i++ {
		owner := off
		end, ok := skipName(resp, off)
		if !ok || end+10 > len(resp) {
			return
		}
		typ := binary.BigEndian.Uint16(resp[end:])
		ttlOff := end + 4
		off = end + 10 + int(binary.BigEndian.Uint16(resp[end+8:]))
		if off > len(resp) {
			return
		}
		if i < an && qname != "." && m.Answer[i].Header().Name == qname && (resp[owner] != 0xC0 || resp[owner+1] != 12) {
			return // would keep the spelling of this query, not the next one's
		}
		if typ == dns.TypeOPT || !e.up {
			continue
		}
		if (i < an && i >= h.upFrom) || (i >= an && i < an+ns && h.upNs) || (i >= an+ns && h.upExtra) {
			ttl := uint64(binary.BigEndian.Uint32(resp[ttlOff:])) + uint64(h.up.elapsed)
			e.patches = append(e.patches, ttlPatch{off: uint16(ttlOff), ttl: uint32(min(ttl, math.MaxUint32))})
		}
	}
	if off != len(resp) {
		return
	}
	e.resp = bytes.Clone(resp)
	e.size = packedOverhead + q.klen + len(e.resp) + 8*len(e.patches)
	s := c.shard(q)
	if e.size > s.max/4 {
		return // one huge answer must not flush the shard
	}
	key := string(q.key[:q.klen])
	s.mu.Lock()
	if old := s.m[key]; old != nil {
		s.bytes -= old.size
	}
	s.m[key] = e
	s.bytes += e.size
	if s.bytes > s.max {
		c.evict(s, key)
	}
	s.mu.Unlock()
}

// evict drops entries until s is within its bound, as CLOCK does: stale entries first, then those not
// hit since the last pass; the others lose their mark and a second chance. The map's random iteration
// order stands in for the clock hand. The caller holds s.mu.
func (c *packedCache) evict(s *packedShard, keep string) {
	gen := c.gen.Load()
	for pass := 0; pass < 3 && s.bytes > s.max; pass++ {
		for k, e := range s.m {
			if s.bytes <= s.max {
				return
			}
			if k == keep {
				continue
			}
			if pass < 2 && e.used.Load() && !(e.fromIndex && e.gen != gen) {
				e.used.Store(false)
				continue
			}
			delete(s.m, k)
			s.bytes -= e.size
		}
	}
}

// stats returns the number of entries and the bytes they are charged.
func (c *packedCache) stats() (entries, size int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		entries += len(s.m)
		size += s.bytes
		s.mu.RUnlock()
	}
	return entries, size
}

// skipName returns the offset after the name at off, or false when it is malformed.
func skipName(msg []byte, off int) (int, bool) {
	for {
		if off >= len(msg) {
			return 0, false
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			if off+2 > len(msg) {
				return 0, false
			}
			return off + 2, true
		case l > 63:
			return 0, false
		}
		off += 1 + l
	}
}
