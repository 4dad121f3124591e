package lazy

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// hopByHop are headers that describe one connection, or that pith sets
// itself, and so never pass from the upstream response to clients.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	// Set by pith from what it knows, so a lazy answer matches a stored one.
	"Content-Length": true, "Content-Type": true, "Content-Range": true, "Content-Encoding": true,
	"Accept-Ranges": true, "Etag": true, "Cache-Control": true, "Expires": true, "Date": true,
	"Server": true, "Set-Cookie": true, "Age": true, "Repr-Digest": true, "Digest": true,
	"Www-Authenticate": true, "Alt-Svc": true, "Strict-Transport-Security": true,
}

// Serve answers r for content that is not stored: HEAD and conditional
// requests from metadata alone, GET by joining (or starting) the flight
// of its digest and streaming while the bytes arrive. A non-nil error
// means nothing was written; *NotAvailableError carries the reason for a
// 404. A transfer that breaks after the headers went out aborts the
// connection.
func (f *Fetcher) Serve(w http.ResponseWriter, r *http.Request, req Request) error {
	if len(req.Sources) == 0 {
		f.m.requests.WithLabelValues("failed").Inc()
		return &NotAvailableError{Reason: "the content is not stored and no remote linked to this repository can provide it"}
	}
	known := req.SHA256 != ""
	etag := `"` + req.SHA256 + `"`
	setMeta := func(size int64) {
		h := w.Header()
		h.Set("Content-Type", req.ContentType)
		if known {
			h.Set("ETag", etag)
			if rd := reprDigest(req.SHA256); rd != "" {
				h.Set("Repr-Digest", rd)
			}
		}
		h.Set("Cache-Control", f.cfg.CacheControl)
		if size >= 0 {
			h.Set("Accept-Ranges", "bytes")
			h.Set("X-PULP-ARTIFACT-SIZE", strconv.FormatInt(size, 10))
		}
	}
	// Described content: conditionals and HEAD need no upstream at all.
	if known {
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
			setMeta(req.Size)
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		if r.Method == http.MethodHead {
			setMeta(req.Size)
			if req.Size >= 0 {
				w.Header().Set("Content-Length", strconv.FormatInt(req.Size, 10))
			}
			w.WriteHeader(http.StatusOK)
			return nil
		}
	}

	var fl *flight
	var startErr error
	var upstream http.Header
	var size int64
	for attempt := 0; ; attempt++ {
		var leader bool
		fl, leader = f.join(req)
		if leader {
			go f.fly(fl)
		} else {
			f.m.requests.WithLabelValues("coalesced").Inc()
		}
		select {
		case <-fl.ready:
		case <-r.Context().Done():
			fl.leave()
			return nil
		}
		fl.mu.Lock()
		startErr, upstream, size = fl.startErr, fl.header, fl.size
		fl.mu.Unlock()
		// Joined another request's fetch that found no source: its
		// sources were that request's (another repository's, say), so
		// try once with this request's own.
		if startErr != nil && !leader && attempt == 0 && !sameSources(fl.req.Sources, req.Sources) {
			fl.leave()
			continue
		}
		break
	}
	defer fl.leave()
	if startErr != nil {
		var na *NotAvailableError
		if errors.As(startErr, &na) {
			return na
		}
		return startErr
	}

	start, end, status := int64(0), size, http.StatusOK
	// Without a known digest there is no validator If-Range could match.
	rg := r.Header.Get("Range")
	if rg != "" && size >= 0 && (known && ifRange(r, etag) || !known && r.Header.Get("If-Range") == "") {
		s, e, ok, unsat := parseRange(rg, size)
		if unsat {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			http.Error(w, "416: Requested Range Not Satisfiable", http.StatusRequestedRangeNotSatisfiable)
			return nil
		}
		if ok {
			start, end, status = s, e, http.StatusPartialContent
		}
	}
	h := w.Header()
	for k, vs := range upstream {
		if !hopByHop[http.CanonicalHeaderKey(k)] {
			h[http.CanonicalHeaderKey(k)] = vs
		}
	}
	setMeta(size)
	if end >= 0 {
		h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	}
	if status == http.StatusPartialContent {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, size))
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return nil
	}
	w.WriteHeader(status)
	// The status goes out now, not with the first bytes: a transfer that
	// breaks before any reached this client is then a broken 200, as for
	// every other client, not a connection closed without a response,
	// which HTTP clients retry by themselves (another upstream request).
	if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil // the client left
	}
	var err error
	if status == http.StatusPartialContent {
		err = f.serveRange(r.Context(), w, fl, start, end)
	} else {
		err = fl.stream(r.Context(), w, start, end)
	}
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the client left
		}
		f.log.WarnContext(r.Context(), "lazy: aborting client transfer", "sha256", req.SHA256, "error", err)
		// Abort the connection: a clean end would pass wrong or short
		// bytes off as the artifact.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// etagMatch implements If-None-Match's weak comparison for one strong tag.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// ifRange reports whether a Range header applies: without If-Range, or
// with an If-Range naming the current entity tag. (Dates are never strong
// validators for content whose time is unknown, so they disable Range.)
func ifRange(r *http.Request, etag string) bool {
	ir := r.Header.Get("If-Range")
	return ir == "" || ir == etag
}

// parseRange parses a single byte range against size. ok=false with
// unsat=false means "ignore the header and send everything" (several
// ranges, or a malformed header, as RFC 9110 allows).
func parseRange(h string, size int64) (start, end int64, ok, unsat bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, false, true
		}
		return max(size-n, 0), size, true, false
	}
	s, err := strconv.ParseInt(a, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false, false
	}
	if s >= size {
		return 0, 0, false, true
	}
	e := size
	if b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < s {
			return 0, 0, false, false
		}
		e = min(n+1, size)
	}
	return s, e, true, false
}

// sameSources reports whether two requests name the same sources.
func sameSources(a, b []Source) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].RemoteArtifactID != b[i].RemoteArtifactID || a[i].URL != b[i].URL {
			return false
		}
	}
	return true
}
