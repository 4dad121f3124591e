package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// Task names of repository operations, as Pulp names them.
const (
	SyncTask          = "pulp_file.app.tasks.synchronizing.synchronize"
	ModifyTask        = "pulpcore.app.tasks.repository.add_and_remove"
	DeleteVersionTask = "pulpcore.app.tasks.repository.delete_version"
	RepairVersionTask = "pulpcore.app.tasks.repository.repair_version"
)

// RepositoryBody is the request body of repository create and update.
type RepositoryBody struct {
	Name               string            `json:"name" api:"required" minlen:"1" doc:"A unique name for this repository."`
	Description        *string           `json:"description" api:"nullable" doc:"An optional description."`
	RetainRepoVersions *int              `json:"retain_repo_versions" api:"nullable" min:"1" doc:"Retain X versions of the repository. Default is null which retains all versions."`
	RetainCheckpoints  *int              `json:"retain_checkpoints" api:"nullable" min:"1" doc:"Retain X checkpoint publications for the repository. Default is null which retains all checkpoints."`
	Remote             *string           `json:"remote" api:"nullable" doc:"An optional remote to use by default when syncing."`
	PulpLabels         map[string]string `json:"pulp_labels"`
	Autopublish        *bool             `json:"autopublish" default:"false" doc:"Whether to automatically create publications for new repository versions, and update any distributions pointing to this repository."`
	Manifest           *string           `json:"manifest" api:"nullable" default:"\"PULP_MANIFEST\"" doc:"Filename to use for manifest file containing metadata for all the files."`
}

// SchemaName names the component as Pulp does.
func (RepositoryBody) SchemaName() string { return "file.FileRepository" }

// RepositoryResponse is a file repository.
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
	Autopublish        bool              `json:"autopublish"`
	Manifest           *string           `json:"manifest" api:"nullable"`
	LastSyncDetails    json.RawMessage   `json:"last_sync_details" api:"readonly"`
}

// SchemaName names the component as Pulp does.
func (RepositoryResponse) SchemaName() string { return "file.FileRepositoryResponse" }

// ContentSummaryEntry counts one content type in a version.
type ContentSummaryEntry = coreapi.ContentSummaryEntry

// ContentSummary is a version's added/removed/present counts.
type ContentSummary = coreapi.ContentSummary

// VersionResponse is a repository version.
type VersionResponse struct {
	api.Base
	Number         int             `json:"number" api:"readonly"`
	Repository     string          `json:"repository" api:"readonly"`
	BaseVersion    *string         `json:"base_version" api:"nullable" doc:"A repository version whose content was used as the initial set of content for this repository version"`
	ContentSummary ContentSummary  `json:"content_summary" api:"readonly"`
	VulnReport     *string         `json:"vuln_report" api:"readonly,nullable"`
	Info           json.RawMessage `json:"-"`
}

// SchemaName names the component as Pulp does.
func (VersionResponse) SchemaName() string { return "RepositoryVersionResponse" }

// SyncBody is the body of repositories_file_file_sync.
type SyncBody struct {
	Remote   *string `json:"remote" doc:"A remote to sync from. This will override a remote set on repository."`
	Mirror   *bool   `json:"mirror" default:"false" doc:"If true, the synchronization will remove all content that is not present in the remote repository. If false, sync will be additive only."`
	Optimize *bool   `json:"optimize" default:"true" doc:"Whether or not to optimize sync."`
}

// SchemaName names the component as Pulp does.
func (SyncBody) SchemaName() string { return "RepositorySyncURL" }

// ModifyBody is the body of repositories_file_file_modify.
type ModifyBody struct {
	AddContentUnits    *[]string `json:"add_content_units" doc:"A list of content units to add to a new repository version. This content is added after remove_content_units are removed."`
	RemoveContentUnits *[]string `json:"remove_content_units" doc:"A list of content units to remove from the latest repository version. You may also specify '*' as an entry to remove all content. This content is removed before add_content_units are added."`
	BaseVersion        *string   `json:"base_version" doc:"A repository version whose content will be used as the initial set of content for the new repository version"`
	Overwrite          *bool     `json:"overwrite" default:"true" doc:"When set to false, the modify operation fails if a content unit to add conflicts with content already in the repository."`
}

// SchemaName names the component as Pulp does.
func (ModifyBody) SchemaName() string { return "RepositoryAddRemoveContent" }

// RepairBody is the body of a version repair.
type RepairBody struct {
	VerifyChecksums *bool `json:"verify_checksums" default:"true"`
}

