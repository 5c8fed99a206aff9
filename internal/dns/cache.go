package dns

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// The cache holds upstream answers: positive ones for the smallest TTL of their records, negative ones
// (NXDOMAIN, and NOERROR without answers) for the SOA's negative TTL (RFC 2308), both capped. It is
// bounded in bytes and entries, evicting the least recently used; TTLs in cached answers count down.

const (
	cacheShards      = 16
	maxPositiveTTL   = 3600 // seconds, as CoreDNS's cache
	maxNegativeTTL   = 1800
	negativeTTLNoSOA = 5   // a negative answer without SOA is kept this long, to absorb repeats
	itemOverhead     = 256 // bytes charged per entry on top of the answer's wire size
)

// cacheKey identifies a question. flags holds the DO and CD bits, which change the answer.
type cacheKey struct {
	name  string // lower case
	qtype uint16
	flags uint8
}

const (
	flagDO = 1 << iota
	flagCD
)

type cacheItem struct {
	key        cacheKey
	rcode      int
	answer     []dns.RR
	ns         []dns.RR
	extra      []dns.RR
	stored     time.Time
	ttl        uint32 // seconds the item lives
	size       int
	prev, next *cacheItem
}

type cacheShard struct {
	mu       sync.Mutex
	items    map[cacheKey]*cacheItem
	lru      cacheItem // sentinel: lru.next is the most recently used
	bytes    int
	maxBytes int
	maxItems int
}

// cache is a sharded LRU of upstream answers.
type answerCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	now    func() time.Time
}

// newCache makes a cache of at most maxBytes (approximate) and maxItems entries.
func newCache(maxBytes, maxItems int, now func() time.Time) *answerCache {
	if now == nil {
		now = time.Now
	}
	c := &answerCache{seed: maphash.MakeSeed(), now: now}
	for i := range c.shards {
		s := &c.shards[i]
		s.items = map[cacheKey]*cacheItem{}
		s.lru.next, s.lru.prev = &s.lru, &s.lru
		s.maxBytes = max(maxBytes/cacheShards, 1)
		s.maxItems = max(maxItems/cacheShards, 1)
	}
	return c
}

func (c *answerCache) shard(k cacheKey) *cacheShard {
	return &c.shards[maphash.String(c.seed, k.name)%cacheShards]
}

func (s *cacheShard) unlink(it *cacheItem) {
	it.prev.next, it.next.prev = it.next, it.prev
	it.prev, it.next = nil, nil
}

func (s *cacheShard) pushFront(it *cacheItem) {
	it.next, it.prev = s.lru.next, &s.lru
	s.lru.next.prev = it
	s.lru.next = it
}

func (s *cacheShard) drop(it *cacheItem) {
	s.unlink(it)
	delete(s.items, it.key)
	s.bytes -= it.size
}

// stamp dates an answer copied out of the cache: the cache took it at stored and keeps it ttl seconds;
// the copy's TTLs are elapsed seconds lower than the upstream's. The packed cache counts the same TTLs down
// from the same instant, so both caches give a question the same answer. ttl 0: the answer is not cached.
type stamp struct {
	stored       time.Time
	ttl, elapsed uint32
}

// get returns a fresh copy of the cached answer with its TTLs counted down, or nil.
func (c *answerCache) get(k cacheKey) *dns.Msg {
	m, _ := c.getStamped(k)
	return m
}

// getStamped is get, with the stamp of the answer.
func (c *answerCache) getStamped(k cacheKey) (*dns.Msg, stamp) {
	s := c.shard(k)
	now := c.now()
	s.mu.Lock()
	it := s.items[k]
	if it == nil {
		s.mu.Unlock()
		return nil, stamp{}
	}
	age := now.Sub(it.stored)
	if age < 0 {
		age = 0
	}
	elapsed := uint32(age / time.Second)
	if elapsed >= it.ttl {
		s.drop(it)
		s.mu.Unlock()
		return nil, stamp{}
	}
	s.unlink(it)
	s.pushFront(it)
	s.mu.Unlock()
	// The item's records are never modified once stored, so copying outside the lock is safe.
	m := new(dns.Msg)
	m.Rcode = it.rcode
	m.Answer = copyRRs(it.answer, elapsed)
	m.Ns = copyRRs(it.ns, elapsed)
	m.Extra = copyRRs(it.extra, elapsed)
	return m, stamp{stored: it.stored, ttl: it.ttl, elapsed: elapsed}
}

func copyRRs(rrs []dns.RR, elapsed uint32) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		cp := dns.Copy(rr)
		h := cp.Header()
		if h.Ttl > elapsed {
			h.Ttl -= elapsed
		} else {
			h.Ttl = 0
		}
		out[i] = cp
	}
	return out
}

// cacheTTL is how long an upstream answer may be cached: 0 for never.
func cacheTTL(m *dns.Msg) uint32 {
	if m.Truncated {
		return 0
	}
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		ttl := uint32(maxPositiveTTL)
		for _, rr := range m.Answer {
			ttl = min(ttl, rr.Header().Ttl)
		}
		return ttl
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				return min(soa.Hdr.Ttl, soa.Minttl, maxNegativeTTL)
			}
		}
		return negativeTTLNoSOA
	}
	return 0 // SERVFAIL, REFUSED, ...: not cached
}

// put stores m (which the cache takes over) under k, unless it is not cacheable, and returns its stamp
// (ttl 0 when it was not stored).
func (c *answerCache) put(k cacheKey, m *dns.Msg) stamp {
	ttl := cacheTTL(m)
	if ttl == 0 {
		return stamp{}
	}
	it := &cacheItem{key: k, rcode: m.Rcode, answer: m.Answer, ns: m.Ns, stored: c.now(), ttl: ttl}
	for _, rr := range m.Extra {
		if _, ok := rr.(*dns.OPT); !ok {
			it.extra = append(it.extra, rr)
		}
	}
	it.size = itemOverhead + len(k.name) + m.Len()
	s := c.shard(k)
	if it.size > s.maxBytes/4 {
		return stamp{} // one huge answer must not flush the shard
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.items[k]; old != nil {
		s.drop(old)
	}
	s.items[k] = it
	s.pushFront(it)
	s.bytes += it.size
	for (s.bytes > s.maxBytes || len(s.items) > s.maxItems) && s.lru.prev != &s.lru {
		s.drop(s.lru.prev)
	}
	return stamp{stored: it.stored, ttl: ttl}
}

// len is the number of cached answers.
func (c *answerCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}

// bytes is the approximate memory the cached answers take.
func (c *answerCache) bytes() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.bytes
		s.mu.Unlock()
	}
	return n
}
