package pipeline_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/pith-project/pith/pipeline"
)

// A plugin inserts its own stage: here one that drops units under a
// path prefix before anything further happens to them.
func ExamplePipeline_Insert() {
	var kept []string
	p := &pipeline.Pipeline{Stages: []pipeline.Stage{{
		Name: "record",
		Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
			for d := range pipeline.Items(ctx, in) {
				kept = append(kept, d.Unit.RepoKey())
				if err := pipeline.Send(ctx, out, d); err != nil {
					return err
				}
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return nil
		},
	}}}
	err := p.Insert("", pipeline.Stage{
		Name: "exclude_tmp",
		Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
			for d := range pipeline.Items(ctx, in) {
				if strings.HasPrefix(d.Unit.RepoKey(), "tmp/") {
					continue
				}
				if err := pipeline.Send(ctx, out, d); err != nil {
					return err
				}
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	first := func(ctx context.Context, out chan<- *pipeline.DeclarativeContent) error {
		for _, path := range []string{"a.txt", "tmp/b.txt", "c.txt"} {
			if err := pipeline.Send(ctx, out, &pipeline.DeclarativeContent{Unit: unit{path}}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := p.Run(context.Background(), first); err != nil {
		panic(err)
	}
	fmt.Println(kept)
	// Output: [a.txt c.txt]
}
