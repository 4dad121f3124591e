package benchclient

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

// PacedFile is one file on disk served at a set bandwidth, the shape of a
// remote mirror: the first byte soon, then a steady rate. It is an
// http.Handler that serves the file on whatever path it is mounted.
type PacedFile struct {
	Path   string
	Size   int64
	SHA256 string // hex
	// Rate is in bytes per second, read at the start of each request so a
	// benchmark can change it between requests; 0 serves unpaced.
	Rate atomic.Int64
	// Requests counts the requests served; mounted on one path, it counts
	// that path's.
	Requests atomic.Int64
}

// NewPacedFile writes size pseudo-random bytes into dir. The seed is the
// size, so a given size always yields the same file and digest.
func NewPacedFile(dir string, size int64) (*PacedFile, error) {
	p := filepath.Join(dir, "paced")
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	r := rand.New(rand.NewPCG(uint64(size), 5))
	block := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(block)) {
		for i := 0; i < len(block); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				block[i+j] = byte(v >> (8 * j))
			}
		}
		w.Write(block[:min(int64(len(block)), size-n)])
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &PacedFile{Path: p, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ServeHTTP sends the whole file in 64 KiB slices, each when the rate
// allows it, flushing each so the client sees the pace.
func (u *PacedFile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.Requests.Add(1)
	f, err := os.Open(u.Path)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	defer f.Close()
	rate := u.Rate.Load()
	w.Header().Set("Content-Length", strconv.FormatInt(u.Size, 10))
	w.WriteHeader(200)
	start := time.Now()
	buf := make([]byte, 64<<10)
	var sent int64
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if rate > 0 {
				if due := start.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second))); time.Until(due) > 0 {
					time.Sleep(time.Until(due))
				}
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			sent += int64(n)
		}
		if err != nil {
			return
		}
	}
}
