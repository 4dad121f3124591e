// Package fs is artifact storage on a local (or network) filesystem.
//
// Layout under the root directory:
//
//	artifact/<sha256[:2]>/<sha256[2:]>   committed artifacts
//	tmp/<random>                          writes in progress
//
// A write goes to a temp file in tmp/ (on the same filesystem as artifact/):
// on Linux an unnamed one (O_TMPFILE), elsewhere a named one. At commit it
// is fsynced and then hard-linked to its final name, which atomically fails
// if the artifact already exists, so an existing artifact is never replaced
// and concurrent commits of the same content both succeed; the directory is
// fsynced before Commit returns. A named temp file is removed afterwards. A
// crash therefore never leaves a half-written artifact visible; at worst it
// leaves named files in tmp/, which CleanTemp removes (unnamed ones vanish
// by themselves).
//
// Small artifacts are dominated by those fsyncs and directory updates, so a
// caller committing many at once can stage them (Writer.Stage) and commit
// them together (Backend.CommitStaged): one round of syncs for the group.
//
// Every access goes through an os.Root, so no name, and no symbolic link met
// while resolving one, can reach outside the root directory.
package fs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/storage"
)

const (
	artifactDir = "artifact"
	tmpDir      = "tmp"
	dirPerm     = 0o755
	filePerm    = 0o644
)

// Backend stores artifacts under a root directory. It is safe for concurrent
// use, also by several processes sharing the directory.
type Backend struct {
	root *os.Root
	dir  string // absolute path of the root directory
	// tmp is the tmp/ directory, open for unnamed temp files and syncfs.
	tmp *os.File
	// anon is set when unnamed temp files can be created and linked here.
	anon bool
	// dirs keeps artifact directories open for commits (see openDir);
	// extra holds those opened beyond its bound.
	dirMu sync.Mutex
	dirs  map[string]*os.File
	extra []*os.File
	// closed is set by Close; a commit racing it gets an error.
	closed bool
	// link is linkNamed; tests replace it to act as a filesystem without
	// hard links.
	link func(tmpName string, dir *os.File, base string) error
}

var (
	_ storage.Backend    = (*Backend)(nil)
	_ storage.LocalFiler = (*Backend)(nil)
	_ storage.Usager     = (*Backend)(nil)
	_ storage.Walker     = (*Backend)(nil)
	_ storage.TempPather = (*writer)(nil)
)

// New opens (creating if needed) storage rooted at dir.
func New(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	for _, d := range []string{abs, filepath.Join(abs, artifactDir), filepath.Join(abs, tmpDir)} {
		if err := os.MkdirAll(d, dirPerm); err != nil {
			return nil, fmt.Errorf("storage: open %s: %w", dir, err)
		}
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	tmp, err := root.Open(tmpDir)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	b := &Backend{root: root, dir: abs, tmp: tmp, dirs: map[string]*os.File{}}
	b.link = b.linkNamed
	b.anon = b.anonWorks()
	return b, nil
}

// anonWorks reports whether an unnamed temp file can be created in tmp/ and
// then linked to a name (kernel, filesystem and /proc permitting).
func (b *Backend) anonWorks() bool {
	f, err := openAnon(b.tmp)
	if err != nil {
		return false
	}
	defer f.Close()
	name := "probe-" + rand.Text()
	if err := linkAnon(f, b.tmp, name); err != nil {
		return false
	}
	b.root.Remove(tmpDir + "/" + name)
	return true
}

// Close releases the root directory. The Backend must not be used after.
func (b *Backend) Close() error {
	b.dirMu.Lock()
	for _, f := range b.dirs {
		f.Close()
	}
	for _, f := range b.extra {
		f.Close()
	}
	b.dirs, b.extra, b.closed = nil, nil, true
	b.dirMu.Unlock()
	b.tmp.Close()
	return b.root.Close()
}

// Dir returns the absolute path of the root directory.
func (b *Backend) Dir() string { return b.dir }

// checkName validates a caller-supplied name. tmp/ is reserved so that no
// caller can read or delete another write's data.
func checkName(name string) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	if name == tmpDir || strings.HasPrefix(name, tmpDir+"/") {
		return fmt.Errorf("%q is reserved: %w", name, storage.ErrInvalidName)
	}
	return nil
}

// bare strips *PathError and *LinkError, whose paths are relative to the
// root and would repeat the name the caller already adds.
func bare(err error) error {
	var pe *iofs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// Create starts a write into a new temp file under tmp/: an unnamed one
// where the system allows, so the write costs no directory update until
// its commit links it into place.
func (b *Backend) Create(ctx context.Context) (storage.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: create: %w", err)
	}
	if b.anon {
		f, err := openAnon(b.tmp)
		if err != nil {
			return nil, fmt.Errorf("storage: create: %w", err)
		}
		return &writer{b: b, f: f, h: digest.NewHasher()}, nil
	}
	name := tmpName()
	f, err := b.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("storage: create: %w", err)
	}
	return &writer{b: b, f: f, name: name, named: true, h: digest.NewHasher()}, nil
}

