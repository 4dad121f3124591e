package lazy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// upstream serves blobs by path with switchable misbehaviour, counting
// requests per path.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	blobs map[string][]byte
	count map[string]int
	// gate, if set, holds every response after its headers and first
	// chunk until closed.
	gate chan struct{}
	// corrupt flips a byte of the body; die closes the connection half way.
	corrupt, die map[string]bool
	status       map[string]int
	// trickle sends the body in small pieces with this pause between.
	trickle time.Duration
	// canceled counts requests whose client (pith) went away.
	canceled atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{blobs: map[string][]byte{}, count: map[string]int{}, corrupt: map[string]bool{},
		die: map[string]bool{}, status: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.count[r.URL.Path]++
	b, ok := u.blobs[r.URL.Path]
	corrupt, die, status, gate, trickle := u.corrupt[r.URL.Path], u.die[r.URL.Path], u.status[r.URL.Path], u.gate, u.trickle
	u.mu.Unlock()
	if status != 0 {
		http.Error(w, "failing on purpose", status)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	if corrupt {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 0xff
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("X-Upstream", "yes")
	w.Header().Set("Set-Cookie", "secret=1")
	first := min(len(b), 1024)
	w.Write(b[:first])
	w.(http.Flusher).Flush()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			u.canceled.Add(1)
			return
		}
	}
	rest := b[first:]
	if die {
		w.Write(rest[:len(rest)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	for len(rest) > 0 {
		n := min(len(rest), 16<<10)
		if _, err := w.Write(rest[:n]); err != nil {
			u.canceled.Add(1)
			return
		}
		rest = rest[n:]
		if trickle > 0 {
			w.(http.Flusher).Flush()
			select {
			case <-time.After(trickle):
			case <-r.Context().Done():
				u.canceled.Add(1)
				return
			}
		}
	}
}

func (u *upstream) add(path string, b []byte) (Source, string) {
	u.mu.Lock()
	u.blobs[path] = b
	u.mu.Unlock()
	sum := sha256.Sum256(b)
	return Source{RemoteArtifactID: "ra-" + path, RemoteID: "remote", URL: u.URL + path}, hex.EncodeToString(sum[:])
}

func (u *upstream) n(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.count[path]
}

func (u *upstream) set(fn func()) {
	u.mu.Lock()
	fn()
	u.mu.Unlock()
}

type env struct {
	t     testing.TB
	s     *store.Store
	dir   string
	be    *fs.Backend
	f     *Fetcher
	reg   *prometheus.Registry
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  map[string]Request
	dlCfg download.Config
}

func newEnv(t testing.TB, s *store.Store, owner string) *env {
	t.Helper()
	dir := t.TempDir()
	be, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return newEnvOn(t, s, be, dir, owner)
}

// newEnvOn builds a content server with its own Fetcher on shared store
// and storage, as a second process would have.
func newEnvOn(t testing.TB, s *store.Store, be *fs.Backend, dir, owner string) *env {
	e := &env{t: t, s: s, dir: dir, be: be, reqs: map[string]Request{}, reg: prometheus.NewRegistry(),
		dlCfg: download.Config{MaxRetries: 1, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}}
	dl, err := download.New(e.dlCfg)
	if err != nil {
		t.Fatal(err)
	}
	e.f = New(Config{Store: s, Storage: be, Owner: owner, Log: slog.New(slog.DiscardHandler), Registry: e.reg,
		Downloaders: func(context.Context, string, int64) (*download.Downloader, error) { return dl, nil }})
	// Registered before the server's Close, so it runs after it (and
	// before storage and the store close): a fetch outliving its clients
	// lands first, as at a process's shutdown.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.f.Close(ctx); err != nil {
			t.Errorf("fetcher close: %v", err)
		}
	})
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		req, ok := e.reqs[r.URL.Path]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if err := e.f.Serve(w, r, req); err != nil {
			var na *NotAvailableError
			if errors.As(err, &na) {
				http.Error(w, "404: "+na.Reason, http.StatusNotFound)
				return
			}
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) route(path string, req Request) {
	e.mu.Lock()
	e.reqs[path] = req
	e.mu.Unlock()
}

func (e *env) get(path string, hdr ...string) (*http.Response, []byte, error) {
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if len(hdr) == 1 {
		req.Method = hdr[0]
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// stored reports whether an artifact row and file exist for sum.
func (e *env) stored(sum string) bool {
	a, err := e.s.ArtifactBySHA256(context.Background(), sum)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, a.File)); err != nil {
		e.t.Fatalf("artifact row without file: %v", err)
	}
	return true
}

// waitStored waits for an on_demand commit that finishes after the
// clients are served.
func (e *env) waitStored(sum string) bool {
	for range 500 {
		if e.stored(sum) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// tempFiles lists in-progress writes left in storage.
func (e *env) tempFiles() []string {
	ents, err := os.ReadDir(filepath.Join(e.dir, "tmp"))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, d := range ents {
		out = append(out, d.Name())
	}
	return out
}

// settled waits until no flight is in the air and no temp file is left.
func (e *env) settled() {
	e.t.Helper()
	for range 500 {
		e.f.mu.Lock()
		n := len(e.f.flights)
		e.f.mu.Unlock()
		if n == 0 && len(e.tempFiles()) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("flights or temp files left: %v", e.tempFiles())
}

func blob(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func (e *env) counter(name string, labels ...string) float64 {
	switch name {
	case "requests":
		return testutil.ToFloat64(e.f.m.requests.WithLabelValues(labels...))
	case "digest":
		return testutil.ToFloat64(e.f.m.digestFailures)
	case "upstream":
		return testutil.ToFloat64(e.f.m.upstreamBytes)
	}
	e.t.Fatalf("no counter %s", name)
	return 0
}

func TestOnDemandStreamsThenCommits(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(3 << 20)
		src, sum := u.add("/a.iso", data)
		e.route("/a.iso", Request{SHA256: sum, Size: int64(len(data)), ContentType: "application/x-iso9660-image", Sources: []Source{src}})
		u.gate = make(chan struct{})

		// Headers and the first bytes arrive while the upstream is held
		// after its first chunk: the content app does not store and
		// forward.
		resp, err := http.Get(e.srv.URL + "/a.iso")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) {
			t.Fatalf("status %d length %d", resp.StatusCode, resp.ContentLength)
		}
		if got, want := resp.Header.Get("Repr-Digest"), reprDigest(sum); got != want || want == "" {
			t.Errorf("Repr-Digest %q, want %q", got, want)
		}
		if resp.Header.Get("ETag") != `"`+sum+`"` || resp.Header.Get("Content-Type") != "application/x-iso9660-image" {
			t.Errorf("headers %v", resp.Header)
		}
		if resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("upstream headers not passed (or cookie leaked): %v", resp.Header)
		}
		if resp.Header.Get("Cache-Control") != DefaultCacheControl {
			t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
		head := make([]byte, 512)
		if _, err := io.ReadFull(resp.Body, head); err != nil {
			t.Fatalf("first bytes before the upstream finished: %v", err)
		}
		if !bytes.Equal(head, data[:512]) {
			t.Fatal("first bytes differ")
		}
		if e.stored(sum) {
			t.Fatal("stored before the upstream finished")
		}
		close(u.gate)
		rest, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(append(head, rest...), data) {
			t.Fatalf("body differs (err %v)", err)
		}
		if !e.waitStored(sum) {
			t.Fatal("on_demand artifact not committed")
		}
		e.settled()
		// The next request is served from the committed artifact.
		u.gate = nil
		if _, b, err := e.get("/a.iso"); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("second request: %v", err)
		}
		if n := u.n("/a.iso"); n != 1 {
			t.Errorf("upstream requests = %d, want 1", n)
		}
		if e.counter("requests", "miss") != 1 || e.counter("requests", "hit") != 1 {
			t.Errorf("miss %v hit %v", e.counter("requests", "miss"), e.counter("requests", "hit"))
		}
	})
}

func TestManyClientsOneUpstreamFetch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(1 << 20)
		src, sum := u.add("/big", data)
		e.route("/big", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
		u.gate = make(chan struct{})
		const clients = 200
		tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: clients}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		var wg sync.WaitGroup
		bodies := make([][]byte, clients)
		errs := make([]error, clients)
		for i := range clients {
			wg.Go(func() {
				resp, err := c.Get(e.srv.URL + "/big")
				if err != nil {
					errs[i] = err
					return
				}
				defer resp.Body.Close()
				bodies[i], errs[i] = io.ReadAll(resp.Body)
			})
		}
		// Release the upstream once every client has joined the flight.
		deadline := time.Now().Add(20 * time.Second)
		for {
			e.f.mu.Lock()
			fl := e.f.flights[sum]
			e.f.mu.Unlock()
			n := 0
			if fl != nil {
				fl.mu.Lock()
				n = fl.clients
				fl.mu.Unlock()
			}
			if n == clients || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		close(u.gate)
		wg.Wait()
		for i := range clients {
			if errs[i] != nil || !bytes.Equal(bodies[i], data) {
				t.Fatalf("client %d: err %v, %d bytes", i, errs[i], len(bodies[i]))
			}
		}
		if n := u.n("/big"); n != 1 {
			t.Errorf("upstream requests = %d, want 1", n)
		}
		if got := e.counter("requests", "coalesced"); got != clients-1 {
			t.Errorf("coalesced = %v, want %d", got, clients-1)
		}
		if !e.waitStored(sum) {
			t.Fatal("not committed")
		}
		e.settled()
	})
}

