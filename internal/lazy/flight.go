package lazy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
)

var errNoClients = errors.New("lazy: every client left a streamed fetch")

// flight is one fetch of one artifact, shared by every client asking for
// it while it is in the air.
type flight struct {
	f        *Fetcher
	req      Request
	ctx      context.Context
	cancel   context.CancelCauseFunc
	ready    chan struct{} // closed once clients can stream or have their error
	landedCh chan struct{} // closed when the leader is done

	mu       sync.Mutex
	started  bool
	startErr error       // set instead of starting: no source could deliver
	file     *os.File    // spool or stored artifact, read with pread
	path     string      // file's path, if known: clients open their own handle by it
	size     int64       // expected size, -1 if unknown
	header   http.Header // upstream response headers, nil for local hits
	storing  bool        // the fetch continues without clients
	written  int64
	wake     chan struct{} // closed and replaced whenever something changes
	done     bool
	verified bool
	err      error // set when the transfer broke: clients abort
	clients  int
	landed   bool
	closed   bool

	leased bool   // this process holds the cross-process lease
	spool  string // the spool path published in the lease

	src           *Source // the source being fetched, for ranged requests; nil for local hits and followers
	rangesIgnored bool    // src answered a range request with the whole body: ask it no more
}

func newFlight(f *Fetcher, req Request) *flight {
	ctx, cancelTimeout := context.WithTimeout(context.Background(), f.cfg.FetchTimeout)
	ctx, cancel := context.WithCancelCause(ctx)
	fl := &flight{f: f, req: req, size: req.Size, ready: make(chan struct{}), landedCh: make(chan struct{}),
		wake: make(chan struct{})}
	fl.ctx = ctx
	fl.cancel = func(cause error) { cancel(cause); cancelTimeout() }
	// Before a source is chosen the fetch survives its clients unless
	// every candidate is streamed.
	fl.storing = false
	for _, s := range req.Sources {
		if !s.Streamed {
			fl.storing = true
		}
	}
	return fl
}

// broadcast wakes every waiting client. Callers hold mu.
func (fl *flight) broadcast() {
	close(fl.wake)
	fl.wake = make(chan struct{})
}

// start makes the flight readable from file, found at path ("" if
// unknown).
func (fl *flight) start(file *os.File, path string, size int64, upstream http.Header) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.file, fl.path, fl.size, fl.header, fl.started = file, path, size, upstream, true
	close(fl.ready)
	fl.broadcast()
}

// setStoring records whether the chosen source's bytes are kept.
func (fl *flight) setStoring(storing bool) {
	fl.mu.Lock()
	fl.storing = storing
	fl.mu.Unlock()
}

// progress records that the spool holds n bytes.
func (fl *flight) progress(n int64) {
	fl.mu.Lock()
	fl.written = n
	fl.broadcast()
	fl.mu.Unlock()
}

// finish marks the body complete and verified.
func (fl *flight) finish(verified bool) {
	fl.mu.Lock()
	fl.done, fl.verified = true, verified
	fl.broadcast()
	fl.mu.Unlock()
}

// fail ends the flight with err: before it started, clients get err as
// their answer; after, their transfers are aborted.
func (fl *flight) fail(err error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if !fl.started {
		fl.startErr, fl.started = err, true
		close(fl.ready)
	} else {
		fl.done, fl.err = true, err
	}
	fl.broadcast()
}

// leave drops a client. A streamed fetch stops with its last client.
func (fl *flight) leave() {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.clients--
	if fl.clients == 0 && !fl.landed && !fl.storing {
		fl.cancel(errNoClients)
	}
	fl.closeIfIdle()
}

// closeIfIdle closes the spool handle once nobody can read it any more.
// Callers hold mu.
func (fl *flight) closeIfIdle() {
	if fl.landed && fl.clients == 0 && fl.file != nil && !fl.closed {
		fl.closed = true
		fl.file.Close()
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// stream copies bytes [off, end) of the flight to w as they arrive (end
// -1: to the end, size unknown). The artifact's last byte is held back
// until the whole body is verified, so a client never sees a clean end of
// a wrong body. It returns the flight's error if the transfer broke.
func (fl *flight) stream(ctx context.Context, w http.ResponseWriter, off, end int64) error {
	rc := http.NewResponseController(w)
	// A private handle on the spool lets the kernel copy file to socket
	// (sendfile) with this client's own offset; without one, pread into a
	// buffer.
	own := fl.reopen()
	if own != nil {
		defer own.Close()
	}
	rf, zeroCopy := w.(io.ReaderFrom)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		fl.mu.Lock()
		written, verified, done, ferr, wake := fl.written, fl.verified, fl.done, fl.err, fl.wake
		fl.mu.Unlock()
		if ferr != nil {
			return ferr
		}
		limit := written
		reachesEnd := end < 0 || fl.size < 0 || end >= fl.size
		if !verified && reachesEnd && limit > 0 {
			limit--
		}
		if end >= 0 && limit > end {
			limit = end
		}
		if off < limit {
			if own != nil && zeroCopy {
				if _, err := own.Seek(off, io.SeekStart); err != nil {
					return err
				}
				n, err := rf.ReadFrom(io.LimitReader(own, limit-off))
				off += n
				if err != nil {
					return err
				}
				continue
			}
			n := min(limit-off, int64(len(buf)))
			m, err := fl.file.ReadAt(buf[:n], off)
			if int64(m) < n {
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			off += n
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			continue
		}
		if end >= 0 && off >= end {
			return nil
		}
		if done && verified && off >= written {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// reopen opens the flight's file again, with its own offset, or returns
// nil where that is not possible. By its path if known: a herd of clients
// starting at once opens /proc/self/fd/N several times slower (it is
// resolved through the process's descriptor table under its lock). A spool
// renamed by its commit since is opened through the descriptor instead.
func (fl *flight) reopen() *os.File {
	if fl.path != "" {
		if f, err := os.Open(fl.path); err == nil {
			if sameFile(f, fl.file) {
				return f
			}
			f.Close()
		}
	}
	f, err := os.Open("/proc/self/fd/" + strconv.Itoa(int(fl.file.Fd())))
	if err != nil {
		return nil
	}
	return f
}

// sameFile reports whether two handles name the same file.
func sameFile(a, b *os.File) bool {
	ai, err := a.Stat()
	if err != nil {
		return false
	}
	bi, err := b.Stat()
	return err == nil && os.SameFile(ai, bi)
}
