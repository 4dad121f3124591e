package download

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/digest"
)

// Pulp's test_bad_sync: a truncated body, a corrupted byte, a 429, then
// the right bytes — four requests and success.
func TestPulpBadResponseSequence(t *testing.T) {
	content := randomBytes(t, 100_000)
	c := &counter{h: func(n int, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(content))
			hijackWrite(t, w, append([]byte(head), content[:len(content)/2]...))
		case 2:
			bad := bytes.Clone(content)
			bad[len(bad)/3] ^= 0xff
			w.Write(bad)
		case 3:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			w.Write(content)
		}
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	var ds dests
	d := newTestDownloader(t, Config{})
	res, err := d.Download(t.Context(), srv.URL+"/f", expectOf(content), ds.new)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.n.Load(); got != 4 {
		t.Errorf("requests = %d, want 4", got)
	}
	if res.Attempts != 4 || res.Size != int64(len(content)) || res.Digests.SHA256 != sha256Hex(content) {
		t.Errorf("result = %+v", res)
	}
	all := ds.snapshot()
	if len(all) != 3 {
		t.Fatalf("destinations = %d, want 3 (no destination for the 429)", len(all))
	}
	for i, m := range all[:2] {
		if !m.canceled {
			t.Errorf("destination %d of a failed attempt was not cancelled", i)
		}
	}
	last := all[2]
	if last.canceled || !bytes.Equal(last.Bytes(), content) || res.Dest != Dest(last) {
		t.Errorf("final destination wrong (canceled=%v, %d bytes)", last.canceled, last.Len())
	}
	if res.Digests.SHA512 == "" || res.Digests.SHA224 == "" || res.Digests.SHA384 == "" {
		t.Errorf("not all digests computed: %+v", res.Digests)
	}
}

func TestNotFoundIsNotRetried(t *testing.T) {
	c := &counter{h: func(int, http.ResponseWriter, *http.Request) {}}
	c.h = func(_ int, w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{})
	_, err := d.Download(t.Context(), srv.URL+"/missing", unknown, newDiscard)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 404 {
		t.Fatalf("err = %v, want HTTPError 404", err)
	}
	if IsRetryable(err) {
		t.Error("404 reported retryable")
	}
	if !strings.Contains(err.Error(), srv.URL+"/missing") || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("error text %q lacks URL or status", err)
	}
	if got := c.n.Load(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

func TestServerErrorRetriedMaxRetriesTimes(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{MaxRetries: 2})
	_, err := d.Download(t.Context(), srv.URL, unknown, newDiscard)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 500 {
		t.Fatalf("err = %v, want HTTPError 500", err)
	}
	if got := c.n.Load(); got != 3 {
		t.Errorf("requests = %d, want 3 (1 + MaxRetries)", got)
	}
}

func TestDefaultMaxRetries(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{MaxRetries: 0}) // 0 means the default, as in Pulp
	if _, err := d.Download(t.Context(), srv.URL, unknown, newDiscard); err == nil {
		t.Fatal("no error")
	}
	if got := c.n.Load(); got != DefaultMaxRetries+1 {
		t.Errorf("requests = %d, want %d", got, DefaultMaxRetries+1)
	}
}

