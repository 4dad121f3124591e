package file

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/pipeline"
)

// StageACS names the sync stage that downloads artifacts from alternate
// content sources.
const StageACS = "acs_download"

// acsConcurrency bounds the ACS downloads in flight in one sync.
const acsConcurrency = 10

// acsStage downloads the artifacts an alternate content source can
// deliver (same sha256) from that source, before the generic download
// stage fetches the rest from the remote. The content's remote artifacts
// still name the remote, so on_demand fetches and repairs keep working if
// the ACS goes away. An ACS that fails leaves the artifact to the remote:
// it is a shortcut, never a new way to fail a sync.
func (d *Deps) acsStage(downloaders func(remoteID string) (*download.Downloader, error)) pipeline.Stage {
	var mu sync.Mutex
	dls := map[string]*download.Downloader{}
	downloader := func(remoteID string) (*download.Downloader, error) {
		mu.Lock()
		defer mu.Unlock()
		if dl, ok := dls[remoteID]; ok {
			return dl, nil
		}
		dl, err := downloaders(remoteID)
		if err == nil {
			dls[remoteID] = dl
		}
		return dl, err
	}
	run := func(ctx context.Context, in <-chan *pipeline.DeclarativeContent, out chan<- *pipeline.DeclarativeContent) error {
		for batch := range pipeline.Batches(ctx, in, pipeline.DefaultBatchSize, pipeline.DefaultBatchWait) {
			if err := d.acsBatch(ctx, batch, downloader); err != nil {
				return err
			}
			for _, dc := range batch {
				if err := pipeline.Send(ctx, out, dc); err != nil {
					return err
				}
			}
		}
		return ctx.Err()
	}
	return pipeline.Stage{Name: StageACS, Run: run}
}

// acsBatch fetches what an ACS has of one batch's missing artifacts.
func (d *Deps) acsBatch(ctx context.Context, batch []*pipeline.DeclarativeContent, downloader func(string) (*download.Downloader, error)) error {
	var todo []*pipeline.DeclarativeArtifact
	var sums []string
	for _, dc := range batch {
		for _, a := range dc.Artifacts {
			if sum := strings.ToLower(a.Digests[digest.SHA256]); a.ArtifactID == "" && !a.Deferred && sum != "" {
				todo = append(todo, a)
				sums = append(sums, sum)
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	srcs, err := d.Store.ACSURLs(ctx, sums)
	if err != nil {
		return fmt.Errorf("alternate content sources: %w", err)
	}
	if len(srcs) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(acsConcurrency)
	for _, a := range todo {
		src, ok := srcs[strings.ToLower(a.Digests[digest.SHA256])]
		if !ok || (src.Size >= 0 && a.Size >= 0 && src.Size != a.Size) {
			continue
		}
		g.Go(func() error {
			id, err := d.acsFetch(gctx, a, src, downloader)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				d.contentLog().WarnContext(ctx, "sync: alternate content source failed, using the remote", "url", src.URL, "err", err)
				return nil
			}
			a.ArtifactID = id
			return nil
		})
	}
	return g.Wait()
}

// acsFetch downloads one artifact from an ACS source, verified against
// what the remote's manifest says, commits and records it.
func (d *Deps) acsFetch(ctx context.Context, a *pipeline.DeclarativeArtifact, src store.LazySource, downloader func(string) (*download.Downloader, error)) (string, error) {
	dl, err := downloader(src.RemoteID)
	if err != nil {
		return "", err
	}
	expect := digest.Expect{Size: a.Size, Digests: a.Digests}
	if expect.Size < 0 {
		expect.Size = digest.UnknownSize
	}
	res, err := dl.Download(ctx, src.URL, expect, func() (download.Dest, error) { return d.Storage.Create(ctx) })
	if err != nil {
		return "", err
	}
	w, ok := res.Dest.(storage.Writer)
	if !ok {
		_ = res.Dest.Cancel(context.WithoutCancel(ctx))
		return "", fmt.Errorf("download %s: destination is not a storage writer", src.URL)
	}
	c, err := w.Commit(ctx, expect)
	if err != nil {
		return "", err
	}
	stored, err := d.Store.InsertArtifacts(ctx, []*store.Artifact{{File: c.Name, Size: c.Size,
		SHA224: c.Digests.SHA224, SHA256: c.Digests.SHA256, SHA384: c.Digests.SHA384, SHA512: c.Digests.SHA512}})
	if err != nil {
		return "", err
	}
	return stored[0].ID, nil
}