// expectAborted checks that a transfer did not end cleanly.
func expectAborted(t *testing.T, e *env, path string, size int) {
	t.Helper()
	resp, b, err := e.get(path)
	if err == nil && resp.StatusCode == 200 && len(b) == size {
		t.Fatalf("transfer of wrong bytes ended cleanly")
	}
	if err == nil && resp.StatusCode == 200 {
		t.Fatalf("short body without an error: %d of %d bytes", len(b), size)
	}
}

func TestDigestMismatchAbortsAndCoolsDown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(200 << 10)
		bad, sum := u.add("/bad/f", data)
		good, _ := u.add("/good/f", data)
		u.corrupt["/bad/f"] = true
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{bad, good}})

		expectAborted(t, e, "/f", len(data))
		e.settled()
		if e.stored(sum) {
			t.Fatal("wrong bytes stored")
		}
		if e.counter("digest") != 1 {
			t.Errorf("digest failures = %v", e.counter("digest"))
		}
		// Within the cooldown the next request goes to the other source.
		_, b, err := e.get("/f")
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("second request: %v", err)
		}
		if u.n("/bad/f") != 1 || u.n("/good/f") != 1 {
			t.Errorf("requests bad=%d good=%d, want 1 and 1", u.n("/bad/f"), u.n("/good/f"))
		}
		if !e.waitStored(sum) {
			t.Fatal("verified bytes from the good source not committed")
		}
	})
}

