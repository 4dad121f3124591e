package file

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
	"github.com/pith-project/pith/pipeline"
)

type syncArgs struct {
	RepoID   string `json:"repository_id"`
	RemoteID string `json:"remote_id"`
	Mirror   bool   `json:"mirror"`
	Optimize bool   `json:"optimize"`
	// URL, when set, is read instead of the remote's (an ACS path).
	URL string `json:"url,omitempty"`
}

// syncDetails is what a sync records to recognise an unchanged re-sync.
type syncDetails struct {
	RemoteID       string `json:"remote_id"`
	URL            string `json:"url"`
	Policy         string `json:"download_policy"`
	Mirror         bool   `json:"mirror"`
	ManifestSHA256 string `json:"manifest_sha256"`
	Version        int    `json:"most_recent_version"`
}

func (d *Deps) syncRepository(c *api.Ctx) (any, error) {
	r, err := d.getRepo(c)
	if err != nil {
		return nil, err
	}
	b := api.Body[SyncBody](c)
	args := syncArgs{RepoID: r.ID, Mirror: b.Mirror != nil && *b.Mirror, Optimize: b.Optimize == nil || *b.Optimize}
	switch {
	case b.Remote != nil:
		if args.RemoteID, err = d.remoteID(c, "remote", *b.Remote); err != nil {
			return nil, err
		}
	case r.RemoteID != nil:
		args.RemoteID = *r.RemoteID
	default:
		return nil, api.FieldError("remote", "A remote must be specified, either in the request or on the repository.")
	}
	if args.Mirror && r.Autopublish {
		return nil, api.NonFieldError("Cannot use mirror mode with autopublished repository.")
	}
	t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{Name: SyncTask, Args: args,
		Exclusive: []string{RepoPRN(r.ID)}, Shared: []string{RemotePRN(args.RemoteID)}, LoggingCID: c.CID, CreatedBy: c.User})
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
}

// fileDest writes a download to a local temporary file.
type fileDest struct{ f *os.File }

func (f *fileDest) Write(p []byte) (int, error) { return f.f.Write(p) }

func (f *fileDest) Cancel(context.Context) error {
	f.f.Close()
	return os.Remove(f.f.Name())
}

// ArtifactURL resolves a manifest path against the manifest's URL: the file
// lives in the manifest's directory. Paths are percent-encoded, except for
// file:// URLs.
func ArtifactURL(manifestURL, relPath string) (string, error) {
	u, err := url.Parse(manifestURL)
	if err != nil {
		return "", err
	}
	dir := path.Dir(u.Path)
	if u.Scheme == "file" {
		u.Path = path.Join(dir, relPath)
		return u.String(), nil
	}
	u.Path = strings.TrimSuffix(dir, "/") + "/" + relPath
	u.RawPath = ""
	u.RawQuery = ""
	return u.String(), nil
}

