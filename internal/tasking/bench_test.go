package tasking_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/store/storetest"
	"github.com/pith-project/pith/internal/tasking"
)

// BenchmarkDispatchToCompletion measures task throughput: b.N no-op tasks,
// each reserving its own resource, dispatched one after another and run by
// two workers; the clock stops when the last one completed.
func BenchmarkDispatchToCompletion(b *testing.B) {
	for _, bk := range storetest.Backends() {
		b.Run(bk.Name, func(b *testing.B) {
			s := storetest.Open(b, bk)
			m := newManager(b, s, tasking.Options{})
			var done atomic.Int64
			all := make(chan struct{})
			target := int64(b.N)
			m.Register("bench.noop", func(context.Context, *tasking.Task) error {
				if done.Add(1) == target {
					close(all)
				}
				return nil
			})
			runWorkers(b, m, 2)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if _, err := m.Dispatch(ctx, tasking.DispatchRequest{Name: "bench.noop", Exclusive: []string{fmt.Sprint("r", i)}}); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("only %d of %d tasks completed", done.Load(), b.N)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
		})
	}
}

// BenchmarkDurableCommit is the reference for BenchmarkDispatchToCompletion:
// the rate of one-row durable transactions, one after another, on the same
// kind of store. Every dispatch needs at least one such commit (the task
// must exist once the API answered 202), so tasks/s cannot exceed
// commits/s; on a shared disk both follow its fsync latency.
func BenchmarkDurableCommit(b *testing.B) {
	for _, bk := range storetest.Backends() {
		b.Run(bk.Name, func(b *testing.B) {
			s := storetest.Open(b, bk)
			ctx := context.Background()
			if _, err := s.Exec(ctx, `CREATE TABLE bench_commits (id TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if _, err := s.Exec(ctx, `INSERT INTO bench_commits (id, n) VALUES ($1, $2)`, fmt.Sprint("c", i), i); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
		})
	}
}
