package lazy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
)

// Ranges far ahead of the spool.
//
// A Range request joins the flight of the whole artifact like any other
// request. When its first byte lies more than RangeAhead bytes beyond what
// the flight has written at the moment the request is answered, waiting for
// the spool could take most of the download; instead the same source is
// asked for just those bytes (through the same Downloader, so the remote's
// TLS, proxy, auth, headers, concurrency and rate limit apply) while the
// whole fetch goes on as before. The spool stays the fallback: an upstream
// that ignores Range (200), sends a Content-Range other than the one asked
// for, fails, or is overtaken by the spool before it answers, is dropped
// and the client waits on the spool as if no ranged request had been made.
// Once the spool holds the next byte the ranged request is dropped too,
// so a client slower than the upstream does not cost a second transfer.

// DefaultRangeAhead is how far (in bytes) a Range request's first byte
// must lie beyond the spool's end for a separate upstream range request.
const DefaultRangeAhead = 4 << 20

// Outcomes of upstream range requests, the label of
// pith_lazy_upstream_range_requests_total.
const (
	rangeServed     = "served"     // a matching 206 was streamed to the client
	rangeIgnored    = "ignored"    // the upstream answered 200: no range support
	rangeRejected   = "rejected"   // a 206 whose Content-Range or length was not what was asked
	rangeFailed     = "failed"     // no response (connection, 4xx, 5xx)
	rangeSuperseded = "superseded" // the spool reached the range first, or the client left
)

var rangeResults = []string{rangeServed, rangeIgnored, rangeRejected, rangeFailed, rangeSuperseded}

// rangeAhead is the configured distance, or -1 when upstream range
// requests are off.
func (f *Fetcher) rangeAhead() int64 {
	switch {
	case f.cfg.RangeAhead == 0:
		return DefaultRangeAhead
	case f.cfg.RangeAhead < 0:
		return -1
	}
	return f.cfg.RangeAhead
}

// setSource records the source the flight fetches from, which a ranged
// request may ask too.
func (fl *flight) setSource(src Source) {
	fl.mu.Lock()
	fl.src = &src
	fl.mu.Unlock()
}

// farSource returns the flight's source when byte start lies more than
// ahead bytes beyond the spool's end. Flights served from storage or from
// another process's spool have no source of their own and never qualify.
func (fl *flight) farSource(start, ahead int64) (Source, http.Header, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if ahead < 0 || fl.src == nil || fl.rangesIgnored || fl.done || fl.err != nil || start-fl.written <= ahead {
		return Source{}, nil, false
	}
	u, err := url.Parse(fl.src.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return Source{}, nil, false
	}
	return *fl.src, fl.header, true
}

