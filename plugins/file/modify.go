package file

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

type modifyArgs struct {
	RepoID        string   `json:"repository_id"`
	Add           []string `json:"add,omitempty"`
	Remove        []string `json:"remove,omitempty"`
	RemoveAll     bool     `json:"remove_all,omitempty"`
	BaseVersionID string   `json:"base_version_id,omitempty"`
	Overwrite     bool     `json:"overwrite"`
}

// contentIDs resolves content hrefs of file units, failing on any unknown.
func (d *Deps) contentIDs(ctx context.Context, field string, hrefs []string) ([]string, error) {
	ids := make([]string, 0, len(hrefs))
	for _, h := range hrefs {
		id := api.IDFromHref(h, ContentPath, PRNContent)
		if id == "" {
			return nil, api.FieldError(field, fmt.Sprintf("Invalid hyperlink - No URL match: %q.", h))
		}
		ids = append(ids, id)
	}
	for i := 0; i < len(ids); i += 500 {
		batch := ids[i:min(i+500, len(ids))]
		args := make([]any, len(batch))
		ph := make([]string, len(batch))
		for j, id := range batch {
			args[j] = id
			ph[j] = fmt.Sprintf("$%d", j+1)
		}
		var n int
		if err := d.Store.QueryRow(ctx, `SELECT COUNT(DISTINCT content_id) FROM file_content WHERE content_id IN (`+strings.Join(ph, ",")+`)`, args...).Scan(&n); err != nil {
			return nil, err
		}
		if n != len(dedupe(batch)) {
			return nil, api.FieldError(field, "Invalid hyperlink - Object does not exist.")
		}
	}
	return ids, nil
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func (d *Deps) modifyRepository(c *api.Ctx) (any, error) {
	r, err := d.getRepo(c)
	if err != nil {
		return nil, err
	}
	b := api.Body[ModifyBody](c)
	args := modifyArgs{RepoID: r.ID, Overwrite: b.Overwrite == nil || *b.Overwrite}
	if b.AddContentUnits != nil {
		if args.Add, err = d.contentIDs(c, "add_content_units", *b.AddContentUnits); err != nil {
			return nil, err
		}
	}
	if b.RemoveContentUnits != nil {
		var hrefs []string
		for _, h := range *b.RemoveContentUnits {
			if h == "*" {
				args.RemoveAll = true
				continue
			}
			hrefs = append(hrefs, h)
		}
		if args.Remove, err = d.contentIDs(c, "remove_content_units", hrefs); err != nil {
			return nil, err
		}
	}
	if b.BaseVersion != nil {
		repoID, n, ok := ParseVersionHref(*b.BaseVersion)
		if !ok {
			return nil, api.FieldError("base_version", "Invalid hyperlink - No URL match.")
		}
		v, err := repository.GetVersion(c, d.Store, repoID, n)
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.FieldError("base_version", "Invalid hyperlink - Object does not exist.")
		} else if err != nil {
			return nil, err
		}
		args.BaseVersionID = v.ID
	}
	t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{Name: ModifyTask, Args: args, Exclusive: []string{RepoPRN(r.ID)}, LoggingCID: c.CID, CreatedBy: c.User})
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
}

func (d *Deps) runModify(ctx context.Context, t *tasking.Task) error {
	var a modifyArgs
	if err := t.Args(&a); err != nil {
		return err
	}
	var base *repository.VersionRow
	if a.BaseVersionID != "" {
		b, err := repository.GetVersionByID(ctx, d.Store, a.BaseVersionID)
		if err != nil {
			return fmt.Errorf("base version: %w", err)
		}
		base = b
	}
	v, err := repository.NewVersion(ctx, d.Store, a.RepoID, base)
	if err != nil {
		return err
	}
	t.OnCleanup(v.Discard)
	if a.RemoveAll {
		if err := v.RemoveAll(ctx); err != nil {
			return err
		}
	}
	if err := v.Remove(ctx, a.Remove); err != nil {
		return err
	}
	if !a.Overwrite {
		if err := d.checkOverwrite(ctx, v, a.Add); err != nil {
			return err
		}
	}
	if err := v.Add(ctx, a.Add); err != nil {
		return err
	}
	return d.finishVersion(ctx, t, v)
}

// checkOverwrite fails when a unit to add would replace a different unit
// with the same relative path (Pulp's overwrite=false, PLP0023).
func (d *Deps) checkOverwrite(ctx context.Context, v *repository.Version, add []string) error {
	for i := 0; i < len(add); i += 400 {
		batch := add[i:min(i+400, len(add))]
		args := []any{v.Repo().ID, v.Number()}
		ph := make([]string, len(batch))
		for j, id := range batch {
			args = append(args, id)
			ph[j] = fmt.Sprintf("$%d", len(args))
		}
		list := strings.Join(ph, ",")
		args = append(args, Type)
		// Other units at the same path, found through content (pulp_type,
		// repo_key): a file unit's repo key is its path.
		var path string
		err := d.Store.QueryRow(ctx, `SELECT co.repo_key FROM file_content fn
			JOIN content co ON co.pulp_type = $`+strconv.Itoa(len(args))+` AND co.repo_key = fn.relative_path AND co.id <> fn.content_id
			JOIN repository_content rc ON rc.content_id = co.id AND rc.repository_id = $1
			WHERE fn.content_id IN (`+list+`) AND rc.version_added <= $2 AND (rc.version_removed IS NULL OR rc.version_removed > $2)
			  AND co.id NOT IN (`+list+`) LIMIT 1`, args...).Scan(&path)
		if err == nil {
			return fmt.Errorf("Cannot create repository version since there are newly added content units that would overwrite existing units with the same relative_path: %s. (PLP0023)", path)
		}
		if !strings.Contains(err.Error(), "no rows") {
			return err
		}
	}
	return nil
}

