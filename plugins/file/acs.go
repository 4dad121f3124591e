package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// ACSPRNType is the PRN model label of file alternate content sources; it
// also names the resource kind of their general update and delete tasks.
const ACSPRNType = "file.filealternatecontentsource"

const (
	acsHrefParam = "file_file_alternate_content_source_href"
	acsTag       = "Acs: File"
)

// ACSHref is an alternate content source's href.
func ACSHref(id string) string { return api.Href(ACSPath, id) }

// ACSPRN is the resource name tasks lock for an alternate content source.
func ACSPRN(id string) string { return "prn:" + ACSPRNType + ":" + id }

// ACSTime is a date-time in a request body, parsed with api.ParseTime so
// the ISO 8601 forms DRF takes are accepted.
type ACSTime string

// OpenAPISchema documents ACSTime as a date-time string.
func (*ACSTime) OpenAPISchema() *api.Schema { return &api.Schema{Type: "string", Format: "date-time"} }

// FileACS is the request body of ACS create, update and partial update.
type FileACS struct {
	Name          string   `json:"name" api:"required" minlen:"1" doc:"Name of Alternate Content Source."`
	LastRefreshed *ACSTime `json:"last_refreshed" api:"nullable" doc:"Date of last refresh of AlternateContentSource."`
	Paths         []string `json:"paths" doc:"List of paths that will be appended to the Remote url when searching for content."`
	Remote        string   `json:"remote" api:"required" doc:"The remote to provide alternate content source."`
}

// SchemaName names the component as Pulp does.
func (FileACS) SchemaName() string { return "file.FileAlternateContentSource" }

// FileACSResponse is an ACS as the API shows it.
type FileACSResponse struct {
	api.Base
	Name          string     `json:"name" api:"required" doc:"Name of Alternate Content Source."`
	LastRefreshed *time.Time `json:"last_refreshed" api:"nullable" doc:"Date of last refresh of AlternateContentSource."`
	Paths         []string   `json:"paths" doc:"List of paths that will be appended to the Remote url when searching for content."`
	Remote        string     `json:"remote" api:"required" doc:"The remote to provide alternate content source."`
}

// SchemaName names the component as Pulp does.
func (FileACSResponse) SchemaName() string { return "file.FileAlternateContentSourceResponse" }

func acsResponse(a *store.ACS) FileACSResponse {
	r := FileACSResponse{
		Base:   api.NewBase(ACSHref(a.ID), ACSPRNType, a.ID, a.Created, a.LastUpdated),
		Name:   a.Name,
		Paths:  make([]string, 0, len(a.Paths)),
		Remote: coreapi.RemoteHref(Type, a.RemoteID),
	}
	if a.LastRefreshed != nil {
		t := store.Time(*a.LastRefreshed)
		r.LastRefreshed = &t
	}
	for _, p := range a.Paths {
		r.Paths = append(r.Paths, p.Path)
	}
	return r
}

// acsFields lists FileACS's fields by wire name, to record which a request
// carried.
var acsFields = func() []string {
	t := reflect.TypeFor[FileACS]()
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}()

// acsUpdate is the argument of an ACS's general update task: the request
// body and the fields it carried.
type acsUpdate struct {
	Fields []string `json:"fields"`
	Body   FileACS  `json:"body"`
}

// ACSURL is the manifest URL an ACS path stands for: the path joined to
// the remote's URL as Pulp joins them (os.path.join), or the remote's URL
// itself for the empty path.
func ACSURL(remoteURL, p string) string {
	if p == "" {
		return remoteURL
	}
	if !strings.HasSuffix(remoteURL, "/") {
		remoteURL += "/"
	}
	return remoteURL + p
}

