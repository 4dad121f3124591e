package pipeline

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"golang.org/x/sync/errgroup"
)

// Unit is an unsaved content unit of some plugin type.
type Unit interface {
	// Type is the unit's pulp_type, for example "file.file".
	Type() string
	// NaturalKey identifies the unit among all units of its type: two units
	// with one natural key are the same unit.
	NaturalKey() string
	// RepoKey decides which unit a new one replaces inside a repository
	// version (for files: the relative path).
	RepoKey() string
}

// DeclarativeArtifact describes one file of a unit: where to get it, what
// it must contain and where it goes in the unit.
type DeclarativeArtifact struct {
	URL          string
	RelativePath string
	// Size is the expected size in bytes; negative (-1) means unknown.
	Size int64
	// Digests maps algorithm names (sha256, sha512, …) to expected hex
	// digests. A sha256 lets the pipeline reuse a stored artifact instead of
	// downloading it again.
	Digests map[string]string
	// RemoteID is the remote the URL belongs to: its downloader fetches the
	// file, and a remote artifact row records the URL for later fetches.
	RemoteID string
	// Deferred marks an on_demand or streamed artifact: it is recorded but
	// not downloaded.
	Deferred bool

	// ArtifactID is set by the stages once the artifact is stored (or
	// found stored); a first stage may set it for content it already has.
	ArtifactID string

	// found is the stored or freshly committed artifact (ID empty until the
	// save stage records it).
	found *artifactInfo
	// newCA is the id of the content artifact the save stage created for
	// this artifact ("" when it existed before).
	newCA string
}

// DeclarativeContent is a unit with its artifacts, as it travels through a
// pipeline.
type DeclarativeContent struct {
	Unit      Unit
	Artifacts []*DeclarativeArtifact
	// ContentID is set by the stages once the unit is saved (or found).
	ContentID string
	// Extra is free for the plugin's own stages.
	Extra any

	// found is set when the query stage found the unit stored; deferred
	// then counts its content artifacts that lack their artifact.
	found    bool
	deferred int
}

// FirstStage produces the pipeline's input. It must stop sending and return
// when ctx is done; Send does both.
type FirstStage func(ctx context.Context, out chan<- *DeclarativeContent) error

// Stage is one named step of a pipeline. Run reads in until it is closed,
// sends what it produces to out, and returns; the pipeline closes out
// after Run returns. Run must return when ctx is done (use Items and Send,
// or select on ctx.Done() around every channel operation). A non-nil error
// stops the whole pipeline.
type Stage struct {
	Name string
	Run  func(ctx context.Context, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) error
}

// DefaultBuffer is the capacity of the channels between stages: enough to
// smooth hand-offs, small enough that back-pressure reaches the first stage
// quickly and memory stays bounded.
const DefaultBuffer = 16

// Pipeline is an ordered list of stages run after a first stage.
type Pipeline struct {
	Stages []Stage
	// Buffer is the capacity of each channel between stages;
	// ≤0 means DefaultBuffer.
	Buffer int
}

// ErrNoStage is returned (wrapped) when a named stage is not in the
// pipeline.
var ErrNoStage = errors.New("no such stage")