// SchemaName names the component as Pulp does.
func (RepairBody) SchemaName() string { return "Repair" }

func repoResponse(ctx context.Context, s *store.Store, r *repository.Repo) (*RepositoryResponse, error) {
	latest, err := repository.Latest(ctx, s, r.ID)
	if err != nil {
		return nil, err
	}
	resp := &RepositoryResponse{
		Base:               api.NewBase(RepoHref(r.ID), PRNRepository, r.ID, r.Created, r.LastUpdated),
		VersionsHref:       RepoHref(r.ID) + "versions/",
		PulpLabels:         r.Labels,
		LatestVersionHref:  VersionHref(r.ID, latest.Number),
		Name:               r.Name,
		Description:        r.Description,
		RetainRepoVersions: r.RetainRepoVersions,
		RetainCheckpoints:  r.RetainCheckpoints,
		Autopublish:        r.Autopublish,
		Manifest:           r.Manifest,
		LastSyncDetails:    r.LastSyncDetails,
	}
	if r.RemoteID != nil {
		h := RemoteHref(*r.RemoteID)
		resp.Remote = &h
	}
	return resp, nil
}

func versionResponses(ctx context.Context, s *store.Store, vs []*repository.VersionRow) ([]VersionResponse, error) {
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	counts, err := repository.VersionCounts(ctx, s, ids...)
	if err != nil {
		return nil, err
	}
	bases := map[string]*repository.VersionRow{}
	out := make([]VersionResponse, len(vs))
	for i, v := range vs {
		href := VersionHref(v.RepositoryID, v.Number)
		r := VersionResponse{
			Base:           api.NewBase(href, PRNVersion, v.ID, v.Created, v.LastUpdated),
			Number:         v.Number,
			Repository:     RepoHref(v.RepositoryID),
			ContentSummary: coreapi.NewContentSummary(counts[v.ID], href),
		}
		if v.BaseVersionID != nil {
			b, ok := bases[*v.BaseVersionID]
			if !ok {
				b, _ = repository.GetVersionByID(ctx, s, *v.BaseVersionID)
				bases[*v.BaseVersionID] = b
			}
			if b != nil {
				h := VersionHref(b.RepositoryID, b.Number)
				r.BaseVersion = &h
			}
		}
		out[i] = r
	}
	return out, nil
}

func (d *Deps) getRepo(c *api.Ctx) (*repository.Repo, error) {
	id := c.PathValue("pulp_id")
	if !store.ValidID(id) {
		return nil, api.NotFound()
	}
	return repository.Get(c, d.Store, id)
}

// remoteID resolves a remote href given in field.
func (d *Deps) remoteID(ctx context.Context, field, href string) (string, error) {
	id := api.IDFromHref(href, RemotesPath, PRNRemote)
	if id == "" {
		return "", api.FieldError(field, "Invalid hyperlink - No URL match.")
	}
	var n int
	if err := d.Store.QueryRow(ctx, `SELECT COUNT(*) FROM remotes WHERE id = $1`, id).Scan(&n); err != nil {
		return "", err
	}
	if n == 0 {
		return "", api.FieldError(field, "Invalid hyperlink - Object does not exist.")
	}
	return id, nil
}

