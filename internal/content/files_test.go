package content

import (
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
