package content

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

type dirStorage string

func (d dirStorage) Dir() string { return string(d) }

// TestArtifactDirsOpen: the one-openat open finds artifact files, follows
// a directory removed and made again, and leaves everything else (other
// names, symbolic links out of the storage) to the backend.
func TestArtifactDirsOpen(t *testing.T) {
	top := t.TempDir()
	name := "artifact/ab/cdef"
	write := func(data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(top, "artifact/ab"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(top, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(f *os.File, ok bool) string {
		t.Helper()
		if !ok {
			t.Fatal("not opened")
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		return string(b)
	}
	write("one")
	a := newArtifactDirs(dirStorage(top))
	if got := read(a.open(name)); got != "one" {
		t.Fatalf("read %q", got)
	}
	// The directory goes (orphan cleanup) and comes back (a new artifact).
	if err := os.RemoveAll(filepath.Join(top, "artifact/ab")); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.open(name); ok {
		t.Fatal("opened a removed file")
	}
	write("two")
	if got := read(a.open(name)); got != "two" {
		t.Fatalf("after the directory came back: %q", got)
	}
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o644)
	os.Remove(filepath.Join(top, name))
	if err := os.Symlink(outside, filepath.Join(top, name)); err != nil {
		t.Fatal(err)
	}
	if f, ok := a.open(name); ok {
		t.Fatalf("followed a symbolic link out of the storage: %v", read(f, ok))
	}
	for _, bad := range []string{"artifact/ab/../../x", "artifact/AB/cdef", "artifact/ab/c/d", "tmp/ab/cdef", "artifact/ab/..", "artifact/abc"} {
		if _, _, ok := splitArtifactName(bad); ok {
			t.Errorf("%q taken for an artifact name", bad)
		}
	}
}

// TestOpenFilesBounds: a request checks a descriptor out for itself, idle
// descriptors are bounded per file and in total (least recently used
// names closed first), and drop closes a file's descriptors.
func TestOpenFilesBounds(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *os.File {
		t.Helper()
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(name), 0o644)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	closed := func(f *os.File) bool { _, err := f.Stat(); return err != nil }
	c := newOpenFiles(10)
	a1, a2 := open("a"), open("a")
	c.put("a", a1)
	if got := c.take("a"); got != a1 {
		t.Fatal("did not get the kept descriptor back")
	}
	if c.take("a") != nil {
		t.Fatal("one descriptor handed out twice")
	}
	c.put("a", a1)
	c.put("a", a2)
	var extra []*os.File
	for range maxIdlePerFile {
		f := open("a")
		extra = append(extra, f)
		c.put("a", f)
	}
	if c.idle != maxIdlePerFile || !closed(extra[len(extra)-1]) {
		t.Fatalf("idle %d, want at most %d per file", c.idle, maxIdlePerFile)
	}
	b := open("b")
	c.put("b", b)
	for i := range 3 {
		c.put(fmt.Sprint("c", i), open(fmt.Sprint("c", i)))
	}
	// 8 of a + b + 3 of c = 12 > 10: a, the least recently used, goes.
	if c.idle > 10 || !closed(a1) || closed(b) || c.take("a") != nil {
		t.Fatalf("idle %d; a closed %v, b closed %v", c.idle, closed(a1), closed(b))
	}
	c.drop("b")
	if !closed(b) || c.take("b") != nil {
		t.Fatal("drop left b open")
	}
}