// finishVersion completes a version built by a task: validation, created
// resources, autopublish and retention, in that task.
func (d *Deps) finishVersion(ctx context.Context, t *tasking.Task, v *repository.Version) error {
	row, err := v.Finalize(ctx, validateVersion)
	if err != nil {
		return err
	}
	if row == nil {
		return nil // nothing changed: no version
	}
	if err := t.AddCreatedResource(VersionHref(row.RepositoryID, row.Number)); err != nil {
		return err
	}
	repo, err := repository.Get(ctx, d.Store, row.RepositoryID)
	if err != nil {
		return err
	}
	if repo.Autopublish && d.AutoPublish != nil {
		if err := d.AutoPublish(ctx, d, t, repo, row); err != nil {
			return err
		}
	}
	return repository.ApplyRetention(ctx, d.Store, repo.ID)
}

// validateVersion refuses versions whose file paths overlap: a file at
// "a/b" and another at "a/b/c" cannot both be served. Only units added in
// this version are checked, against the whole version.
func validateVersion(ctx context.Context, s *store.Store, repoID string, number int) error {
	// Paths are looked up through content (pulp_type, repo_key): a file
	// unit's repo key is its path.
	member := `EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = c.id AND rc.repository_id = $1
		AND rc.version_added <= $2 AND (rc.version_removed IS NULL OR rc.version_removed > $2))`
	var prior int
	if err := s.QueryRow(ctx, `SELECT COUNT(*) FROM repository_content WHERE repository_id = $1 AND version_added < $2 AND (version_removed IS NULL OR version_removed > $2)`, repoID, number).Scan(&prior); err != nil {
		return err
	}
	after := ""
	// Ancestors already checked, across pages: a sync's new paths share a
	// few directories, which need checking once per version, not per page.
	seen := map[string]bool{}
	for {
		// Pages follow the index on (repository_id, version_removed,
		// content_id), so each page reads only its own rows; ordering by
		// path would sort every new unit again for each page. The bound is
		// given for f too: PostgreSQL's merge join does not carry it across
		// the join, and would read file_content from its start every page.
		rows, err := s.Query(ctx, `SELECT rc.content_id, f.relative_path FROM repository_content rc JOIN file_content f ON f.content_id = rc.content_id
			WHERE rc.repository_id = $1 AND rc.version_removed IS NULL AND rc.content_id > $3 AND f.content_id > $3 AND rc.version_added = $2
			ORDER BY rc.content_id LIMIT 500`, repoID, number, after)
		if err != nil {
			return err
		}
		var paths []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&after, &p); err != nil {
				rows.Close()
				return err
			}
			paths = append(paths, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(paths) == 0 {
			return nil
		}
		// Ancestors of new paths that are files in the version.
		var anc []string
		for _, p := range paths {
			for i := strings.IndexByte(p, '/'); i > 0; i = nextSlash(p, i) {
				if a := p[:i]; !seen[a] {
					seen[a] = true
					anc = append(anc, a)
				}
			}
		}
		for i := 0; i < len(anc); i += 400 {
			batch := anc[i:min(i+400, len(anc))]
			args := []any{repoID, number, Type}
			ph := make([]string, len(batch))
			for j, a := range batch {
				args = append(args, a)
				ph[j] = fmt.Sprintf("$%d", len(args))
			}
			var hit string
			err := s.QueryRow(ctx, `SELECT c.repo_key FROM content c WHERE c.pulp_type = $3 AND c.repo_key IN (`+strings.Join(ph, ",")+`) AND `+member+` LIMIT 1`, args...).Scan(&hit)
			if err == nil {
				return fmt.Errorf("Repository version validation failed: the path %q overlaps with files below it.", hit)
			}
			if !strings.Contains(err.Error(), "no rows") {
				return err
			}
		}
		// Files of earlier versions below a new path.
		if prior > 0 {
			for _, p := range paths {
				var hit string
				err := s.QueryRow(ctx, `SELECT c.repo_key FROM content c WHERE c.pulp_type = $4 AND c.repo_key LIKE $3 ESCAPE '\' AND `+member+` LIMIT 1`,
					repoID, number, likePrefix(p+"/"), Type).Scan(&hit)
				if err == nil {
					return fmt.Errorf("Repository version validation failed: the path %q overlaps with %q.", p, hit)
				}
				if !strings.Contains(err.Error(), "no rows") {
					return err
				}
			}
		}
	}
}

func nextSlash(p string, i int) int {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}