func (d *Deps) getACS(ctx context.Context, id string) (*store.ACS, error) {
	if !store.ValidID(id) {
		return nil, store.ErrNotFound
	}
	a, err := d.Store.GetACS(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.PulpType != Type {
		return nil, store.ErrNotFound
	}
	return a, nil
}

// applyACS applies the fields of b that has reports onto a and checks them
// as Pulp's serializer does, then the name's uniqueness. It returns the
// paths to set: nil when the request left them alone, [""] (the remote's
// own URL, as Pulp stores it) when it gave none.
func (d *Deps) applyACS(ctx context.Context, a *store.ACS, b *FileACS, has func(string) bool) ([]string, error) {
	fe := api.FieldErrors{}
	if has("name") {
		a.Name = strings.TrimSpace(b.Name)
	}
	if has("last_refreshed") {
		a.LastRefreshed = nil
		if b.LastRefreshed != nil {
			t, ok := api.ParseTime(strings.TrimSpace(string(*b.LastRefreshed)))
			if ok {
				us := store.Micros(t)
				a.LastRefreshed = &us
			} else {
				fe.Add("last_refreshed", "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")
			}
		}
	}
	if has("remote") {
		if msg, err := d.acsRemoteProblem(ctx, a, b.Remote); err != nil {
			return nil, err
		} else if msg != "" {
			fe.Add("remote", msg)
		}
	}
	var paths []string
	if has("paths") {
		paths = make([]string, 0, len(b.Paths))
		for _, p := range b.Paths {
			p = strings.TrimSpace(p)
			if msg := acsPathProblem(p); msg != "" {
				if !slices.Contains(fe["paths"], msg) {
					fe.Add("paths", msg)
				}
				continue
			}
			paths = append(paths, p)
		}
		if len(paths) == 0 {
			paths = []string{""}
		}
	}
	if has("name") && fe["name"] == nil {
		other, err := d.Store.ACSByName(ctx, a.Name)
		switch {
		case err == nil && other.ID != a.ID:
			fe.Add("name", "This field must be unique.")
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	if len(fe) > 0 {
		return nil, fe
	}
	return paths, nil
}

// acsRemoteProblem resolves ref into a.RemoteID, or says why it cannot be
// an ACS's remote: only a file remote with the on_demand policy can.
func (d *Deps) acsRemoteProblem(ctx context.Context, a *store.ACS, ref string) (string, error) {
	id := coreapi.RemoteIDFromRef(strings.TrimSpace(ref))
	if id == "" {
		return "Invalid hyperlink - No URL match.", nil
	}
	r, err := d.Store.GetRemote(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "Invalid hyperlink - Object does not exist.", nil
	}
	if err != nil {
		return "", err
	}
	a.RemoteID = r.ID
	if r.Policy != "on_demand" {
		return "Remote used with alternate content source must have the 'on_demand' policy.", nil
	}
	if r.PulpType != Type {
		return fmt.Sprintf("Type for Remote '%s' does not match ACS type.", r.Name), nil
	}
	return "", nil
}

// acsPathProblem checks one path: Pulp refuses a leading slash (the path
// is relative to the remote's URL); blank paths and control characters
// cannot name a manifest either.
func acsPathProblem(p string) string {
	switch {
	case p == "":
		return "This field may not be blank."
	case strings.HasPrefix(p, "/"):
		return "Path cannot start with a slash."
	case strings.ContainsFunc(p, unicode.IsControl):
		return "Path cannot contain control characters."
	}
	return ""
}

func samePaths(a *store.ACS, paths []string) bool {
	have := make([]string, len(a.Paths))
	for i, p := range a.Paths {
		have[i] = p.Path
	}
	want := slices.Clone(paths)
	slices.Sort(want)
	return slices.Equal(have, slices.Compact(want))
}

func acsFilters() *api.FilterSet {
	return &api.FilterSet{
		// Pulp orders by -pulp_created after any requested ordering.
		Tiebreak: "created DESC, id DESC",
		Ordering: map[string]string{
			"pk": "id", "pulp_id": "id", "pulp_created": "created", "pulp_last_updated": "last_updated",
			"pulp_type": "pulp_type", "name": "name", "last_refreshed": "last_refreshed",
		},
		Filters: []api.Filter{
			{Name: "name", Column: "name", Kind: api.Text, Doc: "Filter results where name matches value"},
			{Name: "pulp_id", Column: "id", Kind: api.Exact, Lookups: []string{"in"}, Doc: "Multiple values may be separated by commas."},
			{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Apply: idsFromHrefs(ACSPath, ACSPRNType), Doc: "Multiple values may be separated by commas."},
			{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Apply: idsFromHrefs(ACSPath, ACSPRNType), Doc: "Multiple values may be separated by commas."},
		},
	}
}

func acsRoutes(d *Deps) []*api.Route {
	fs := acsFilters()
	detail := ACSPath + "{pulp_id}/"
	get := func(c *api.Ctx) (*store.ACS, error) { return d.getACS(c, c.PathValue("pulp_id")) }
	return []*api.Route{
		{OperationID: "acs_file_file_list", Method: http.MethodGet, Path: ACSPath, Tag: acsTag, Summary: "List file alternate content sources",
			Query: fs.Params(), List: true, Response: FileACSResponse{},
			Handle: func(c *api.Ctx) (any, error) { return d.listACS(c, fs) }},
		{OperationID: "acs_file_file_create", Method: http.MethodPost, Path: ACSPath, Tag: acsTag, Summary: "Create a file alternate content source",
			Body: &FileACS{}, Response: FileACSResponse{}, Status: http.StatusCreated, Handle: d.createACS},
		{OperationID: "acs_file_file_read", Method: http.MethodGet, Path: detail, Href: acsHrefParam, Tag: acsTag,
			Summary: "Inspect a file alternate content source", Response: FileACSResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				a, err := get(c)
				if err != nil {
					return nil, err
				}
				return acsResponse(a), nil
			}},
		{OperationID: "acs_file_file_update", Method: http.MethodPut, Path: detail, Href: acsHrefParam, Tag: acsTag,
			Summary: "Update a file alternate content source", Body: &FileACS{}, Response: api.AsyncResponse{},
			Status: http.StatusAccepted, AltStatus: []int{http.StatusOK},
			Handle: d.updateACS},
		{OperationID: "acs_file_file_partial_update", Method: http.MethodPatch, Path: detail, Href: acsHrefParam, Tag: acsTag,
			Summary: "Update a file alternate content source partially", Body: &FileACS{}, Partial: true, Response: api.AsyncResponse{},
			Status: http.StatusAccepted, AltStatus: []int{http.StatusOK},
			Handle: d.updateACS},
		{OperationID: "acs_file_file_delete", Method: http.MethodDelete, Path: detail, Href: acsHrefParam, Tag: acsTag,
			Summary: "Delete a file alternate content source", Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				a, err := get(c)
				if err != nil {
					return nil, err
				}
				// The refreshes of its paths hold the ACS shared, so the
				// delete waits for them; the hidden repositories go with it.
				locks := []string{ACSPRN(a.ID)}
				for _, p := range a.Paths {
					if p.RepositoryID != nil {
						locks = append(locks, RepoPRN(*p.RepositoryID))
					}
				}
				t, err := d.Core.DispatchDelete(c, ACSPRNType, a.ID, false, locks...)
				if err != nil {
					return nil, err
				}
				return api.AsyncResponse{Task: coreapi.TaskHref(t.ID)}, nil
			}},
		{OperationID: "acs_file_file_refresh", Method: http.MethodPost, Path: detail + "refresh/", Href: acsHrefParam, Tag: acsTag,
			Summary: "Refresh metadata", Response: api.TaskGroupResponse{}, Status: http.StatusAccepted,
			Handle: d.refreshACS},
	}
}

func (d *Deps) listACS(c *api.Ctx, fs *api.FilterSet) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	q := &api.Query{Regex: d.Store.RegexMatch}
	q.Where("pulp_type = ?", Type)
	order, err := fs.Build(c.Query(), q)
	if err != nil {
		return nil, err
	}
	where, args := q.SQL()
	n, err := d.Store.CountACS(c, where, args)
	if err != nil {
		return nil, err
	}
	rows, err := d.Store.ListACS(c, where, args, order, limit, offset)
	if err != nil {
		return nil, err
	}
	out := make([]FileACSResponse, len(rows))
	for i, a := range rows {
		out[i] = acsResponse(a)
	}
	return c.Page(n, limit, offset, out), nil
}

