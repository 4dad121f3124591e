package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"path"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/pith-project/pith/internal/storage"
)

// syncfsMin is the group size from which one syncfs(2) replaces the
// per-file and per-directory fsyncs: it flushes the whole filesystem, which
// costs about what a few fsyncs do, however many files the group holds.
var syncfsMin = 8

// syncfsMaxAvg is the average artifact size above which a group's data is
// synced file by file.
const syncfsMaxAvg = 1 << 20

// maxSyncs bounds the fsyncs of one group that run at once; concurrent
// fsyncs share the filesystem's journal commits.
const maxSyncs = 16

// CommitStaged commits writes staged by Writer.Stage on this backend, as
// Commit would one by one, but with one round of syncs for the group: the
// data of all is made durable, then each is linked to its name, then the
// names are made durable. Only then does it return, so a caller that
// records artifacts after CommitStaged never records one that a crash could
// lose. Results are in input order. It ends every staged write it is
// given, whether or not it succeeds; given a write that is not staged or
// not this backend's, it commits nothing (and leaves that one alone). On
// error none is reported committed, though some may have become visible
// (content-addressed and complete, so harmless).
func (b *Backend) CommitStaged(ctx context.Context, ws []storage.Writer) ([]storage.Committed, error) {
	group := make([]*writer, 0, len(ws))
	var bad error
	for i, sw := range ws {
		w, ok := sw.(*writer)
		switch {
		case !ok || w.b != b:
			bad = fmt.Errorf("storage: commit staged: write %d is not this backend's: %w", i, storage.ErrClosed)
		case w.done || !w.staged:
			bad = fmt.Errorf("storage: commit staged: write %d is not staged: %w", i, storage.ErrClosed)
		default:
			group = append(group, w)
		}
	}
	if bad != nil {
		for _, w := range group {
			w.discard()
		}
		return nil, bad
	}
	return b.commitGroup(ctx, group)
}

