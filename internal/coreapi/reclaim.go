package coreapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// ReclaimSpaceTask is the task name of repositories/reclaim_space/.
const ReclaimSpaceTask = "pulpcore.app.tasks.reclaim_space.reclaim_space"

// ReclaimSpaceLock is held exclusively by a reclaim that names no
// repository (["*"] with none existing), as Pulp does.
const ReclaimSpaceLock = "pdrn:default:reclaim_space"

// ReclaimSpace is the body of repositories_reclaim_space_reclaim.
type ReclaimSpace struct {
	RepoHrefs            []string `json:"repo_hrefs" api:"required" doc:"Will reclaim space for the specified list of repos. Use ['*'] to specify all repos."`
	RepoVersionsKeeplist []string `json:"repo_versions_keeplist" doc:"Will exclude repo versions from space reclaim."`
}

type reclaimArgs struct {
	RepoIDs []string `json:"repo_pks"`
	KeepIDs []string `json:"keeplist_rv_pks"`
	// All is set for ["*"]: content of every repository.
	All bool `json:"all,omitempty"`
}

func reclaimRoutes(d *Deps) []*api.Route {
	return []*api.Route{
		{OperationID: "repositories_reclaim_space_reclaim", Method: http.MethodPost, Path: api.Root + "repositories/reclaim_space/",
			Tag: "Repositories: Reclaim Space", Summary: "Trigger an asynchronous space reclaim operation.", Body: &ReclaimSpace{},
			Response: api.AsyncResponse{}, Status: http.StatusAccepted, Handle: d.reclaimSpace},
	}
}

type reclaimRepo struct{ id, pulpType string }

func (d *Deps) reclaimSpace(c *api.Ctx) (any, error) {
	b := api.Body[ReclaimSpace](c)
	var (
		args  reclaimArgs
		repos []reclaimRepo
	)
	switch {
	case len(b.RepoHrefs) == 0:
		return nil, api.FieldError("repo_hrefs", "Must not be [].")
	case slices.Contains(b.RepoHrefs, "*"):
		if len(b.RepoHrefs) != 1 {
			return nil, api.FieldError("repo_hrefs", "Can not specify other HREFs when using '*'")
		}
		all, err := d.allRepositories(c)
		if err != nil {
			return nil, err
		}
		repos, args.All = all, true
	default:
		for _, href := range b.RepoHrefs {
			id, pulpType, ok := TypedID(href, "repositories", "repository")
			if !ok {
				return nil, api.FieldError("repo_hrefs", fmt.Sprintf("URI not valid: %s", href))
			}
			var typ string
			err := d.Store.QueryRow(c, `SELECT pulp_type FROM repositories WHERE id = $1`, id).Scan(&typ)
			if err != nil || (pulpType != "" && typ != pulpType) {
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return nil, err
				}
				return nil, api.FieldError("repo_hrefs", fmt.Sprintf("URI %s not found for repository.", href))
			}
			repos = append(repos, reclaimRepo{id, typ})
		}
	}
	listed := map[string]bool{}
	for _, r := range repos {
		if !listed[r.id] {
			listed[r.id] = true
			args.RepoIDs = append(args.RepoIDs, r.id)
		}
	}
	locked := slices.Clone(repos)
	for _, ref := range b.RepoVersionsKeeplist {
		vid, err := RepositoryVersionRef(c, d.Store, ref, false)
		switch {
		case errors.Is(err, ErrBadReference):
			return nil, api.FieldError("repo_versions_keeplist", "Invalid hyperlink - No URL match.")
		case errors.Is(err, store.ErrNotFound):
			return nil, api.FieldError("repo_versions_keeplist", "Invalid hyperlink - Object does not exist.")
		case err != nil:
			return nil, err
		}
		var r reclaimRepo
		if err := d.Store.QueryRow(c, `SELECT r.id, r.pulp_type FROM repository_versions v JOIN repositories r ON r.id = v.repository_id
			WHERE v.id = $1`, vid).Scan(&r.id, &r.pulpType); err != nil {
			return nil, err
		}
		args.KeepIDs = append(args.KeepIDs, vid)
		locked = append(locked, r)
	}
	req := tasking.DispatchRequest{Name: ReclaimSpaceTask, Args: args, LoggingCID: c.CID, CreatedBy: c.User}
	seen := map[string]bool{}
	for _, r := range locked {
		if prn := "prn:" + pdModelLabel(r.pulpType, "repository") + ":" + r.id; !seen[prn] {
			seen[prn] = true
			req.Shared = append(req.Shared, prn)
		}
	}
	if len(req.Shared) == 0 {
		req.Exclusive = []string{ReclaimSpaceLock}
	}
	// Beyond Pulp: the remotes the repositories fetch through are held
	// shared, so a remote deletion (exclusive) never checks for content
	// only it provides while this task is turning stored content into
	// such content.
	remotes, err := d.reclaimRemotes(c, args.RepoIDs, args.All)
	if err != nil {
		return nil, err
	}
	req.Shared = append(req.Shared, remotes...)
	t, err := d.Tasks.Dispatch(c, req)
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
}

