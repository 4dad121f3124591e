package benchclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

func TestPacedFile(t *testing.T) {
	const size, rate = 256 << 10, 1 << 20
	u, err := NewPacedFile(t.TempDir(), size)
	if err != nil {
		t.Fatal(err)
	}
	again, err := NewPacedFile(t.TempDir(), size)
	if err != nil {
		t.Fatal(err)
	}
	if again.SHA256 != u.SHA256 {
		t.Fatalf("same size, different files: %s, %s", u.SHA256, again.SHA256)
	}
	want, err := os.ReadFile(u.Path)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(want); int64(len(want)) != u.Size || hex.EncodeToString(sum[:]) != u.SHA256 {
		t.Fatalf("file on disk: %d bytes, sha256 %x; want %d, %s", len(want), sum, u.Size, u.SHA256)
	}
	u.Rate.Store(rate)
	srv := httptest.NewServer(u)
	defer srv.Close()

	start := time.Now()
	resp, err := http.Get(srv.URL + "/any")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != size {
		t.Fatalf("status %d, Content-Length %d; want 200, %d", resp.StatusCode, resp.ContentLength, size)
	}
	if !bytes.Equal(body, want) {
		t.Fatal("body differs from the file")
	}
	if n := u.Requests.Load(); n != 1 {
		t.Fatalf("requests = %d, want 1", n)
	}
	// The last 64 KiB slice leaves once the rest has had its time at the
	// rate. Only a lower bound: a busy machine may take longer.
	if least := time.Duration(size-64<<10) * time.Second / rate; took < least {
		t.Fatalf("took %v at %d B/s; want at least %v", took, rate, least)
	}
}
