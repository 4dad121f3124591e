package content

import (
	"container/list"
	"io"
	"io/fs"
	"os"
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

// maxKeptSize is the largest artifact served from a kept descriptor.
const maxKeptSize = 1 << 20

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
