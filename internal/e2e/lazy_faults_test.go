package e2e

// Issue 5's faults, each against a misbehaving loopback upstream and a
// real pith process, counting requests at the upstream.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/store/storetest"
)

// faultyUpstream serves a PULP_MANIFEST and files; per file it can hold
// the body after the first 64 KiB until released, trickle it, change its
// bytes or die half way. It counts GETs of each file and notices when
// pith stops reading.
type faultyUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	hits     map[string]int
	gate     map[string]chan struct{}
	trickle  map[string]time.Duration
	corrupt  map[string]bool
	die      map[string]bool
	canceled atomic.Int64
	sent     atomic.Int64 // body bytes of files written
}

func newFaultyUpstream(t *testing.T, files map[string][]byte) *faultyUpstream {
	u := &faultyUpstream{files: files, hits: map[string]int{}, gate: map[string]chan struct{}{},
		trickle: map[string]time.Duration{}, corrupt: map[string]bool{}, die: map[string]bool{}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *faultyUpstream) count(name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[name]
}

func (u *faultyUpstream) hold(name string) chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	g := make(chan struct{})
	u.gate[name] = g
	return g
}

func (u *faultyUpstream) serve(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/repo/")
	u.mu.Lock()
	if name == "PULP_MANIFEST" {
		var b strings.Builder
		for n, data := range u.files {
			fmt.Fprintf(&b, "%s,%s,%d\n", n, sum(data), len(data))
		}
		u.mu.Unlock()
		io.WriteString(w, b.String())
		return
	}
	u.hits[name]++
	data, ok := u.files[name]
	gate, trickle, corrupt, die := u.gate[name], u.trickle[name], u.corrupt[name], u.die[name]
	u.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if corrupt {
		data = bytes.Clone(data)
		data[len(data)-1] ^= 0xff
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.Header().Set("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT")
	first := min(len(data), 64<<10)
	w.Write(data[:first])
	w.(http.Flusher).Flush()
	u.sent.Add(int64(first))
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			u.canceled.Add(1)
			return
		}
	}
	rest := data[first:]
	if die {
		w.Write(rest[:len(rest)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	for len(rest) > 0 {
		n := min(len(rest), 32<<10)
		if _, err := w.Write(rest[:n]); err != nil {
			u.canceled.Add(1)
			return
		}
		u.sent.Add(int64(n))
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

// faultyRepo syncs up with policy into an autopublished repository served
// at base.
func faultyRepo(t *testing.T, p *instance, name string, up *faultyUpstream, policy string) (repo, remote map[string]any) {
	t.Helper()
	remote = p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": name, "url": up.URL + "/repo/PULP_MANIFEST", "policy": policy})
	repo = p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": name, "remote": remote["pulp_href"], "autopublish": true})
	p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
	p.mustTask(p.postJSON("/pulp/api/v3/distributions/file/file/", map[string]any{"name": name, "base_path": name, "repository": repo["pulp_href"]}), "completed")
	return repo, remote
}

// waitArtifact waits until the unit at relPath has its artifact.
func waitArtifact(t *testing.T, p *instance, relPath string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if artifactOf(t, p, relPath) != "" {
			return
		}
	}
	t.Fatalf("%s: no artifact committed", relPath)
}

// spoolLeft lists in-progress writes left in pith's storage.
func spoolLeft(t *testing.T, p *instance) []string {
	return filesUnder(t, filepath.Join(p.dataDir, "media", "tmp"))
}

// settledSpool waits until no temp file is left.
func settledSpool(t *testing.T, p *instance) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if len(spoolLeft(t, p)) == 0 {
			return
		}
	}
	t.Fatalf("temp files left: %v", spoolLeft(t, p))
}

// metric returns the value of the metric line starting with name, or -1.
func metric(t *testing.T, p *instance, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(string(p.get("/metrics").body), "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return -1
}

// TestLazyTrickleStreamsBeforeUpstreamEnds: the status, the headers from
// metadata and the first bytes reach the client while the upstream is
// still holding most of the body; the artifact is committed only after.
func TestLazyTrickleStreamsBeforeUpstreamEnds(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(2 << 20)
		up := newFaultyUpstream(t, map[string][]byte{"slow.iso": data})
		faultyRepo(t, p, "tr", up, "on_demand")
		gate := up.hold("slow.iso")
		resp, err := http.Get(p.base + "/pulp/content/tr/slow.iso")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		d := sha256.Sum256(data)
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) ||
			resp.Header.Get("ETag") != `"`+sum(data)+`"` ||
			resp.Header.Get("Repr-Digest") != "sha-256=:"+base64.StdEncoding.EncodeToString(d[:])+":" ||
			resp.Header.Get("Content-Type") != "application/x-iso9660-image" ||
			resp.Header.Get("Last-Modified") != "Wed, 01 Jan 2025 00:00:00 GMT" ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=86400") {
			t.Fatalf("headers before the body: %d %v", resp.StatusCode, resp.Header)
		}
		head := make([]byte, 32<<10)
		if _, err := io.ReadFull(resp.Body, head); err != nil || !bytes.Equal(head, data[:len(head)]) {
			t.Fatalf("first bytes while the upstream holds the rest: %v", err)
		}
		if artifactOf(t, p, "slow.iso") != "" {
			t.Fatal("artifact committed before the upstream finished")
		}
		if got := up.sent.Load(); got >= int64(len(data)) {
			t.Fatalf("upstream already sent %d bytes", got)
		}
		up.mu.Lock()
		up.trickle["slow.iso"] = time.Millisecond
		up.mu.Unlock()
		close(gate)
		rest, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(append(head, rest...), data) {
			t.Fatalf("body: %v", err)
		}
		waitArtifact(t, p, "slow.iso")
		if up.count("slow.iso") != 1 {
			t.Fatalf("upstream requests = %d, want 1", up.count("slow.iso"))
		}
	})
}