func TestChangedBytesWithOneSourceGives404DuringCooldown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(100 << 10)
		src, sum := u.add("/f", data)
		u.corrupt["/f"] = true
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
		expectAborted(t, e, "/f", len(data))
		e.settled()
		resp, b, err := e.get("/f")
		if err != nil || resp.StatusCode != 404 || !bytes.Contains(b, []byte("cooling down")) {
			t.Fatalf("during cooldown: %v %v %s", err, resp.StatusCode, b)
		}
		if u.n("/f") != 1 {
			t.Errorf("upstream requests = %d, want 1", u.n("/f"))
		}
	})
}

func TestUpstreamDiesMidBody(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(500 << 10)
		src, sum := u.add("/f", data)
		u.die["/f"] = true
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
		expectAborted(t, e, "/f", len(data))
		e.settled()
		if e.stored(sum) {
			t.Fatal("partial artifact stored")
		}
		// A later request starts afresh.
		u.set(func() { u.die["/f"] = false })
		if _, b, err := e.get("/f"); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("after recovery: %v", err)
		}
		if u.n("/f") != 2 {
			t.Errorf("upstream requests = %d, want 2", u.n("/f"))
		}
	})
}

func TestClientLeavingDoesNotStopOthersOrCommit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(2 << 20)
		src, sum := u.add("/f", data)
		u.trickle = 2 * time.Millisecond
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})

		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/f", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var others [2][]byte
		for i := range others {
			wg.Go(func() { _, others[i], _ = e.get("/f") })
		}
		// The first client leaves at 10 %.
		if _, err := io.ReadFull(resp.Body, make([]byte, len(data)/10)); err != nil {
			t.Fatal(err)
		}
		cancel()
		resp.Body.Close()
		wg.Wait()
		for i, b := range others {
			if !bytes.Equal(b, data) {
				t.Fatalf("client %d got %d bytes", i, len(b))
			}
		}
		if !e.waitStored(sum) {
			t.Fatal("not committed")
		}
		if u.n("/f") != 1 {
			t.Errorf("upstream requests = %d", u.n("/f"))
		}
	})
}

