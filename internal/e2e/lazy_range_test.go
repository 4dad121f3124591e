package e2e

// Ranges far ahead of a lazy fetch, through a real pith process.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// rangingUpstream is a faultyUpstream (gates, counts) that also answers
// Range requests for its files, recording the Range and If-Range headers
// it got.
type rangingUpstream struct {
	*faultyUpstream
	mu       sync.Mutex
	ranges   []string
	ifRanges []string
}

func newRangingUpstream(t *testing.T, files map[string][]byte) *rangingUpstream {
	fu := &faultyUpstream{files: files, hits: map[string]int{}, gate: map[string]chan struct{}{},
		trickle: map[string]time.Duration{}, corrupt: map[string]bool{}, die: map[string]bool{}}
	u := &rangingUpstream{faultyUpstream: fu}
	fu.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/repo/")
		rg := r.Header.Get("Range")
		fu.mu.Lock()
		data, ok := fu.files[name]
		fu.mu.Unlock()
		if rg == "" || !ok {
			fu.serve(w, r)
			return
		}
		u.mu.Lock()
		u.ranges = append(u.ranges, rg)
		u.ifRanges = append(u.ifRanges, r.Header.Get("If-Range"))
		u.mu.Unlock()
		// The same Last-Modified as whole-body answers, so If-Range matches.
		mod, _ := http.ParseTime("Wed, 01 Jan 2025 00:00:00 GMT")
		http.ServeContent(w, r, name, mod, bytes.NewReader(data))
	}))
	t.Cleanup(fu.Close)
	return u
}

func (u *rangingUpstream) seen() (ranges, ifRanges []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.ranges...), append([]string(nil), u.ifRanges...)
}

// getRange asks pith for a range, failing the test rather than hanging
// when the answer does not come.
func getRange(t *testing.T, url, rg string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Range", rg)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s with Range %s: %v", url, rg, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s with Range %s: body: %v", url, rg, err)
	}
	return resp, b
}

// TestLazyRangeFarAheadThroughPith: with the whole upstream fetch held
// after its first chunk, a range 7 MiB into an on_demand file arrives
// from an upstream range request (tied to the fetch by If-Range); the
// whole file is then committed, and the upstream saw one whole GET and
// one ranged GET.
func TestLazyRangeFarAheadThroughPith(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(8 << 20)
		up := newRangingUpstream(t, map[string][]byte{"far.iso": data})
		faultyRepo(t, p, "fr", up.faultyUpstream, "on_demand")
		gate := up.hold("far.iso")
		release := sync.OnceFunc(func() { close(gate) })
		t.Cleanup(release)

		first, last := 7<<20, 7<<20+65535
		resp, b := getRange(t, p.base+"/pulp/content/fr/far.iso", fmt.Sprintf("bytes=%d-%d", first, last))
		if resp.StatusCode != 206 || !bytes.Equal(b, data[first:last+1]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)) {
			t.Fatalf("range: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
		}
		if sent := up.sent.Load(); sent >= int64(first) {
			t.Fatalf("the whole fetch had sent %d bytes, past the range", sent)
		}
		ranges, ifRanges := up.seen()
		if up.count("far.iso") != 1 || len(ranges) != 1 || ranges[0] != fmt.Sprintf("bytes=%d-%d", first, last) ||
			ifRanges[0] != "Wed, 01 Jan 2025 00:00:00 GMT" {
			t.Fatalf("upstream: %d whole GETs, ranges %q, If-Range %q", up.count("far.iso"), ranges, ifRanges)
		}
		if v := metric(t, p, `pith_lazy_upstream_range_requests_total{result="served"}`); v != 1 {
			t.Errorf("served range requests = %v", v)
		}
		release()
		waitArtifact(t, p, "far.iso")
		settledSpool(t, p)
		if ranges, _ := up.seen(); up.count("far.iso") != 1 || len(ranges) != 1 {
			t.Errorf("upstream after commit: %d whole GETs, %d ranged", up.count("far.iso"), len(ranges))
		}
	})
}

// TestLazyRangeAheadZeroAlwaysWaitsForTheFetch: --lazy-range-ahead 0
// makes no upstream range request; the far range comes from the spool.
func TestLazyRangeAheadZeroAlwaysWaitsForTheFetch(t *testing.T) {
	t.Setenv("PITH_LAZY_RANGE_AHEAD", "0")
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(8 << 20)
		up := newRangingUpstream(t, map[string][]byte{"off.iso": data})
		faultyRepo(t, p, "ro", up.faultyUpstream, "on_demand")
		first := len(data) - 1000
		resp, b := getRange(t, p.base+"/pulp/content/ro/off.iso", fmt.Sprintf("bytes=%d-", first))
		if resp.StatusCode != 206 || !bytes.Equal(b, data[first:]) {
			t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(b))
		}
		if ranges, _ := up.seen(); len(ranges) != 0 || up.count("off.iso") != 1 {
			t.Fatalf("upstream: %d whole GETs, ranges %q", up.count("off.iso"), ranges)
		}
		waitArtifact(t, p, "off.iso")
	})
}
