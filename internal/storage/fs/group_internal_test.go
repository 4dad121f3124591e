package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/storage"
)

// modes runs fn with unnamed temp files (where the system has them) and
// with named ones, and with the group's syncs done by syncfs and by
// fsyncs.
func modes(t *testing.T, fn func(t *testing.T, b *Backend)) {
	for _, anon := range []bool{true, false} {
		for _, min := range []int{1, 1 << 20} {
			name := fmt.Sprintf("anon=%v/syncfsMin=%d", anon, min)
			t.Run(name, func(t *testing.T) {
				b := newTestBackend(t)
				if anon && !b.anon {
					t.Skip("unnamed temp files are not supported here")
				}
				b.anon = anon
				old := syncfsMin
				syncfsMin = min
				t.Cleanup(func() { syncfsMin = old })
				fn(t, b)
			})
		}
	}
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func stage(t *testing.T, b *Backend, data []byte) storage.Writer {
	t.Helper()
	w, err := b.Create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Cancel(context.Background()) })
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	c, err := w.(*writer).Stage(t.Context(), digest.Expect{Size: int64(len(data)), Digests: map[string]string{digest.SHA256: sum(data)}})
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if c.Name != storage.ArtifactName(sum(data)) || c.Size != int64(len(data)) || c.Existed {
		t.Fatalf("Stage = %+v", c)
	}
	return w
}

func tmpNames(t *testing.T, b *Backend) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(b.dir, tmpDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func visible(b *Backend, data []byte) bool {
	_, err := os.Stat(filepath.Join(b.dir, filepath.FromSlash(storage.ArtifactName(sum(data)))))
	return err == nil
}

// Staged writes are neither visible nor committed until CommitStaged,
// which commits them all: new ones, one already stored and two of the
// same content.
func TestCommitStaged(t *testing.T) {
	modes(t, func(t *testing.T, b *Backend) {
		ctx := t.Context()
		stored := []byte("stored before")
		if _, err := putData(b, stored); err != nil {
			t.Fatal(err)
		}
		var datas [][]byte
		for i := range 20 {
			datas = append(datas, fmt.Appendf(nil, "artifact %d", i))
		}
		datas = append(datas, stored, datas[0])
		var ws []storage.Writer
		for _, d := range datas {
			ws = append(ws, stage(t, b, d))
		}
		for _, d := range datas[:20] {
			if visible(b, d) {
				t.Fatalf("%q visible before CommitStaged", d)
			}
		}
		if _, err := ws[0].Write([]byte("more")); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("Write after Stage = %v, want ErrClosed", err)
		}
		cs, err := b.CommitStaged(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != len(datas) {
			t.Fatalf("%d results for %d writes", len(cs), len(datas))
		}
		for i, d := range datas {
			if cs[i].Name != storage.ArtifactName(sum(d)) || cs[i].Size != int64(len(d)) || cs[i].Digests.SHA256 != sum(d) {
				t.Errorf("result %d = %+v", i, cs[i])
			}
			got, err := os.ReadFile(filepath.Join(b.dir, filepath.FromSlash(cs[i].Name)))
			if err != nil || !bytes.Equal(got, d) {
				t.Errorf("artifact %d: %q, %v", i, got, err)
			}
		}
		if !cs[20].Existed || !cs[21].Existed || cs[0].Existed {
			t.Errorf("Existed = %v (stored), %v (repeat), %v (first); want true, true, false", cs[20].Existed, cs[21].Existed, cs[0].Existed)
		}
		if got := tmpNames(t, b); len(got) != 0 {
			t.Errorf("tmp/ holds %v", got)
		}
		for _, w := range ws {
			if err := w.Cancel(ctx); err != nil {
				t.Errorf("Cancel after commit: %v", err)
			}
		}
		if _, err := b.CommitStaged(ctx, ws[:1]); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("second CommitStaged = %v, want ErrClosed", err)
		}
	})
}

func putData(b *Backend, data []byte) (storage.Committed, error) {
	w, err := b.Create(context.Background())
	if err != nil {
		return storage.Committed{}, err
	}
	w.Write(data)
	return w.Commit(context.Background(), digest.Expect{Size: int64(len(data))})
}

