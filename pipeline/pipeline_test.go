package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pith-project/pith/pipeline"
)

type unit struct{ key string }

func (u unit) Type() string       { return "test.unit" }
func (u unit) NaturalKey() string { return u.key }
func (u unit) RepoKey() string    { return u.key }

func item(i int) *pipeline.DeclarativeContent {
	return &pipeline.DeclarativeContent{Unit: unit{fmt.Sprint(i)}, Extra: []string(nil)}
}

// emit is a first stage sending n items (or forever when n < 0).
func emit(n int) pipeline.FirstStage {
	return func(ctx context.Context, out chan<- *pipeline.DeclarativeContent) error {
		for i := 0; n < 0 || i < n; i++ {
			if err := pipeline.Send(ctx, out, item(i)); err != nil {
				return err
			}
		}
		return nil
	}
}

// mark is a stage appending its name to each item's Extra trail.
func mark(name string) pipeline.Stage {
	return pipeline.Stage{Name: name, Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
		for d := range pipeline.Items(ctx, in) {
			d.Extra = append(d.Extra.([]string), name)
			if err := pipeline.Send(ctx, out, d); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return nil
	}}
}

// collect is a stage recording what reaches it (it runs on one goroutine,
// and Run returns only after it did, so got needs no lock).
func collect(got *[]*pipeline.DeclarativeContent) pipeline.Stage {
	return pipeline.Stage{Name: "collect", Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
		for d := range pipeline.Items(ctx, in) {
			*got = append(*got, d)
		}
		return nil
	}}
}

func TestRunPassesEveryItemThroughEveryStageInOrder(t *testing.T) {
	var got []*pipeline.DeclarativeContent
	p := &pipeline.Pipeline{Stages: []pipeline.Stage{mark("a"), mark("b"), mark("c"), collect(&got)}, Buffer: 1}
	if err := p.Run(t.Context(), emit(1000)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 {
		t.Fatalf("collected %d items, want 1000", len(got))
	}
	for i, d := range got {
		if d.Unit.NaturalKey() != fmt.Sprint(i) {
			t.Fatalf("item %d is %s: order not kept", i, d.Unit.NaturalKey())
		}
		if trail := d.Extra.([]string); !slices.Equal(trail, []string{"a", "b", "c"}) {
			t.Fatalf("item %d went through %v", i, trail)
		}
	}
}

func names(p *pipeline.Pipeline) []string {
	var n []string
	for _, s := range p.Stages {
		n = append(n, s.Name)
	}
	return n
}

func TestInsertReplaceRemove(t *testing.T) {
	p := &pipeline.Pipeline{Stages: []pipeline.Stage{mark("a"), mark("b"), mark("c")}}
	if err := p.Insert("a", mark("x")); err != nil {
		t.Fatal(err)
	}
	if err := p.Insert("", mark("first")); err != nil {
		t.Fatal(err)
	}
	if err := p.Insert("c", mark("last")); err != nil {
		t.Fatal(err)
	}
	if err := p.Replace("b", mark("B")); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove("c"); err != nil {
		t.Fatal(err)
	}
	want := []string{"first", "a", "x", "B", "last"}
	if got := names(p); !slices.Equal(got, want) {
		t.Fatalf("stages = %v, want %v", got, want)
	}
	for _, err := range []error{p.Insert("nope", mark("y")), p.Replace("nope", mark("y")), p.Remove("nope")} {
		if !errors.Is(err, pipeline.ErrNoStage) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("unknown stage: err = %v", err)
		}
	}
	// The edited pipeline runs the stages in their new order.
	var got []*pipeline.DeclarativeContent
	p.Stages = append(p.Stages, collect(&got))
	if err := p.Run(t.Context(), emit(3)); err != nil {
		t.Fatal(err)
	}
	for _, d := range got {
		if trail := d.Extra.([]string); !slices.Equal(trail, want) {
			t.Fatalf("item went through %v, want %v", trail, want)
		}
	}
}

// waitGoroutines waits until the goroutine count is back to at most n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockUntilDone is a stage that passes items on but, like a stage stuck in
// a slow call, only ever stops when the context ends.
func blockUntilDone() pipeline.Stage {
	return pipeline.Stage{Name: "blocking", Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
		<-ctx.Done()
		return context.Cause(ctx)
	}}
}

func TestErrorInMiddleStageCancelsTheOthers(t *testing.T) {
	base := runtime.NumGoroutine()
	boom := errors.New("boom")
	failing := pipeline.Stage{Name: "failing", Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
		n := 0
		for d := range pipeline.Items(ctx, in) {
			if n++; n == 10 {
				return boom
			}
			if err := pipeline.Send(ctx, out, d); err != nil {
				return err
			}
		}
		return nil
	}}
	// The first stage never ends on its own, and the last stage only ends
	// on cancellation: Run can return only if the error cancels both.
	p := &pipeline.Pipeline{Stages: []pipeline.Stage{mark("a"), failing, mark("b"), blockUntilDone()}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := p.Run(ctx, emit(-1))
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
	if !strings.Contains(err.Error(), "failing") {
		t.Errorf("error %q does not name the stage", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run returned only at the test's deadline")
	}
	waitGoroutines(t, base)
}

func TestFirstStageError(t *testing.T) {
	boom := errors.New("bad manifest line 3")
	var got []*pipeline.DeclarativeContent
	p := &pipeline.Pipeline{Stages: []pipeline.Stage{mark("a"), collect(&got)}}
	err := p.Run(t.Context(), func(ctx context.Context, out chan<- *pipeline.DeclarativeContent) error {
		if err := pipeline.Send(ctx, out, item(1)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the first stage's error", err)
	}
}

func TestCancelStopsEveryStagePromptly(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	seen := make(chan struct{})
	watch := pipeline.Stage{Name: "watch", Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
		n := 0
		for d := range pipeline.Items(ctx, in) {
			if n++; n == 100 {
				close(seen)
			}
			if err := pipeline.Send(ctx, out, d); err != nil {
				return err
			}
		}
		return context.Cause(ctx)
	}}
	slowConsumer := pipeline.Stage{Name: "batched", Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
		for range pipeline.Batches(ctx, in, 50, time.Hour) {
		}
		return context.Cause(ctx)
	}}
	p := &pipeline.Pipeline{Stages: []pipeline.Stage{mark("a"), watch, mark("b"), slowConsumer, blockUntilDone()}}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, emit(-1)) }()
	<-seen
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %v to stop", d)
	}
	waitGoroutines(t, base)
}

