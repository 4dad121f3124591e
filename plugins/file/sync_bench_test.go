package file

// Sync benchmarks (issue 3's "Done when" and issue 5's on_demand rate).
// Each syncs through the whole API — remote, repository, POST sync/, the
// task on a worker — from a loopback upstream, and measures in the same
// run the raw ceiling: the same files fetched with the same concurrency by
// plain GET + sha256 + write to a new file. None runs without -bench; the
// heavy ones skip under -short. See bench/README.md for the commands.

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/config"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

const (
	benchSmallCount = 20000 // the shape of Pulp's performance fixture
	benchSmallSize  = 50
	benchLargeCount = 10
	benchLargeSize  = 100 << 20
	benchLazyCount  = 1000000
	// envLazyCount overrides benchLazyCount, for quicker runs while
	// working on the on_demand rate (e.g. 100000).
	envLazyCount = "PITH_BENCH_ONDEMAND_LINES"
	// benchConcurrency is what a remote without download_concurrency uses,
	// so the raw ceiling runs with pith's own default.
	benchConcurrency = download.DefaultConcurrency
)

// benchUpstream serves a PULP_MANIFEST and its files on loopback and
// counts file requests. Small files are generated from their name; large
// files are served from disk (sendfile), so neither side holds them in
// memory.
type benchUpstream struct {
	*httptest.Server
	manifest string // path of the manifest on disk
	dir      string // large files, by relative path
	requests atomic.Int64
}

// smallBody is the content of small file i: its number, zero-padded.
func smallBody(i int) []byte { return fmt.Appendf(nil, "%0*d", benchSmallSize, i) }

func smallPath(i int) string { return fmt.Sprintf("small/%05d.txt", i) }

func newBenchUpstream(b *testing.B, manifest, dir string) *benchUpstream {
	up := &benchUpstream{manifest: manifest, dir: dir}
	up.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/repo/")
		switch {
		case p == "PULP_MANIFEST":
			http.ServeFile(w, r, up.manifest)
		case strings.HasPrefix(p, "small/"):
			up.requests.Add(1)
			i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(p, "small/"), ".txt"))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			body := smallBody(i)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		case up.dir != "":
			up.requests.Add(1)
			http.ServeFile(w, r, filepath.Join(up.dir, filepath.FromSlash(p)))
		default:
			http.NotFound(w, r)
		}
	}))
	b.Cleanup(up.Close)
	return up
}

func (up *benchUpstream) manifestURL() string { return up.URL + "/repo/PULP_MANIFEST" }

