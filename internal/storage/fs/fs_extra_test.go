package fs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/storage/fs"
)

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func put(t *testing.T, b *fs.Backend, data []byte) storage.Committed {
	t.Helper()
	w, err := b.Create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Cancel(context.Background()) })
	w.Write(data)
	c, err := w.Commit(t.Context(), digest.Expect{Size: int64(len(data))})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return c
}

// onDisk returns the path of a storage name.
func onDisk(b *fs.Backend, name string) string {
	return filepath.Join(b.Dir(), filepath.FromSlash(name))
}

func tmpEntries(t *testing.T, b *fs.Backend) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(b.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestNewCreatesLayout(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := fs.New("data/media")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !filepath.IsAbs(b.Dir()) {
		t.Errorf("Dir() = %q, want absolute", b.Dir())
	}
	for _, d := range []string{"artifact", "tmp"} {
		if fi, err := os.Stat(filepath.Join(b.Dir(), d)); err != nil || !fi.IsDir() {
			t.Errorf("%s not created: %v", d, err)
		}
	}
	// Opening again works on the existing layout.
	b2, err := fs.New("data/media")
	if err != nil {
		t.Fatal(err)
	}
	b2.Close()

	if err := os.WriteFile("file", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := fs.New("file"); err == nil {
		b.Close()
		t.Error("New on a regular file succeeded")
	}
}

func TestCommitLayoutOnDisk(t *testing.T) {
	b := newBackend(t)
	data := []byte("layout")
	w, err := b.Create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tp := w.(storage.TempPather).TempPath()
	if filepath.Dir(tp) != filepath.Join(b.Dir(), "tmp") {
		t.Errorf("TempPath %s not in tmp/", tp)
	}
	w.Write(data)
	c, err := w.Commit(t.Context(), digest.Expect{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	s := sha(data)
	want := filepath.Join(b.Dir(), "artifact", s[:2], s[2:])
	if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("artifact file %s: %q, %v", want, got, err)
	}
	if onDisk(b, c.Name) != want {
		t.Errorf("name %s does not map to %s", c.Name, want)
	}
	if got := tmpEntries(t, b); len(got) != 0 {
		t.Errorf("tmp/ holds %v after commit", got)
	}
}

func TestOpenReturnsFile(t *testing.T) {
	b := newBackend(t)
	c := put(t, b, []byte("0123456789"))
	r, err := b.Open(t.Context(), c.Name, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// An *os.File lets io.Copy to a socket use sendfile.
	if _, ok := r.(*os.File); !ok {
		t.Errorf("Open returned %T, want *os.File", r)
	}
}

func TestOpenFileServesRanges(t *testing.T) {
	b := newBackend(t)
	data := bytes.Repeat([]byte("pith"), 1000)
	c := put(t, b, data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := b.OpenFile(r.Context(), c.Name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		http.ServeContent(w, r, "x.bin", fi.ModTime(), f)
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, data[10:20]) {
		t.Fatalf("status %d body %q, want 206 %q", resp.StatusCode, got, data[10:20])
	}
}

func TestExistingArtifactKept(t *testing.T) {
	b := newBackend(t)
	data := []byte("keep me")
	c := put(t, b, data)
	before, err := os.Stat(onDisk(b, c.Name))
	if err != nil {
		t.Fatal(err)
	}
	c2 := put(t, b, data)
	after, err := os.Stat(onDisk(b, c.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Existed || !os.SameFile(before, after) {
		t.Errorf("second commit replaced the file (Existed=%v, same=%v)", c2.Existed, os.SameFile(before, after))
	}
}

func TestDamagedArtifactReplaced(t *testing.T) {
	b := newBackend(t)
	data := []byte("the whole artifact")
	s := sha(data)
	p := onDisk(b, storage.ArtifactName(s))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data[:5], 0o644); err != nil {
		t.Fatal(err)
	}
	c := put(t, b, data)
	if c.Existed {
		t.Error("a truncated copy counted as existing")
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Errorf("artifact holds %q, want %q", got, data)
	}
}

func TestConcurrentCommitsExactlyOneStores(t *testing.T) {
	b := newBackend(t)
	data := bytes.Repeat([]byte("same"), 50_000)
	const n = 8
	existed := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w, err := b.Create(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			w.Write(data)
			c, err := w.Commit(t.Context(), digest.Expect{Size: int64(len(data))})
			if err != nil {
				t.Error(err)
				return
			}
			existed[i] = c.Existed
		})
	}
	wg.Wait()
	stored := 0
	for _, e := range existed {
		if !e {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("%d commits report storing the artifact, want exactly 1", stored)
	}
	if got := tmpEntries(t, b); len(got) != 0 {
		t.Errorf("tmp/ holds %v", got)
	}
}

// samePrefix returns n contents whose artifacts share one directory.
func samePrefix(n int) [][]byte {
	out := [][]byte{[]byte("p-0")}
	want := sha(out[0])[:2]
	for i := 1; len(out) < n; i++ {
		d := fmt.Appendf(nil, "p-%d", i)
		if sha(d)[:2] == want {
			out = append(out, d)
		}
	}
	return out
}

func TestDeletePrunesEmptyDirectories(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	pair := samePrefix(2)
	c1, c2 := put(t, b, pair[0]), put(t, b, pair[1])
	dir := filepath.Dir(onDisk(b, c1.Name))
	if err := b.Delete(ctx, c1.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("directory still holding %s was removed: %v", c2.Name, err)
	}
	if err := b.Delete(ctx, c2.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("empty directory %s left behind (%v)", dir, err)
	}
	if fi, err := os.Stat(filepath.Join(b.Dir(), "artifact")); err != nil || !fi.IsDir() {
		t.Fatalf("top-level artifact/ removed: %v", err)
	}
	// Committing into the pruned directory recreates it.
	put(t, b, pair[0])
}

func TestDirectoriesAreNotArtifacts(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c := put(t, b, []byte("x"))
	dir := c.Name[:len("artifact/xx")]
	for _, name := range []string{"artifact", dir} {
		if _, err := b.Stat(ctx, name); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want ErrNotExist", name, err)
		}
		if _, err := b.Open(ctx, name, 0); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Open(%s) = %v, want ErrNotExist", name, err)
		}
		if _, err := b.OpenFile(ctx, name); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("OpenFile(%s) = %v, want ErrNotExist", name, err)
		}
		if err := b.Delete(ctx, name); err != nil {
			t.Errorf("Delete(%s) = %v", name, err)
		}
	}
	if _, err := b.Stat(ctx, c.Name); err != nil {
		t.Fatalf("Delete of a directory name removed its artifact: %v", err)
	}
}

func TestTempNamesReserved(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel(ctx)
	w.Write([]byte("in flight"))
	name := "tmp/" + filepath.Base(w.(storage.TempPather).TempPath())
	for _, n := range []string{name, "tmp"} {
		if err := b.Delete(ctx, n); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Delete(%s) = %v, want ErrInvalidName", n, err)
		}
		if _, err := b.Open(ctx, n, 0); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Open(%s) = %v, want ErrInvalidName", n, err)
		}
		if _, err := b.Stat(ctx, n); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Stat(%s) = %v, want ErrInvalidName", n, err)
		}
	}
	if _, err := w.Commit(ctx, digest.Expect{Size: -1}); err != nil {
		t.Fatalf("the write was disturbed: %v", err)
	}
}

