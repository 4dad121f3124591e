package e2e

// Issue 5's lazy-serving benchmarks, measured on a real `pith serve`
// process over loopback HTTP, beside a direct download of the same file
// from the same upstream in the same iteration:
//
//   - BenchmarkLazyColdFetch: one client, the first GET of a cold 100 MB
//     on_demand file. Targets: time to first byte ≤ direct's + 5 ms;
//     throughput ≥ 0.9 × direct, against a rate-limited upstream.
//   - BenchmarkLazyHerd: 100 clients GET one cold 100 MB file at once.
//     Targets: exactly 1 upstream request; p99 time to first byte ≤
//     direct's + 100 ms; the last client done within 1.25 × one direct
//     download; server RSS growth < 64 MB.
//
// The request goes through everything a user's does: distribution
// routing, publication lookup, source selection in the database, the
// single-flight fetch, spooling, verification and commit. Before each
// iteration a HEAD of the file warms the server (routing, connections, and
// the lookups of the file's path and sources, which the content app keeps
// a few seconds); with PITH_BENCH_LAZY_WARM=other a GET of another, tiny
// on_demand file of the repository (fetched and committed) comes first
// instead, so the GET pays every lookup of a path nobody asked for before,
// on a server that has served lazy content before, as one in use has;
// with PITH_BENCH_LAZY_WARM=route the HEAD is of the repository's
// PULP_MANIFEST, so the GET is also the first lazy request of a fresh
// process (its database connections have never run those lookups). Between
// iterations repositories/reclaim_space/ drops the committed artifact, so
// every iteration is cold. RSS is the server process's own (VmHWM after
// clear_refs, minus VmRSS before), not the benchmark's.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/benchclient"
	"github.com/pith-project/pith/internal/store/storetest"
)

// rateUpstream serves a PULP_MANIFEST and, at /repo/big.iso, a paced
// file; its Requests count only requests for the file (what pith fetches
// lazily), not the manifest's.
type rateUpstream struct {
	*httptest.Server
	*benchclient.PacedFile
}

func newRateUpstream(b *testing.B, size int64) *rateUpstream {
	b.Helper()
	f, err := benchclient.NewPacedFile(b.TempDir(), size)
	if err != nil {
		b.Fatal(err)
	}
	u := &rateUpstream{PacedFile: f}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/repo/PULP_MANIFEST":
			fmt.Fprintf(w, "big.iso,%s,%d\n", f.SHA256, f.Size)
			fmt.Fprintf(w, "other.iso,%s,%d\n", otherSHA256, len(otherFile))
		case "/repo/other.iso":
			w.Write(otherFile)
		case "/repo/big.iso":
			f.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	b.Cleanup(u.Close)
	return u
}

// otherFile is a second on_demand file of the benchmark repository, which
// PITH_BENCH_LAZY_WARM=other fetches before each iteration; its upstream
// requests are not counted with the big file's.
var otherFile = []byte("another file of the repository\n")

var otherSHA256 = func() string { h := sha256.Sum256(otherFile); return hex.EncodeToString(h[:]) }()

// benchPith is a `pith serve` process for benchmarks.
type benchPith struct {
	b    *testing.B
	cmd  *exec.Cmd
	base string
	log  *bytes.Buffer
}

func startBenchPith(b *testing.B, dbURL string) *benchPith {
	b.Helper()
	ln := freeAddrTB(b)
	p := &benchPith{b: b, base: "http://" + ln, log: &bytes.Buffer{}}
	p.cmd = exec.Command(pithBin, "serve", "--addr", ln, "--data-dir", b.TempDir(), "--workers", "1")
	p.cmd.Env = append(os.Environ(), "PITH_ADMIN_PASSWORD="+password, "PITH_DATABASE_URL="+dbURL, "PITH_LOG_LEVEL=warn")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { p.cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(p.base + "/pulp/api/v3/status/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
	}
	b.Fatalf("pith did not come up:\n%s", p.log)
	return nil
}

func freeAddrTB(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// call sends a JSON API request and decodes the JSON answer.
func (p *benchPith) call(method, path string, body any, want int) map[string]any {
	p.b.Helper()
	var rd io.Reader
	if body != nil {
		bs, _ := json.Marshal(body)
		rd = bytes.NewReader(bs)
	}
	if strings.HasPrefix(path, "/") {
		path = p.base + path
	}
	req, _ := http.NewRequest(method, path, rd)
	req.SetBasicAuth("admin", password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.b.Fatal(err)
	}
	defer resp.Body.Close()
	bs, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		p.b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, bs)
	}
	var m map[string]any
	json.Unmarshal(bs, &m)
	return m
}