// applyRepoBody validates body onto r (create, PUT or PATCH).
func (d *Deps) applyRepoBody(c *api.Ctx, r *repository.Repo, b *RepositoryBody, partial bool) error {
	set := func(f string) bool { return !partial || c.Has(f) }
	fe := api.FieldErrors{}
	if set("name") {
		r.Name = b.Name
	}
	if set("description") {
		r.Description = b.Description
	}
	if set("retain_repo_versions") {
		r.RetainRepoVersions = b.RetainRepoVersions
	}
	if set("retain_checkpoints") {
		r.RetainCheckpoints = b.RetainCheckpoints
	}
	if set("pulp_labels") {
		if b.PulpLabels == nil {
			b.PulpLabels = map[string]string{}
		}
		if errs := api.ValidateLabels(b.PulpLabels); len(errs) > 0 {
			for k, v := range errs {
				fe[k] = v
			}
		}
		r.Labels = b.PulpLabels
	}
	if set("autopublish") {
		r.Autopublish = b.Autopublish != nil && *b.Autopublish
	}
	if set("manifest") {
		if !partial && !c.Has("manifest") {
			m := "PULP_MANIFEST"
			r.Manifest = &m
		} else {
			r.Manifest = b.Manifest
		}
		if r.Manifest != nil {
			if err := ValidatePath(*r.Manifest); err != nil {
				fe.Add("manifest", err.Error())
			}
		}
	}
	if set("remote") {
		r.RemoteID = nil
		if b.Remote != nil {
			id, err := d.remoteID(c, "remote", *b.Remote)
			if err != nil {
				return err
			}
			r.RemoteID = &id
		}
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}

func repositoryFilters(s *store.Store) *api.FilterSet {
	return &api.FilterSet{
		DefaultOrder: "name",
		Tiebreak:     "id",
		Ordering:     map[string]string{"name": "name", "pulp_created": "created", "pulp_last_updated": "last_updated", "description": "description", "next_version": "next_version"},
		Filters: []api.Filter{
			{Name: "name", Column: "name", Kind: api.Text},
			{Name: "pulp_id", Column: "id", Kind: api.Exact, Lookups: []string{"in"}},
			{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Apply: idsFromHrefs(RepositoriesPath, PRNRepository)},
			{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Apply: idsFromHrefs(RepositoriesPath, PRNRepository)},
			{Name: "pulp_created", Column: "created", Kind: api.Time},
			{Name: "pulp_last_updated", Column: "last_updated", Kind: api.Time},
			{Name: "retain_repo_versions", Column: "retain_repo_versions", Kind: api.Int},
			{Name: "remote", Kind: api.Custom, Lookups: []string{""}, Apply: func(q *api.Query, _, v string) error {
				if v == "null" {
					q.Where("remote_id IS NULL")
					return nil
				}
				id := api.IDFromHref(v, RemotesPath, PRNRemote)
				if id == "" {
					return errors.New("Invalid hyperlink - No URL match.")
				}
				q.Where("remote_id = ?", id)
				return nil
			}},
			{Name: "pulp_label_select", Kind: api.Custom, Lookups: []string{""}, Apply: func(q *api.Query, _, v string) error {
				return api.LabelSelect(q, "pulp_labels", v, s.JSONText)
			}},
		},
	}
}

// idsFromHrefs filters id by a comma-separated list of hrefs or PRNs.
func idsFromHrefs(collection, prnType string) func(q *api.Query, lookup, v string) error {
	return func(q *api.Query, _, v string) error {
		var ph []string
		for _, ref := range strings.Split(v, ",") {
			if ref = strings.TrimSpace(ref); ref == "" {
				continue
			}
			id := api.IDFromHref(ref, collection, prnType)
			if id == "" {
				return fmt.Errorf("%q is not a valid reference", ref)
			}
			ph = append(ph, q.Arg(id))
		}
		if len(ph) == 0 {
			q.Where("1 = 0")
			return nil
		}
		q.Where("id IN (" + strings.Join(ph, ", ") + ")")
		return nil
	}
}

func (d *Deps) listRepos(c *api.Ctx, fs *api.FilterSet) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	q := &api.Query{Regex: d.Store.RegexMatch}
	order, err := fs.Build(c.Query(), q)
	if err != nil {
		return nil, err
	}
	q.Where("pulp_type = ? AND NOT user_hidden", Type)
	where, args := q.SQL()
	var n int64
	if err := d.Store.QueryRow(c, `SELECT COUNT(*) FROM repositories`+where, args...).Scan(&n); err != nil {
		return nil, err
	}
	rows, err := d.Store.Query(c, `SELECT `+repository.Columns+` FROM repositories`+where+` ORDER BY `+order+fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset), args...)
	if err != nil {
		return nil, err
	}
	var repos []*repository.Repo
	for rows.Next() {
		r, err := repository.Scan(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		repos = append(repos, r)
	}
	rows.Close()
	out := make([]RepositoryResponse, 0, len(repos))
	for _, r := range repos {
		resp, err := repoResponse(c, d.Store, r)
		if err != nil {
			return nil, err
		}
		out = append(out, *resp)
	}
	return c.Page(n, limit, offset, out), nil
}

const repoKind = "file.filerepository"

