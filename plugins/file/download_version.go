package file

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// DownloadVersionTask downloads what a repository version lacks. It is a
// pith extension: Pulp has no such operation.
const DownloadVersionTask = "pith.file.download_version"

// maxDownloadWorkers bounds the units fetched at once, whatever the
// remotes allow.
const maxDownloadWorkers = 64

func downloadVersionRoutes(d *Deps) []*api.Route {
	return []*api.Route{
		{OperationID: "repositories_file_file_versions_download", Method: http.MethodPost,
			Path: RepositoriesPath + "{pulp_id}/versions/{number}/download/", Href: "file_file_repository_version_href",
			Tag: "Repositories: File Versions", Summary: "Download the missing files of a repository version (pith extension)",
			Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				v, err := d.getVersion(c)
				if err != nil {
					return nil, err
				}
				remotes, err := d.linkedRemotes(c, v.RepositoryID)
				if err != nil {
					return nil, err
				}
				// Shared with syncs and publications of the repository; a
				// remote being deleted waits for the download (and then
				// sees the content is no longer only on its side).
				shared := []string{RepoPRN(v.RepositoryID)}
				for _, r := range remotes {
					shared = append(shared, coreapi.RemotePRN(r))
				}
				t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{Name: DownloadVersionTask,
					Args: versionArgs{RepoID: v.RepositoryID, Number: v.Number}, Shared: shared, LoggingCID: c.CID, CreatedBy: c.User})
				if err != nil {
					return nil, err
				}
				return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
			}},
	}
}