// A group that holds a write that is not staged (or not this backend's)
// commits nothing and ends the staged writes in it; the others are left
// alone.
func TestCommitStagedRejectsUnstaged(t *testing.T) {
	modes(t, func(t *testing.T, b *Backend) {
		ctx := t.Context()
		open, err := b.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer open.Cancel(ctx)
		open.Write([]byte("still writing"))
		other := newTestBackend(t)
		foreign, err := other.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		foreign.Write([]byte("elsewhere"))
		if _, err := foreign.(*writer).Stage(ctx, digest.Expect{Size: -1}); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []storage.Writer{open, foreign} {
			staged := stage(t, b, []byte("staged"))
			if _, err := b.CommitStaged(ctx, []storage.Writer{staged, bad}); !errors.Is(err, storage.ErrClosed) {
				t.Fatalf("CommitStaged with a bad write = %v, want ErrClosed", err)
			}
			if _, err := b.CommitStaged(ctx, []storage.Writer{staged}); !errors.Is(err, storage.ErrClosed) {
				t.Fatalf("the staged write of a rejected group was not ended: %v", err)
			}
		}
		if visible(b, []byte("staged")) {
			t.Fatal("a rejected group became visible")
		}
		if _, err := other.CommitStaged(ctx, []storage.Writer{foreign}); err != nil {
			t.Fatalf("the other backend's staged write was disturbed: %v", err)
		}
		open.Write([]byte(", done"))
		if _, err := open.Commit(ctx, digest.Expect{Size: int64(len("still writing, done"))}); err != nil {
			t.Fatalf("the write in progress was disturbed: %v", err)
		}
		if got := tmpNames(t, b); len(got) != 0 {
			t.Errorf("tmp/ holds %v", got)
		}
	})
}

// Stage verifies like Commit: a mismatch fails and discards the write;
// Cancel discards a staged write.
func TestStageVerifiesAndCancelDiscards(t *testing.T) {
	modes(t, func(t *testing.T, b *Backend) {
		ctx := t.Context()
		w, err := b.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("abc"))
		var sm *digest.SizeMismatchError
		if _, err := w.(*writer).Stage(ctx, digest.Expect{Size: 4}); !errors.As(err, &sm) {
			t.Fatalf("Stage with a wrong size = %v", err)
		}
		if _, err := b.CommitStaged(ctx, []storage.Writer{w}); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("CommitStaged after a failed Stage = %v, want ErrClosed", err)
		}
		s := stage(t, b, []byte("cancelled"))
		if err := s.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.CommitStaged(ctx, []storage.Writer{s}); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("CommitStaged after Cancel = %v, want ErrClosed", err)
		}
		if visible(b, []byte("abc")) || visible(b, []byte("cancelled")) {
			t.Fatal("a discarded write became visible")
		}
		if got := tmpNames(t, b); len(got) != 0 {
			t.Errorf("tmp/ holds %v", got)
		}
	})
}

// On Linux a write in progress has no name anywhere unless its TempPath is
// asked for, so a crash leaves nothing to clean up.
func TestUnnamedTempFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("O_TMPFILE is Linux only")
	}
	b := newTestBackend(t)
	if !b.anon {
		t.Skip("unnamed temp files are not supported by this filesystem")
	}
	ctx := t.Context()
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel(ctx)
	w.Write([]byte("unnamed"))
	if got := tmpNames(t, b); len(got) != 0 {
		t.Fatalf("tmp/ holds %v for an unnamed write", got)
	}
	p := w.(storage.TempPather).TempPath()
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "unnamed" {
		t.Fatalf("TempPath %s: %q, %v", p, got, err)
	}
	if _, err := w.Commit(ctx, digest.Expect{Size: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp name left after commit: %v", err)
	}
	if !visible(b, []byte("unnamed")) {
		t.Fatal("committed artifact not visible")
	}
}

// Directories stay open between commits; one pruned by Delete meanwhile is
// recreated, and the commit lands in the new one.
func TestCommitAfterDirectoryPruned(t *testing.T) {
	modes(t, func(t *testing.T, b *Backend) {
		ctx := t.Context()
		var same [][]byte
		for i := 0; len(same) < 2; i++ {
			d := fmt.Appendf(nil, "prune-%d", i)
			if sum(d)[:2] == "7f" {
				same = append(same, d)
			}
		}
		c, err := putData(b, same[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, c.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(b.dir, "artifact", "7f")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("directory not pruned: %v", err)
		}
		if _, err := b.CommitStaged(ctx, []storage.Writer{stage(t, b, same[1])}); err != nil {
			t.Fatal(err)
		}
		if !visible(b, same[1]) {
			t.Fatal("artifact committed into a pruned directory is not visible")
		}
	})
}

// A commit that opened its directory just before Close, and keeps it just
// after, gets an error; it used to write into the map Close released and
// panic (seen as a rare crash of a lazy fetch outliving its test).
func TestKeepDirAfterClose(t *testing.T) {
	dir := t.TempDir()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, artifactDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := b.keepDir(artifactDir+"/ab", f)
	if !errors.Is(err, os.ErrClosed) || got != nil {
		t.Fatalf("keepDir after Close = %v, %v; want nil, os.ErrClosed", got, err)
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the directory was left open: Close = %v", err)
	}
}