// task posts and waits for the task to complete.
func (p *benchPith) task(path string, body any) {
	p.b.Helper()
	href := p.call("POST", path, body, 202)["task"].(string)
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		t := p.call("GET", href, nil, 200)
		switch t["state"] {
		case "completed":
			return
		case "failed", "canceled":
			p.b.Fatalf("task %s: %v", path, t["error"])
		}
	}
	p.b.Fatalf("task %s did not finish", path)
}

// lazySetup syncs the upstream on_demand into an autopublished repository
// served at base path "lazy"; it returns the repository href.
func (p *benchPith) lazySetup(up *rateUpstream) string {
	remote := p.call("POST", "/pulp/api/v3/remotes/file/file/", map[string]any{"name": "lazy", "url": up.URL + "/repo/PULP_MANIFEST", "policy": "on_demand"}, 201)
	repo := p.call("POST", "/pulp/api/v3/repositories/file/file/", map[string]any{"name": "lazy", "remote": remote["pulp_href"], "autopublish": true}, 201)
	href := repo["pulp_href"].(string)
	p.task(href+"sync/", map[string]any{})
	p.task("/pulp/api/v3/distributions/file/file/", map[string]any{"name": "lazy", "base_path": "lazy", "repository": href})
	return href
}

// committed waits until the file unit has its artifact.
func (p *benchPith) committed() {
	p.b.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		list := p.call("GET", "/pulp/api/v3/content/file/files/?relative_path=big.iso", nil, 200)
		if rs := list["results"].([]any); len(rs) == 1 && rs[0].(map[string]any)["artifact"] != nil {
			return
		}
	}
	p.b.Fatal("on_demand artifact not committed")
}

// warmURL is what warm requests before an iteration: the file itself, or
// with PITH_BENCH_LAZY_WARM=other another on_demand file, or with
// PITH_BENCH_LAZY_WARM=route only the distribution.
func (p *benchPith) warmURL(url string) string {
	switch os.Getenv("PITH_BENCH_LAZY_WARM") {
	case "route":
		return p.base + "/pulp/content/lazy/PULP_MANIFEST"
	case "other":
		return p.base + "/pulp/content/lazy/other.iso"
	}
	return url
}

// warm makes sure the server has routed this path before (its caches and
// database connections are warm, as on a server in use): a HEAD, which
// lazy content answers from metadata without fetching; for the other file,
// a whole GET.
func (p *benchPith) warm(url string) {
	p.b.Helper()
	method := http.MethodHead
	if strings.HasSuffix(url, "/other.iso") {
		method = http.MethodGet
	}
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		p.b.Fatalf("HEAD %s: %d", url, resp.StatusCode)
	}
}

// makeCold drops the committed artifact so the next GET fetches again.
func (p *benchPith) makeCold(repo string) {
	p.b.Helper()
	p.task("/pulp/api/v3/repositories/reclaim_space/", map[string]any{"repo_hrefs": []string{repo}})
	list := p.call("GET", "/pulp/api/v3/content/file/files/?relative_path=big.iso", nil, 200)
	if rs := list["results"].([]any); len(rs) != 1 || rs[0].(map[string]any)["artifact"] != nil {
		p.b.Fatalf("reclaim left the artifact: %v", rs)
	}
}

// procKB reads a field of /proc/<pid>/status in kB.
func procKB(pid int, field string) int64 {
	bs, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(bs), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// envInt64 reads a positive integer setting, or returns def.
func envInt64(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkLazyColdFetch: see the file comment. PITH_BENCH_LAZY_MB (100)
// and PITH_BENCH_LAZY_MBPS (200, the upstream's rate limit) shape it.
func BenchmarkLazyColdFetch(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	size := envInt64("PITH_BENCH_LAZY_MB", 100) << 20
	rate := envInt64("PITH_BENCH_LAZY_MBPS", 200) << 20
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			up := newRateUpstream(b, size)
			up.Rate.Store(rate)
			p := startBenchPith(b, be.URL(b))
			repo := p.lazySetup(up)
			url := p.base + "/pulp/content/lazy/big.iso"
			c := &http.Client{Transport: &http.Transport{}}
			var dTTFB, pTTFB, dTotal, pTotal, worstTTFB time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				up.Requests.Store(0)
				p.warm(p.warmURL(url))
				t1, tot1, got, err := benchclient.TimedGet(c, up.URL+"/repo/big.iso", true)
				if err != nil || got != up.SHA256 {
					b.Fatalf("direct: %v", err)
				}
				b.StartTimer()
				t2, tot2, got, err := benchclient.TimedGet(c, url, true)
				b.StopTimer()
				if err != nil || got != up.SHA256 {
					b.Fatalf("pith: %v (%s)", err, p.log)
				}
				if n := up.Requests.Load(); n != 2 {
					b.Fatalf("upstream requests = %d, want 2 (direct and pith)", n)
				}
				p.committed()
				p.makeCold(repo)
				dTTFB, pTTFB, dTotal, pTotal = dTTFB+t1, pTTFB+t2, dTotal+tot1, pTotal+tot2
				worstTTFB = max(worstTTFB, t2-t1)
				b.StartTimer()
			}
			n := float64(b.N)
			mb := float64(size) / (1 << 20)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(dTTFB)/n, "direct-ttfb-ms")
			b.ReportMetric(ms(pTTFB)/n, "pith-ttfb-ms")
			b.ReportMetric(ms(pTTFB-dTTFB)/n, "ttfb-over-direct-ms")
			b.ReportMetric(ms(worstTTFB), "worst-ttfb-over-direct-ms")
			b.ReportMetric(mb/(dTotal.Seconds()/n), "direct-MB/s")
			b.ReportMetric(mb/(pTotal.Seconds()/n), "pith-MB/s")
			b.ReportMetric(dTotal.Seconds()/pTotal.Seconds(), "x-direct")
		})
	}
}

