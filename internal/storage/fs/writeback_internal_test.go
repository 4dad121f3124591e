package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/storage"
)

// A large write starts writeback every writebackChunk bytes, and the
// committed artifact is still exactly the written bytes.
func TestWriterStartsWriteback(t *testing.T) {
	b, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0x5a}, 1<<20)
	h := sha256.New()
	total := 2*writebackChunk + 3<<20
	for n := 0; n < total; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		h.Write(chunk)
	}
	if got := w.(*writer).flushed; got != 2*writebackChunk {
		t.Errorf("writeback started up to %d, want %d", got, 2*writebackChunk)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c, err := w.Commit(ctx, digest.Expect{Size: int64(total), Digests: map[string]string{digest.SHA256: sum}})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(b.Dir(), filepath.FromSlash(storage.ArtifactName(sum))))
	if err != nil || fi.Size() != int64(total) || c.Name != storage.ArtifactName(sum) {
		t.Fatalf("artifact: %v, %v", fi, err)
	}

	// Small artifacts never start writeback of their own.
	w, err = b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel(ctx)
	w.Write(chunk[:50])
	if got := w.(*writer).flushed; got != 0 {
		t.Errorf("a 50-byte write started writeback (flushed = %d)", got)
	}
}