func age(t *testing.T, path string, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

func TestCleanTemp(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	stale := filepath.Join(b.Dir(), "tmp", "STALE")
	if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	age(t, stale, 2*time.Hour)
	staleDir := filepath.Join(b.Dir(), "tmp", "STALEDIR")
	if err := os.MkdirAll(filepath.Join(staleDir, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	age(t, staleDir, 2*time.Hour)
	live, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Cancel(ctx)
	// Asking for the path names the temp file, as a tailing reader does.
	livePath := live.(storage.TempPather).TempPath()
	live.Write([]byte("live"))

	n, err := b.CleanTemp(ctx, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("CleanTemp = %d, %v; want 2 removed", n, err)
	}
	if got := tmpEntries(t, b); len(got) != 1 || got[0] != filepath.Base(livePath) {
		t.Fatalf("tmp/ = %v, want only the live write", got)
	}
	if _, err := live.Commit(ctx, digest.Expect{Size: 4}); err != nil {
		t.Fatalf("live write after CleanTemp: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CleanTemp(cctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("CleanTemp with cancelled context = %v", err)
	}
}

// TestCrashLeavesNothingVisible simulates a process that died mid-write:
// its temp file stays, but a new process never sees it as an artifact, and
// CleanTemp at start-up removes it.
func TestCrashLeavesNothingVisible(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	data := bytes.Repeat([]byte("half-written "), 1000)

	crashed, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := crashed.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	tp := w.(storage.TempPather).TempPath()
	// Crash after commit's link but before the temp name was removed.
	done := put(t, crashed, []byte("committed"))
	if err := os.Link(onDisk(crashed, done.Name), filepath.Join(dir, "tmp", "LEFTOVER")); err != nil {
		t.Fatal(err)
	}
	crashed.Close() // the writer is abandoned, never committed nor cancelled

	b, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Stat(ctx, storage.ArtifactName(sha(data))); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("half-written data visible: %v", err)
	}
	var seen []string
	b.Walk(ctx, "", func(name string, _ storage.Info) error { seen = append(seen, name); return nil })
	if len(seen) != 1 || seen[0] != done.Name {
		t.Fatalf("Walk after crash = %v, want only %s", seen, done.Name)
	}

	// Right after a crash the files are recent; a generous olderThan keeps
	// them in case another process is still writing.
	if n, err := b.CleanTemp(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("CleanTemp of recent files = %d, %v; want 0", n, err)
	}
	age(t, tp, 2*time.Hour)
	age(t, filepath.Join(dir, "tmp", "LEFTOVER"), 2*time.Hour)
	if n, err := b.CleanTemp(ctx, time.Hour); err != nil || n != 2 {
		t.Fatalf("CleanTemp = %d, %v; want 2", n, err)
	}
	if got := tmpEntries(t, b); len(got) != 0 {
		t.Fatalf("tmp/ = %v after CleanTemp", got)
	}
	if _, err := b.Stat(ctx, done.Name); err != nil {
		t.Fatalf("CleanTemp removed a committed artifact's data: %v", err)
	}
}

func TestSymlinksCannotEscapeRoot(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	outside := t.TempDir()
	secret := []byte("outside secret")
	if err := os.WriteFile(filepath.Join(outside, "secret"), secret, 0o644); err != nil {
		t.Fatal(err)
	}

	// A directory symlink: artifact/aa -> outside (absolute).
	rest := strings.Repeat("0", 62)
	if err := os.WriteFile(filepath.Join(outside, rest), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(b.Dir(), "artifact", "aa")); err != nil {
		t.Fatal(err)
	}
	// File symlinks, absolute and relative.
	if err := os.MkdirAll(filepath.Join(b.Dir(), "artifact", "bb"), 0o755); err != nil {
		t.Fatal(err)
	}
	absLink := filepath.Join(b.Dir(), "artifact", "bb", rest)
	if err := os.Symlink(filepath.Join(outside, "secret"), absLink); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Join(b.Dir(), "artifact", "bb"), filepath.Join(outside, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	relLink := filepath.Join(b.Dir(), "artifact", "bb", "1"+rest[1:])
	if err := os.Symlink(rel, relLink); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"artifact/aa/" + rest, "artifact/bb/" + rest, "artifact/bb/1" + rest[1:]} {
		if r, err := b.Open(ctx, name, 0); err == nil {
			got, _ := io.ReadAll(r)
			r.Close()
			t.Errorf("Open(%s) escaped the root and read %q", name, got)
		}
		if f, err := b.OpenFile(ctx, name); err == nil {
			f.Close()
			t.Errorf("OpenFile(%s) escaped the root", name)
		}
		if info, err := b.Stat(ctx, name); err == nil {
			t.Errorf("Stat(%s) escaped the root: %+v", name, info)
		}
	}

	// Delete through the directory symlink must not touch the target.
	b.Delete(ctx, "artifact/aa/"+rest)
	if _, err := os.Stat(filepath.Join(outside, rest)); err != nil {
		t.Fatalf("Delete through a symlink removed a file outside the root: %v", err)
	}
	// Deleting a file symlink removes the link, never its target.
	if err := b.Delete(ctx, "artifact/bb/"+rest); err != nil {
		t.Fatalf("Delete of a symlink: %v", err)
	}
	if _, err := os.Lstat(absLink); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("symlink not removed: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("target outside the root changed: %q, %v", got, err)
	}

	// Walk lists nothing: neither links nor what they point to.
	b.Walk(ctx, "", func(name string, _ storage.Info) error {
		t.Errorf("Walk visited %s", name)
		return nil
	})

	// A commit whose directory is a symlink out of the root fails and
	// writes nothing outside.
	var data []byte
	for i := 0; ; i++ {
		data = fmt.Appendf(nil, "escape-%d", i)
		if sha(data)[:2] == "cc" {
			break
		}
	}
	evil := t.TempDir()
	if err := os.Symlink(evil, filepath.Join(b.Dir(), "artifact", "cc")); err != nil {
		t.Fatal(err)
	}
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if _, err := w.Commit(ctx, digest.Expect{Size: int64(len(data))}); err == nil {
		t.Fatal("Commit through a symlink out of the root succeeded")
	}
	if es, _ := os.ReadDir(evil); len(es) != 0 {
		t.Fatalf("Commit wrote %d entries outside the root", len(es))
	}
	if got := tmpEntries(t, b); len(got) != 0 {
		t.Fatalf("failed commit left tmp/ = %v", got)
	}
}

func TestWalk(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	c := put(t, b, []byte("walk"))
	// Other top-level names are listed too; symlinks are not.
	if err := os.MkdirAll(filepath.Join(b.Dir(), "upload"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir(), "upload", "chunk"), []byte("12"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(onDisk(b, c.Name), filepath.Join(b.Dir(), "upload", "link")); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	if err := b.Walk(ctx, "", func(name string, info storage.Info) error {
		got[name] = info.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[c.Name] != 4 || got["upload/chunk"] != 2 {
		t.Fatalf("Walk = %v", got)
	}
	if err := b.Walk(ctx, "../", func(string, storage.Info) error { return nil }); !errors.Is(err, storage.ErrInvalidName) {
		t.Fatalf("Walk(../) = %v, want ErrInvalidName", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Walk(cctx, "", func(string, storage.Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk with cancelled context = %v", err)
	}
}