func TestOnDemandFetchOutlivesItsOnlyClient(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(1 << 20)
		src, sum := u.add("/f", data)
		u.trickle = time.Millisecond
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/f", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(resp.Body, make([]byte, len(data)/10))
		cancel()
		resp.Body.Close()
		if !e.waitStored(sum) {
			t.Fatal("on_demand fetch stopped with its client")
		}
		e.settled()
	})
}

// readAndLeave reads n bytes of path and disconnects.
func (e *env) readAndLeave(path string, n int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, n)); err != nil {
		e.t.Fatal(err)
	}
}

// Close waits for an on_demand fetch that has no client left, so it is
// committed before the process exits; afterwards Serve refuses.
func TestCloseLetsFetchesLand(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(1 << 20)
		src, sum := u.add("/f", data)
		req := Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}}
		e.route("/f", req)
		u.gate = make(chan struct{})
		e.readAndLeave("/f", 1000)

		closed := make(chan error, 1)
		go func() { closed <- e.f.Close(context.Background()) }()
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while a fetch was still in flight", err)
		case <-time.After(200 * time.Millisecond):
		}
		if e.stored(sum) {
			t.Fatal("stored before the upstream sent the rest")
		}
		close(u.gate)
		if err := <-closed; err != nil {
			t.Fatalf("Close = %v", err)
		}
		if !e.stored(sum) {
			t.Fatal("Close returned before the fetch committed")
		}
		if tmp := e.tempFiles(); len(tmp) != 0 {
			t.Fatalf("temp files left: %v", tmp)
		}

		// A request arriving after Close gets ErrClosed, not a fetch.
		_, other := u.add("/g", blob(4096))
		rr := httptest.NewRecorder()
		err := e.f.Serve(rr, httptest.NewRequest("GET", "/g", nil), Request{SHA256: other, Size: 4096, Sources: []Source{src}})
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve after Close = %v, want ErrClosed", err)
		}
		if n := u.n("/g"); n != 0 {
			t.Fatalf("upstream saw %d requests after Close", n)
		}
	})
}

// Past Close's deadline the fetches left are canceled: nothing stored,
// no spool left, the upstream request dropped.
func TestCloseCancelsAtDeadline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(1 << 20)
		src, sum := u.add("/f", data)
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
		u.gate = make(chan struct{}) // never opened
		e.readAndLeave("/f", 1000)

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := e.f.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want a deadline error", err)
		}
		if e.stored(sum) {
			t.Fatal("a canceled fetch was stored")
		}
		if tmp := e.tempFiles(); len(tmp) != 0 {
			t.Fatalf("temp files left: %v", tmp)
		}
		for range 200 {
			if u.canceled.Load() > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the upstream request was not dropped")
	})
}

func TestStreamedNeverStoresAndStopsWithLastClient(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(1 << 20)
		src, sum := u.add("/f", data)
		src.Streamed = true
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}})
		for range 2 {
			if _, b, err := e.get("/f"); err != nil || !bytes.Equal(b, data) {
				t.Fatalf("streamed: %v", err)
			}
			e.settled()
		}
		if e.stored(sum) {
			t.Fatal("streamed content was stored")
		}
		if u.n("/f") != 2 {
			t.Errorf("upstream requests = %d, want one per request", u.n("/f"))
		}
		// The last client leaving stops the upstream transfer.
		u.gate = make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/f", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(resp.Body, make([]byte, 100))
		cancel()
		resp.Body.Close()
		e.settled()
		for i := 0; u.canceled.Load() == 0 && i < 500; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if u.canceled.Load() == 0 {
			t.Error("upstream transfer went on after the last client left")
		}
		close(u.gate)
	})
}

