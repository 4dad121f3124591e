package lazy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// rangeUpstream serves one blob, honouring single byte ranges. Whole-body
// GETs send their first chunk and then wait for gate (if set) before
// trickling the rest; it records every Range and If-Range header it got.
type rangeUpstream struct {
	*httptest.Server
	data []byte
	etag string

	mu       sync.Mutex
	full     int      // GETs without Range
	ranges   []string // Range headers, in order
	ifRanges []string
	gate     chan struct{} // holds whole-body GETs after their first chunk
	// mode changes how ranged GETs are answered: "ignore" sends 200 and
	// the whole body, "shift" a 206 one byte off, "die" half the range and
	// a broken connection, "hold" waits for rangeGate after the first
	// chunk.
	mode      string
	rangeGate chan struct{}

	fullCanceled, rangeCanceled atomic.Int64
	fullSent                    atomic.Int64 // body bytes sent to whole-body GETs
}

func newRangeUpstream(t *testing.T, data []byte) *rangeUpstream {
	sum := sha256.Sum256(data)
	u := &rangeUpstream{data: data, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// hold makes whole-body GETs (or, with ranged, ranged GETs in "hold"
// mode) wait until the returned release is called, as it is at the end of
// the test at the latest, so a failing test does not hang on its upstream.
func (u *rangeUpstream) hold(t *testing.T, ranged bool) (release func()) {
	g := make(chan struct{})
	u.mu.Lock()
	if ranged {
		u.rangeGate = g
	} else {
		u.gate = g
	}
	u.mu.Unlock()
	release = sync.OnceFunc(func() { close(g) })
	t.Cleanup(release)
	return release
}

func (u *rangeUpstream) source(path string) (Source, string) {
	sum := sha256.Sum256(u.data)
	return Source{RemoteArtifactID: "ra" + path, RemoteID: "remote", URL: u.URL + path}, hex.EncodeToString(sum[:])
}

func (u *rangeUpstream) seen() (full int, ranges, ifRanges []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.full, append([]string(nil), u.ranges...), append([]string(nil), u.ifRanges...)
}

func (u *rangeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	rg := r.Header.Get("Range")
	u.mu.Lock()
	if rg == "" {
		u.full++
	} else {
		u.ranges = append(u.ranges, rg)
		u.ifRanges = append(u.ifRanges, r.Header.Get("If-Range"))
	}
	gate, mode, rangeGate := u.gate, u.mode, u.rangeGate
	u.mu.Unlock()
	w.Header().Set("ETag", u.etag)
	w.Header().Set("Accept-Ranges", "bytes")
	size := int64(len(u.data))
	if rg == "" || mode == "ignore" {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		u.send(w, r, u.data, gate, &u.fullCanceled, rg == "")
		return
	}
	var s, e int64
	if _, err := fmt.Sscanf(rg, "bytes=%d-%d", &s, &e); err != nil || s > e || e >= size {
		http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	if mode == "shift" && e+1 < size {
		s, e = s+1, e+1
	}
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, e, size))
	w.Header().Set("Content-Length", strconv.FormatInt(e-s+1, 10))
	w.WriteHeader(http.StatusPartialContent)
	body := u.data[s : e+1]
	if mode == "die" {
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	var hold chan struct{}
	if mode == "hold" {
		hold = rangeGate
	}
	u.send(w, r, body, hold, &u.rangeCanceled, false)
}

// send writes b: a first chunk, then (after gate) the rest in 16 KiB
// pieces with a short pause, noting a client that went away.
func (u *rangeUpstream) send(w http.ResponseWriter, r *http.Request, b []byte, gate chan struct{}, canceled *atomic.Int64, full bool) {
	first := min(len(b), 16<<10)
	w.Write(b[:first])
	w.(http.Flusher).Flush()
	if full {
		u.fullSent.Add(int64(first))
	}
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			canceled.Add(1)
			return
		}
	}
	for rest := b[first:]; len(rest) > 0; {
		n := min(len(rest), 16<<10)
		if _, err := w.Write(rest[:n]); err != nil {
			canceled.Add(1)
			return
		}
		w.(http.Flusher).Flush()
		if full {
			u.fullSent.Add(int64(n))
		}
		rest = rest[n:]
		select {
		case <-time.After(time.Millisecond):
		case <-r.Context().Done():
			canceled.Add(1)
			return
		}
	}
}

