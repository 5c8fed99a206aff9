// Package allocator hands out ClusterIPs and NodePorts. A Range is the pure in-memory picture of what is
// taken; Registry makes each allocation durable and exclusive with one etcd transaction per value, so
// several API servers over one etcd never hand out the same address, and a restart rebuilds the Range
// from etcd.
package allocator

import (
	"math/bits"
	"math/rand/v2"
)

// Range is a bitmap over offsets [0, size). Like kube's allocators it splits the range into a low
// "static" band, kept for values users ask for by number, and a high "dynamic" band that automatic
// allocation uses first, so a requested value rarely collides with a generated one.
type Range struct {
	size   int
	static int
	words  []uint64
	used   int
}

// NewRange returns an empty range of size offsets whose first static offsets form the static band.
func NewRange(size, static int) *Range {
	if static > size {
		static = size
	}
	return &Range{size: size, static: static, words: make([]uint64, (size+63)/64)}
}

// StaticBand is kube's formula for the size of the static band: min(max(min, size/div), max).
func StaticBand(size, minSize, div, maxSize int) int {
	b := size / div
	if b < minSize {
		b = minSize
	}
	if b > maxSize {
		b = maxSize
	}
	if b > size {
		b = size
	}
	return b
}

// Size is the number of offsets.
func (r *Range) Size() int { return r.size }

// Used is the number of taken offsets.
func (r *Range) Used() int { return r.used }

// Has reports whether offset i is taken.
func (r *Range) Has(i int) bool {
	return i >= 0 && i < r.size && r.words[i/64]&(1<<(uint(i)%64)) != 0
}

// Set marks offset i taken and reports whether it was free.
func (r *Range) Set(i int) bool {
	if i < 0 || i >= r.size || r.Has(i) {
		return false
	}
	r.words[i/64] |= 1 << (uint(i) % 64)
	r.used++
	return true
}

// Clear frees offset i.
func (r *Range) Clear(i int) {
	if r.Has(i) {
		r.words[i/64] &^= 1 << (uint(i) % 64)
		r.used--
	}
}

// Candidate picks a free offset for automatic allocation without taking it: a random start in the
// dynamic band, scanning forward, then the static band. ok is false when the range is full.
func (r *Range) Candidate() (int, bool) {
	if i, ok := r.scan(r.static, r.size); ok {
		return i, true
	}
	return r.scan(0, r.static)
}

// scan finds a free offset in [lo, hi) starting at a random point and wrapping.
func (r *Range) scan(lo, hi int) (int, bool) {
	n := hi - lo
	if n <= 0 {
		return 0, false
	}
	start := lo + rand.IntN(n)
	if i, ok := r.firstFree(start, hi); ok {
		return i, true
	}
	return r.firstFree(lo, start)
}

// firstFree returns the first free offset in [from, to), a word at a time.
func (r *Range) firstFree(from, to int) (int, bool) {
	for i := from; i < to; {
		w := r.words[i/64] >> (uint(i) % 64)
		avail := 64 - i%64
		if free := bits.TrailingZeros64(^w); free < avail {
			if i+free < to {
				return i + free, true
			}
			return 0, false
		}
		i += avail
	}
	return 0, false
}