func TestFailoverBeforeResponseAndNotAvailable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(10 << 10)
		broken, sum := u.add("/broken", data)
		u.status["/broken"] = 404
		dead := Source{RemoteArtifactID: "dead", URL: "http://127.0.0.1:1/x"}
		good, _ := u.add("/good", data)
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{dead, broken, good}})
		if _, b, err := e.get("/f"); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("failover: %v", err)
		}
		// No source can deliver: Pulp's 404, saying why.
		_, sum2 := u.add("/none", blob(5))
		e.route("/g", Request{SHA256: sum2, Size: 5, Sources: []Source{dead, broken}})
		resp, b, err := e.get("/g")
		if err != nil || resp.StatusCode != 404 || !bytes.Contains(b, []byte("404")) || !bytes.Contains(b, []byte("no remote source")) {
			t.Fatalf("no source: %v %d %s", err, resp.StatusCode, b)
		}
		e.route("/h", Request{SHA256: sum2, Size: 5})
		if resp, _, _ := e.get("/h"); resp.StatusCode != 404 {
			t.Fatalf("no sources at all: %d", resp.StatusCode)
		}
		if e.counter("requests", "failed") != 2 {
			t.Errorf("failed = %v", e.counter("requests", "failed"))
		}
	})
}

func TestHeadConditionalAndRangeOnUncached(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(300 << 10)
		src, sum := u.add("/f", data)
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), ContentType: "text/plain", Sources: []Source{src}})

		resp, b, err := e.get("/f", "HEAD")
		if err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) || len(b) != 0 ||
			resp.Header.Get("ETag") != `"`+sum+`"` || resp.Header.Get("Repr-Digest") == "" {
			t.Fatalf("HEAD: %v %v %v", err, resp.StatusCode, resp.Header)
		}
		resp, _, _ = e.get("/f", "If-None-Match", `"`+sum+`"`)
		if resp.StatusCode != 304 {
			t.Fatalf("If-None-Match: %d", resp.StatusCode)
		}
		if u.n("/f") != 0 {
			t.Fatalf("HEAD or 304 fetched from upstream")
		}
		resp, b, _ = e.get("/f", "Range", "bytes=1000-1999")
		if resp.StatusCode != 206 || !bytes.Equal(b, data[1000:2000]) ||
			resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(data)) {
			t.Fatalf("range: %d %q %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
		}
		resp, b, _ = e.get("/f", "Range", "bytes=-10")
		if resp.StatusCode != 206 || !bytes.Equal(b, data[len(data)-10:]) {
			t.Fatalf("suffix range: %d", resp.StatusCode)
		}
		resp, _, _ = e.get("/f", "Range", fmt.Sprintf("bytes=%d-", len(data)))
		if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(data)) {
			t.Fatalf("unsatisfiable: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
		}
		// A Range on uncached content still fetches and commits all of it.
		if !e.waitStored(sum) {
			t.Fatal("range request did not commit the artifact")
		}
	})
}

func TestTwoProcessesShareOneFetch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		a := newEnv(t, s, "host@1")
		b := newEnvOn(t, s, a.be, a.dir, "host@2")
		u := newUpstream(t)
		data := blob(2 << 20)
		src, sum := u.add("/f", data)
		req := Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{src}}
		a.route("/f", req)
		b.route("/f", req)
		u.gate = make(chan struct{})

		var wg sync.WaitGroup
		var fromA []byte
		wg.Go(func() { _, fromA, _ = a.get("/f") })
		// Wait until process a leads and has published its spool.
		for i := 0; i < 1000; i++ {
			if l, err := s.GetLazyLease(context.Background(), sum); err == nil && l.Spool != "" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		var fromB []byte
		wg.Go(func() { _, fromB, _ = b.get("/f") })
		time.Sleep(50 * time.Millisecond)
		close(u.gate)
		wg.Wait()
		if !bytes.Equal(fromA, data) || !bytes.Equal(fromB, data) {
			t.Fatalf("bodies: a %d b %d bytes", len(fromA), len(fromB))
		}
		if u.n("/f") != 1 {
			t.Errorf("upstream requests = %d, want 1 across processes", u.n("/f"))
		}
		if !a.waitStored(sum) {
			t.Fatal("not committed")
		}
		a.settled()
		b.settled()
		if _, err := s.GetLazyLease(context.Background(), sum); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("lease left behind: %v", err)
		}
	})
}