// serveRange writes bytes [start, end) of the flight to w, from a separate
// upstream range request when start is far ahead of the spool, otherwise
// (or when that request cannot be used) from the spool.
func (f *Fetcher) serveRange(ctx context.Context, w http.ResponseWriter, fl *flight, start, end int64) error {
	src, upstream, ok := fl.farSource(start, f.rangeAhead())
	if !ok {
		return fl.stream(ctx, w, start, end)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp := f.openRange(rctx, fl, src, upstream, start, end)
	if resp == nil {
		return fl.stream(ctx, w, start, end)
	}
	off, err := f.copyRange(ctx, w, fl, resp.Body, cancel, start, end)
	resp.Body.Close()
	if err != nil {
		return err
	}
	// The rest, if any, comes from the spool; at off == end this only
	// checks that the whole fetch has not failed meanwhile.
	return fl.stream(ctx, w, off, end)
}

// openRange asks src for bytes [start, end) and returns the response once
// it proves to be exactly that range, or nil when the spool should serve
// the request instead.
func (f *Fetcher) openRange(ctx context.Context, fl *flight, src Source, upstream http.Header, start, end int64) *http.Response {
	dl, err := f.cfg.Downloaders(ctx, src.RemoteID, src.RemoteStamp)
	if err != nil {
		f.log.WarnContext(ctx, "lazy: range request: no downloader", "url", src.URL, "error", err)
		return nil
	}
	hdr := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", start, end-1)}}
	// Tie the range to the representation the whole fetch is reading: an
	// upstream whose file changed since then answers 200, not a range of
	// other bytes.
	if v := rangeValidator(upstream); v != "" {
		hdr.Set("If-Range", v)
	}
	type opened struct {
		resp *http.Response
		err  error
	}
	ch := make(chan opened, 1)
	go func() {
		resp, err := dl.Open(ctx, src.URL, hdr)
		ch <- opened{resp, err}
	}()
	// A response that arrives after the spool won is closed unread.
	abandon := func(result string) {
		f.m.rangeRequests.WithLabelValues(result).Inc()
		go func() {
			if o := <-ch; o.resp != nil {
				o.resp.Body.Close()
			}
		}()
	}
	for {
		fl.mu.Lock()
		covered, ferr, wake := fl.written > start || fl.done, fl.err, fl.wake
		fl.mu.Unlock()
		if covered || ferr != nil {
			abandon(rangeSuperseded)
			return nil
		}
		select {
		case o := <-ch:
			if o.err != nil {
				f.m.rangeRequests.WithLabelValues(rangeFailed).Inc()
				f.log.WarnContext(ctx, "lazy: range request failed, waiting on the spool", "url", src.URL, "error", o.err)
				return nil
			}
			if err := checkRange(o.resp, start, end, fl.size); err != nil {
				o.resp.Body.Close()
				result := rangeRejected
				if errors.Is(err, errRangeIgnored) {
					// Parallel downloaders send many ranges at once; one 200
					// is enough to know the answer to the others.
					fl.mu.Lock()
					fl.rangesIgnored = true
					fl.mu.Unlock()
					result = rangeIgnored
					f.log.DebugContext(ctx, "lazy: upstream ignores Range, waiting on the spool", "url", src.URL)
				} else {
					f.log.WarnContext(ctx, "lazy: range response rejected, waiting on the spool", "url", src.URL, "error", err)
				}
				f.m.rangeRequests.WithLabelValues(result).Inc()
				return nil
			}
			f.m.rangeRequests.WithLabelValues(rangeServed).Inc()
			return o.resp
		case <-wake:
		case <-ctx.Done():
			abandon(rangeSuperseded)
			return nil
		}
	}
}

var errRangeIgnored = errors.New("the upstream answered the whole body")

// checkRange accepts only a 206 for exactly bytes [start, end) of an
// entity of size bytes, unencoded.
func checkRange(resp *http.Response, start, end, size int64) error {
	if resp.StatusCode != http.StatusPartialContent {
		if resp.StatusCode == http.StatusOK {
			return errRangeIgnored
		}
		return fmt.Errorf("status %d to a range request", resp.StatusCode)
	}
	cr := resp.Header.Get("Content-Range")
	s, e, total, ok := parseContentRange(cr)
	if !ok || s != start || e != end-1 || total != size {
		return fmt.Errorf("content-range %q, asked for bytes %d-%d/%d", cr, start, end-1, size)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != end-start {
		return fmt.Errorf("content-length %d for a range of %d bytes", resp.ContentLength, end-start)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return fmt.Errorf("content-encoding %q on a range", ce)
	}
	return nil
}

// parseContentRange parses "bytes first-last/complete" with a known
// complete length.
func parseContentRange(h string) (first, last, complete int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	complete, err3 = strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || complete <= last {
		return 0, 0, 0, false
	}
	return first, last, complete, true
}

// rangeValidator is the If-Range value naming the representation of the
// whole fetch's response: its strong ETag, else its Last-Modified.
func rangeValidator(h http.Header) string {
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		return et
	}
	return h.Get("Last-Modified")
}

// copyRange streams the ranged upstream body to w from off until end, the
// body breaks (the spool then serves the rest) or the spool holds the next
// byte (handover: the duplicate transfer stops). It returns where it
// stopped; an error means the client must be aborted.
func (f *Fetcher) copyRange(ctx context.Context, w http.ResponseWriter, fl *flight, body io.Reader, cancel func(), off, end int64) (int64, error) {
	rc := http.NewResponseController(w)
	// A Read blocked on a stalled upstream would notice neither a failed
	// flight nor the spool overtaking it: cancelling the ranged request
	// unblocks it, and the checks below pick the way on.
	var pos atomic.Int64
	var dropped atomic.Bool // the watcher cancelled the ranged request
	pos.Store(off)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			fl.mu.Lock()
			written, ferr, wake := fl.written, fl.err, fl.wake
			fl.mu.Unlock()
			if ferr != nil || written > pos.Load() {
				dropped.Store(true)
				cancel()
				return
			}
			select {
			case <-wake:
			case <-stop:
				return
			}
		}
	}()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for off < end {
		fl.mu.Lock()
		written, ferr := fl.written, fl.err
		fl.mu.Unlock()
		if ferr != nil {
			// The source failed the whole fetch (wrong bytes, or a broken
			// transfer): its range is not trusted either.
			return off, ferr
		}
		if written > off {
			return off, nil
		}
		n, rerr := body.Read(buf[:min(int64(len(buf)), end-off)])
		if n > 0 {
			f.m.upstreamBytes.Add(float64(n))
			if _, err := w.Write(buf[:n]); err != nil {
				return off, err
			}
			off += int64(n)
			pos.Store(off)
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return off, err
			}
		}
		if rerr != nil {
			if off < end && ctx.Err() == nil && !dropped.Load() {
				f.log.WarnContext(ctx, "lazy: range response broke, continuing from the spool", "at", off, "error", rerr)
			}
			return off, nil
		}
	}
	return off, nil
}
