package pipeline_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store/storetest"
	"github.com/pith-project/pith/pipeline"
)

// smallFiles is the shape of Pulp's performance fixture: 20,000 files of
// 50 bytes.
const (
	smallCount = 20000
	smallSize  = 50
)

func smallUnits(up *upstream) []fileUnit {
	units := make([]fileUnit, smallCount)
	for i := range units {
		units[i] = up.add(fmt.Sprintf("small/%05d", i), fmt.Appendf(nil, "%0*d", smallSize, i))
	}
	return units
}

// syncOnce runs the full pipeline into a new version, failing b on error.
func syncOnce(b *testing.B, e *env, repoID string, units []fileUnit) {
	ctx := context.Background()
	v, err := repository.NewVersion(ctx, e.s, repoID, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := pipeline.NewDeclarativeVersion(e.deps(v, false)).Run(ctx, e.declare(units, false)); err != nil {
		b.Fatal(err)
	}
	if _, err := v.Finalize(ctx, nil); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSyncSmallFiles syncs 20,000 files of 50 bytes from a loopback
// upstream through every stage into a new version on SQLite (immediate
// policy, 20 downloads in flight), next to a raw ceiling — parallel GET,
// sha256 and write of the same files with the same concurrency — and a
// no-op re-sync.
func BenchmarkSyncSmallFiles(b *testing.B) {
	backend := storetest.Backends()[0]
	up := newUpstream(b)
	units := smallUnits(up)

	b.Run("pipeline", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			s := storetest.Open(b, backend)
			e := newEnv(b, s)
			e.up = up
			repo := newRepo(b, s)
			b.StartTimer()
			syncOnce(b, e, repo, units)
		}
		b.ReportMetric(float64(smallCount*b.N)/b.Elapsed().Seconds(), "files/s")
	})

	b.Run("noop-resync", func(b *testing.B) {
		s := storetest.Open(b, backend)
		e := newEnv(b, s)
		e.up = up
		repo := newRepo(b, s)
		syncOnce(b, e, repo, units)
		before := up.total.Load()
		for b.Loop() {
			syncOnce(b, e, repo, units)
		}
		if up.total.Load() != before {
			b.Fatal("no-op re-sync downloaded")
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/resync")
	})

	b.Run("raw-ceiling", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			b.StartTimer()
			rawFetch(b, up.URL, units, dir, pipeline.DefaultConcurrency)
		}
		b.ReportMetric(float64(smallCount*b.N)/b.Elapsed().Seconds(), "files/s")
	})
}

// rawFetch is the ceiling: GET each file, hash it with sha256 while
// writing it to a new file, with n requests in flight.
func rawFetch(b *testing.B, base string, units []fileUnit, dir string, n int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	work := make(chan fileUnit)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for u := range work {
				resp, err := client.Get(base + "/" + u.path)
				if err != nil {
					b.Error(err)
					continue
				}
				f, err := os.CreateTemp(dir, "raw")
				if err != nil {
					b.Error(err)
					resp.Body.Close()
					continue
				}
				h := sha256.New()
				_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
				resp.Body.Close()
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, u := range units {
		work <- u
	}
	close(work)
	wg.Wait()
}