// linkedRemotes returns the remotes the content app may fetch the
// repository's lazy content through: its remote and those linked to it.
func (d *Deps) linkedRemotes(ctx context.Context, repoID string) ([]*store.Remote, error) {
	rows, err := d.Store.Query(ctx, `SELECT id FROM remotes WHERE id IN (SELECT remote_id FROM repositories WHERE id = $1)
		OR id IN (SELECT remote_id FROM repository_remotes WHERE repository_id = $1) ORDER BY id`, repoID)
	if err != nil {
		return nil, fmt.Errorf("remotes of repository %s: %w", repoID, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]*store.Remote, 0, len(ids))
	for _, id := range ids {
		r, err := d.Store.GetRemote(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// missingUnit is a content artifact of the version without stored bytes.
type missingUnit struct{ id, relPath string }

// missingFrom is the FROM and WHERE of the content artifacts of the
// version ($1 repository, $2 number) without stored bytes. It walks the
// partial index content_artifacts_missing (stored units are not even
// visited) and tests membership per unit by content. SQLite, which has no
// statistics, is told so; it would otherwise pick the artifact_id index
// and sort, and test membership by scanning the whole version per unit.
func missingFrom(s *store.Store) string {
	ca, rc := "content_artifacts ca", "repository_content rc"
	if s.Dialect() == "sqlite" {
		ca += " INDEXED BY content_artifacts_missing"
		rc += " INDEXED BY repository_content_content"
	}
	return ` FROM ` + ca + ` WHERE ca.artifact_id IS NULL AND EXISTS (SELECT 1 FROM ` + rc + ` WHERE rc.content_id = ca.content_id
		AND rc.repository_id = $1 AND rc.version_added <= $2 AND (rc.version_removed IS NULL OR rc.version_removed > $2))`
}

// versionDownload is one run of the download task.
type versionDownload struct {
	d      *Deps
	repoID string
	f      *sourceFetcher

	mu       sync.Mutex
	inflight map[string]*shaFlight // sha256 → fetch under way
}

type shaFlight struct {
	done chan struct{}
	err  error
}

func (d *Deps) runDownloadVersion(ctx context.Context, t *tasking.Task) error {
	var a versionArgs
	if err := t.Args(&a); err != nil {
		return err
	}
	v, err := repository.GetVersion(ctx, d.Store, a.RepoID, a.Number)
	if err != nil {
		return fmt.Errorf("repository version %d: %w", a.Number, err)
	}
	var total int64
	if err := d.Store.QueryRow(ctx, `SELECT COUNT(*)`+missingFrom(d.Store), v.RepositoryID, v.Number).Scan(&total); err != nil {
		return fmt.Errorf("count missing artifacts: %w", err)
	}
	p := t.Progress("Downloading missing artifacts", "download.artifacts", &total)
	remotes, err := d.linkedRemotes(ctx, v.RepositoryID)
	if err != nil {
		p.Fail()
		return err
	}
	workers := download.DefaultConcurrency
	for _, r := range remotes {
		if r.DownloadConcurrency != nil && int(*r.DownloadConcurrency) > workers {
			workers = int(*r.DownloadConcurrency)
		}
	}
	workers = min(workers, maxDownloadWorkers)

	vd := &versionDownload{d: d, repoID: v.RepositoryID, f: newSourceFetcher(d), inflight: map[string]*shaFlight{}}
	defer vd.f.close()
	var (
		failed atomic.Int64
		errMu  sync.Mutex
		errs   []string
	)
	units := make(chan missingUnit, workers)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(units)
		return d.eachMissing(gctx, v, func(u missingUnit) error {
			select {
			case units <- u:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	for range workers {
		g.Go(func() error {
			for u := range units {
				err := vd.materialise(gctx, u)
				if err == nil {
					p.Increment(1)
					continue
				}
				if gctx.Err() != nil {
					return context.Cause(gctx)
				}
				t.Logger().Warn("download version: unit not downloaded", "relative_path", u.relPath, "err", err)
				if failed.Add(1) <= 3 {
					errMu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %v", u.relPath, err))
					errMu.Unlock()
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		p.Fail()
		return err
	}
	if n := failed.Load(); n > 0 {
		p.Fail()
		slices.Sort(errs)
		return fmt.Errorf("%d of %d missing files could not be downloaded; %s", n, total, strings.Join(errs, "; "))
	}
	p.Done()
	return nil
}

// eachMissing calls fn for every content artifact of v without stored
// bytes, reading keyset pages in id order. A unit attached meanwhile (by
// this task or the content app) drops out of later pages.
func (d *Deps) eachMissing(ctx context.Context, v *repository.VersionRow, fn func(missingUnit) error) error {
	const page = 500
	after := ""
	for {
		rows, err := d.Store.Query(ctx, `SELECT ca.id, ca.relative_path`+missingFrom(d.Store)+
			` AND ca.id > $3 ORDER BY ca.id LIMIT $4`, v.RepositoryID, v.Number, after, page)
		if err != nil {
			return fmt.Errorf("list missing artifacts: %w", err)
		}
		var batch []missingUnit
		for rows.Next() {
			var u missingUnit
			if err := rows.Scan(&u.id, &u.relPath); err != nil {
				rows.Close()
				return fmt.Errorf("list missing artifacts: %w", err)
			}
			batch = append(batch, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list missing artifacts: %w", err)
		}
		for _, u := range batch {
			if err := fn(u); err != nil {
				return err
			}
		}
		if len(batch) < page {
			return nil
		}
		after = batch[len(batch)-1].id
	}
}

// materialise stores the bytes of one content artifact from the remotes
// the repository may fetch through, verified against the recorded sha256
// (and size), and attaches the artifact to every content artifact waiting
// for those bytes. A unit whose bytes are stored already is attached
// without a download.
func (vd *versionDownload) materialise(ctx context.Context, u missingUnit) error {
	srcs, err := vd.d.Store.LazySources(ctx, u.id, vd.repoID)
	if err != nil {
		return err
	}
	// Sources in their cooldown (they sent wrong bytes lately) go last.
	slices.SortStableFunc(srcs, func(a, b store.LazySource) int {
		return boolCmp(a.FailedAt != 0, b.FailedAt != 0)
	})
	var (
		sha  string
		size int64 = digest.UnknownSize
		use  []remoteSource
	)
	for _, s := range srcs {
		if s.SHA256 == "" {
			continue // nothing to verify against
		}
		if sha == "" {
			sha, size = s.SHA256, s.Size
		}
		if s.SHA256 == sha {
			use = append(use, remoteSource{url: s.URL, remoteID: s.RemoteID})
			if size < 0 && s.Size >= 0 {
				size = s.Size
			}
		}
	}
	if len(use) == 0 {
		return errors.New("no remote linked to the repository can provide it with a known sha256")
	}
	return vd.once(ctx, sha, func() error {
		if a, err := vd.d.Store.ArtifactBySHA256(ctx, sha); err == nil {
			_, err := vd.d.Store.AttachArtifact(ctx, a)
			return err
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		expect := digest.Expect{Size: size, Digests: map[string]string{digest.SHA256: sha}}
		return vd.f.fetch(ctx, use, expect, func(w storage.Writer) error {
			com, err := w.Commit(ctx, expect)
			if err != nil {
				return err
			}
			_, err = vd.d.Store.AttachArtifact(ctx, &store.Artifact{File: com.Name, Size: com.Size,
				SHA224: com.Digests.SHA224, SHA256: com.Digests.SHA256, SHA384: com.Digests.SHA384, SHA512: com.Digests.SHA512})
			return err
		})
	})
}

// once runs fn for sha unless a fetch of the same bytes is under way, in
// which case it waits for that one and shares its outcome.
func (vd *versionDownload) once(ctx context.Context, sha string, fn func() error) error {
	vd.mu.Lock()
	if fl, ok := vd.inflight[sha]; ok {
		vd.mu.Unlock()
		select {
		case <-fl.done:
			return fl.err
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	fl := &shaFlight{done: make(chan struct{})}
	vd.inflight[sha] = fl
	vd.mu.Unlock()
	fl.err = fn()
	vd.mu.Lock()
	delete(vd.inflight, sha)
	vd.mu.Unlock()
	close(fl.done)
	return fl.err
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}