func (d *Deps) createACS(c *api.Ctx) (any, error) {
	a := &store.ACS{PulpType: Type}
	paths, err := d.applyACS(c, a, api.Body[FileACS](c), func(f string) bool { return f == "paths" || c.Has(f) })
	if err != nil {
		return nil, err
	}
	if err := d.Store.InsertACS(c, a, paths); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, api.FieldError("name", "This field must be unique.")
		}
		return nil, err
	}
	return acsResponse(a), nil
}

// updateACS validates the whole would-be ACS, answers 200 with it when the
// request changes nothing, and otherwise dispatches the change as an
// immediate task holding the ACS (Pulp's 202).
func (d *Deps) updateACS(c *api.Ctx) (any, error) {
	cur, err := d.getACS(c, c.PathValue("pulp_id"))
	if err != nil {
		return nil, err
	}
	next := *cur
	b := api.Body[FileACS](c)
	paths, err := d.applyACS(c, &next, b, c.Has)
	if err != nil {
		return nil, err
	}
	if next.Name == cur.Name && next.RemoteID == cur.RemoteID && equalPtr(next.LastRefreshed, cur.LastRefreshed) &&
		(paths == nil || samePaths(cur, paths)) {
		c.SetStatus(http.StatusOK)
		return acsResponse(cur), nil
	}
	up := acsUpdate{Body: *b}
	for _, f := range acsFields {
		if c.Has(f) {
			up.Fields = append(up.Fields, f)
		}
	}
	t, err := d.Core.DispatchUpdate(c, ACSPRNType, cur.ID, up, ACSPRN(cur.ID))
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: coreapi.TaskHref(t.ID)}, nil
}

func equalPtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// refreshACS syncs every path of the ACS into its hidden repository, one
// sync task per path in one task group (Pulp's refresh): the manifest at
// the path's URL is read with the ACS's on_demand remote, so only remote
// artifacts are recorded.
func (d *Deps) refreshACS(c *api.Ctx) (any, error) {
	a, err := d.getACS(c, c.PathValue("pulp_id"))
	if err != nil {
		return nil, err
	}
	remote, err := d.Store.GetRemote(c, a.RemoteID)
	if err != nil {
		return nil, err
	}
	g := &store.TaskGroup{Description: fmt.Sprintf("Refreshing %d alternate content source paths.", len(a.Paths))}
	if err := d.Store.InsertTaskGroup(c, nil, g); err != nil {
		return nil, err
	}
	for _, p := range a.Paths {
		repoID, err := d.acsPathRepository(c, a, p)
		if err != nil {
			return nil, err
		}
		args := syncArgs{RepoID: repoID, RemoteID: remote.ID, Optimize: true, URL: ACSURL(remote.URL, p.Path)}
		if _, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{Name: SyncTask, Args: args, TaskGroupID: g.ID,
			Exclusive: []string{RepoPRN(repoID)}, Shared: []string{RemotePRN(remote.ID), ACSPRN(a.ID)},
			LoggingCID: c.CID, CreatedBy: c.User}); err != nil {
			return nil, err
		}
	}
	if err := d.Store.SetTaskGroupAllDispatched(c, g.ID); err != nil {
		return nil, err
	}
	if err := d.Store.SetACSRefreshed(c, a.ID, store.Now()); err != nil {
		return nil, err
	}
	return api.TaskGroupResponse{TaskGroup: coreapi.TaskGroupHref(g.ID)}, nil
}

