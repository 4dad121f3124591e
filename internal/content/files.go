package content

import (
	"container/list"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
)

// Small artifacts are served from open files kept in a bounded LRU: a
// storage open costs a walk of the path under the storage root (an
// openat per directory, closes, two fstats), which was the largest single
// cost of serving a 4 KiB file. A kept file is checked with one fstat per
// request: a file that was deleted or replaced (repair renames a new file
// over it) has no links left, and a truncated one has the wrong size;
// either way it is dropped and opened again, so nothing the storage
// directory no longer holds is served. Bytes are read with pread, which
// needs no file offset, so concurrent requests share one descriptor.
// Large files are opened per request and sent with sendfile.

// DefaultOpenFiles bounds the descriptors the content app keeps open.
const DefaultOpenFiles = 1024

// maxKeptSize is the largest artifact served from a kept descriptor:
// above it, copying through user space costs more than an open, and
// sendfile wins.
const maxKeptSize = 32 << 10

// keptFile is an open artifact file shared by the requests serving it.
type keptFile struct {
	name string
	f    *os.File
	refs int  // requests using f; guarded by openFiles.mu
	gone bool // evicted or dropped: close when refs reaches 0
	elem *list.Element
}

// openFiles is the LRU of kept files, by storage name.
type openFiles struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	items map[string]*keptFile
}

func newOpenFiles(max int) *openFiles {
	return &openFiles{max: max, order: list.New(), items: map[string]*keptFile{}}
}

// get returns the kept file of name, referenced, or nil.
func (c *openFiles) get(name string) *keptFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.items[name]
	if k == nil {
		return nil
	}
	k.refs++
	c.order.MoveToFront(k.elem)
	return k
}

// add keeps f as name and returns it referenced. If another request kept
// the same name meanwhile, f is closed and that one is returned.
func (c *openFiles) add(name string, f *os.File) *keptFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.items[name]; k != nil {
		f.Close()
		k.refs++
		c.order.MoveToFront(k.elem)
		return k
	}
	k := &keptFile{name: name, f: f, refs: 1}
	k.elem = c.order.PushFront(k)
	c.items[name] = k
	for c.order.Len() > c.max {
		c.removeLocked(c.order.Back().Value.(*keptFile))
	}
	return k
}

// release ends a request's use of k.
func (c *openFiles) release(k *keptFile) {
	c.mu.Lock()
	k.refs--
	closeIt := k.refs == 0 && k.gone
	c.mu.Unlock()
	if closeIt {
		k.f.Close()
	}
}

// drop forgets k, which no longer matches the storage; it is closed once
// its last request releases it.
func (c *openFiles) drop(k *keptFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items[k.name] == k {
		c.removeLocked(k)
	}
}

func (c *openFiles) removeLocked(k *keptFile) {
	c.order.Remove(k.elem)
	delete(c.items, k.name)
	k.gone = true
	if k.refs == 0 {
		k.f.Close()
	}
}

// current reports whether f still is the storage's file of the expected
// size: a regular file with at least one link.
func current(fi fs.FileInfo, size int64) bool {
	if !fi.Mode().IsRegular() || fi.Size() != size {
		return false
	}
	return linked(fi)
}

// preadFile is what ServeContent reads a kept file through: reads at an
// offset of its own, so the shared descriptor's offset is never used.
type preadFile struct {
	io.SectionReader
}

// copyBufs are the buffers kept files are copied to connections with.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyTo writes what remains of src (ServeContent's io.LimitedReader
// over a preadFile) to w through a pooled buffer, in as few writes as the
// size allows.
func copyTo(w io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(w, src, *bp)
}

// isKept reports whether src is a kept file's reader (directly or through
// ServeContent's io.LimitedReader).
func isKept(src io.Reader) bool {
	if l, ok := src.(*io.LimitedReader); ok {
		src = l.R
	}
	_, ok := src.(*preadFile)
	return ok
}

// artifactDirs opens artifact files with one openat: it keeps an os.Root
// for each artifact/<2 hex> directory of a local storage, opened through a
// root at the storage directory, so neither a name nor a symbolic link can
// lead out of the storage (the storage backend's own open walks the whole
// path through its root, an openat and close per directory). A directory
// that was removed and made again since is opened anew when a file is not
// found in the kept one.
type artifactDirs struct {
	top  *os.Root
	mu   sync.RWMutex
	dirs map[string]*os.Root
}

// newArtifactDirs returns the fast opener of a storage with a local
// directory, or nil.
func newArtifactDirs(be any) *artifactDirs {
	d, ok := be.(interface{ Dir() string })
	if !ok {
		return nil
	}
	top, err := os.OpenRoot(d.Dir())
	if err != nil {
		return nil
	}
	return &artifactDirs{top: top, dirs: map[string]*os.Root{}}
}

// split returns the directory and base of an artifact name
// artifact/<2 hex>/<rest>, or ok false for any other name.
func splitArtifactName(name string) (dir, base string, ok bool) {
	const prefix = "artifact/"
	if len(name) < len(prefix)+4 || name[:len(prefix)] != prefix || name[len(prefix)+2] != '/' {
		return "", "", false
	}
	dir, base = name[:len(prefix)+2], name[len(prefix)+3:]
	for i := len(prefix); i < len(dir); i++ {
		if c := dir[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", "", false
		}
	}
	if base == "." || base == ".." || strings.ContainsAny(base, "/\\\x00") {
		return "", "", false
	}
	return dir, base, true
}

// open opens the regular file name, or reports ok false when it cannot
// tell (not an artifact name, no such directory): the caller then asks the
// storage backend, which also words the errors.
func (a *artifactDirs) open(name string) (f *os.File, ok bool) {
	if a == nil {
		return nil, false
	}
	dir, base, ok := splitArtifactName(name)
	if !ok {
		return nil, false
	}
	for attempt := 0; attempt < 2; attempt++ {
		a.mu.RLock()
		r := a.dirs[dir]
		a.mu.RUnlock()
		if r == nil || attempt > 0 {
			nr, err := a.top.OpenRoot(dir)
			if err != nil {
				return nil, false
			}
			a.mu.Lock()
			if old := a.dirs[dir]; old != nil {
				old.Close()
			}
			a.dirs[dir] = nr
			a.mu.Unlock()
			r = nr
		}
		f, err := r.Open(base)
		if err == nil {
			return f, true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false
		}
	}
	return nil, false
}
