package coreapi

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
)

// RepositoryResponse is a repository of any type in the generic list.
type RepositoryResponse struct {
	api.Base
	VersionsHref       string            `json:"versions_href" api:"readonly"`
	PulpLabels         map[string]string `json:"pulp_labels"`
	LatestVersionHref  string            `json:"latest_version_href" api:"readonly"`
	Name               string            `json:"name" api:"required"`
	Description        *string           `json:"description" api:"nullable"`
	RetainRepoVersions *int              `json:"retain_repo_versions" api:"nullable"`
	RetainCheckpoints  *int              `json:"retain_checkpoints" api:"nullable"`
	Remote             *string           `json:"remote" api:"nullable"`
}

// VersionSummaryResponse is a repository version in the generic list:
// the same fields as a typed version's, content_summary included.
type VersionSummaryResponse struct {
	api.Base
	Number         int            `json:"number" api:"readonly"`
	Repository     string         `json:"repository" api:"readonly"`
	BaseVersion    *string        `json:"base_version" api:"nullable"`
	ContentSummary ContentSummary `json:"content_summary" api:"readonly"`
	VulnReport     *string        `json:"vuln_report" api:"readonly,nullable"`
}

// ContentSummaryEntry counts one content type in a version.
type ContentSummaryEntry struct {
	Count int64  `json:"count"`
	Href  string `json:"href"`
}

// ContentSummary is a version's added/removed/present counts, each with
// the content list that shows those units.
type ContentSummary struct {
	Added   map[string]ContentSummaryEntry `json:"added"`
	Removed map[string]ContentSummaryEntry `json:"removed"`
	Present map[string]ContentSummaryEntry `json:"present"`
}

// NewContentSummary renders a version's stored counts; versionHref is the
// version's href, which the entries' content list hrefs filter on.
func NewContentSummary(c repository.Counts, versionHref string) ContentSummary {
	s := ContentSummary{Added: map[string]ContentSummaryEntry{}, Removed: map[string]ContentSummaryEntry{}, Present: map[string]ContentSummaryEntry{}}
	for _, k := range []struct {
		kind, filter string
		into         map[string]ContentSummaryEntry
	}{
		{"added", "repository_version_added", s.Added},
		{"removed", "repository_version_removed", s.Removed},
		{"present", "repository_version", s.Present},
	} {
		for typ, n := range c[k.kind] {
			k.into[typ] = ContentSummaryEntry{Count: n, Href: lookupContentType(typ).Collection + "?" + k.filter + "=" + versionHref}
		}
	}
	return s
}

// typedPath turns a pulp_type ("file.file") into its collection path
// under base ("repositories/") : /pulp/api/v3/repositories/file/file/.
func typedPath(base, pulpType string) string {
	app, model, _ := strings.Cut(pulpType, ".")
	return api.Root + base + app + "/" + model + "/"
}