func TestStageReturningEarlyFailsInsteadOfHanging(t *testing.T) {
	quitter := pipeline.Stage{Name: "quitter", Run: func(context.Context, <-chan *pipeline.DeclarativeContent, chan<- *pipeline.DeclarativeContent) error {
		return nil
	}}
	p := &pipeline.Pipeline{Stages: []pipeline.Stage{quitter}}
	err := p.Run(t.Context(), emit(100))
	if err == nil || !strings.Contains(err.Error(), "quitter") || !strings.Contains(err.Error(), "unread") {
		t.Fatalf("Run = %v, want an error about the unread input", err)
	}
}

func TestRunRejectsIncompletePipelines(t *testing.T) {
	p := &pipeline.Pipeline{Stages: []pipeline.Stage{{Name: "empty"}}}
	if err := p.Run(t.Context(), emit(1)); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("stage without Run: %v", err)
	}
	if err := (&pipeline.Pipeline{}).Run(t.Context(), nil); err == nil {
		t.Error("nil first stage accepted")
	}
}

func keys(b []*pipeline.DeclarativeContent) []string {
	var k []string
	for _, d := range b {
		k = append(k, d.Unit.NaturalKey())
	}
	return k
}

func TestBatchesFlushWhenFull(t *testing.T) {
	in := make(chan *pipeline.DeclarativeContent)
	out := pipeline.Batches(t.Context(), in, 4, time.Hour)
	release := make(chan struct{})
	go func() {
		for i := range 10 {
			in <- item(i)
		}
		<-release
		close(in)
	}()
	// Full batches arrive although the input stays open and the idle
	// timeout is far away.
	for _, want := range [][]string{{"0", "1", "2", "3"}, {"4", "5", "6", "7"}} {
		if got := keys(<-out); !slices.Equal(got, want) {
			t.Fatalf("batch = %v, want %v", got, want)
		}
	}
	close(release)
	if got := keys(<-out); !slices.Equal(got, []string{"8", "9"}) {
		t.Fatalf("last batch = %v", got)
	}
	if b, ok := <-out; ok {
		t.Fatalf("extra batch %v", keys(b))
	}
}

func TestBatchesFlushWhenIdle(t *testing.T) {
	in := make(chan *pipeline.DeclarativeContent)
	defer close(in)
	out := pipeline.Batches(t.Context(), in, 100, 20*time.Millisecond)
	start := time.Now()
	in <- item(0)
	in <- item(1)
	select {
	case b := <-out:
		if got := keys(b); !slices.Equal(got, []string{"0", "1"}) {
			t.Fatalf("batch = %v", got)
		}
		if time.Since(start) < 20*time.Millisecond {
			t.Errorf("batch handed on after %v, before the idle time", time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a partial batch was not flushed while the input was idle")
	}
}

func TestBatchesFlushAtEnd(t *testing.T) {
	in := make(chan *pipeline.DeclarativeContent, 3)
	out := pipeline.Batches(t.Context(), in, 100, time.Hour)
	in <- item(0)
	in <- item(1)
	close(in)
	if got := keys(<-out); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("batch = %v", got)
	}
	if _, ok := <-out; ok {
		t.Fatal("output not closed after the input ended")
	}
	// An empty input yields no batch at all.
	empty := make(chan *pipeline.DeclarativeContent)
	close(empty)
	if b, ok := <-pipeline.Batches(t.Context(), empty, 10, time.Hour); ok {
		t.Fatalf("empty input gave batch %v", keys(b))
	}
}

func TestBatchesGrowWhileConsumerIsBusy(t *testing.T) {
	in := make(chan *pipeline.DeclarativeContent) // unbuffered: a send completes only once the batcher took the item
	defer close(in)
	out := pipeline.Batches(t.Context(), in, 10, time.Millisecond)
	for i := range 5 {
		in <- item(i) // the first batch becomes due after 1 ms, but nobody takes it yet
	}
	if got := keys(<-out); len(got) != 5 {
		t.Fatalf("batch = %v, want the 5 items that arrived before it was taken", got)
	}
}

func TestBatchesStopOnCancel(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	in := make(chan *pipeline.DeclarativeContent) // never closed
	out := pipeline.Batches(ctx, in, 10, time.Hour)
	in <- item(0)
	cancel()
	for range out { // must end
	}
	waitGoroutines(t, base)
}

func TestSendAndItemsHonourCancellation(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("task canceled")
	cancel(cause)
	if err := pipeline.Send(ctx, make(chan *pipeline.DeclarativeContent), item(0)); !errors.Is(err, cause) {
		t.Errorf("Send = %v, want the cause", err)
	}
	for range pipeline.Items(ctx, make(chan *pipeline.DeclarativeContent)) {
		t.Fatal("Items yielded on a canceled context")
	}
}
