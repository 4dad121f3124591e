package download

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pith-project/pith/internal/digest"
)

// lyingDest hashes what it is written but reports sums (when set) instead
// of its own, to show whose digests the downloader verifies.
type lyingDest struct {
	memDest
	h    *digest.Hasher
	sums *digest.Digests
}

func (l *lyingDest) Write(p []byte) (int, error) {
	n, err := l.memDest.Write(p)
	l.h.Write(p[:n])
	return n, err
}

func (l *lyingDest) Size() int64 { return l.h.Size() }

func (l *lyingDest) Digests() digest.Digests {
	if l.sums != nil {
		return *l.sums
	}
	return l.h.Sum()
}

func TestHashingDestDigestsAreVerified(t *testing.T) {
	content := randomBytes(t, 300_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(content) }))
	defer srv.Close()
	d := newTestDownloader(t, Config{MaxRetries: 1})

	var good *lyingDest
	res, err := d.Download(t.Context(), srv.URL+"/f", expectOf(content), func() (Dest, error) {
		good = &lyingDest{h: digest.NewHasher()}
		return good, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digests != good.h.Sum() || res.Size != int64(len(content)) || !bytes.Equal(good.Bytes(), content) {
		t.Errorf("result %+v does not carry the destination's digests", res)
	}

	// The bytes are right but the destination says otherwise: the
	// downloader must believe the destination, which hashed what it stored.
	wrong := digest.Digests{SHA256: sha256Hex([]byte("something else"))}
	_, err = d.Download(t.Context(), srv.URL+"/f", expectOf(content), func() (Dest, error) {
		return &lyingDest{h: digest.NewHasher(), sums: &wrong}, nil
	})
	var de *digest.DigestMismatchError
	if !errors.As(err, &de) || de.Actual != wrong.SHA256 {
		t.Fatalf("err = %v, want a digest mismatch reporting the destination's sha256", err)
	}
}

func TestHashingDestOversizeStopsEarly(t *testing.T) {
	content := randomBytes(t, 2<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked") // no Content-Length to check up front
		w.Write(content)
	}))
	defer srv.Close()
	d := newTestDownloader(t, Config{MaxRetries: 1})
	var dst *lyingDest
	_, err := d.Download(t.Context(), srv.URL+"/f", digest.Expect{Size: 1000}, func() (Dest, error) {
		dst = &lyingDest{h: digest.NewHasher()}
		return dst, nil
	})
	var se *digest.SizeMismatchError
	if !errors.As(err, &se) || se.Expected != 1000 {
		t.Fatalf("err = %v, want a size mismatch", err)
	}
	if dst.Size() >= int64(len(content)) || !dst.canceled {
		t.Errorf("read %d bytes (canceled=%v); want an early stop and a cancelled destination", dst.Size(), dst.canceled)
	}
}