// TestLazyHerdOfClients: 200 concurrent clients on one cold file make one
// upstream request and all get the verified bytes; nothing is left in
// the spool.
func TestLazyHerdOfClients(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(1 << 20)
		up := newFaultyUpstream(t, map[string][]byte{"herd.iso": data})
		faultyRepo(t, p, "hd", up, "on_demand")
		gate := up.hold("herd.iso")
		const clients = 200
		tr := &http.Transport{MaxIdleConnsPerHost: clients}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		var wg sync.WaitGroup
		var started atomic.Int64
		sums := make([]string, clients)
		errs := make([]error, clients)
		for i := range clients {
			wg.Go(func() {
				resp, err := c.Get(p.base + "/pulp/content/hd/herd.iso")
				if err != nil {
					errs[i] = err
					return
				}
				defer resp.Body.Close()
				started.Add(1)
				b, err := io.ReadAll(resp.Body)
				sums[i], errs[i] = sum(b), err
			})
		}
		// Release the upstream once every client has its headers.
		for deadline := time.Now().Add(30 * time.Second); started.Load() < clients && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		close(gate)
		wg.Wait()
		for i := range clients {
			if errs[i] != nil || sums[i] != sum(data) {
				t.Fatalf("client %d: %v", i, errs[i])
			}
		}
		if n := up.count("herd.iso"); n != 1 {
			t.Fatalf("upstream requests = %d, want 1", n)
		}
		waitArtifact(t, p, "herd.iso")
		settledSpool(t, p)
		if v := metric(t, p, `pith_lazy_requests_total{result="coalesced"}`); v != clients-1 {
			t.Errorf("coalesced = %v, want %d", v, clients-1)
		}
		if v := metric(t, p, "pith_lazy_upstream_bytes_total"); v != float64(len(data)) {
			t.Errorf("upstream bytes = %v, want %d", v, len(data))
		}
		if v := metric(t, p, "pith_lazy_fetches_in_flight"); v != 0 {
			t.Errorf("in flight after the fetch = %v", v)
		}
	})
}