// commitGroup makes staged writes durable and visible; see CommitStaged.
func (b *Backend) commitGroup(ctx context.Context, ws []*writer) (out []storage.Committed, err error) {
	defer func() {
		if err != nil {
			for _, w := range ws {
				if !w.done {
					w.discard()
				}
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("storage: commit: %w", err)
	}
	if len(ws) == 0 {
		return nil, nil
	}
	// 1. The data, before any name points at it. Large files started
	// their writeback while being written, so their own fsyncs finish
	// quickly, where a syncfs would also wait for whatever else the
	// filesystem has dirty.
	var size int64
	for _, w := range ws {
		size += w.c.Size
	}
	useSyncfs := len(ws) >= syncfsMin && size <= int64(len(ws))*syncfsMaxAvg
	if err := b.syncAll(len(ws), useSyncfs, func(i int) error { return ws[i].f.Sync() }); err != nil {
		return nil, fmt.Errorf("storage: commit %s: %w", ws[0].c.Name, err)
	}
	// 2. The names.
	dirs := dirSet{b: b, m: map[string]*openDir{}}
	out = make([]storage.Committed, len(ws))
	for i, w := range ws {
		existed, err := b.place(ctx, w, &dirs)
		if err != nil {
			return nil, fmt.Errorf("storage: commit %s: %w", w.c.Name, bare(err))
		}
		out[i] = w.c
		out[i].Existed = existed
	}
	// 3. The directory entries.
	changed := dirs.changed()
	if err := b.syncAll(len(changed), len(changed) >= syncfsMin, func(i int) error { return changed[i].Sync() }); err != nil {
		return nil, fmt.Errorf("storage: commit %s: %w", ws[0].c.Name, err)
	}
	for _, w := range ws {
		w.finish()
	}
	return out, nil
}

// syncAll makes n files durable, with sync(i) syncing the i-th: by one
// syncfs if useSyncfs (and the system has it), else by fsyncs in parallel.
func (b *Backend) syncAll(n int, useSyncfs bool, sync func(i int) error) error {
	if useSyncfs {
		err := syncFS(b.tmp)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, syscall.ENOSYS) {
			return err
		}
	}
	if n == 1 {
		return sync(0)
	}
	var g errgroup.Group
	g.SetLimit(maxSyncs)
	for i := range n {
		g.Go(func() error { return sync(i) })
	}
	return g.Wait()
}

// place links w's synced data to its name, keeping an existing artifact of
// the same size. It reports whether one existed. The name is not durable
// until the directory is synced.
func (b *Backend) place(ctx context.Context, w *writer, dirs *dirSet) (existed bool, err error) {
	name := w.c.Name
	dir, base := path.Dir(name), path.Base(name)
	for attempt := 0; ; attempt++ {
		d, err := dirs.open(dir)
		if err != nil {
			return false, err
		}
		if w.named {
			err = b.link(w.name, d.f, base)
		} else {
			err = linkAnon(w.f, d.f, base)
		}
		switch {
		case err == nil:
			d.dirty = true
			return false, nil
		case errors.Is(err, iofs.ErrNotExist) && attempt < 5:
			// A concurrent Delete pruned the directory; recreate it.
			dirs.drop(dir)
			continue
		case !errors.Is(err, iofs.ErrExist) && !linkUnsupported(err):
			return false, err
		}
		fi, serr := b.root.Stat(name)
		if serr == nil && fi.Mode().IsRegular() && fi.Size() == w.c.Size {
			return true, nil
		}
		if serr != nil && !errors.Is(serr, iofs.ErrNotExist) {
			return false, serr
		}
		if serr == nil {
			if !fi.Mode().IsRegular() {
				return false, fmt.Errorf("%s exists and is not a regular file", name)
			}
			// Same sha256 but a different size: the stored copy is
			// damaged (say, truncated by a disk fault). The new data is
			// verified, so it replaces it.
			slog.WarnContext(ctx, "replacing damaged artifact", "name", name, "size", fi.Size(), "want", w.c.Size)
		}
		if err := w.nameTemp(); err != nil {
			return false, err
		}
		if err := b.root.Rename(w.name, name); err != nil {
			return false, err
		}
		w.named = false // moved
		// Renamed by path: sync the directory it is in now, which a
		// concurrent Delete may have replaced since d was opened.
		return false, b.syncDir(dir)
	}
}

// dirSet holds the artifact directories one commit group links into (kept
// open by the backend between groups).
type dirSet struct {
	b *Backend
	m map[string]*openDir
}

type openDir struct {
	f     *os.File
	dirty bool // gained an entry, to be synced
}

func (s *dirSet) open(dir string) (*openDir, error) {
	if d := s.m[dir]; d != nil {
		return d, nil
	}
	f, err := s.b.openDir(dir)
	if err != nil {
		return nil, err
	}
	d := &openDir{f: f}
	s.m[dir] = d
	return d, nil
}

// drop forgets a directory that was removed since it was opened.
func (s *dirSet) drop(dir string) {
	if d := s.m[dir]; d != nil {
		s.b.forgetDir(dir, d.f)
		delete(s.m, dir)
	}
}

func (s *dirSet) changed() []*os.File {
	var out []*os.File
	for _, d := range s.m {
		if d.dirty {
			out = append(out, d.f)
		}
	}
	return out
}

// maxOpenDirs bounds the directories the backend keeps open; artifact
// names use 256.
const maxOpenDirs = 1024

// openDir returns dir, opened (and created, durably, if needed) once and
// kept open: a commit group links into as many directories as it has
// artifacts, and opening one through the root costs several syscalls. An
// open directory stays safe to use after forgetDir closes it: links go
// through SyscallConn, which holds the descriptor until done.
func (b *Backend) openDir(dir string) (*os.File, error) {
	b.dirMu.Lock()
	f := b.dirs[dir]
	b.dirMu.Unlock()
	if f != nil {
		return f, nil
	}
	f, err := b.root.Open(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		if err := b.root.MkdirAll(dir, dirPerm); err != nil {
			return nil, err
		}
		// The new directory's entry must be durable too.
		if err := b.syncDir(path.Dir(dir)); err != nil {
			return nil, err
		}
		f, err = b.root.Open(dir)
	}
	if err != nil {
		return nil, err
	}
	return b.keepDir(dir, f)
}

// keepDir keeps f open as dir for later commits, or returns the copy
// another commit kept first. After Close it closes f and fails: a commit
// that raced Close (say, a lazy fetch finishing during shutdown) gets an
// error rather than writing into the released map.
func (b *Backend) keepDir(dir string, f *os.File) (*os.File, error) {
	b.dirMu.Lock()
	defer b.dirMu.Unlock()
	if b.closed {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: %w", dir, os.ErrClosed)
	}
	if old := b.dirs[dir]; old != nil {
		f.Close()
		return old, nil
	}
	if len(b.dirs) < maxOpenDirs {
		b.dirs[dir] = f
	} else {
		b.extra = append(b.extra, f) // closed with the backend
	}
	return f, nil
}

// forgetDir drops a kept directory that turned out removed (a concurrent
// Delete pruned it), so the next openDir opens its successor.
func (b *Backend) forgetDir(dir string, f *os.File) {
	b.dirMu.Lock()
	defer b.dirMu.Unlock()
	if b.dirs[dir] == f {
		delete(b.dirs, dir)
		f.Close()
	}
}