// writeManifest writes n lines built by line(i) to a new file in dir.
func writeBenchManifest(b *testing.B, dir string, n int, line func(w io.Writer, i int)) string {
	p := filepath.Join(dir, "PULP_MANIFEST")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		line(w, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

func smallUpstream(b *testing.B) *benchUpstream {
	m := writeBenchManifest(b, b.TempDir(), benchSmallCount, func(w io.Writer, i int) {
		sum := sha256.Sum256(smallBody(i))
		fmt.Fprintf(w, "%s,%x,%d\n", smallPath(i), sum, benchSmallSize)
	})
	return newBenchUpstream(b, m, "")
}

// largeUpstream writes the large files (deterministic pseudo-random bytes,
// so nothing compresses or deduplicates) and their manifest to disk.
func largeUpstream(b *testing.B) *benchUpstream {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "large"), 0o755); err != nil {
		b.Fatal(err)
	}
	sums := make([]string, benchLargeCount)
	buf := make([]byte, 1<<20)
	for i := range benchLargeCount {
		f, err := os.Create(filepath.Join(dir, "large", fmt.Sprintf("%02d.bin", i)))
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(uint64(i), 42))
		h := sha256.New()
		for left := benchLargeSize; left > 0; left -= len(buf) {
			for j := 0; j < len(buf); j += 8 {
				v := r.Uint64()
				for k := range 8 {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
			h.Write(buf)
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		sums[i] = hex.EncodeToString(h.Sum(nil))
	}
	m := writeBenchManifest(b, b.TempDir(), benchLargeCount, func(w io.Writer, i int) {
		fmt.Fprintf(w, "large/%02d.bin,%s,%d\n", i, sums[i], benchLargeSize)
	})
	return newBenchUpstream(b, m, dir)
}

// iterTB scopes an environment to one benchmark iteration: its temporary
// directories and cleanups go when the iteration ends, not when the
// benchmark does, so iterations do not pile up gigabytes of artifacts.
type iterTB struct {
	testing.TB
	cleanups []func()
}

func (t *iterTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (t *iterTB) TempDir() string {
	d, err := os.MkdirTemp("", "pith-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (t *iterTB) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// benchSync is one pith environment with a remote and a repository ready
// to sync.
type benchSync struct {
	tb   *iterTB
	e    *testEnv
	repo string
}

func newBenchSync(b *testing.B, backend storetest.Backend, up *benchUpstream, policy string) *benchSync {
	tb := &iterTB{TB: b}
	e := newTestEnvWorkers(tb, storetest.Open(tb, backend), 1)
	var remote, repo struct {
		Href string `json:"pulp_href"`
	}
	e.call("POST", RemotesPath, map[string]any{"name": "bench", "url": up.manifestURL(), "policy": policy}, http.StatusCreated, &remote)
	e.call("POST", RepositoriesPath, map[string]any{"name": "bench", "remote": remote.Href}, http.StatusCreated, &repo)
	return &benchSync{tb: tb, e: e, repo: repo.Href}
}

// sync runs a sync task to its end and fails b unless it completed.
func (s *benchSync) sync(b *testing.B, body map[string]any) {
	var r api.AsyncResponse
	s.e.call("POST", s.repo+"sync/", body, http.StatusAccepted, &r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t, err := s.e.Tasks.Wait(ctx, api.IDFromHref(r.Task, coreapi.TasksPath, "core.task"))
	if err != nil {
		b.Fatal(err)
	}
	if t.State != store.TaskCompleted {
		var tt testTask
		s.e.call("GET", r.Task, nil, http.StatusOK, &tt)
		b.Fatalf("sync ended %s: %v", tt.State, tt.Error)
	}
}

// present returns the number of units in the repository's latest version.
func (s *benchSync) present(b *testing.B) int {
	var repo struct {
		Latest string `json:"latest_version_href"`
	}
	s.e.call("GET", s.repo, nil, http.StatusOK, &repo)
	var v struct {
		Summary ContentSummary `json:"content_summary"`
	}
	s.e.call("GET", repo.Latest, nil, http.StatusOK, &v)
	return int(v.Summary.Present[Type].Count)
}

// rawFetch is the ceiling: n goroutines GET the files, hashing each with
// sha256 while writing it to a new file in dir.
func rawFetch(b *testing.B, urls []string, dir string, n int) {
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	work := make(chan int)
	var wg sync.WaitGroup
	var (
		mu      sync.Mutex
		failure error
	)
	for range n {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for i := range work {
				if err := rawOne(client, urls[i], filepath.Join(dir, strconv.Itoa(i)), buf); err != nil {
					mu.Lock()
					failure = cmp.Or(failure, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range urls {
		work <- i
	}
	close(work)
	wg.Wait()
	if failure != nil {
		b.Fatal(failure)
	}
}

func rawOne(client *http.Client, url, dst string, buf []byte) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), resp.Body, buf); err != nil {
		f.Close()
		return err
	}
	h.Sum(nil)
	return f.Close()
}

// manifestURLs lists the file URLs of an upstream's manifest.
func manifestURLs(b *testing.B, up *benchUpstream) []string {
	var urls []string
	if err := readManifestFile(up.manifest, func(e ManifestEntry) error {
		u, err := ArtifactURL(up.manifestURL(), e.RelativePath)
		urls = append(urls, u)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return urls
}

// timeRaw runs the raw ceiling once into a fresh directory and returns
// its wall time; the directory is removed untimed.
func timeRaw(b *testing.B, urls []string) time.Duration {
	dir, err := os.MkdirTemp("", "pith-bench-raw-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	rawFetch(b, urls, dir, benchConcurrency)
	return time.Since(start)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchAgainstRaw runs b.N fresh immediate syncs of up's files on backend,
// each right after a raw-ceiling run of the same files (untimed), and
// reports pith's and the ceiling's rates and their ratio.
func benchAgainstRaw(b *testing.B, backend storetest.Backend, up *benchUpstream, files int, bytes int64) {
	urls := manifestURLs(b, up)
	var raw, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		raw += timeRaw(b, urls)
		s := newBenchSync(b, backend, up, "immediate")
		before := up.requests.Load()
		c0 := cpuTime()
		b.StartTimer()
		s.sync(b, map[string]any{})
		b.StopTimer()
		cpu += cpuTime() - c0
		if got := up.requests.Load() - before; got != int64(files) {
			b.Fatalf("pith made %d file requests, want %d", got, files)
		}
		if n := s.present(b); n != files {
			b.Fatalf("version holds %d units, want %d", n, files)
		}
		s.tb.close()
		b.StartTimer()
	}
	n := float64(b.N)
	pith := b.Elapsed().Seconds() / n
	rawS := raw.Seconds() / n
	b.ReportMetric(float64(files)/pith, "files/s")
	b.ReportMetric(float64(bytes)/pith/1e6, "MB/s")
	b.ReportMetric(float64(files)/rawS, "raw-files/s")
	b.ReportMetric(float64(bytes)/rawS/1e6, "raw-MB/s")
	b.ReportMetric(rawS/pith, "x-raw")
	b.ReportMetric(cpu.Seconds()/n, "cpu-s/op")
}

// benchRaw is the raw ceiling on its own.
func benchRaw(b *testing.B, up *benchUpstream, files int, bytes int64) {
	urls := manifestURLs(b, up)
	for b.Loop() {
		b.StopTimer()
		dir, err := os.MkdirTemp("", "pith-bench-raw-")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rawFetch(b, urls, dir, benchConcurrency)
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(files)/s, "files/s")
	b.ReportMetric(float64(bytes)/s/1e6, "MB/s")
}

// BenchmarkSyncSmallFiles: 20,000 files of 50 bytes, immediate policy.
// Targets: ≥ 0.7 × raw and ≥ 1,000 files/s.
func BenchmarkSyncSmallFiles(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	up := smallUpstream(b)
	b.Run("raw", func(b *testing.B) { benchRaw(b, up, benchSmallCount, benchSmallCount*benchSmallSize) })
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			withChecksums(b, config.DefaultAllowedContentChecksums)
			benchAgainstRaw(b, be, up, benchSmallCount, benchSmallCount*benchSmallSize)
		})
	}
}

// BenchmarkSyncLargeFiles: 10 files of 100 MB, immediate policy. Target:
// ≥ 0.8 × raw.
func BenchmarkSyncLargeFiles(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	up := largeUpstream(b)
	b.Run("raw", func(b *testing.B) { benchRaw(b, up, benchLargeCount, benchLargeCount*benchLargeSize) })
	for _, be := range storetest.Backends() {
		for _, cs := range benchChecksums {
			b.Run(be.Name+"/"+cs.name, func(b *testing.B) {
				withChecksums(b, cs.algs)
				benchAgainstRaw(b, be, up, benchLargeCount, benchLargeCount*benchLargeSize)
			})
		}
	}
}

// benchChecksums are the --allowed-content-checksums settings compared on
// large files, where hashing dominates: pith's default and Pulp's.
var benchChecksums = []struct {
	name string
	algs []string
}{
	{"default", config.DefaultAllowedContentChecksums},
	{"pulp", []string{digest.SHA224, digest.SHA256, digest.SHA384, digest.SHA512}},
}

// withChecksums configures the checksums artifacts carry for the rest of
// the benchmark and restores the package default after it.
func withChecksums(b *testing.B, algs []string) {
	if err := digest.Configure(algs); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { digest.Configure(digest.Allowed) })
}

// BenchmarkNoopResync: the second sync of an unchanged 20,000-file
// manifest. ns/op is one re-sync; target < 1 s. "optimize" is the default
// (the unchanged manifest is recognised and the sync skipped); "full"
// passes optimize=false, so every unit goes through the pipeline and is
// found stored.
func BenchmarkNoopResync(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	up := smallUpstream(b)
	for _, be := range storetest.Backends() {
		for _, mode := range []struct {
			name     string
			optimize bool
		}{{"optimize", true}, {"full", false}} {
			b.Run(be.Name+"/"+mode.name, func(b *testing.B) {
				s := newBenchSync(b, be, up, "immediate")
				defer s.tb.close()
				s.sync(b, map[string]any{})
				before := up.requests.Load()
				for b.Loop() {
					s.sync(b, map[string]any{"optimize": mode.optimize})
				}
				if got := up.requests.Load() - before; got != 0 {
					b.Fatalf("no-op re-sync made %d file requests", got)
				}
				if n := s.present(b); n != benchSmallCount {
					b.Fatalf("version holds %d units, want %d", n, benchSmallCount)
				}
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/resync")
			})
		}
	}
}

// procStatus returns a /proc/self/status field in bytes (Linux), or -1.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// resetPeakRSS returns the process's memory to the OS and resets VmHWM to
// the current RSS (Linux ≥ 4.0), so a later VmHWM is the peak since now.
func resetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// BenchmarkOnDemandSync1M: an on_demand sync of a 1,000,000-line manifest
// (PITH_BENCH_ONDEMAND_LINES sets another size).
// Targets: peak RSS < 256 MB (issue 3) and ≥ 5,000 units/s (issue 5).
// peak-RSS-MB is the whole benchmark process's VmHWM during the sync
// (reset just before it), so it includes the test binary, the loopback
// upstream and the database driver: an upper bound on pith's own.
func BenchmarkOnDemandSync1M(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	lines := benchLazyCount
	if v := os.Getenv(envLazyCount); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number of lines", envLazyCount, v)
		}
		lines = n
	}
	m := writeBenchManifest(b, b.TempDir(), lines, func(w io.Writer, i int) {
		// Nothing is downloaded, so the digests only need to be distinct.
		sum := sha256.Sum256(strconv.AppendInt(nil, int64(i), 10))
		fmt.Fprintf(w, "lazy/%03d/%07d.bin,%x,%d\n", i%1000, i, sum, 1000+i)
	})
	up := newBenchUpstream(b, m, "")
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			var peak, base int64
			for b.Loop() {
				b.StopTimer()
				s := newBenchSync(b, be, up, "on_demand")
				if !resetPeakRSS() {
					b.Log("cannot reset VmHWM; peak includes earlier work")
				}
				base = max(base, procStatus("VmRSS"))
				b.StartTimer()
				s.sync(b, map[string]any{})
				b.StopTimer()
				peak = max(peak, procStatus("VmHWM"))
				if n := s.present(b); n != lines {
					b.Fatalf("version holds %d units, want %d", n, lines)
				}
				if got := up.requests.Load(); got != 0 {
					b.Fatalf("on_demand sync made %d file requests", got)
				}
				s.tb.close()
				b.StartTimer()
			}
			b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "units/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
			b.ReportMetric(float64(base)/(1<<20), "start-RSS-MB")
		})
	}
}