func tmpName() string { return tmpDir + "/" + rand.Text() }

// openRegular opens name, which must be a regular file: directories and
// other file types are not artifacts and are reported as not existing.
func (b *Backend) openRegular(name string) (*os.File, iofs.FileInfo, error) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	f, err := b.root.Open(name)
	if err != nil {
		return nil, nil, bare(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, storage.ErrNotExist
	}
	return f, fi, nil
}

// Open returns the artifact's *os.File positioned at offset, so copying it
// to a network connection can use sendfile.
func (b *Backend) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	f, fi, err := b.openRegular(name)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", name, err)
	}
	if offset < 0 || offset > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("storage: open %s at %d (size %d): %w", name, offset, fi.Size(), storage.ErrInvalidOffset)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("storage: open %s: %w", name, err)
		}
	}
	return f, nil
}

// OpenFile implements storage.LocalFiler.
func (b *Backend) OpenFile(ctx context.Context, name string) (*os.File, error) {
	f, _, err := b.openRegular(name)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", name, err)
	}
	return f, nil
}

// Stat implements storage.Statter.
func (b *Backend) Stat(ctx context.Context, name string) (storage.Info, error) {
	if err := checkName(name); err != nil {
		return storage.Info{}, fmt.Errorf("storage: stat %s: %w", name, err)
	}
	fi, err := b.root.Stat(name)
	if err == nil && !fi.Mode().IsRegular() {
		err = storage.ErrNotExist
	}
	if err != nil {
		return storage.Info{}, fmt.Errorf("storage: stat %s: %w", name, bare(err))
	}
	return storage.Info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes name and then, best-effort, parent directories left empty
// (never the top-level directories). A symbolic link is removed itself, not
// its target. A directory is not an artifact, so deleting one is a no-op.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("storage: delete %s: %w", name, err)
	}
	fi, err := b.root.Lstat(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: delete %s: %w", name, bare(err))
	}
	if fi.IsDir() {
		return nil
	}
	if err := b.root.Remove(name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", name, bare(err))
	}
	// A concurrent commit into a pruned directory recreates it (see place).
	for dir := path.Dir(name); strings.Contains(dir, "/"); dir = path.Dir(dir) {
		if fi, err := b.root.Lstat(dir); err != nil || !fi.IsDir() || b.root.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// RedirectURL implements storage.Redirector: files are always served by the
// caller.
func (b *Backend) RedirectURL(ctx context.Context, name string, opts storage.RedirectOptions) (string, error) {
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("storage: redirect %s: %w", name, err)
	}
	return "", nil
}

// Walk implements storage.Walker. It visits regular files only; symbolic
// links and tmp/ are skipped. The part of prefix up to its last slash must
// be a valid name.
func (b *Backend) Walk(ctx context.Context, prefix string, fn func(name string, info storage.Info) error) error {
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
		if err := storage.CheckName(start); err != nil {
			return fmt.Errorf("storage: walk %s: %w", prefix, err)
		}
	}
	err := iofs.WalkDir(b.root.FS(), start, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, iofs.ErrNotExist) {
				return iofs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p == "." {
				return nil
			}
			if p == tmpDir || !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return iofs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, iofs.ErrNotExist) {
			return nil // deleted since the directory was read
		}
		if err != nil {
			return err
		}
		return fn(p, storage.Info{Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("storage: walk %s: %w", prefix, err)
	}
	return nil
}

// CleanTemp removes files in tmp/ not modified for olderThan and returns how
// many it removed. Call it at start-up to clear what a crash left behind.
// Writes in progress touch their file on every Write, so olderThan is the
// longest a live write may stall; other processes sharing the directory may
// have writes in progress, so keep it generous (hours, not seconds).
func (b *Backend) CleanTemp(ctx context.Context, olderThan time.Duration) (int, error) {
	entries, err := iofs.ReadDir(b.root.FS(), tmpDir)
	if err != nil {
		return 0, fmt.Errorf("storage: clean temp: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("storage: clean temp: %w", err)
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := b.root.RemoveAll(tmpDir + "/" + e.Name()); err != nil {
			return removed, fmt.Errorf("storage: clean temp: %w", err)
		}
		removed++
	}
	if removed > 0 {
		slog.InfoContext(ctx, "removed stale temporary files", "dir", filepath.Join(b.dir, tmpDir), "count", removed)
	}
	return removed, nil
}

// syncDir makes a directory's entries durable.
func (b *Backend) syncDir(name string) error {
	d, err := b.root.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// linkUnsupported reports errors from filesystems without hard links.
func linkUnsupported(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.ENOTSUP)
}