// TestEpochCountsCommitsAndCooldowns: the epoch callers key their cached
// lookups on moves when a source cools down, when a fetched artifact is
// committed, and when a request finds the bytes stored after all (its
// caller looked before they were).
func TestEpochCountsCommitsAndCooldowns(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s, "")
		u := newUpstream(t)
		data := blob(100 << 10)
		bad, sum := u.add("/bad/f", data)
		good, _ := u.add("/good/f", data)
		u.corrupt["/bad/f"] = true
		e.route("/f", Request{SHA256: sum, Size: int64(len(data)), Sources: []Source{bad, good}})

		e0 := e.f.Epoch()
		expectAborted(t, e, "/f", len(data))
		e.settled()
		e1 := e.f.Epoch()
		if e1 == e0 {
			t.Fatal("epoch unchanged by a cooldown")
		}
		if _, b, err := e.get("/f"); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("second request: %v", err)
		}
		if !e.waitStored(sum) {
			t.Fatal("not committed")
		}
		e.settled()
		e2 := e.f.Epoch()
		if e2 == e1 {
			t.Fatal("epoch unchanged by a commit")
		}
		if _, b, err := e.get("/f"); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("local hit: %v", err)
		}
		e.settled()
		if e.f.Epoch() == e2 {
			t.Fatal("epoch unchanged by a local hit")
		}
	})
}

// TestRemoteDownloadersTrustStamp: given the remote's stamp as read with
// its sources, the cached downloader is returned without reading the
// remote (here: the row is gone); without a stamp, or with another one,
// the remote is read.
func TestRemoteDownloadersTrustStamp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := &store.Remote{PulpType: "file.file", Name: "dl", URL: "http://example.com/PULP_MANIFEST", Policy: "on_demand"}
		if err := s.InsertRemote(ctx, nil, r); err != nil {
			t.Fatal(err)
		}
		dls := RemoteDownloaders(s, func(*store.Remote) download.Config { return download.Config{} })
		first, err := dls(ctx, r.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Exec(ctx, `DELETE FROM remotes WHERE id = $1`, r.ID); err != nil {
			t.Fatal(err)
		}
		if dl, err := dls(ctx, r.ID, r.LastUpdated); err != nil || dl != first {
			t.Fatalf("with the current stamp: %p %v, want the cached %p", dl, err, first)
		}
		if _, err := dls(ctx, r.ID, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("without a stamp: %v, want the remote read (not found)", err)
		}
		if _, err := dls(ctx, r.ID, r.LastUpdated+1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("with another stamp: %v, want the remote read (not found)", err)
		}
	})
}

// TestReopenByPathFollowsTheFile: a client's own handle on the flight's
// file is opened by path while the path names that file, and through the
// descriptor once the path is gone (a spool renamed by its commit) or
// names another file.
func TestReopenByPathFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "spool")
	if err := os.WriteFile(p, []byte("spooled"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl := &flight{}
	fl.file, fl.path = f, p
	read := func() string {
		t.Helper()
		h := fl.reopen()
		if h == nil {
			t.Fatal("no handle")
		}
		defer h.Close()
		if !sameFile(h, f) {
			t.Fatalf("handle %s is another file", h.Name())
		}
		b, err := io.ReadAll(h)
		if err != nil {
			t.Fatal(err)
		}
		return h.Name() + ":" + string(b)
	}
	if got := read(); got != p+":spooled" {
		t.Fatalf("by path: %s", got)
	}
	if err := os.Rename(p, filepath.Join(dir, "committed")); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.HasPrefix(got, "/proc/self/fd/") {
		t.Fatalf("after the rename: %s, want the descriptor", got)
	}
	if err := os.WriteFile(p, []byte("another"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.HasSuffix(got, ":spooled") || strings.HasPrefix(got, p) {
		t.Fatalf("with another file at the path: %s", got)
	}
}