func repositoryRoutes(d *Deps) []*api.Route {
	fs := repositoryFilters(d.Store)
	detail := RepositoriesPath + "{pulp_id}/"
	href := "file_file_repository_href"
	update := func(partial bool) func(c *api.Ctx) (any, error) {
		return func(c *api.Ctx) (any, error) {
			r, err := d.getRepo(c)
			if err != nil {
				return nil, err
			}
			before := *r
			if err := d.applyRepoBody(c, r, api.Body[RepositoryBody](c), partial); err != nil {
				return nil, err
			}
			if repoUnchanged(&before, r) {
				return repoResponse(c, d.Store, r)
			}
			if r.Name != before.Name {
				var n int
				d.Store.QueryRow(c, `SELECT COUNT(*) FROM repositories WHERE name = $1 AND id <> $2`, r.Name, r.ID).Scan(&n)
				if n > 0 {
					return nil, api.FieldError("name", "This field must be unique.")
				}
			}
			t, err := d.Core.DispatchUpdate(c, repoKind, r.ID, r, RepoPRN(r.ID))
			if err != nil {
				return nil, err
			}
			c.SetStatus(http.StatusAccepted)
			return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
		}
	}
	return []*api.Route{
		{OperationID: "repositories_file_file_list", Method: "GET", Path: RepositoriesPath, Tag: "Repositories: File",
			Summary: "List file repositorys", Query: fs.Params(), List: true, Response: RepositoryResponse{},
			Handle: func(c *api.Ctx) (any, error) { return d.listRepos(c, fs) }},
		{OperationID: "repositories_file_file_create", Method: "POST", Path: RepositoriesPath, Tag: "Repositories: File",
			Summary: "Create a file repository", Body: &RepositoryBody{}, Response: RepositoryResponse{}, Status: http.StatusCreated,
			Handle: func(c *api.Ctx) (any, error) {
				r := &repository.Repo{PulpType: Type, Labels: map[string]string{}}
				if err := d.applyRepoBody(c, r, api.Body[RepositoryBody](c), false); err != nil {
					return nil, err
				}
				if err := repository.Create(c, d.Store, r); errors.Is(err, store.ErrConflict) {
					return nil, api.FieldError("name", "This field must be unique.")
				} else if err != nil {
					return nil, err
				}
				return repoResponse(c, d.Store, r)
			}},
		{OperationID: "repositories_file_file_read", Method: "GET", Path: detail, Href: href, Tag: "Repositories: File",
			Summary: "Inspect a file repository", Response: RepositoryResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				r, err := d.getRepo(c)
				if err != nil {
					return nil, err
				}
				return repoResponse(c, d.Store, r)
			}},
		{OperationID: "repositories_file_file_update", Method: "PUT", Path: detail, Href: href, Tag: "Repositories: File",
			Summary: "Update a file repository", Body: &RepositoryBody{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			AltStatus: []int{http.StatusOK}, Handle: update(false)},
		{OperationID: "repositories_file_file_partial_update", Method: "PATCH", Path: detail, Href: href, Tag: "Repositories: File",
			Summary: "Update a file repository", Body: &RepositoryBody{}, Partial: true, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			AltStatus: []int{http.StatusOK}, Handle: update(true)},
		{OperationID: "repositories_file_file_delete", Method: "DELETE", Path: detail, Href: href, Tag: "Repositories: File",
			Summary: "Delete a file repository", Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				r, err := d.getRepo(c)
				if err != nil {
					return nil, err
				}
				t, err := d.Core.DispatchDelete(c, repoKind, r.ID, false, RepoPRN(r.ID))
				if err != nil {
					return nil, err
				}
				return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
			}},
		{OperationID: "repositories_file_file_set_label", Method: "POST", Path: detail + "set_label/", Href: href, Tag: "Repositories: File",
			Summary: "Set a label", Body: &api.SetLabel{}, Response: api.SetLabelResponse{}, Status: http.StatusCreated,
			Handle: func(c *api.Ctx) (any, error) {
				r, err := d.getRepo(c)
				if err != nil {
					return nil, err
				}
				b := api.Body[api.SetLabel](c)
				if fe := api.ValidateLabels(map[string]string{b.Key: deref(b.Value)}); len(fe) > 0 {
					return nil, fe
				}
				r.Labels[b.Key] = deref(b.Value)
				if err := repository.Update(c, d.Store, r); err != nil {
					return nil, err
				}
				return api.SetLabelResponse{Key: b.Key, Value: b.Value}, nil
			}},
		{OperationID: "repositories_file_file_unset_label", Method: "POST", Path: detail + "unset_label/", Href: href, Tag: "Repositories: File",
			Summary: "Unset a label", Body: &api.UnsetLabel{}, Response: api.UnsetLabelResponse{}, Status: http.StatusCreated,
			Handle: func(c *api.Ctx) (any, error) {
				r, err := d.getRepo(c)
				if err != nil {
					return nil, err
				}
				b := api.Body[api.UnsetLabel](c)
				v, ok := r.Labels[b.Key]
				if !ok {
					return nil, api.FieldError("key", fmt.Sprintf("Label '%s' does not exist.", b.Key))
				}
				delete(r.Labels, b.Key)
				if err := repository.Update(c, d.Store, r); err != nil {
					return nil, err
				}
				return api.UnsetLabelResponse{Key: b.Key, Value: &v}, nil
			}},
		{OperationID: "repositories_file_file_sync", Method: "POST", Path: detail + "sync/", Href: href, Tag: "Repositories: File",
			Summary: "Sync from a remote", Body: &SyncBody{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: d.syncRepository},
		{OperationID: "repositories_file_file_modify", Method: "POST", Path: detail + "modify/", Href: href, Tag: "Repositories: File",
			Summary: "Modify Repository Content", Body: &ModifyBody{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: d.modifyRepository},
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func repoUnchanged(a, b *repository.Repo) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TaskHref is a task's href.
func TaskHref(id string) string { return api.Href(api.Root+"tasks/", id) }

func registerRepositoryTasks(d *Deps) {
	d.Core.RegisterMutator(repoKind, coreMutator(d))
	d.Tasks.Register(ModifyTask, d.runModify)
	d.Tasks.Register(DeleteVersionTask, func(ctx context.Context, t *tasking.Task) error {
		var a versionArgs
		if err := t.Args(&a); err != nil {
			return err
		}
		v, err := repository.GetVersion(ctx, d.Store, a.RepoID, a.Number)
		if err != nil {
			return err
		}
		return repository.DeleteVersion(ctx, d.Store, v)
	})
	d.Tasks.Register(RepairVersionTask, func(ctx context.Context, t *tasking.Task) error {
		var a versionArgs
		if err := t.Args(&a); err != nil {
			return err
		}
		return d.repairVersion(ctx, t, a.RepoID, a.Number, a.Verify)
	})
	d.Tasks.Register(SyncTask, d.runSync)
}

func coreMutator(d *Deps) coreapi.Mutator {
	return coreapi.Mutator{
		Update: func(ctx context.Context, id string, body json.RawMessage) error {
			var r repository.Repo
			if err := json.Unmarshal(body, &r); err != nil {
				return err
			}
			if err := repository.Update(ctx, d.Store, &r); errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("a repository named %q already exists", r.Name)
			} else if err != nil {
				return err
			}
			// Retention applies whenever the setting changes.
			return repository.ApplyRetention(ctx, d.Store, id)
		},
		Delete: func(ctx context.Context, id string) error {
			return repository.Delete(ctx, d.Store, id)
		},
	}
}

type versionArgs struct {
	RepoID string `json:"repository_id"`
	Number int    `json:"number"`
	Verify bool   `json:"verify_checksums,omitempty"`
}

func (d *Deps) getVersion(c *api.Ctx) (*repository.VersionRow, error) {
	id := c.PathValue("pulp_id")
	n, err := strconv.Atoi(c.PathValue("number"))
	if !store.ValidID(id) || err != nil {
		return nil, api.NotFound()
	}
	return repository.GetVersion(c, d.Store, id, n)
}

func versionRoutes(d *Deps) []*api.Route {
	list := RepositoriesPath + "{pulp_id}/versions/"
	detail := list + "{number}/"
	vhref := "file_file_repository_version_href"
	params := append((&api.FilterSet{}).Params(),
		api.Param{Name: "number", Type: "integer"}, api.Param{Name: "number__gt", Type: "integer"}, api.Param{Name: "number__gte", Type: "integer"},
		api.Param{Name: "number__lt", Type: "integer"}, api.Param{Name: "number__lte", Type: "integer"}, api.Param{Name: "number__range", Type: "array"},
		api.Param{Name: "pulp_created__gte", Type: "string", Format: "date-time"}, api.Param{Name: "pulp_created__lte", Type: "string", Format: "date-time"},
		api.Param{Name: "content", Type: "string"}, api.Param{Name: "content__in", Type: "array"},
		api.Param{Name: "ordering", Type: "array", Enum: []string{"number", "-number", "pulp_created", "-pulp_created"}})
	return []*api.Route{
		{OperationID: "repositories_file_file_versions_list", Method: "GET", Path: list, Href: "file_file_repository_href", Tag: "Repositories: File Versions",
			Summary: "List repository versions", Query: params, List: true, Response: VersionResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				r, err := d.getRepo(c)
				if err != nil {
					return nil, err
				}
				return d.listVersions(c, r.ID)
			}},
		{OperationID: "repositories_file_file_versions_read", Method: "GET", Path: detail, Href: vhref, Tag: "Repositories: File Versions",
			Summary: "Inspect a repository version", Response: VersionResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				v, err := d.getVersion(c)
				if err != nil {
					return nil, err
				}
				out, err := versionResponses(c, d.Store, []*repository.VersionRow{v})
				if err != nil {
					return nil, err
				}
				return out[0], nil
			}},
		{OperationID: "repositories_file_file_versions_delete", Method: "DELETE", Path: detail, Href: vhref, Tag: "Repositories: File Versions",
			Summary: "Delete a repository version", Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				v, err := d.getVersion(c)
				if err != nil {
					return nil, err
				}
				var complete int
				d.Store.QueryRow(c, `SELECT COUNT(*) FROM repository_versions WHERE repository_id = $1 AND complete`, v.RepositoryID).Scan(&complete)
				if complete <= 1 {
					return nil, api.NonFieldError("Cannot delete repository version. Repositories must have at least one repository version.")
				}
				if p, err := repository.Protected(c, d.Store, v); err != nil {
					return nil, err
				} else if p {
					return nil, api.NonFieldError("The repository version cannot be deleted because it (or its publications) are currently being used to distribute content. Please update the necessary distributions first.")
				}
				t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{Name: DeleteVersionTask, Args: versionArgs{RepoID: v.RepositoryID, Number: v.Number},
					Exclusive: []string{RepoPRN(v.RepositoryID)}, LoggingCID: c.CID, CreatedBy: c.User})
				if err != nil {
					return nil, err
				}
				return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
			}},
		{OperationID: "repositories_file_file_versions_repair", Method: "POST", Path: detail + "repair/", Href: vhref, Tag: "Repositories: File Versions",
			Summary: "Repair the artifacts of a repository version", Body: &RepairBody{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				v, err := d.getVersion(c)
				if err != nil {
					return nil, err
				}
				b := api.Body[RepairBody](c)
				t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{Name: RepairVersionTask,
					Args:   versionArgs{RepoID: v.RepositoryID, Number: v.Number, Verify: b.VerifyChecksums == nil || *b.VerifyChecksums},
					Shared: []string{RepoPRN(v.RepositoryID)}, LoggingCID: c.CID, CreatedBy: c.User})
				if err != nil {
					return nil, err
				}
				return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
			}},
	}
}

