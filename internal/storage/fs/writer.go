package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/storage"
)

// writer writes straight to its temp file, with no buffering, so readers
// tailing TempPath see each Write as soon as it returns.
type writer struct {
	b *Backend
	f *os.File
	// name is the root-relative name of the temp file in tmp/; named says
	// that it exists. An unnamed temp file gets one only if TempPath is
	// asked for or a commit must rename it.
	name  string
	named bool
	h     *digest.Hasher
	err   error // first write error; the data is incomplete
	// flushed is the offset up to which writeback has been started.
	flushed int64
	// staged is set by Stage: verified, waiting for CommitStaged; c is
	// what Stage found.
	staged bool
	c      storage.Committed
	done   bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done || w.staged {
		return 0, fmt.Errorf("storage: write: %w", storage.ErrClosed)
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	if err != nil {
		w.err = fmt.Errorf("storage: write: %w", err)
		return n, w.err
	}
	if size := w.h.Size(); size-w.flushed >= writebackChunk {
		startWriteback(w.f, w.flushed, size-w.flushed)
		w.flushed = size
	}
	return n, nil
}

// writebackChunk is how much written data may wait before its writeback
// starts. Large enough that small artifacts never pay for it.
const writebackChunk = 8 << 20

func (w *writer) Size() int64 { return w.h.Size() }

func (w *writer) Digests() digest.Digests { return w.h.Sum() }

// TempPath implements storage.TempPather. An unnamed temp file is given a
// name in tmp/ on the first call, which costs a directory update that
// writes nobody tails do not pay.
func (w *writer) TempPath() string {
	if w.name == "" {
		w.name = tmpName()
		if w.f != nil && !w.done {
			if err := linkAnon(w.f, w.b.tmp, path.Base(w.name)); err != nil {
				// Opening the path fails, which tells the caller.
				slog.Warn("storage: cannot name a temp file", "error", err)
			} else {
				w.named = true
			}
		}
	}
	return filepath.Join(w.b.dir, filepath.FromSlash(w.name))
}

// Stage verifies the write against expect as Commit does, then ends the
// writing without making the artifact durable or visible: a later
// Backend.CommitStaged does both, for many staged writes at once. The
// result is what Commit would report, except Existed. After a failure
// the write is discarded.
func (w *writer) Stage(ctx context.Context, expect digest.Expect) (storage.Committed, error) {
	return w.stage(ctx, expect)
}

func (w *writer) stage(ctx context.Context, expect digest.Expect) (c storage.Committed, err error) {
	if w.done || w.staged {
		return c, fmt.Errorf("storage: commit: %w", storage.ErrClosed)
	}
	defer func() {
		if err != nil {
			w.discard()
		}
	}()
	if w.err != nil {
		return c, fmt.Errorf("storage: commit: %w", w.err)
	}
	if err := ctx.Err(); err != nil {
		return c, fmt.Errorf("storage: commit: %w", err)
	}
	c.Size, c.Digests = w.h.Size(), w.h.Sum()
	c.Name = storage.ArtifactName(c.Digests.SHA256)
	if err := expect.Verify(c.Size, c.Digests); err != nil {
		return c, fmt.Errorf("storage: commit %s: %w", c.Name, err)
	}
	w.staged, w.c = true, c
	return c, nil
}

func (w *writer) Commit(ctx context.Context, expect digest.Expect) (storage.Committed, error) {
	c, err := w.stage(ctx, expect)
	if err != nil {
		return c, err
	}
	cs, err := w.b.commitGroup(ctx, []*writer{w})
	if err != nil {
		return c, err
	}
	return cs[0], nil
}

func (w *writer) Cancel(ctx context.Context) error {
	if w.done {
		return nil
	}
	if err := w.discard(); err != nil {
		return fmt.Errorf("storage: cancel: %w", err)
	}
	return nil
}

// nameTemp gives an unnamed temp file a name in tmp/.
func (w *writer) nameTemp() error {
	if w.named {
		return nil
	}
	name := tmpName()
	if err := linkAnon(w.f, w.b.tmp, path.Base(name)); err != nil {
		return err
	}
	w.name, w.named = name, true
	return nil
}

// finish ends a committed write: the data is in place, so the temp name,
// if any, goes. A failure to remove it is harmless: CleanTemp removes it.
func (w *writer) finish() {
	w.done, w.staged = true, false
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if w.named {
		w.b.root.Remove(w.name)
	}
}

// discard ends the write and removes the temp file.
func (w *writer) discard() error {
	w.done, w.staged = true, false
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if w.named {
		if err := w.b.root.Remove(w.name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
	}
	return nil
}