// TestLazyChangedBytesAbortsEveryClient: a source whose bytes do not match
// aborts every client of the fetch (none sees a clean end), stores
// nothing, cools down, and the next request uses the repository's other
// remote.
func TestLazyChangedBytesAbortsEveryClient(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(512 << 10)
		bad := newFaultyUpstream(t, map[string][]byte{"x.iso": data})
		good := newFaultyUpstream(t, map[string][]byte{"x.iso": data})
		repo, _ := faultyRepo(t, p, "mm", bad, "on_demand")
		// A second remote syncs the same content into the repository.
		other := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "mm-good", "url": good.URL + "/repo/PULP_MANIFEST", "policy": "on_demand"})
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"remote": other["pulp_href"]}), "completed")
		bad.mu.Lock()
		bad.corrupt["x.iso"] = true
		bad.mu.Unlock()
		gate := bad.hold("x.iso")
		const clients = 3
		var wg sync.WaitGroup
		var started atomic.Int64
		results := make([]error, clients)
		lens := make([]int, clients)
		for i := range clients {
			wg.Go(func() {
				resp, err := http.Get(p.base + "/pulp/content/mm/x.iso")
				if err != nil {
					results[i] = err
					return
				}
				defer resp.Body.Close()
				started.Add(1)
				b, err := io.ReadAll(resp.Body)
				lens[i], results[i] = len(b), err
			})
		}
		for deadline := time.Now().Add(10 * time.Second); started.Load() < clients && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		close(gate)
		wg.Wait()
		for i := range clients {
			if results[i] == nil {
				t.Fatalf("client %d: transfer of wrong bytes ended cleanly (%d bytes)", i, lens[i])
			}
		}
		if bad.count("x.iso") != 1 || good.count("x.iso") != 0 {
			t.Fatalf("requests bad %d good %d, want 1 and 0", bad.count("x.iso"), good.count("x.iso"))
		}
		if artifactOf(t, p, "x.iso") != "" {
			t.Fatal("wrong bytes stored")
		}
		settledSpool(t, p)
		// Within the cooldown: the other source.
		if r := p.get("/pulp/content/mm/x.iso"); r.code != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("after the mismatch: %d", r.code)
		}
		if bad.count("x.iso") != 1 || good.count("x.iso") != 1 {
			t.Fatalf("requests bad %d good %d, want 1 and 1", bad.count("x.iso"), good.count("x.iso"))
		}
		waitArtifact(t, p, "x.iso")
		if v := metric(t, p, "pith_lazy_digest_failures_total"); v != 1 {
			t.Errorf("digest failures = %v", v)
		}
		if v := metric(t, p, "pith_lazy_cooldowns_total"); v != 1 {
			t.Errorf("cooldowns = %v", v)
		}
	})
}

// TestLazyUpstreamDiesMidBody: the client sees an aborted transfer,
// nothing is stored, and the next request starts afresh.
func TestLazyUpstreamDiesMidBody(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(1 << 20)
		up := newFaultyUpstream(t, map[string][]byte{"d.iso": data})
		faultyRepo(t, p, "dd", up, "on_demand")
		up.mu.Lock()
		up.die["d.iso"] = true
		up.mu.Unlock()
		if code, err := getToEnd(p.base + "/pulp/content/dd/d.iso"); err == nil {
			t.Fatalf("transfer ended cleanly (%d) although the upstream died", code)
		}
		settledSpool(t, p)
		if artifactOf(t, p, "d.iso") != "" {
			t.Fatal("partial artifact stored")
		}
		up.mu.Lock()
		up.die["d.iso"] = false
		up.mu.Unlock()
		if r := p.get("/pulp/content/dd/d.iso"); r.code != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("afresh: %d", r.code)
		}
		if up.count("d.iso") != 2 {
			t.Fatalf("upstream requests = %d, want 2", up.count("d.iso"))
		}
		waitArtifact(t, p, "d.iso")
	})
}

// TestLazyClientLeavesAtTenPercent: one client leaving does not disturb
// the others, and on_demand still commits; a streamed fetch stops
// upstream when its last client leaves.
func TestLazyClientLeavesAtTenPercent(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(2 << 20)
		up := newFaultyUpstream(t, map[string][]byte{"l.iso": data})
		faultyRepo(t, p, "lv", up, "on_demand")
		up.mu.Lock()
		up.trickle["l.iso"] = 2 * time.Millisecond
		up.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/pulp/content/lv/l.iso", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		others := make([][]byte, 2)
		for i := range others {
			wg.Go(func() { others[i] = p.get("/pulp/content/lv/l.iso").body })
		}
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
		waitArtifact(t, p, "l.iso")
		if up.count("l.iso") != 1 {
			t.Fatalf("upstream requests = %d, want 1", up.count("l.iso"))
		}
		settledSpool(t, p)

		// streamed: the only client leaves, the upstream transfer stops.
		sdata := randBytes(2 << 20)
		sup := newFaultyUpstream(t, map[string][]byte{"s.iso": sdata})
		faultyRepo(t, p, "sl", sup, "streamed")
		gate := sup.hold("s.iso")
		defer close(gate)
		ctx, cancel = context.WithCancel(context.Background())
		req, _ = http.NewRequestWithContext(ctx, "GET", p.base+"/pulp/content/sl/s.iso", nil)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(resp.Body, make([]byte, 1000))
		cancel()
		resp.Body.Close()
		for deadline := time.Now().Add(10 * time.Second); sup.canceled.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if sup.canceled.Load() == 0 {
			t.Fatal("streamed upstream transfer went on after its last client left")
		}
		settledSpool(t, p)
		if artifactOf(t, p, "s.iso") != "" {
			t.Fatal("streamed content stored")
		}
	})
}

