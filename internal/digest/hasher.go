package digest

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"runtime"
	"sync"
)

// parallelMin is the write size from which the digests share the work with
// a second goroutine (when more than one is configured). sha512 and sha384
// each cost two to three times sha256 (with SHA-NI), so hashing the
// sha512-family digests beside the sha256-family ones nearly halves the time
// of large writes on a multi-core machine (see BenchmarkHasher), while
// starting the goroutine costs about a microsecond, under 1% of hashing
// 16 KiB.
const parallelMin = 16 << 10

// Hasher is an io.Writer that computes the configured digests (see
// [Configure]; sha256 always) and the byte count in one pass. Large writes
// are hashed on two goroutines when there is more than one digest. It is
// not safe for concurrent use. The zero value is not usable; call
// NewHasher.
type Hasher struct {
	h224, h256, h384, h512 hash.Hash // nil when not configured
	// inline and aside split the hashes for a parallel write: aside runs
	// on a second goroutine. Without parallelism all are in inline.
	inline, aside []hash.Hash
	all           []hash.Hash
	n             int64
	parallel      bool
}

// NewHasher returns a Hasher of the configured algorithms that has seen no
// bytes.
func NewHasher() *Hasher {
	h := &Hasher{h256: sha256.New()}
	for _, alg := range Configured() {
		switch alg {
		case SHA224:
			h.h224 = sha256.New224()
		case SHA384:
			h.h384 = sha512.New384()
		case SHA512:
			h.h512 = sha512.New()
		}
	}
	// Balance the two sides by cost: a sha512-family digest costs about
	// twice a sha256-family one. Heaviest first, each to the lighter side.
	var sideCost [2]int
	var sides [2][]hash.Hash
	for _, c := range []struct {
		h    hash.Hash
		cost int
	}{{h.h512, 2}, {h.h384, 2}, {h.h256, 1}, {h.h224, 1}} {
		if c.h == nil {
			continue
		}
		h.all = append(h.all, c.h)
		i := 0
		if sideCost[1] < sideCost[0] {
			i = 1
		}
		sides[i] = append(sides[i], c.h)
		sideCost[i] += c.cost
	}
	h.inline, h.aside = sides[0], sides[1]
	h.parallel = len(h.aside) > 0 && runtime.GOMAXPROCS(0) > 1
	return h
}

// Write hashes p. It never returns an error.
func (h *Hasher) Write(p []byte) (int, error) {
	// The hash.Hash implementations never fail, so a plain fan-out avoids
	// io.MultiWriter's per-writer error handling.
	if h.parallel && len(p) >= parallelMin {
		var wg sync.WaitGroup
		wg.Go(func() {
			for _, x := range h.aside {
				x.Write(p)
			}
		})
		for _, x := range h.inline {
			x.Write(p)
		}
		wg.Wait()
	} else {
		for _, x := range h.all {
			x.Write(p)
		}
	}
	h.n += int64(len(p))
	return len(p), nil
}

// Size returns the number of bytes written so far.
func (h *Hasher) Size() int64 { return h.n }

// Sum returns the digests of the bytes written so far; the algorithms that
// are not configured are left empty. It does not change the Hasher's state,
// so writing may continue.
func (h *Hasher) Sum() Digests {
	var buf [sha512.Size]byte
	sum := func(x hash.Hash) string {
		if x == nil {
			return ""
		}
		return hex.EncodeToString(x.Sum(buf[:0]))
	}
	return Digests{
		SHA224: sum(h.h224),
		SHA256: sum(h.h256),
		SHA384: sum(h.h384),
		SHA512: sum(h.h512),
	}
}