func (d *Deps) listVersions(c *api.Ctx, repoID string) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	q := &api.Query{Regex: d.Store.RegexMatch}
	fs := &api.FilterSet{
		DefaultOrder: "number DESC",
		Ordering:     map[string]string{"number": "number", "pulp_created": "created"},
		Filters: []api.Filter{
			{Name: "number", Column: "number", Kind: api.Int},
			{Name: "pulp_created", Column: "created", Kind: api.Time},
			{Name: "content", Kind: api.Custom, Lookups: []string{"", "in"}, Apply: func(q *api.Query, _, v string) error {
				var ph []string
				for _, ref := range strings.Split(v, ",") {
					id := api.IDFromHref(strings.TrimSpace(ref), ContentPath, PRNContent)
					if id == "" {
						return errors.New("Invalid hyperlink - No URL match.")
					}
					ph = append(ph, q.Arg(id))
				}
				q.Where(`EXISTS (SELECT 1 FROM repository_content rc WHERE rc.repository_id = repository_versions.repository_id
					AND rc.content_id IN (` + strings.Join(ph, ",") + `) AND rc.version_added <= repository_versions.number
					AND (rc.version_removed IS NULL OR rc.version_removed > repository_versions.number))`)
				return nil
			}},
		},
	}
	order, err := fs.Build(c.Query(), q)
	if err != nil {
		return nil, err
	}
	q.Where("repository_id = ? AND complete", repoID)
	where, args := q.SQL()
	var n int64
	if err := d.Store.QueryRow(c, `SELECT COUNT(*) FROM repository_versions`+where, args...).Scan(&n); err != nil {
		return nil, err
	}
	rows, err := d.Store.Query(c, `SELECT `+repository.VersionColumns+` FROM repository_versions`+where+` ORDER BY `+order+fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset), args...)
	if err != nil {
		return nil, err
	}
	var vs []*repository.VersionRow
	for rows.Next() {
		v, err := repository.ScanVersion(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		vs = append(vs, v)
	}
	rows.Close()
	out, err := versionResponses(c, d.Store, vs)
	if err != nil {
		return nil, err
	}
	return c.Page(n, limit, offset, out), nil
}