func (e *env) rangeCounter(result string) float64 {
	return testutil.ToFloat64(e.f.m.rangeRequests.WithLabelValues(result))
}

// getTimeout is e.get bounded by d, so a request that would wait for a
// held upstream fails the test instead of hanging it.
func (e *env) getTimeout(d time.Duration, path string, hdr ...string) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestLazyRangeFarAheadUsesUpstreamRange: a range far beyond the spool
// is answered from an upstream range request while the whole fetch is
// held after its first chunk; the whole artifact is still fetched once

// heldRangeCase serves 6 MiB at path from an upstream in mode whose whole
// GETs are held until release, routed with the bytes' true digest.
func heldRangeCase(t *testing.T, s *store.Store, mode, path string) (e *env, u *rangeUpstream, data []byte, sum string, release func()) {
	t.Helper()
	e = newEnv(t, s, "")
	data = blob(6 << 20)
	u = newRangeUpstream(t, data)
	u.mode = mode
	release = u.hold(t, false)
	src, sum := u.source(path)
	e.route(path, Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
	return e, u, data, sum, release
}

// rangeAsync starts a GET of bytes [start, end] of path and returns a
// function that waits for its answer.
func (e *env) rangeAsync(path string, start, end int) func() (*http.Response, []byte, error) {
	var resp *http.Response
	var b []byte
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, b, err = e.getTimeout(20*time.Second, path, "Range", fmt.Sprintf("bytes=%d-%d", start, end))
	}()
	return func() (*http.Response, []byte, error) { <-done; return resp, b, err }
}

// and committed.
func TestLazyRangeFarAheadUsesUpstreamRange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		data := blob(8 << 20)
		u := newRangeUpstream(t, data)
		release := u.hold(t, false)
		src, sum := u.source("/big.iso")
		e.route("/big.iso", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})

		start, end := 7<<20, 7<<20+100_000 // end inclusive
		resp, b, err := e.getTimeout(10*time.Second, "/big.iso", "Range", fmt.Sprintf("bytes=%d-%d", start, end))
		if err != nil {
			t.Fatalf("range while the whole fetch is held: %v", err)
		}
		if resp.StatusCode != 206 || !bytes.Equal(b, data[start:end+1]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)) ||
			resp.Header.Get("ETag") != `"`+sum+`"` {
			t.Fatalf("range: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
		}
		if sent := u.fullSent.Load(); sent >= int64(start) {
			t.Fatalf("the whole fetch had sent %d bytes, past the range's start", sent)
		}
		full, ranges, ifRanges := u.seen()
		if full != 1 || len(ranges) != 1 || ranges[0] != fmt.Sprintf("bytes=%d-%d", start, end) || ifRanges[0] != u.etag {
			t.Fatalf("upstream saw %d whole GETs, ranges %q with If-Range %q", full, ranges, ifRanges)
		}
		if e.rangeCounter(rangeServed) != 1 {
			t.Errorf("served range requests = %v", e.rangeCounter(rangeServed))
		}
		release()
		if !e.waitStored(sum) {
			t.Fatal("the whole artifact was not committed")
		}
		e.settled()
		if full, ranges, _ := u.seen(); full != 1 || len(ranges) != 1 {
			t.Errorf("upstream requests: %d whole, %d ranged", full, len(ranges))
		}
		// Stored now: served locally, no upstream at all.
		resp, b, _ = e.get("/big.iso", "Range", "bytes=-10")
		if resp.StatusCode != 206 || !bytes.Equal(b, data[len(data)-10:]) {
			t.Fatalf("suffix range after commit: %d", resp.StatusCode)
		}
		if full, ranges, _ := u.seen(); full != 1 || len(ranges) != 1 {
			t.Errorf("after commit: %d whole, %d ranged", full, len(ranges))
		}
	})
}