// leaveHeldFetch syncs a 1 MiB file name on_demand into repository repo,
// holds its upstream after the first chunk, and has a client read 1000
// bytes and leave: an on_demand fetch in flight without clients.
func leaveHeldFetch(t *testing.T, p *instance, repo, name string) (data []byte, up *faultyUpstream, gate chan struct{}) {
	t.Helper()
	data = randBytes(1 << 20)
	up = newFaultyUpstream(t, map[string][]byte{name: data})
	faultyRepo(t, p, repo, up, "on_demand")
	gate = up.hold(name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/pulp/content/"+repo+"/"+name, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	return data, up, gate
}

// TestLazyShutdownLetsFetchLand: SIGTERM while an on_demand fetch goes on
// without clients waits for it, so its artifact is committed rather than
// lost with the spool, and after a restart the file is a local hit.
func TestLazyShutdownLetsFetchLand(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data, up, gate := leaveHeldFetch(t, p, "sd", "d.iso")

		p.signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			t.Fatalf("pith exited with a fetch in flight:\n%s", p.log.String())
		case <-time.After(500 * time.Millisecond):
		}
		close(gate)
		p.waitExit(20 * time.Second)
		if left := spoolLeft(t, p); len(left) != 0 {
			t.Fatalf("temp files left after shutdown: %v", left)
		}
		p.start()
		if artifactOf(t, p, "d.iso") == "" {
			t.Fatal("the fetch in flight at shutdown was not committed")
		}
		if got := p.get("/pulp/content/sd/d.iso"); got.code != 200 || !bytes.Equal(got.body, data) {
			t.Fatalf("after restart: %d, %d bytes", got.code, len(got.body))
		}
		if n := up.count("d.iso"); n != 1 {
			t.Fatalf("upstream requests = %d, want 1", n)
		}
	})
}

// TestLazyInterruptCancelsFetch: SIGINT cancels a fetch in flight at once,
// as it cancels running tasks: pith exits without waiting for the
// upstream, leaves no spool and stores nothing, and after a restart the
// file is fetched afresh.
func TestLazyInterruptCancelsFetch(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data, up, gate := leaveHeldFetch(t, p, "si", "i.iso")

		p.signal(syscall.SIGINT)
		p.waitExit(10 * time.Second)
		if up.canceled.Load() == 0 {
			t.Fatal("the upstream request was not dropped")
		}
		if left := spoolLeft(t, p); len(left) != 0 {
			t.Fatalf("temp files left after shutdown: %v", left)
		}
		close(gate)
		p.start()
		if artifactOf(t, p, "i.iso") != "" {
			t.Fatal("a canceled fetch was committed")
		}
		if got := p.get("/pulp/content/si/i.iso"); got.code != 200 || !bytes.Equal(got.body, data) {
			t.Fatalf("after restart: %d, %d bytes", got.code, len(got.body))
		}
		if n := up.count("i.iso"); n != 2 {
			t.Fatalf("upstream requests = %d, want 2", n)
		}
	})
}

// TestLazyRangeOnUncachedCommitsWhole: a Range request on uncached
// content gets its 206 while the whole artifact is fetched once and
// committed.
func TestLazyRangeOnUncachedCommitsWhole(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(1 << 20)
		up := newFaultyUpstream(t, map[string][]byte{"r.iso": data})
		faultyRepo(t, p, "rg", up, "on_demand")
		r := p.do("GET", "/pulp/content/rg/r.iso", nil, "", "Range", "bytes=100-199")
		if r.code != 206 || !bytes.Equal(r.body, data[100:200]) || r.hdr.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(data)) {
			t.Fatalf("range: %d %q", r.code, r.hdr.Get("Content-Range"))
		}
		r = p.do("GET", "/pulp/content/rg/r.iso", nil, "", "Range", fmt.Sprintf("bytes=%d-", len(data)))
		if r.code != 416 || r.hdr.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(data)) {
			t.Fatalf("unsatisfiable: %d %q", r.code, r.hdr.Get("Content-Range"))
		}
		waitArtifact(t, p, "r.iso")
		if up.count("r.iso") != 1 {
			t.Fatalf("upstream requests = %d, want 1", up.count("r.iso"))
		}
		r = p.do("GET", "/pulp/content/rg/r.iso", nil, "", "Range", "bytes=-10")
		if r.code != 206 || !bytes.Equal(r.body, data[len(data)-10:]) || up.count("r.iso") != 1 {
			t.Fatalf("range on the committed artifact: %d, %d upstream requests", r.code, up.count("r.iso"))
		}
	})
}