// acsPathRepository returns the hidden repository of an ACS path, creating
// it on the path's first refresh (named as Pulp names it, keeping one
// version).
func (d *Deps) acsPathRepository(ctx context.Context, a *store.ACS, p store.ACSPath) (string, error) {
	if p.RepositoryID != nil {
		return *p.RepositoryID, nil
	}
	keep := 1
	r := &repository.Repo{PulpType: Type, Name: fmt.Sprintf("%s--%s--repository", a.Name, p.ID), RetainRepoVersions: &keep,
		UserHidden: true, Labels: map[string]string{}}
	err := repository.Create(ctx, d.Store, r)
	if errors.Is(err, store.ErrConflict) { // a user took the name
		r.Name += "--" + store.NewID()
		err = repository.Create(ctx, d.Store, r)
	}
	if err != nil {
		return "", fmt.Errorf("hidden repository of acs path %s: %w", p.ID, err)
	}
	linked, err := d.Store.SetACSPathRepository(ctx, p.ID, r.ID)
	if err != nil || linked {
		return r.ID, err
	}
	// A concurrent refresh linked its own first: use that one.
	if err := repository.Delete(ctx, d.Store, r.ID); err != nil {
		return "", err
	}
	cur, err := d.Store.GetACS(ctx, a.ID)
	if err != nil {
		return "", err
	}
	for _, q := range cur.Paths {
		if q.ID == p.ID && q.RepositoryID != nil {
			return *q.RepositoryID, nil
		}
	}
	return "", fmt.Errorf("acs path %s: %w", p.ID, store.ErrNotFound)
}

// deleteRepositories deletes hidden repositories, some of which may be
// gone already.
func (d *Deps) deleteRepositories(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := repository.Delete(ctx, d.Store, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete hidden repository %s: %w", id, err)
		}
	}
	return nil
}

// registerACSTasks makes ACSes updatable and deletable by the general
// tasks. Both delete the hidden repositories of the paths that go before
// the paths themselves, so a crash in between leaves no hidden repository
// behind (a path whose repository is gone gets a new one on refresh).
func registerACSTasks(d *Deps) {
	d.Core.RegisterMutator(ACSPRNType, coreapi.Mutator{
		Update: func(ctx context.Context, id string, body json.RawMessage) error {
			var up acsUpdate
			if err := json.Unmarshal(body, &up); err != nil {
				return fmt.Errorf("update acs %s: %w", id, err)
			}
			a, err := d.getACS(ctx, id)
			if err != nil {
				return err
			}
			// Validate again against the ACS as it is now: the remote may
			// have changed since the request was checked.
			paths, err := d.applyACS(ctx, a, &up.Body, func(f string) bool { return slices.Contains(up.Fields, f) })
			if err != nil {
				return fmt.Errorf("update acs %s: %w", id, err)
			}
			var gone []string
			if paths != nil {
				for _, p := range a.Paths {
					if p.RepositoryID != nil && !slices.Contains(paths, p.Path) {
						gone = append(gone, *p.RepositoryID)
					}
				}
			}
			if err := d.deleteRepositories(ctx, gone); err != nil {
				return err
			}
			orphaned, err := d.Store.UpdateACS(ctx, a, paths)
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("update acs %s: name: This field must be unique", id)
			}
			if err != nil {
				return err
			}
			return d.deleteRepositories(ctx, orphaned)
		},
		Delete: func(ctx context.Context, id string) error {
			a, err := d.getACS(ctx, id)
			if err != nil {
				return err
			}
			var repos []string
			for _, p := range a.Paths {
				if p.RepositoryID != nil {
					repos = append(repos, *p.RepositoryID)
				}
			}
			if err := d.deleteRepositories(ctx, repos); err != nil {
				return err
			}
			orphaned, err := d.Store.DeleteACS(ctx, id)
			if err != nil {
				return err
			}
			return d.deleteRepositories(ctx, orphaned)
		},
	})
}
