// Package pipeline is pith's declarative sync pipeline, the Go counterpart
// of Pulp's stages API: a plugin describes what a remote offers as
// [DeclarativeContent] — an unsaved content unit plus its
// [DeclarativeArtifact]s (URL, expected size and digests, relative path,
// remote, deferred or not) — and generic stages turn that stream into
// stored artifacts, saved content, remote artifacts and a new repository
// version.
//
// A [Pipeline] runs a plugin's [FirstStage] and then its stages, each on its
// own goroutine, connected by small bounded channels, so back-pressure
// reaches the first stage and memory stays bounded whatever the size of the
// input: nothing holds the whole stream, downloads stream to temporary
// storage files with their digests computed while writing, and database
// work is done in batches ([Batches]). The first error of any stage cancels
// the others and is returned; cancelling the context stops every stage
// promptly.
//
// [NewDeclarativeVersion] builds the generic stages, in order:
//
//	query_existing_artifacts  reuse stored artifacts, found by sha256 (batched)
//	download_artifacts        fetch what is neither stored nor deferred
//	save_artifacts            record the downloaded artifacts (batched)
//	query_existing_content    reuse stored units, found by natural key (batched)
//	save_content              save units, detail rows and content artifacts (one transaction per batch)
//	save_remote_artifacts     record each artifact's URL on its remote (batched)
//	associate_content         add the units to the new version (batched; mirror removes the rest)
//
// Plugins may insert, replace or remove stages before running the
// pipeline. A stage reads its input with [Items] (or [Batches]), sends with
// [Send], and returns context.Cause(ctx) if the context ended:
//
//	p := pipeline.NewDeclarativeVersion(deps)
//	// Drop units whose path the user excluded, before anything is
//	// downloaded or saved.
//	err := p.Insert("", pipeline.Stage{
//		Name: "exclude_paths",
//		Run: func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
//			for d := range pipeline.Items(ctx, in) {
//				if excluded(d.Unit.RepoKey()) {
//					continue
//				}
//				if err := pipeline.Send(ctx, out, d); err != nil {
//					return err
//				}
//			}
//			if ctx.Err() != nil {
//				return context.Cause(ctx)
//			}
//			return nil
//		},
//	})
//	if err != nil {
//		return err
//	}
//	return p.Run(ctx, firstStage)
package pipeline