// BenchmarkLazyHerd: see the file comment. The upstream is limited to
// PITH_BENCH_HERD_MBPS (10, an internet mirror's rate): one upstream
// download feeds all 100 clients, so the herd moves 100 × the file over
// loopback, which two cores cannot do at hundreds of MB/s per client.
func BenchmarkLazyHerd(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	size := envInt64("PITH_BENCH_LAZY_MB", 100) << 20
	rate := envInt64("PITH_BENCH_HERD_MBPS", 10) << 20
	clients := int(envInt64("PITH_BENCH_HERD_CLIENTS", 100))
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			up := newRateUpstream(b, size)
			up.Rate.Store(rate)
			p := startBenchPith(b, be.URL(b))
			repo := p.lazySetup(up)
			url := p.base + "/pulp/content/lazy/big.iso"
			pid := p.cmd.Process.Pid
			tr := &http.Transport{MaxIdleConnsPerHost: clients}
			c := &http.Client{Transport: tr}
			var worstP99, worstLast, dTTFBsum float64
			var rssGrowth int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				up.Requests.Store(0)
				dTTFB, dTotal, got, err := benchclient.TimedGet(c, up.URL+"/repo/big.iso", true)
				if err != nil || got != up.SHA256 {
					b.Fatalf("direct: %v", err)
				}
				up.Requests.Store(0)
				p.warm(p.warmURL(url))
				os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
				base := procKB(pid, "VmRSS")
				ttfbs := make([]time.Duration, clients)
				totals := make([]time.Duration, clients)
				var wg sync.WaitGroup
				var failed atomic.Int64
				b.StartTimer()
				for j := range clients {
					wg.Go(func() {
						// Every tenth client checks the digest, the rest the size.
						hash := j%10 == 0
						want := up.SHA256
						if !hash {
							want = strconv.FormatInt(size, 10)
						}
						t, tot, got, err := benchclient.TimedGet(c, url, hash)
						if err != nil || got != want {
							failed.Add(1)
						}
						ttfbs[j], totals[j] = t, tot
					})
				}
				wg.Wait()
				b.StopTimer()
				peak := procKB(pid, "VmHWM")
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d clients got a bad body", n)
				}
				if n := up.Requests.Load(); n != 1 {
					b.Fatalf("upstream requests = %d, want 1", n)
				}
				p.committed()
				p.makeCold(repo)
				slices.Sort(ttfbs)
				p99 := ttfbs[(clients*99+99)/100-1] // nearest rank
				b.Logf("time to first byte: p50 %v, p90 %v, p99 %v, max %v; direct %v, direct download %v, last client %v",
					ttfbs[clients/2-1], ttfbs[clients*9/10-1], p99, ttfbs[clients-1], dTTFB, dTotal, slices.Max(totals))
				worstP99 = max(worstP99, float64((p99-dTTFB).Microseconds())/1000)
				worstLast = max(worstLast, slices.Max(totals).Seconds()/dTotal.Seconds())
				dTTFBsum += float64(dTTFB.Microseconds()) / 1000
				rssGrowth = max(rssGrowth, peak-base)
				tr.CloseIdleConnections()
				b.StartTimer()
			}
			b.ReportMetric(dTTFBsum/float64(b.N), "direct-ttfb-ms")
			b.ReportMetric(worstP99, "p99-ttfb-over-direct-ms")
			b.ReportMetric(worstLast, "last-done/direct")
			b.ReportMetric(float64(rssGrowth)/1024, "server-rss-growth-MB")
			b.ReportMetric(1, "upstream-requests")
		})
	}
}
