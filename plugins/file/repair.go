package file

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// remoteSource is a remote artifact: where some bytes may be fetched.
type remoteSource struct{ url, remoteID string }

// sourceFetcher downloads artifacts from remote sources into storage,
// verified against their expected size and digests while they stream.
// Repair and the version download share it; it keeps one downloader per
// remote, so concurrent fetches share that remote's connections,
// concurrency slots and rate limit.
type sourceFetcher struct {
	d   *Deps
	mu  sync.Mutex
	dls map[string]*download.Downloader
}

func newSourceFetcher(d *Deps) *sourceFetcher {
	return &sourceFetcher{d: d, dls: map[string]*download.Downloader{}}
}

func (f *sourceFetcher) downloader(ctx context.Context, remoteID string) (*download.Downloader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dl, ok := f.dls[remoteID]; ok {
		return dl, nil
	}
	remote, err := f.d.Store.GetRemote(ctx, remoteID)
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", remoteID, err)
	}
	dl, err := download.New(DownloadConfig(remote, f.d.AllowedImportPaths))
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", remote.Name, err)
	}
	f.dls[remoteID] = dl
	return dl, nil
}

// fetch downloads expect's bytes from the first source that delivers them
// and hands the verified, not yet committed write to commit. A source whose
// download or commit fails is followed by the next. Nothing of a failed
// attempt stays in storage.
func (f *sourceFetcher) fetch(ctx context.Context, srcs []remoteSource, expect digest.Expect, commit func(storage.Writer) error) error {
	if len(srcs) == 0 {
		return errors.New("no remote source knows these bytes")
	}
	var errs []error
	for _, s := range srcs {
		dl, err := f.downloader(ctx, s.remoteID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res, err := dl.Download(ctx, s.url, expect, func() (download.Dest, error) { return f.d.Storage.Create(ctx) })
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
			continue
		}
		w := res.Dest.(storage.Writer)
		err = commit(w)
		// A no-op after a commit; otherwise it discards the bytes.
		w.Cancel(context.WithoutCancel(ctx))
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (f *sourceFetcher) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, dl := range f.dls {
		dl.Close()
	}
	f.dls = map[string]*download.Downloader{}
}

// repairer restores artifact files from the remote artifacts that know
// them.
type repairer struct{ d *Deps }

// RepairArtifact downloads a missing or damaged artifact again, verified
// against its recorded size and sha256, from the first source that works.
func (r repairer) RepairArtifact(ctx context.Context, a *store.Artifact) error {
	rows, err := r.d.Store.Query(ctx, `SELECT ra.url, ra.remote_id FROM remote_artifacts ra
		JOIN content_artifacts ca ON ca.id = ra.content_artifact_id WHERE ca.artifact_id = $1 ORDER BY ra.failed_at IS NOT NULL, ra.created`, a.ID)
	if err != nil {
		return err
	}
	var srcs []remoteSource
	for rows.Next() {
		var s remoteSource
		if err := rows.Scan(&s.url, &s.remoteID); err != nil {
			rows.Close()
			return err
		}
		srcs = append(srcs, s)
	}
	rows.Close()
	if len(srcs) == 0 {
		return errors.New("no remote source knows this artifact")
	}
	f := newSourceFetcher(r.d)
	defer f.close()
	expect := digest.Expect{Size: a.Size, Digests: map[string]string{"sha256": a.SHA256}}
	err = f.fetch(ctx, srcs, expect, func(w storage.Writer) error {
		// The verified bytes replace the damaged file; content-addressed
		// commits keep an existing file, so remove it first.
		if err := r.d.Storage.Delete(ctx, a.File); err != nil {
			return err
		}
		_, err := w.Commit(ctx, expect)
		return err
	})
	if err != nil {
		return fmt.Errorf("repair %s: %w", a.SHA256, err)
	}
	return nil
}

func (d *Deps) repairVersion(ctx context.Context, t *tasking.Task, repoID string, number int, verify bool) error {
	where := `a.id IN (SELECT ca.artifact_id FROM content_artifacts ca JOIN repository_content rc ON rc.content_id = ca.content_id
		WHERE rc.repository_id = $3 AND rc.version_added <= $4 AND (rc.version_removed IS NULL OR rc.version_removed > $4))`
	return coreapi.RepairArtifacts(ctx, d.Core, t, where, []any{repoID, number}, verify)
}
