package download

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/digest"
)

const benchSize = 64 << 20

func benchServer(b *testing.B) (*httptest.Server, []byte) {
	content := randomBytes(b, benchSize)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(content))
	}))
	b.Cleanup(srv.Close)
	return srv, content
}

// BenchmarkDownload64MiB: the full path (slot, request, four digests,
// size and sha256 verification) into a discarding Dest.
func BenchmarkDownload64MiB(b *testing.B) {
	srv, content := benchServer(b)
	d := newTestDownloader(b, Config{})
	expect := digest.Expect{Size: benchSize, Digests: map[string]string{digest.SHA256: sha256Hex(content)}}
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := d.Download(b.Context(), srv.URL, expect, newDiscard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawGetSHA256 is the baseline: http.Get plus sha256 only.
func BenchmarkRawGetSHA256(b *testing.B) {
	benchRawGet(b, func() hash.Hash { return sha256.New() }, true)
}

// BenchmarkRawGetHasher is http.Get plus the four digests Pulp computes,
// which isolates the downloader's own overhead from the hashing cost.
func BenchmarkRawGetHasher(b *testing.B) {
	benchRawGet(b, nil, false)
}

func benchRawGet(b *testing.B, newHash func() hash.Hash, check bool) {
	srv, content := benchServer(b)
	want := sha256Hex(content)
	b.SetBytes(benchSize)
	for b.Loop() {
		resp, err := http.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		var w io.Writer
		var h hash.Hash
		if newHash != nil {
			h = newHash()
			w = h
		} else {
			w = digest.NewHasher()
		}
		if _, err := io.Copy(w, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if check && hex.EncodeToString(h.Sum(nil)) != want {
			b.Fatal("sha256 mismatch")
		}
	}
}
