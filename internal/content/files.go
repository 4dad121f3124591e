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

// Artifact files are served from descriptors kept open between requests:
// an open costs an openat and a close, more than anything else a request
// for a small file does. A request checks a descriptor out for itself (so
// ServeContent may seek it and sendfile may use its offset) and returns
// it afterwards. A returned descriptor is checked with one fstat when it
// is taken again: a file that was deleted or replaced (repair renames a
// new file over it) has no links left, and a truncated one has the wrong
// size; either way every kept descriptor of that name is closed and the
// file opened again, so nothing the storage directory no longer holds is
// served.

// DefaultOpenFiles bounds the descriptors the content app keeps open.
const DefaultOpenFiles = 1024

// maxIdlePerFile bounds the kept descriptors of one file: as many as
// requests for it run at once, up to this.
const maxIdlePerFile = 8

// maxKeptSize is the largest artifact read with pread through a pooled
// buffer; larger ones are sent with sendfile, which beats copying through
// user space above a few tens of KiB.
const maxKeptSize = 32 << 10

// openFiles keeps idle descriptors by storage name, least recently used
// names dropped first.
type openFiles struct {
	mu    sync.Mutex
	max   int
	idle  int
	order *list.List // of *fileSlot; front: most recent
	slots map[string]*fileSlot
}

type fileSlot struct {
	name  string
	files []*os.File
	elem  *list.Element
}

func newOpenFiles(max int) *openFiles {
	return &openFiles{max: max, order: list.New(), slots: map[string]*fileSlot{}}
}

// take checks out an idle descriptor of name, or returns nil.
func (c *openFiles) take(name string) *os.File {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slots[name]
	if s == nil || len(s.files) == 0 {
		return nil
	}
	f := s.files[len(s.files)-1]
	s.files = s.files[:len(s.files)-1]
	c.idle--
	c.order.MoveToFront(s.elem)
	return f
}

// put returns a descriptor of name for later requests (or closes it).
func (c *openFiles) put(name string, f *os.File) {
	if c == nil || c.max <= 0 {
		f.Close()
		return
	}
	var closing []*os.File
	c.mu.Lock()
	s := c.slots[name]
	if s == nil {
		s = &fileSlot{name: name}
		s.elem = c.order.PushFront(s)
		c.slots[name] = s
	} else {
		c.order.MoveToFront(s.elem)
	}
	if len(s.files) >= maxIdlePerFile {
		closing = append(closing, f)
	} else {
		s.files = append(s.files, f)
		c.idle++
	}
	for c.idle > c.max {
		old := c.order.Back().Value.(*fileSlot)
		closing = append(closing, old.files...)
		c.idle -= len(old.files)
		c.order.Remove(old.elem)
		delete(c.slots, old.name)
	}
	c.mu.Unlock()
	for _, f := range closing {
		f.Close()
	}
}

// drop closes every idle descriptor of name: the file changed.
func (c *openFiles) drop(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	s := c.slots[name]
	if s != nil {
		c.idle -= len(s.files)
		c.order.Remove(s.elem)
		delete(c.slots, name)
	}
	c.mu.Unlock()
	if s != nil {
		for _, f := range s.files {
			f.Close()
		}
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

// preadFile is what ServeContent reads a small file through: pread into a
// pooled buffer and one write, rather than sendfile's setup.
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

// isKept reports whether src is a small file's preadFile (directly or
// through ServeContent's io.LimitedReader).
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