// TestLazyAnyRemoteRestoresPulpBehaviour: with --lazy-any-remote the
// content app may fetch through another repository's remote that knows
// the digest, as Pulp does.
func TestLazyAnyRemoteRestoresPulpBehaviour(t *testing.T) {
	t.Setenv("PITH_LAZY_ANY_REMOTE", "true")
	backends(t, func(t *testing.T, p *instance) {
		shared := randBytes(8192)
		upA := newFaultyUpstream(t, map[string][]byte{"x.iso": shared})
		upB := newFaultyUpstream(t, map[string][]byte{"x.iso": shared})
		faultyRepo(t, p, "aa", upA, "on_demand")
		faultyRepo(t, p, "ab", upB, "on_demand")
		upA.mu.Lock()
		delete(upA.files, "x.iso")
		upA.mu.Unlock()
		if r := p.get("/pulp/content/aa/x.iso"); r.code != 200 || !bytes.Equal(r.body, shared) {
			t.Fatalf("with any remote allowed: %d %s", r.code, r.body)
		}
		if upA.count("x.iso") != 1 || upB.count("x.iso") != 1 {
			t.Fatalf("requests A %d B %d, want 1 and 1", upA.count("x.iso"), upB.count("x.iso"))
		}
	})
}

// TestLazyTwoContentProcessesShareOneFetch: a `pith serve` and a separate
// `pith content` on one PostgreSQL database and storage fetch a cold file
// once between them.
func TestLazyTwoContentProcessesShareOneFetch(t *testing.T) {
	var pg *storetest.Backend
	for _, b := range storetest.Backends() {
		if b.Name == "postgres" {
			pg = &b
		}
	}
	if pg == nil {
		t.Skip("several pith processes share a database only on PostgreSQL: set PITH_TEST_DATABASE_URL")
	}
	p := &instance{t: t, dataDir: t.TempDir(), dbURL: pg.URL(t)}
	p.start()
	t.Cleanup(p.stop)
	{
		data := randBytes(2 << 20)
		up := newFaultyUpstream(t, map[string][]byte{"two.iso": data})
		faultyRepo(t, p, "tw", up, "on_demand")
		addr := freeAddr(t)
		var log bytes.Buffer
		cmd := exec.Command(pithBin, "content", "--addr", addr, "--data-dir", p.dataDir)
		cmd.Env = append(os.Environ(), "PITH_DATABASE_URL="+p.dbURL)
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		second := "http://" + addr
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if resp, err := http.Head(second + "/pulp/content/tw/two.iso"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("second content process did not come up:\n%s", log.String())
			}
		}
		gate := up.hold("two.iso")
		var wg sync.WaitGroup
		var one, two []byte
		var err1, err2 error
		wg.Go(func() {
			resp, err := http.Get(p.base + "/pulp/content/tw/two.iso")
			if err == nil {
				defer resp.Body.Close()
				one, err = io.ReadAll(resp.Body)
			}
			err1 = err
		})
		// The second process asks once the first holds the fetch.
		for deadline := time.Now().Add(10 * time.Second); up.count("two.iso") == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		wg.Go(func() {
			resp, err := http.Get(second + "/pulp/content/tw/two.iso")
			if err == nil {
				defer resp.Body.Close()
				two, err = io.ReadAll(resp.Body)
			}
			err2 = err
		})
		time.Sleep(300 * time.Millisecond)
		close(gate)
		wg.Wait()
		if err1 != nil || err2 != nil || !bytes.Equal(one, data) || !bytes.Equal(two, data) {
			t.Fatalf("bodies: %v %v, %d and %d bytes\n%s", err1, err2, len(one), len(two), log.String())
		}
		if n := up.count("two.iso"); n != 1 {
			t.Fatalf("upstream requests = %d across two processes, want 1", n)
		}
		waitArtifact(t, p, "two.iso")
	}
}