// TestLazyRangeNearWaitsOnSpool: a range within RangeAhead of the spool
// makes no upstream range request.
func TestLazyRangeNearWaitsOnSpool(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		data := blob(2 << 20)
		u := newRangeUpstream(t, data)
		src, sum := u.source("/near")
		e.route("/near", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
		for _, rg := range [][2]int{{1000, 1999}, {1 << 20, 1<<20 + 99}, {len(data) - 10, len(data) - 1}} {
			resp, b, err := e.get("/near", "Range", fmt.Sprintf("bytes=%d-%d", rg[0], rg[1]))
			if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, data[rg[0]:rg[1]+1]) {
				t.Fatalf("range %v: %v", rg, err)
			}
		}
		if _, ranges, _ := u.seen(); len(ranges) != 0 {
			t.Fatalf("upstream range requests %q for ranges within %d bytes", ranges, DefaultRangeAhead)
		}
		for _, r := range rangeResults {
			if n := e.rangeCounter(r); n != 0 {
				t.Errorf("range requests %s = %v", r, n)
			}
		}
		if !e.waitStored(sum) {
			t.Fatal("not committed")
		}
	})
}

// TestLazyRangeUpstreamIgnoringRange: an upstream that answers a range
// request with 200 is not streamed as a range; the client gets its 206
// from the spool.
func TestLazyRangeUpstreamIgnoringRange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e, u, data, sum, release := heldRangeCase(t, s, "ignore", "/noranges")
		start, end := 5<<20, 5<<20+4095
		wait := e.rangeAsync("/noranges", start, end)
		waitFor(t, "the range request to be ignored", func() bool { return e.rangeCounter(rangeIgnored) == 1 })
		// Another far range of the same fetch does not ask again.
		wait2 := e.rangeAsync("/noranges", start-100, len(data)-1)
		waitFor(t, "the second client to join", func() bool { return e.counter("requests", "coalesced") == 1 })
		release()
		resp, b, err := wait()
		resp2, b2, err2 := wait2()
		if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, data[start:end+1]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)) {
			t.Fatalf("range: %v", err)
		}
		if err2 != nil || resp2.StatusCode != 206 || !bytes.Equal(b2, data[start-100:]) {
			t.Fatalf("second range: %v", err2)
		}
		if full, ranges, _ := u.seen(); full != 1 || len(ranges) != 1 {
			t.Errorf("upstream requests: %d whole, %d ranged", full, len(ranges))
		}
		if e.rangeCounter(rangeServed) != 0 {
			t.Error("a 200 counted as a served range")
		}
		if !e.waitStored(sum) {
			t.Fatal("not committed")
		}
	})
}

// TestLazyRangeWrongContentRangeNotPassedOn: a 206 for other bytes than
// asked is dropped; the client gets the right bytes from the spool.
func TestLazyRangeWrongContentRangeNotPassedOn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e, _, data, sum, release := heldRangeCase(t, s, "shift", "/shifted")
		start, end := 5<<20, 5<<20+4095
		wait := e.rangeAsync("/shifted", start, end)
		waitFor(t, "the range response to be rejected", func() bool { return e.rangeCounter(rangeRejected) == 1 })
		release()
		resp, b, err := wait()
		if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, data[start:end+1]) {
			t.Fatalf("range: %v", err)
		}
		if e.rangeCounter(rangeServed) != 0 {
			t.Error("a shifted range counted as served")
		}
		if !e.waitStored(sum) {
			t.Fatal("not committed")
		}
	})
}