func TestRetryAfterHonouredAndBounded(t *testing.T) {
	content := []byte("hello")
	c := &counter{h: func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write(content)
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	// Jittered backoff alone would wait at most 1 ms; Retry-After is
	// capped at BackoffMax.
	d := newTestDownloader(t, Config{BackoffBase: time.Millisecond, BackoffMax: 200 * time.Millisecond})
	start := time.Now()
	if _, err := d.Download(t.Context(), srv.URL, expectOf(content), newDiscard); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if el < 190*time.Millisecond || el > 5*time.Second {
		t.Errorf("elapsed %v, want about BackoffMax (200ms)", el)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestBackoffGrowsWithFullJitter(t *testing.T) {
	d := newTestDownloader(t, Config{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	for attempt, ceil := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 50 * time.Millisecond, 60: 50 * time.Millisecond} {
		var maxSeen time.Duration
		for range 2000 {
			v := d.delay(attempt, errors.New("x"))
			if v < 0 || v > ceil {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", attempt, v, ceil)
			}
			maxSeen = max(maxSeen, v)
		}
		if maxSeen < ceil/2 {
			t.Errorf("attempt %d: max delay %v, want jitter spread up to %v", attempt, maxSeen, ceil)
		}
	}
}

func TestConnectionDroppedMidBodyIsRetried(t *testing.T) {
	content := randomBytes(t, 50_000)
	c := &counter{h: func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			// Chunked, no length: the drop is only visible as a missing
			// terminating chunk.
			raw := fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", 1000)
			hijackWrite(t, w, append([]byte(raw), content[:1000]...))
			return
		}
		w.Write(content)
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{})
	res, err := d.Download(t.Context(), srv.URL, digest.Expect{Size: digest.UnknownSize}, newDiscard)
	if err != nil {
		t.Fatal(err)
	}
	if c.n.Load() != 2 || res.Attempts != 2 || res.Digests.SHA256 != sha256Hex(content) {
		t.Errorf("requests = %d, result = %+v", c.n.Load(), res)
	}
}

func TestDigestMismatchExhaustsRetries(t *testing.T) {
	content := []byte("the real bytes")
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("the fake bytes"))
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	var ds dests
	d := newTestDownloader(t, Config{MaxRetries: 1})
	_, err := d.Download(t.Context(), srv.URL, expectOf(content), ds.new)
	var dme *digest.DigestMismatchError
	if !errors.As(err, &dme) || dme.Algorithm != digest.SHA256 {
		t.Fatalf("err = %v, want DigestMismatchError", err)
	}
	if got := c.n.Load(); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
	for i, m := range ds.snapshot() {
		if !m.canceled {
			t.Errorf("destination %d not cancelled", i)
		}
	}
}

func TestSizeMismatch(t *testing.T) {
	content := randomBytes(t, 4096)
	t.Run("content-length", func(t *testing.T) {
		c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.Write(content)
		}}
		srv := httptest.NewServer(c)
		defer srv.Close()
		var ds dests
		d := newTestDownloader(t, Config{MaxRetries: 1})
		_, err := d.Download(t.Context(), srv.URL, digest.Expect{Size: 10}, ds.new)
		var sme *digest.SizeMismatchError
		if !errors.As(err, &sme) || sme.Expected != 10 || sme.Actual != 4096 {
			t.Fatalf("err = %v, want SizeMismatchError 10/4096", err)
		}
		if c.n.Load() != 2 {
			t.Errorf("requests = %d, want 2 (size mismatch is retried)", c.n.Load())
		}
		if n := len(ds.snapshot()); n != 0 {
			t.Errorf("%d destinations created; a Content-Length mismatch should fail before", n)
		}
	})
	t.Run("body longer than expected, no length", func(t *testing.T) {
		var sent atomic.Int64
		big := randomBytes(t, 1<<20)
		c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush() // forces chunked encoding
			for range 64 {
				n, err := w.Write(big)
				sent.Add(int64(n))
				if err != nil {
					return
				}
			}
		}}
		srv := httptest.NewServer(c)
		defer srv.Close()
		var ds dests
		d := newTestDownloader(t, Config{MaxRetries: 1})
		_, err := d.Download(t.Context(), srv.URL, digest.Expect{Size: 1000}, ds.new)
		var sme *digest.SizeMismatchError
		if !errors.As(err, &sme) {
			t.Fatalf("err = %v, want SizeMismatchError", err)
		}
		for _, m := range ds.snapshot() {
			if m.Len() > 1000+bufSize || !m.canceled {
				t.Errorf("destination got %d bytes (canceled=%v); want an early stop", m.Len(), m.canceled)
			}
		}
	})
}

func TestUnsupportedExpectationFailsBeforeRequest(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	d := newTestDownloader(t, Config{})
	_, err := d.Download(t.Context(), srv.URL, digest.Expect{Size: -1, Digests: map[string]string{"md5": strings.Repeat("0", 32)}}, newDiscard)
	var ue *digest.UnsupportedAlgorithmError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want UnsupportedAlgorithmError", err)
	}
	if c.n.Load() != 0 {
		t.Errorf("requests = %d, want 0", c.n.Load())
	}
}

