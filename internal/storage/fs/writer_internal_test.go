package fs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/storage"
)

func newTestBackend(t *testing.T) *Backend {
	t.Helper()
	b, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestWriteErrorFailsCommit(t *testing.T) {
	b := newTestBackend(t)
	ctx := t.Context()
	sw, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := sw.(*writer)
	w.Write([]byte("first part"))
	w.f.Close() // the disk goes away
	if _, err := w.Write([]byte("second part")); err == nil {
		t.Fatal("Write to a closed file succeeded")
	}
	if _, err := w.Write([]byte("third")); err == nil {
		t.Fatal("Write after a failed Write succeeded")
	}
	if _, err := w.Commit(ctx, digest.Expect{Size: -1}); err == nil {
		t.Fatal("Commit after a failed Write succeeded")
	}
	if _, err := os.Stat(w.TempPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file left after failed commit: %v", err)
	}
	if _, err := b.Stat(ctx, storage.ArtifactName(digest.NewHasher().Sum().SHA256)); !errors.Is(err, storage.ErrNotExist) {
		t.Fatal("something became visible")
	}
}

// TestWithoutHardLinks runs commits as on a filesystem that cannot make
// hard links: they fall back to rename, still keep an intact existing
// artifact and still replace a damaged one.
func TestWithoutHardLinks(t *testing.T) {
	b := newTestBackend(t)
	// Where hard links fail, unnamed temp files cannot be linked either,
	// so New would have found them unusable.
	b.anon = false
	b.link = func(tmpName string, _ *os.File, base string) error {
		return &os.LinkError{Op: "link", Old: tmpName, New: base, Err: syscall.EPERM}
	}
	ctx := t.Context()
	commit := func(data []byte) storage.Committed {
		t.Helper()
		w, err := b.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		c, err := w.Commit(ctx, digest.Expect{Size: int64(len(data))})
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
		return c
	}
	data := []byte("no hard links here")
	c := commit(data)
	if c.Existed {
		t.Error("first commit reports Existed")
	}
	before, _ := os.Stat(b.dir + "/" + c.Name)
	if c2 := commit(data); !c2.Existed {
		t.Error("second commit does not report Existed")
	}
	after, _ := os.Stat(b.dir + "/" + c.Name)
	if !os.SameFile(before, after) {
		t.Error("second commit replaced an intact artifact")
	}
	if err := os.WriteFile(b.dir+"/"+c.Name, data[:3], 0o644); err != nil {
		t.Fatal(err)
	}
	if c3 := commit(data); c3.Existed {
		t.Error("damaged artifact counted as existing")
	}
	if got, _ := os.ReadFile(b.dir + "/" + c.Name); !bytes.Equal(got, data) {
		t.Errorf("artifact = %q", got)
	}
	if es, _ := os.ReadDir(b.dir + "/tmp"); len(es) != 0 {
		t.Errorf("tmp/ has %d entries", len(es))
	}

	// A genuine link failure is reported and leaves nothing behind.
	b.link = func(tmpName string, _ *os.File, base string) error {
		return &os.LinkError{Op: "link", Old: tmpName, New: base, Err: syscall.EIO}
	}
	w, _ := b.Create(ctx)
	w.Write([]byte("io error"))
	if _, err := w.Commit(context.Background(), digest.Expect{Size: -1}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Commit = %v, want EIO", err)
	}
	if es, _ := os.ReadDir(b.dir + "/tmp"); len(es) != 0 {
		t.Errorf("tmp/ has %d entries after a failed commit", len(es))
	}
}