func (d *Deps) runSync(ctx context.Context, t *tasking.Task) error {
	var a syncArgs
	if err := t.Args(&a); err != nil {
		return err
	}
	remote, err := d.Store.GetRemote(ctx, a.RemoteID)
	if err != nil {
		return fmt.Errorf("remote: %w", err)
	}
	if a.URL != "" {
		remote.URL = a.URL
	}
	repo, err := repository.Get(ctx, d.Store, a.RepoID)
	if err != nil {
		return err
	}
	// The content app fetches a repository's lazy content only through
	// remotes linked to it, so record this one before any content lands.
	if err := d.Store.LinkRepositoryRemote(ctx, repo.ID, remote.ID); err != nil {
		return err
	}
	dl, err := download.New(DownloadConfig(remote, d.AllowedImportPaths))
	if err != nil {
		return err
	}
	defer dl.Close()

	// 1. The manifest, to a temporary file.
	mp := t.Progress("Downloading Metadata Files", "sync.downloading.metadata", nil)
	var tmp *fileDest
	res, err := dl.Download(ctx, remote.URL, digest.Expect{Size: digest.UnknownSize}, func() (download.Dest, error) {
		f, err := os.CreateTemp(d.TempDir, "manifest-*")
		if err != nil {
			return nil, err
		}
		tmp = &fileDest{f: f}
		return tmp, nil
	})
	if err != nil {
		mp.Fail()
		return fmt.Errorf("could not download the manifest %s: %w", remote.URL, err)
	}
	manifestPath := tmp.f.Name()
	tmp.f.Close()
	defer os.Remove(manifestPath)
	mp.Increment(1)
	mp.Done()

	latest, err := repository.Latest(ctx, d.Store, repo.ID)
	if err != nil {
		return err
	}
	details := syncDetails{RemoteID: remote.ID, URL: remote.URL, Policy: remote.Policy, Mirror: a.Mirror,
		ManifestSHA256: res.Digests.SHA256, Version: latest.Number}
	if a.Optimize && d.canSkip(ctx, repo, details) {
		p := t.Progress("Skipping Sync (no change from previous sync)", "sync.was_skipped", nil)
		p.Done()
		return nil
	}

	// 2. Count the lines for the parsing report's total, and fail early on
	// a malformed manifest before anything is written.
	var total int64
	if err := readManifestFile(manifestPath, func(ManifestEntry) error { total++; return nil }); err != nil {
		return err
	}
	pp := t.Progress("Parsing Metadata Lines", "sync.parsing.metadata", &total)

	v, err := repository.NewVersion(ctx, d.Store, repo.ID, nil)
	if err != nil {
		return err
	}
	t.OnCleanup(v.Discard)
	deferred := remote.Policy != "immediate"
	first := func(ctx context.Context, out chan<- *pipeline.DeclarativeContent) error {
		return readManifestFile(manifestPath, func(e ManifestEntry) error {
			u, err := ArtifactURL(remote.URL, e.RelativePath)
			if err != nil {
				return err
			}
			dc := &pipeline.DeclarativeContent{
				Unit: Unit{RelativePath: e.RelativePath, Digest: e.SHA256},
				Artifacts: []*pipeline.DeclarativeArtifact{{
					URL: u, RelativePath: e.RelativePath, Size: e.Size,
					Digests: map[string]string{"sha256": e.SHA256}, RemoteID: remote.ID, Deferred: deferred,
				}},
			}
			select {
			case out <- dc:
			case <-ctx.Done():
				return ctx.Err()
			}
			pp.Increment(1)
			return nil
		})
	}
	downloaders := func(remoteID string) (*download.Downloader, error) {
		if remoteID == remote.ID {
			return dl, nil
		}
		r, err := d.Store.GetRemote(ctx, remoteID)
		if err != nil {
			return nil, err
		}
		return download.New(DownloadConfig(r, d.AllowedImportPaths))
	}
	p := pipeline.NewDeclarativeVersion(pipeline.Deps{
		Store:        d.Store,
		Storage:      d.Storage,
		Downloaders:  downloaders,
		SaveDetail:   saveDetailUnits,
		DetailTables: []string{"file_content"},
		Version:      v,
		Mirror:       a.Mirror,
		Progress: func(message, code string) pipeline.Progress {
			return t.Progress(message, code, nil)
		},
	})
	if !deferred {
		// Alternate content sources first (Pulp's ACSArtifactHandler).
		if err := p.Insert(pipeline.StageQueryArtifacts, d.acsStage(downloaders)); err != nil {
			return err
		}
	}
	if err := p.Run(ctx, first); err != nil {
		pp.Fail()
		return err
	}
	pp.Done()
	row, err := v.Finalize(ctx, validateVersion)
	if err != nil {
		return err
	}
	if row != nil {
		if err := t.AddCreatedResource(VersionHref(row.RepositoryID, row.Number)); err != nil {
			return err
		}
		if a.Mirror {
			if err := d.mirrorPublication(ctx, t, row, manifestPath, path.Base(mustPath(remote.URL))); err != nil {
				return err
			}
		} else if repo.Autopublish && d.AutoPublish != nil {
			if err := d.AutoPublish(ctx, d, t, repo, row); err != nil {
				return err
			}
		}
		if err := repository.ApplyRetention(ctx, d.Store, repo.ID); err != nil {
			return err
		}
		details.Version = row.Number
	}
	b, _ := json.Marshal(details)
	_, err = d.Store.Exec(ctx, `UPDATE repositories SET last_sync_details = $2, last_updated = $3 WHERE id = $1`, repo.ID, string(b), store.Now())
	return err
}

func mustPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" {
		return "PULP_MANIFEST"
	}
	return u.Path
}

func readManifestFile(p string, fn func(ManifestEntry) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return ReadManifest(f, fn)
}

func saveDetailUnits(ctx context.Context, tx *store.Tx, units []pipeline.Unit, ids []string) error {
	fu := make([]Unit, len(units))
	for i, u := range units {
		fu[i] = u.(Unit)
	}
	return SaveDetail(ctx, tx, fu, ids)
}

// canSkip reports whether a re-sync would change nothing: same remote, URL,
// policy and mirror flag, the same manifest bytes, and no version made
// since; an immediate sync also needs every unit's artifact present.
func (d *Deps) canSkip(ctx context.Context, repo *repository.Repo, now syncDetails) bool {
	var prev syncDetails
	if json.Unmarshal(repo.LastSyncDetails, &prev) != nil || prev != now {
		return false
	}
	if now.Policy != "immediate" {
		return true
	}
	var missing int
	err := d.Store.QueryRow(ctx, `SELECT COUNT(*) FROM repository_content rc JOIN content_artifacts ca ON ca.content_id = rc.content_id
		WHERE rc.repository_id = $1 AND rc.version_added <= $2 AND (rc.version_removed IS NULL OR rc.version_removed > $2) AND ca.artifact_id IS NULL`,
		repo.ID, now.Version).Scan(&missing)
	return err == nil && missing == 0
}

// mirrorPublication publishes a mirrored version pass-through, serving the
// upstream manifest bytes as they were.
func (d *Deps) mirrorPublication(ctx context.Context, t *tasking.Task, v *repository.VersionRow, manifestPath, name string) error {
	f, err := os.Open(manifestPath)
	if err != nil {
		return err
	}
	defer f.Close()
	a, _, err := coreapi.SaveArtifact(ctx, d.Core, f, digest.Expect{Size: digest.UnknownSize})
	if err != nil {
		return err
	}
	id := store.NewID()
	now := store.Now()
	t.OnCleanup(func(ctx context.Context) error {
		_, err := d.Store.Exec(ctx, `DELETE FROM publications WHERE id = $1`, id)
		return err
	})
	err = d.Store.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO publications (id, created, last_updated, pulp_type, repository_version_id, complete, pass_through, manifest)
			VALUES ($1, $2, $2, $3, $4, TRUE, TRUE, $5)`, id, now, Type, v.ID, name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO published_artifacts (id, created, publication_id, relative_path, artifact_id) VALUES ($1, $2, $3, $4, $5)`,
			store.NewID(), now, id, name, a.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("mirror publication: %w", err)
	}
	return t.AddCreatedResource(PublicationHref(id))
}