// GenericRepositoryRoutes lists repositories and versions of every type.
func GenericRepositoryRoutes(d *Deps) []*api.Route {
	repoFilters := &api.FilterSet{
		DefaultOrder: "name", Tiebreak: "id",
		Ordering: map[string]string{"name": "name", "pulp_created": "created"},
		Filters: []api.Filter{
			{Name: "name", Column: "name", Kind: api.Text},
			{Name: "pulp_type", Column: "pulp_type", Kind: api.Exact},
			{Name: "pulp_created", Column: "created", Kind: api.Time},
			{Name: "pulp_label_select", Kind: api.Custom, Lookups: []string{""}, Apply: func(q *api.Query, _, v string) error {
				return api.LabelSelect(q, "pulp_labels", v, d.Store.JSONText)
			}},
		},
	}
	versionFilters := &api.FilterSet{
		DefaultOrder: "created DESC", Tiebreak: "id DESC",
		Ordering: map[string]string{"number": "number", "pulp_created": "created"},
		Filters: []api.Filter{
			{Name: "number", Column: "number", Kind: api.Int},
			{Name: "pulp_created", Column: "created", Kind: api.Time},
			{Name: "content", Kind: api.Custom, Lookups: []string{"", "in"}, Apply: contentInVersion},
		},
	}
	return []*api.Route{
		{OperationID: "repositories_list", Method: "GET", Path: api.Root + "repositories/", Tag: "Repositories",
			Summary: "List repositories", Query: repoFilters.Params(), List: true, Response: RepositoryResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				limit, offset, err := c.Paging()
				if err != nil {
					return nil, err
				}
				q := &api.Query{Regex: d.Store.RegexMatch}
				order, err := repoFilters.Build(c.Query(), q)
				if err != nil {
					return nil, err
				}
				q.Where("NOT user_hidden")
				where, args := q.SQL()
				var n int64
				if err := d.Store.QueryRow(c, `SELECT COUNT(*) FROM repositories`+where, args...).Scan(&n); err != nil {
					return nil, err
				}
				rows, err := d.Store.Query(c, `SELECT id, created, last_updated, pulp_type, name, description, retain_repo_versions, retain_checkpoints, remote_id, pulp_labels,
					(SELECT MAX(number) FROM repository_versions v WHERE v.repository_id = repositories.id AND v.complete)
					FROM repositories`+where+` ORDER BY `+order+fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset), args...)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				out := []RepositoryResponse{}
				for rows.Next() {
					var (
						id, typ, name, labels string
						created, updated      int64
						r                     RepositoryResponse
						remote                *string
						latest                int
					)
					if err := rows.Scan(&id, &created, &updated, &typ, &name, &r.Description, &r.RetainRepoVersions, &r.RetainCheckpoints, &remote, &labels, &latest); err != nil {
						return nil, err
					}
					href := api.Href(typedPath("repositories/", typ), id)
					app, model, _ := strings.Cut(typ, ".")
					r.Base = api.NewBase(href, app+"."+model+"repository", id, created, updated)
					r.Name, r.VersionsHref = name, href+"versions/"
					r.LatestVersionHref = href + "versions/" + strconv.Itoa(latest) + "/"
					r.PulpLabels = parseLabels(labels)
					if remote != nil {
						h := api.Href(typedPath("remotes/", typ), *remote)
						r.Remote = &h
					}
					out = append(out, r)
				}
				return c.Page(n, limit, offset, out), rows.Err()
			}},
		{OperationID: "repository_versions_list", Method: "GET", Path: api.Root + "repository_versions/", Tag: "Repository_Versions",
			Summary: "List repository versions", Query: versionFilters.Params(), List: true, Response: VersionSummaryResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				limit, offset, err := c.Paging()
				if err != nil {
					return nil, err
				}
				q := &api.Query{Regex: d.Store.RegexMatch}
				order, err := versionFilters.Build(c.Query(), q)
				if err != nil {
					return nil, err
				}
				q.Where("complete")
				where, args := q.SQL()
				var n int64
				if err := d.Store.QueryRow(c, `SELECT COUNT(*) FROM repository_versions`+where, args...).Scan(&n); err != nil {
					return nil, err
				}
				rows, err := d.Store.Query(c, `SELECT repository_versions.id, repository_versions.created, repository_versions.last_updated, number, repository_id,
					(SELECT pulp_type FROM repositories r WHERE r.id = repository_versions.repository_id),
					(SELECT b.number FROM repository_versions b WHERE b.id = repository_versions.base_version_id)
					FROM repository_versions`+where+` ORDER BY `+order+fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset), args...)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				out := []VersionSummaryResponse{}
				var ids []string
				for rows.Next() {
					var (
						id, repo, typ    string
						created, updated int64
						number           int
						base             *int
					)
					if err := rows.Scan(&id, &created, &updated, &number, &repo, &typ, &base); err != nil {
						return nil, err
					}
					repoHref := api.Href(typedPath("repositories/", typ), repo)
					r := VersionSummaryResponse{Base: api.NewBase(repoHref+"versions/"+strconv.Itoa(number)+"/", "core.repositoryversion", id, created, updated),
						Number: number, Repository: repoHref}
					if base != nil {
						h := repoHref + "versions/" + strconv.Itoa(*base) + "/"
						r.BaseVersion = &h
					}
					out = append(out, r)
					ids = append(ids, id)
				}
				if err := rows.Err(); err != nil {
					return nil, err
				}
				counts, err := repository.VersionCounts(c, d.Store, ids...)
				if err != nil {
					return nil, err
				}
				for i := range out {
					out[i].ContentSummary = NewContentSummary(counts[ids[i]], out[i].PulpHref)
				}
				return c.Page(n, limit, offset, out), nil
			}},
	}
}

// contentInVersion filters repository_versions containing the content.
func contentInVersion(q *api.Query, _, v string) error {
	var ph []string
	for _, ref := range strings.Split(v, ",") {
		ref = strings.TrimSpace(ref)
		i := strings.LastIndex(strings.TrimSuffix(ref, "/"), "/")
		id := strings.TrimSuffix(ref[i+1:], "/")
		if !strings.HasPrefix(ref, api.Root+"content/") || !store.ValidID(id) {
			return api.NonFieldError("Invalid hyperlink - No URL match.")
		}
		ph = append(ph, q.Arg(id))
	}
	q.Where(`EXISTS (SELECT 1 FROM repository_content rc WHERE rc.repository_id = repository_versions.repository_id
		AND rc.content_id IN (` + strings.Join(ph, ",") + `) AND rc.version_added <= repository_versions.number
		AND (rc.version_removed IS NULL OR rc.version_removed > repository_versions.number))`)
	return nil
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	_ = jsonUnmarshal([]byte(s), &m)
	return m
}