func (d *Deps) allRepositories(ctx context.Context) ([]reclaimRepo, error) {
	rows, err := d.Store.Query(ctx, `SELECT id, pulp_type FROM repositories ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	defer rows.Close()
	var out []reclaimRepo
	for rows.Next() {
		var r reclaimRepo
		if err := rows.Scan(&r.id, &r.pulpType); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// reclaimRemotes returns the lock names of the remotes the repositories
// may fetch lazy content through (every linked remote when all).
func (d *Deps) reclaimRemotes(ctx context.Context, repoIDs []string, all bool) ([]string, error) {
	q := `SELECT id, pulp_type FROM remotes WHERE id IN (SELECT remote_id FROM repositories)
		OR id IN (SELECT remote_id FROM repository_remotes) ORDER BY id`
	var args []any
	if !all {
		if len(repoIDs) == 0 {
			return nil, nil
		}
		var l api.Query
		ph := make([]string, len(repoIDs))
		for i, id := range repoIDs {
			ph[i] = l.Arg(id)
		}
		in := strings.Join(ph, ", ")
		q = `SELECT id, pulp_type FROM remotes WHERE id IN (SELECT remote_id FROM repositories WHERE id IN (` + in + `))
			OR id IN (SELECT remote_id FROM repository_remotes WHERE repository_id IN (` + in + `)) ORDER BY id`
		args = l.Args()
	}
	rows, err := d.Store.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("remotes of reclaimed repositories: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r store.Remote
		if err := rows.Scan(&r.ID, &r.PulpType); err != nil {
			return nil, err
		}
		out = append(out, RemotePRN(&r))
	}
	return out, rows.Err()
}

func registerReclaimTasks(d *Deps) {
	d.Tasks.Register(ReclaimSpaceTask, func(ctx context.Context, t *tasking.Task) error {
		var a reclaimArgs
		if err := t.Args(&a); err != nil {
			return err
		}
		return ReclaimSpaceOf(ctx, d, t, a.All, a.RepoIDs, a.KeepIDs)
	})
}

// ReclaimSpaceOf releases the stored bytes of content in the repositories
// (every repository when all) that can be fetched again: the content stays
// in every version, its artifact is detached and deleted (row, then file)
// once nothing else uses it. Content in a kept version or in a repository
// outside the set keeps its bytes, and so does content some repository
// holding it could not fetch again (no remote artifact with the same
// sha256 from a remote that repository may fetch through).
func ReclaimSpaceOf(ctx context.Context, d *Deps, t *tasking.Task, all bool, repoIDs, keepIDs []string) error {
	scope := store.ReclaimScope{All: all, Repositories: repoIDs}
	for _, id := range keepIDs {
		var k store.VersionRef
		err := d.Store.QueryRow(ctx, `SELECT repository_id, number FROM repository_versions WHERE id = $1`, id).Scan(&k.RepositoryID, &k.Number)
		if errors.Is(err, sql.ErrNoRows) {
			continue // deleted since; nothing to keep
		}
		if err != nil {
			return fmt.Errorf("reclaim space: kept version %s: %w", id, err)
		}
		scope.Keep = append(scope.Keep, k)
	}
	// Only artifacts untouched since the task started are deleted: one
	// uploaded or synced again meanwhile is about to be used.
	start := store.Now()
	total, err := d.Store.CountReclaimable(ctx, scope)
	if err != nil {
		return err
	}
	p := t.Progress("Reclaim disk space", "reclaim-space.artifact", &total)
	err = d.Store.ReclaimCandidates(ctx, scope, 500, func(batch []store.Reclaimed) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		released, err := d.Store.ReleaseArtifacts(ctx, scope, batch)
		if err != nil {
			return err
		}
		arts, err := d.Store.ArtifactsByID(ctx, released)
		if err != nil {
			return err
		}
		deleted, err := d.Store.DeleteArtifactsIfOrphan(ctx, arts, start)
		if err != nil {
			return err
		}
		// Rows first, files second, as orphan cleanup does: no visible
		// row ever lacks its file.
		for _, a := range deleted {
			if err := d.Storage.Delete(ctx, a.File); err != nil {
				t.Logger().Warn("reclaim space: delete file", "file", a.File, "err", err)
			}
		}
		p.Increment(int64(len(deleted)))
		return nil
	})
	if err != nil {
		p.Fail()
		return fmt.Errorf("reclaim space: %w", err)
	}
	p.Done()
	return nil
}
