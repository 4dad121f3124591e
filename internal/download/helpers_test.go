package download

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/digest"
)

// memDest collects one attempt's bytes in memory.
type memDest struct {
	bytes.Buffer
	canceled  bool
	failWrite bool
}

func (m *memDest) Write(p []byte) (int, error) {
	if m.failWrite {
		return 0, errors.New("disk full")
	}
	return m.Buffer.Write(p)
}

func (m *memDest) Cancel(context.Context) error { m.canceled = true; return nil }

// dests records every Dest handed out, so tests can check cancellation.
type dests struct {
	mu  sync.Mutex
	all []*memDest
}

func (d *dests) new() (Dest, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := &memDest{}
	d.all = append(d.all, m)
	return m, nil
}

func (d *dests) snapshot() []*memDest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*memDest(nil), d.all...)
}

// discardDest drops bytes, for benchmarks and tests that only count.
type discardDest struct{}

func (discardDest) Write(p []byte) (int, error)  { return len(p), nil }
func (discardDest) Cancel(context.Context) error { return nil }

func newDiscard() (Dest, error) { return discardDest{}, nil }

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func expectOf(b []byte) digest.Expect {
	return digest.Expect{Size: int64(len(b)), Digests: map[string]string{digest.SHA256: sha256Hex(b)}}
}

var unknown = digest.Expect{Size: digest.UnknownSize}

// newTestDownloader fills in fast backoff unless the test set its own.
func newTestDownloader(t testing.TB, cfg Config) *Downloader {
	t.Helper()
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 5 * time.Millisecond
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// counter is a handler wrapper that counts requests.
type counter struct {
	n atomic.Int32
	h func(n int, w http.ResponseWriter, r *http.Request)
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.h(int(c.n.Add(1)), w, r)
}

// hijackWrite sends raw bytes on the connection and closes it, for
// responses that net/http would refuse to produce (truncated bodies).
func hijackWrite(t testing.TB, w http.ResponseWriter, raw []byte) {
	conn, bw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	bw.Write(raw)
	bw.Flush()
}