func TestDestErrorsAreNotRetried(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) }}
	srv := httptest.NewServer(c)
	defer srv.Close()
	d := newTestDownloader(t, Config{})

	_, err := d.Download(t.Context(), srv.URL, unknown, func() (Dest, error) { return nil, errors.New("no space") })
	var de *DestError
	if !errors.As(err, &de) || IsRetryable(err) {
		t.Fatalf("newDest failure: err = %v", err)
	}
	m := &memDest{failWrite: true}
	_, err = d.Download(t.Context(), srv.URL, unknown, func() (Dest, error) { return m, nil })
	if !errors.As(err, &de) || !m.canceled {
		t.Fatalf("write failure: err = %v, canceled = %v", err, m.canceled)
	}
	if c.n.Load() != 2 {
		t.Errorf("requests = %d, want 2 (one per download)", c.n.Load())
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }}
	srv := httptest.NewServer(c)
	defer srv.Close()
	d := newTestDownloader(t, Config{BackoffBase: time.Hour, BackoffMax: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for c.n.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := d.Download(ctx, srv.URL, unknown, newDiscard)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if IsRetryable(err) {
		t.Error("cancellation reported retryable")
	}
	if time.Since(start) > 5*time.Second {
		t.Error("cancel did not interrupt the backoff")
	}
}

func TestUnsupportedScheme(t *testing.T) {
	d := newTestDownloader(t, Config{})
	_, err := d.Download(t.Context(), "ftp://example.com/x", unknown, newDiscard)
	if !errors.Is(err, ErrUnsupportedScheme) {
		t.Fatalf("err = %v", err)
	}
}

func TestAuthAndHeadersOnEveryRequest(t *testing.T) {
	type seen struct{ user, pass, foo, multi, ua string }
	var mu sync.Mutex
	var reqs []seen
	c := &counter{h: func(n int, w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		mu.Lock()
		reqs = append(reqs, seen{u, p, r.Header.Get("X-Foo"), strings.Join(r.Header.Values("X-Multi"), "|"), r.Header.Get("User-Agent")})
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{
		Username:  "alice",
		Password:  "", // Pulp allows an empty password
		UserAgent: "pith-test/1",
		Headers:   []map[string]string{{"X-Foo": "bar"}, {"User-Agent": "custom/2"}, {"X-Multi": "a"}, {"X-Multi": "b"}},
	})
	if _, err := d.Download(t.Context(), srv.URL, unknown, newDiscard); err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 {
		t.Fatalf("requests = %d, want 3", len(reqs))
	}
	want := seen{"alice", "", "bar", "a|b", "pith-test/1, custom/2"}
	for i, s := range reqs {
		if s != want {
			t.Errorf("request %d saw %+v, want %+v", i, s, want)
		}
	}
}

func TestDefaultUserAgent(t *testing.T) {
	var ua atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua.Store(r.Header.Get("User-Agent"))
	}))
	defer srv.Close()
	d := newTestDownloader(t, Config{})
	if _, err := d.Download(t.Context(), srv.URL, unknown, newDiscard); err != nil {
		t.Fatal(err)
	}
	if got := ua.Load().(string); !strings.HasPrefix(got, "pith (go") {
		t.Errorf("User-Agent = %q", got)
	}
}

// The bytes must be the stored ones: a server that labels a .gz file with
// Content-Encoding: gzip must not have it decompressed on the way.
func TestNoTransparentDecompression(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("compressible ", 1000)))
	zw.Close()
	content := gz.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(content)
	}))
	defer srv.Close()
	d := newTestDownloader(t, Config{MaxRetries: 1})
	m := &memDest{}
	if _, err := d.Download(t.Context(), srv.URL, expectOf(content), func() (Dest, error) { return m, nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Bytes(), content) {
		t.Error("bytes were altered")
	}
}

func TestConcurrencyLimit(t *testing.T) {
	var inflight, peak atomic.Int32
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond) // simulated work, so requests overlap
		w.Write([]byte("x"))
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{DownloadConcurrency: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := d.Download(t.Context(), fmt.Sprintf("%s/%d", srv.URL, i), unknown, newDiscard)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrent requests = %d, want 3", p)
	}
	if c.n.Load() != 20 {
		t.Errorf("requests = %d", c.n.Load())
	}
}