// TestLazyRangeBrokenUpstreamRangeContinuesFromSpool: a ranged transfer
// that breaks half way is completed from the spool, without a gap.
func TestLazyRangeBrokenUpstreamRangeContinuesFromSpool(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e, _, data, sum, release := heldRangeCase(t, s, "die", "/dies")
		start, end := 5<<20, 5<<20+199_999
		wait := e.rangeAsync("/dies", start, end)
		waitFor(t, "the range response", func() bool { return e.rangeCounter(rangeServed) == 1 })
		time.Sleep(50 * time.Millisecond) // let it break
		release()
		resp, b, err := wait()
		if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, data[start:end+1]) {
			t.Fatalf("range: %v, %d bytes", err, len(b))
		}
		if !e.waitStored(sum) {
			t.Fatal("not committed")
		}
	})
}

// TestLazyRangeHandsOverToSpool: once the whole fetch overtakes a slow
// ranged transfer, the client continues from the spool and the ranged
// upstream request is dropped.
func TestLazyRangeHandsOverToSpool(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e, u, data, sum, release := heldRangeCase(t, s, "hold", "/slow")
		u.hold(t, true)
		start, end := 5<<20, 5<<20+999_999
		wait := e.rangeAsync("/slow", start, end)
		waitFor(t, "the range response", func() bool { return e.rangeCounter(rangeServed) == 1 })
		release() // the whole fetch runs; the ranged one stays held
		resp, b, err := wait()
		if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, data[start:end+1]) {
			t.Fatalf("range: %v, %d bytes", err, len(b))
		}
		waitFor(t, "the ranged upstream request to be dropped", func() bool { return u.rangeCanceled.Load() == 1 })
		if !e.waitStored(sum) {
			t.Fatal("not committed")
		}
	})
}

// TestLazyRangeFarAheadStreamed: a streamed source serves a far range
// the same way, stores nothing, and the whole fetch stops with its last
// client.
func TestLazyRangeFarAheadStreamed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		data := blob(8 << 20)
		u := newRangeUpstream(t, data)
		u.hold(t, false)
		src, sum := u.source("/s.iso")
		src.Streamed = true
		e.route("/s.iso", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
		resp, b, err := e.getTimeout(10*time.Second, "/s.iso", "Range", "bytes=-5000")
		if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, data[len(data)-5000:]) {
			t.Fatalf("suffix range on streamed content: %v", err)
		}
		if _, ranges, _ := u.seen(); len(ranges) != 1 || ranges[0] != fmt.Sprintf("bytes=%d-%d", len(data)-5000, len(data)-1) {
			t.Fatalf("upstream ranges %q", ranges)
		}
		e.settled()
		waitFor(t, "the whole streamed fetch to stop", func() bool { return u.fullCanceled.Load() == 1 })
		if e.stored(sum) {
			t.Fatal("streamed content stored")
		}
	})
}

// TestLazyRangeAbortedWhenWholeFetchFails: a client reading a far range
// is aborted, not ended cleanly, when the whole fetch from the same
// source turns out wrong before the range is complete.
func TestLazyRangeAbortedWhenWholeFetchFails(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		data := blob(6 << 20)
		u := newRangeUpstream(t, data)
		u.mode = "hold"
		release := u.hold(t, false)
		u.hold(t, true)
		src, sum := u.source("/bad")
		wrong := bytes.Clone([]byte(sum))
		wrong[0] ^= 1 // the recorded digest no longer matches the upstream's bytes
		e.route("/bad", Request{SHA256: string(wrong), Size: int64(len(data)), Sources: []Source{src}})
		start, end := 5<<20, len(data)-1
		var wg sync.WaitGroup
		var err error
		var got int
		wg.Go(func() {
			var b []byte
			_, b, err = e.getTimeout(20*time.Second, "/bad", "Range", fmt.Sprintf("bytes=%d-%d", start, end))
			got = len(b)
		})
		waitFor(t, "the range response", func() bool { return e.rangeCounter(rangeServed) == 1 })
		release()
		wg.Wait()
		if err == nil {
			t.Fatalf("client got a clean end (%d bytes) of a range whose source failed verification", got)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("client left waiting instead of aborted: %v", err)
		}
		if e.counter("digest") != 1 {
			t.Errorf("digest failures = %v", e.counter("digest"))
		}
		if !e.f.cooled(src) {
			t.Error("source not cooling down")
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
