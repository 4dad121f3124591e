package lazy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/benchclient"
	"github.com/pith-project/pith/internal/config"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// newBenchUpstream serves a paced file of size bytes at rate bytes/s on
// every path (the Fetcher is given its URL + "/f"), counting every request.
func newBenchUpstream(b *testing.B, size, rate int64) (up *benchclient.PacedFile, url string) {
	b.Helper()
	up, err := benchclient.NewPacedFile(b.TempDir(), size)
	if err != nil {
		b.Fatal(err)
	}
	up.Rate.Store(rate)
	srv := httptest.NewServer(up)
	b.Cleanup(srv.Close)
	return up, srv.URL
}

// timedGet fetches url, returning the time to the first body byte and to
// the end, and the body's sha256.
func timedGet(c *http.Client, url string) (ttfb, total time.Duration, sum string, err error) {
	return benchclient.TimedGet(c, url, true)
}

func procStatusKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func resetPeak() {
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// withDefaultChecksums computes what pith computes by default (sha256
// only), not the test binary's default of every allowed digest.
func withDefaultChecksums(b *testing.B) {
	if err := digest.Configure(config.DefaultAllowedContentChecksums); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { digest.Configure(digest.Allowed) })
}

// benchSize and benchRate: a 100 MB file from an upstream limited to
// 200 MB/s (PITH_BENCH_LAZY_MB and PITH_BENCH_LAZY_MBPS change them).
func benchShape() (size, rate int64) {
	size, rate = 100<<20, 200<<20
	if v, err := strconv.ParseInt(os.Getenv("PITH_BENCH_LAZY_MB"), 10, 64); err == nil && v > 0 {
		size = v << 20
	}
	if v, err := strconv.ParseInt(os.Getenv("PITH_BENCH_LAZY_MBPS"), 10, 64); err == nil && v > 0 {
		rate = v << 20
	}
	return size, rate
}

// BenchmarkColdFetch: one client, one cold on_demand file, beside a direct
// download of the same file from the same upstream in the same iteration.
// It measures the Fetcher alone (no content app, no routing queries); the
// issue's targets (time to first byte ≤ direct + 5 ms, throughput ≥ 0.9 ×
// direct) are checked end to end by internal/e2e's BenchmarkLazyColdFetch.
func BenchmarkColdFetch(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	size, rate := benchShape()
	withDefaultChecksums(b)
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) { benchColdFetch(b, storetest.Open(b, be), size, rate) })
	}
}

func benchColdFetch(b *testing.B, s *store.Store, size, rate int64) {
	{
		up, upURL := newBenchUpstream(b, size, rate)
		sum := up.SHA256
		c := &http.Client{}
		var dTTFB, pTTFB, dTotal, pTotal time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnv(b, s, "")
			e.route("/f", Request{SHA256: sum, Size: size, Sources: []Source{{RemoteArtifactID: "ra", URL: upURL + "/f"}}})
			t1, tot1, got, err := timedGet(c, upURL+"/f")
			if err != nil || got != sum {
				b.Fatalf("direct: %v", err)
			}
			b.StartTimer()
			t2, tot2, got, err := timedGet(c, e.srv.URL+"/f")
			b.StopTimer()
			if err != nil || got != sum {
				b.Fatalf("pith: %v", err)
			}
			if !e.waitStored(sum) {
				b.Fatal("not committed")
			}
			dTTFB, pTTFB, dTotal, pTotal = dTTFB+t1, pTTFB+t2, dTotal+tot1, pTotal+tot2
			// The next iteration must be cold again.
			if _, err := s.Exec(context.Background(), `DELETE FROM artifacts WHERE sha256 = $1`, sum); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		n := float64(b.N)
		mb := float64(size) / (1 << 20)
		b.ReportMetric(float64(dTTFB.Microseconds())/n/1000, "direct-ttfb-ms")
		b.ReportMetric(float64(pTTFB.Microseconds())/n/1000, "pith-ttfb-ms")
		b.ReportMetric(mb/(dTotal.Seconds()/n), "direct-MB/s")
		b.ReportMetric(mb/(pTotal.Seconds()/n), "pith-MB/s")
		b.ReportMetric(dTotal.Seconds()/pTotal.Seconds(), "x-direct")
	}
}