func TestRateLimit(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()

	const rateLimit, n = 50, 21
	d := newTestDownloader(t, Config{RateLimit: rateLimit, DownloadConcurrency: n})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := d.Download(t.Context(), srv.URL, unknown, newDiscard); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(times) != n {
		t.Fatalf("requests = %d", len(times))
	}
	first, last := times[0], times[0]
	for _, tm := range times {
		first, last = minTime(first, tm), maxTime(last, tm)
	}
	// n requests at 50/s span at least (n-1)/50 s = 400 ms.
	if span := last.Sub(first); span < 360*time.Millisecond {
		t.Errorf("%d requests spread over %v, want ≥ ~400ms", n, span)
	}
	// A 200 ms window holds 10 grants (+1 at the boundary). The server sees
	// them after scheduling delays that can bunch a few together on a loaded
	// machine, so allow 3 more; without a limiter all 21 land at once.
	for _, a := range times {
		in := 0
		for _, b := range times {
			if !b.Before(a) && b.Sub(a) < 200*time.Millisecond {
				in++
			}
		}
		if in > 14 {
			t.Errorf("%d requests within 200ms of %v", in, a)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func TestSockReadTimeoutOnStalledBody(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // stall until the client gives up
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{SockReadTimeout: 0.2, MaxRetries: 1})
	start := time.Now()
	_, err := d.Download(t.Context(), srv.URL, unknown, newDiscard)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Kind != "sock_read" {
		t.Fatalf("err = %v, want sock_read TimeoutError", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v; a stalled upstream must time out", el)
	}
	if c.n.Load() != 2 {
		t.Errorf("requests = %d, want 2 (timeouts are retried)", c.n.Load())
	}
}

func TestSockReadTimeoutOnStalledHeaders(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{SockReadTimeout: 0.2, MaxRetries: 1})
	start := time.Now()
	_, err := d.Download(t.Context(), srv.URL, unknown, newDiscard)
	if err == nil || !IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable timeout", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
	if c.n.Load() != 2 {
		t.Errorf("requests = %d, want 2", c.n.Load())
	}
}

// A slow reader is not a stalled upstream: the idle timer only runs while
// the downloader waits in Read.
func TestSockReadTimeoutIgnoresSlowConsumer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("0123456789"))
	}))
	defer srv.Close()
	d := newTestDownloader(t, Config{SockReadTimeout: 0.05})
	resp, err := d.Open(t.Context(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(150 * time.Millisecond) // the consumer is busy, longer than the timeout
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "0123456789" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestTotalTimeout(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		tick := time.NewTicker(20 * time.Millisecond) // a trickling upstream
		defer tick.Stop()
		for range 1000 {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
		}
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()

	d := newTestDownloader(t, Config{TotalTimeout: 0.3, SockReadTimeout: 5, MaxRetries: 1})
	start := time.Now()
	_, err := d.Download(t.Context(), srv.URL, unknown, newDiscard)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Kind != "total" {
		t.Fatalf("err = %v, want total TimeoutError", err)
	}
	if el := time.Since(start); el < 550*time.Millisecond || el > 3*time.Second {
		t.Errorf("took %v, want about 2 × 300ms", el)
	}
}

func TestIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&HTTPError{StatusCode: 429}, true},
		{&HTTPError{StatusCode: 503}, true},
		{&HTTPError{StatusCode: 403}, false},
		{&HTTPError{StatusCode: 407}, false},
		{fmt.Errorf("wrapped: %w", &digest.DigestMismatchError{}), true},
		{&digest.SizeMismatchError{}, true},
		{&TimeoutError{Kind: "total"}, true},
		{&ReadError{Err: io.ErrUnexpectedEOF}, true},
		{io.ErrUnexpectedEOF, true},
		{&DestError{Err: io.ErrShortWrite}, false},
		{context.Canceled, false},
		{ErrPathNotAllowed, false},
		{errors.New("something else"), false},
	} {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"proxy scheme":    {ProxyURL: "socks5://127.0.0.1:1080"},
		"ca cert":         {CACert: "not a certificate"},
		"client key pair": {ClientCert: "x", ClientKey: "y"},
		"import path":     {AllowedImportPaths: []string{"relative/dir"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestRedirects(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/real", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			w.Write([]byte("real"))
		}
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	d := newTestDownloader(t, Config{})
	if _, err := d.Download(t.Context(), srv.URL+"/moved", expectOf([]byte("real")), newDiscard); err != nil {
		t.Fatal(err)
	}
	c.n.Store(0)
	_, err := d.Download(t.Context(), srv.URL+"/loop", unknown, newDiscard)
	if !errors.Is(err, ErrTooManyRedirects) || IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	if c.n.Load() != 11 {
		t.Errorf("requests = %d, want 11 (10 redirects followed, no retries)", c.n.Load())
	}
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there any more
	d := newTestDownloader(t, Config{MaxRetries: 2})
	_, err := d.Download(t.Context(), addr, unknown, newDiscard)
	if err == nil || !IsRetryable(err) || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
}