func (p *Pipeline) index(name string) (int, error) {
	for i, s := range p.Stages {
		if s.Name == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("pipeline: stage %q: %w", name, ErrNoStage)
}

// Insert adds s right after the stage named after, or first when after is
// "".
func (p *Pipeline) Insert(after string, s Stage) error {
	i := -1
	if after != "" {
		var err error
		if i, err = p.index(after); err != nil {
			return err
		}
	}
	p.Stages = append(p.Stages[:i+1], append([]Stage{s}, p.Stages[i+1:]...)...)
	return nil
}

// Replace puts s in the place of the stage named name.
func (p *Pipeline) Replace(name string, s Stage) error {
	i, err := p.index(name)
	if err != nil {
		return err
	}
	p.Stages[i] = s
	return nil
}

// Remove deletes the stage named name.
func (p *Pipeline) Remove(name string) error {
	i, err := p.index(name)
	if err != nil {
		return err
	}
	p.Stages = append(p.Stages[:i], p.Stages[i+1:]...)
	return nil
}

// Run runs first and every stage, each on its own goroutine, connected by
// bounded channels; what leaves the last stage is discarded. The first
// error of any stage cancels the others, and Run returns it once all have
// stopped. If ctx ends, every stage stops promptly and Run returns the
// context's cause.
func (p *Pipeline) Run(ctx context.Context, first FirstStage) error {
	if first == nil {
		return errors.New("pipeline: no first stage")
	}
	for _, s := range p.Stages {
		if s.Run == nil {
			return fmt.Errorf("pipeline: stage %q has no Run", s.Name)
		}
	}
	buf := p.Buffer
	if buf <= 0 {
		buf = DefaultBuffer
	}
	g, gctx := errgroup.WithContext(ctx)
	head := make(chan *DeclarativeContent, buf)
	g.Go(func() error {
		defer close(head)
		if err := first(gctx, head); err != nil {
			return fmt.Errorf("pipeline: first stage: %w", err)
		}
		return nil
	})
	var prev <-chan *DeclarativeContent = head
	for _, s := range p.Stages {
		in, out := prev, make(chan *DeclarativeContent, buf)
		g.Go(func() error {
			defer close(out)
			return runStage(gctx, s, in, out)
		})
		prev = out
	}
	g.Go(func() error {
		for range Items(gctx, prev) {
		}
		return nil
	})
	err := g.Wait()
	if ctx.Err() != nil {
		// Stages stopped because the caller gave up; say so rather than
		// whichever stage noticed first.
		return fmt.Errorf("pipeline: %w", context.Cause(ctx))
	}
	return err
}

// runStage runs one stage and makes sure its input is consumed, so a stage
// that returns early cannot wedge the stages before it.
func runStage(ctx context.Context, s Stage, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) error {
	if err := s.Run(ctx, in, out); err != nil {
		return fmt.Errorf("pipeline: %s: %w", s.Name, err)
	}
	if ctx.Err() != nil {
		return nil // stopped by cancellation; the cause is reported elsewhere
	}
	left := 0
	for range Items(ctx, in) {
		left++
	}
	if left > 0 {
		return fmt.Errorf("pipeline: %s: returned leaving %d items unread", s.Name, left)
	}
	return nil
}

// Send delivers d to out unless ctx ends first, in which case it returns
// the context's cause.
func Send(ctx context.Context, out chan<- *DeclarativeContent, d *DeclarativeContent) error {
	select {
	case out <- d:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Items yields what arrives on in until in is closed or ctx ends. A stage
// ranging over it should return context.Cause(ctx) afterwards if ctx ended
// (nil otherwise): see the package example.
func Items(ctx context.Context, in <-chan *DeclarativeContent) iter.Seq[*DeclarativeContent] {
	return func(yield func(*DeclarativeContent) bool) {
		for {
			select {
			case d, ok := <-in:
				if !ok || !yield(d) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}

// stopped returns the context's cause if it ended, else nil: what a stage
// returns after its input loop.
func stopped(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// Batches groups what arrives on in into batches of at most max items. A
// batch is handed on when it is full, when nothing arrived for maxWait, or
// when in is closed; while the consumer is busy, a waiting batch keeps
// growing up to max, so a slow consumer gets bigger batches. The returned
// channel is closed when in is closed and the last batch is taken, or when
// ctx ends — so after ranging over it, check ctx as with Items.
func Batches(ctx context.Context, in <-chan *DeclarativeContent, max int, maxWait time.Duration) <-chan []*DeclarativeContent {
	if max < 1 {
		max = 1
	}
	out := make(chan []*DeclarativeContent)
	go func() {
		defer close(out)
		var (
			batch []*DeclarativeContent
			ready bool // batch is due: hand it on as soon as possible
			timer = time.NewTimer(maxWait)
		)
		timer.Stop()
		defer timer.Stop()
		for in != nil || len(batch) > 0 {
			var (
				recv    <-chan *DeclarativeContent
				send    chan<- []*DeclarativeContent
				expired <-chan time.Time
			)
			if in != nil && len(batch) < max {
				recv = in
			}
			if ready || in == nil {
				send = out
			} else if len(batch) > 0 {
				expired = timer.C
			}
			select {
			case d, ok := <-recv:
				if !ok {
					in = nil
					continue
				}
				batch = append(batch, d)
				if len(batch) >= max {
					ready = true
				} else if !ready {
					timer.Reset(maxWait)
				}
			case <-expired:
				ready = true
			case send <- batch:
				batch, ready = nil, false
				timer.Stop()
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