// BenchmarkHerd: 100 clients ask for one cold file at once, served by the
// Fetcher alone. The targets (exactly one upstream request; p99
// time to first byte ≤ direct + 100 ms; the last client done within 1.25 ×
// one direct download; server RSS growth < 64 MB) are checked end to end,
// on a real pith process, by internal/e2e's BenchmarkLazyHerd; here RSS
// includes the clients and the upstream.
func BenchmarkHerd(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	size, _ := benchShape()
	// A herd is served from one upstream download, so its speed is what
	// the herd's last client can get: an internet mirror's 10 MB/s
	// (PITH_BENCH_HERD_MBPS changes it). Loopback and two cores cannot
	// carry 100 × 200 MB/s.
	rate := int64(10 << 20)
	if v, err := strconv.ParseInt(os.Getenv("PITH_BENCH_HERD_MBPS"), 10, 64); err == nil && v > 0 {
		rate = v << 20
	}
	const clients = 100
	withDefaultChecksums(b)
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) { benchHerd(b, storetest.Open(b, be), size, rate, clients) })
	}
}

func benchHerd(b *testing.B, s *store.Store, size, rate int64, clients int) {
	{
		up, upURL := newBenchUpstream(b, size, rate)
		sum := up.SHA256
		tr := &http.Transport{MaxIdleConnsPerHost: clients}
		c := &http.Client{Transport: tr}
		var worstP99, worstLastRatio, dTTFBsum float64
		var rssGrowth int64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnv(b, s, "")
			e.route("/f", Request{SHA256: sum, Size: size, Sources: []Source{{RemoteArtifactID: "ra", URL: upURL + "/f"}}})
			dTTFB, dTotal, got, err := timedGet(c, upURL+"/f")
			if err != nil || got != sum {
				b.Fatalf("direct: %v", err)
			}
			up.Requests.Store(0)
			resetPeak()
			base := procStatusKB("VmRSS")
			b.StartTimer()
			ttfbs := make([]time.Duration, clients)
			totals := make([]time.Duration, clients)
			var wg sync.WaitGroup
			var failed atomic.Int64
			for j := range clients {
				wg.Go(func() {
					// Every tenth client checks the digest; the rest the size.
					hash := j%10 == 0
					want := sum
					if !hash {
						want = strconv.FormatInt(size, 10)
					}
					t, tot, got, err := benchclient.TimedGet(c, e.srv.URL+"/f", hash)
					if err != nil || got != want {
						failed.Add(1)
					}
					ttfbs[j], totals[j] = t, tot
				})
			}
			wg.Wait()
			b.StopTimer()
			peak := procStatusKB("VmHWM")
			if failed.Load() > 0 {
				b.Fatalf("%d clients got a bad body", failed.Load())
			}
			if n := up.Requests.Load(); n != 1 {
				b.Fatalf("upstream requests = %d, want 1", n)
			}
			if !e.waitStored(sum) {
				b.Fatal("not committed")
			}
			slices.Sort(ttfbs)
			p99 := ttfbs[clients*99/100-1]
			last := slices.Max(totals)
			worstP99 = max(worstP99, float64(p99-dTTFB)/float64(time.Millisecond))
			worstLastRatio = max(worstLastRatio, last.Seconds()/dTotal.Seconds())
			dTTFBsum += float64(dTTFB) / float64(time.Millisecond)
			rssGrowth = max(rssGrowth, peak-base)
			if _, err := s.Exec(context.Background(), `DELETE FROM artifacts WHERE sha256 = $1`, sum); err != nil {
				b.Fatal(err)
			}
			tr.CloseIdleConnections()
			b.StartTimer()
		}
		b.ReportMetric(dTTFBsum/float64(b.N), "direct-ttfb-ms")
		b.ReportMetric(worstP99, "p99-ttfb-over-direct-ms")
		b.ReportMetric(worstLastRatio, "last-done/direct")
		b.ReportMetric(float64(rssGrowth)/1024, "rss-growth-MB")
		b.ReportMetric(1, "upstream-requests")
	}
}
