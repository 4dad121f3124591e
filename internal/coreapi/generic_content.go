package coreapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
)

// ContentPath is the generic content list of every content type.
const ContentPath = api.Root + "content/"

// ContentType describes a plugin's content type to the generic content
// list, so its units get their typed hrefs there.
type ContentType struct {
	PulpType   string // e.g. "file.file"
	Collection string // its list path, e.g. /pulp/api/v3/content/file/files/
	PRNType    string // e.g. "file.filecontent"
}

// contentTypes is filled by plugins at init, like database/sql drivers:
// the set of linked plugins is fixed at build time.
var contentTypes = struct {
	sync.RWMutex
	m map[string]ContentType
}{m: map[string]ContentType{}}

// RegisterContentType makes a content type known to the generic content
// list. Plugins call it from an init function.
func RegisterContentType(ct ContentType) {
	contentTypes.Lock()
	defer contentTypes.Unlock()
	contentTypes.m[ct.PulpType] = ct
}

// lookupContentType returns the registered type, or one derived from the
// pulp_type ("app.model" → content/app/model/) for unregistered types.
func lookupContentType(pulpType string) ContentType {
	contentTypes.RLock()
	ct, ok := contentTypes.m[pulpType]
	contentTypes.RUnlock()
	if ok {
		return ct
	}
	app, model, _ := strings.Cut(pulpType, ".")
	return ContentType{PulpType: pulpType, Collection: ContentPath + app + "/" + model + "/", PRNType: pulpType}
}

func registeredContentTypes() []ContentType {
	contentTypes.RLock()
	defer contentTypes.RUnlock()
	out := make([]ContentType, 0, len(contentTypes.m))
	for _, ct := range contentTypes.m {
		out = append(out, ct)
	}
	slices.SortFunc(out, func(a, b ContentType) int { return strings.Compare(a.PulpType, b.PulpType) })
	return out
}

// GenericContentResponse is a unit of any type in the generic list
// (Pulp's MultipleArtifactContentResponse).
type GenericContentResponse struct {
	api.Base
	PulpLabels map[string]string `json:"pulp_labels"`
	VulnReport *string           `json:"vuln_report" api:"readonly,nullable"`
	// Artifacts maps each relative path of the unit to its artifact's
	// href, null while not downloaded (on-demand).
	Artifacts map[string]*string `json:"artifacts" api:"required" doc:"The unit's files: relative path to artifact href, null while not downloaded."`
}

// SchemaName names the component as Pulp does.
func (GenericContentResponse) SchemaName() string { return "MultipleArtifactContentResponse" }

// GenericContentRoutes returns the generic content list, content_list.
func GenericContentRoutes(d *Deps) []*api.Route {
	fs := d.genericContentFilters()
	return []*api.Route{
		{OperationID: "content_list", Method: http.MethodGet, Path: ContentPath, Tag: "Content",
			Summary: "List content", Query: fs.Params(), List: true, Response: GenericContentResponse{},
			Handle: func(c *api.Ctx) (any, error) { return d.listGenericContent(c, fs) }},
	}
}

func (d *Deps) genericContentFilters() *api.FilterSet {
	var types []string
	for _, ct := range registeredContentTypes() {
		types = append(types, ct.PulpType)
	}
	fs := &api.FilterSet{
		DefaultOrder: "c.created DESC",
		Tiebreak:     "c.id DESC",
		Ordering: map[string]string{
			"pulp_id": "c.id", "pulp_created": "c.created", "pulp_last_updated": "c.last_updated", "pulp_type": "c.pulp_type",
		},
		Filters: []api.Filter{{Name: "pulp_type", Column: "c.pulp_type", Kind: api.Exact, Doc: "Pulp type (" + strings.Join(types, ", ") + ")"}},
	}
	fs.Filters = append(fs.Filters, ContentVersionFilters()...)
	fs.Filters = append(fs.Filters,
		d.OrphanedForFilter(),
		api.LabelSelectFilter("c.pulp_labels", d.Store.JSONText),
		api.Filter{Name: "pulp_id", Column: "c.id", Kind: api.Exact, Lookups: []string{"in"}},
		api.Filter{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Doc: "Comma-separated list.", Apply: genericContentIn},
		api.Filter{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Doc: "Comma-separated list.", Apply: genericContentIn},
		api.Filter{Name: "pulp_created", Column: "c.created", Kind: api.Time},
		api.Filter{Name: "pulp_last_updated", Column: "c.last_updated", Kind: api.Time},
	)
	return fs
}

// ContentVersionFilters are repository_version, repository_version_added
// and repository_version_removed over content aliased c. Check the
// versions exist with CheckVersionRefs first: filters cannot query.
func ContentVersionFilters() []api.Filter {
	filter := func(name, kind string) api.Filter {
		return api.Filter{Name: name, Kind: api.Custom, Lookups: []string{""}, Doc: "Units in (or added to, or removed by) this repository version, by href.",
			Apply: func(q *api.Query, _, v string) error {
				repoID, n, ok := ParseVersionRef(v)
				if !ok {
					return api.FieldErrors{name: {"Invalid hyperlink - No URL match."}}
				}
				var member string
				switch kind {
				case "present":
					member = repository.Membership(q.Arg, repoID, n)
				case "added":
					member = "rc.repository_id = " + q.Arg(repoID) + " AND rc.version_added = " + q.Arg(n)
				default:
					member = "rc.repository_id = " + q.Arg(repoID) + " AND rc.version_removed = " + q.Arg(n)
				}
				// IN, not a correlated EXISTS: SQLite would probe the
				// repository's whole membership for every unit.
				q.Where("c.id IN (SELECT rc.content_id FROM repository_content rc WHERE " + member + ")")
				return nil
			}}
	}
	return []api.Filter{
		filter("repository_version", "present"),
		filter("repository_version_added", "added"),
		filter("repository_version_removed", "removed"),
	}
}

// OrphanedForFilter is orphaned_for over content aliased c: units in no
// repository version whose timestamp_of_interest is at least that many
// minutes old (a negative value means the orphan protection time).
func (d *Deps) OrphanedForFilter() api.Filter {
	return api.Filter{Name: "orphaned_for", Kind: api.Custom, Lookups: []string{""},
		Doc: "Units in no repository version, untouched for at least this many minutes (negative: the orphan protection time).",
		Apply: func(q *api.Query, _, v string) error {
			mins, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return api.FieldErrors{"orphaned_for": {"Enter a number."}}
			}
			if mins < 0 {
				mins = float64(d.OrphanProtectionTime)
			}
			q.Where("NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = c.id) AND c.timestamp_of_interest <= ?",
				store.Now()-int64(mins*60e6))
			return nil
		}}
}

// contentRefID extracts the unit id from an href of any content
// collection (content/<app>/<type>/<id>/) or a content PRN.
func contentRefID(ref string) string {
	if rest, ok := strings.CutPrefix(ref, "prn:"); ok {
		_, id, _ := strings.Cut(rest, ":")
		if store.ValidID(id) {
			return id
		}
		return ""
	}
	if i := strings.Index(ref, api.Root); i > 0 {
		ref = ref[i:]
	}
	rest, ok := strings.CutPrefix(ref, ContentPath)
	if !ok {
		return ""
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) != 3 || !store.ValidID(parts[2]) {
		return ""
	}
	return parts[2]
}

func genericContentIn(q *api.Query, _, v string) error {
	var ph []string
	for _, ref := range strings.Split(v, ",") {
		if ref = strings.TrimSpace(ref); ref == "" {
			continue
		}
		id := contentRefID(ref)
		if id == "" {
			return api.FieldErrors{"pulp_href": {fmt.Sprintf("%q is not a valid content reference.", ref)}}
		}
		ph = append(ph, q.Arg(id))
	}
	if len(ph) == 0 {
		q.Where("1 = 0")
		return nil
	}
	q.Where("c.id IN (" + strings.Join(ph, ", ") + ")")
	return nil
}

// ParseVersionRef splits the href of a repository version of any type
// (…/repositories/<app>/<type>/<id>/versions/<n>/, or an absolute URL of
// one) into repository id and number.
func ParseVersionRef(href string) (repoID string, number int, ok bool) {
	if i := strings.Index(href, api.Root); i > 0 {
		href = href[i:]
	}
	rest, found := strings.CutPrefix(href, api.Root+"repositories/")
	if !found || !strings.HasSuffix(rest, "/") {
		return "", 0, false
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) != 5 || parts[3] != "versions" || !store.ValidID(parts[2]) {
		return "", 0, false
	}
	n, err := strconv.Atoi(parts[4])
	if err != nil || n < 0 {
		return "", 0, false
	}
	return parts[2], n, true
}

// CheckVersionRefs answers 400 for version filters naming no complete
// version, as Pulp does; filters themselves cannot query. Versions named by
// PRN (prn:core.repositoryversion:<id>, as pulp-cli passes them) are
// rewritten in vals to their hrefs, which the filters understand.
func CheckVersionRefs(ctx context.Context, s *store.Store, vals url.Values) error {
	for _, name := range []string{"repository_version", "repository_version_added", "repository_version_removed"} {
		for i, v := range vals[name] {
			if id, ok := strings.CutPrefix(v, "prn:core.repositoryversion:"); ok {
				href, err := versionHrefByID(ctx, s, id)
				if errors.Is(err, store.ErrNotFound) {
					return api.FieldError(name, "Invalid hyperlink - Object does not exist.")
				} else if err != nil {
					return err
				}
				vals[name][i], v = href, href
			}
			repoID, n, ok := ParseVersionRef(v)
			if !ok {
				return api.FieldError(name, "Invalid hyperlink - No URL match.")
			}
			if _, err := repository.GetVersion(ctx, s, repoID, n); errors.Is(err, store.ErrNotFound) {
				return api.FieldError(name, "Invalid hyperlink - Object does not exist.")
			} else if err != nil {
				return err
			}
		}
	}
	return nil
}

// versionHrefByID returns the href of the complete repository version id.
func versionHrefByID(ctx context.Context, s *store.Store, id string) (string, error) {
	if !store.ValidID(id) {
		return "", store.ErrNotFound
	}
	var repoID, pulpType string
	var n int
	err := s.QueryRow(ctx, `SELECT rv.repository_id, rv.number, r.pulp_type FROM repository_versions rv
		JOIN repositories r ON r.id = rv.repository_id WHERE rv.id = $1 AND rv.complete`, id).Scan(&repoID, &n, &pulpType)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	} else if err != nil {
		return "", fmt.Errorf("coreapi: version %s: %w", id, err)
	}
	return RepositoryVersionHrefOf(pulpType, repoID, n), nil
}

// listParams are the query parameters that do not filter.
var listParams = map[string]bool{"limit": true, "offset": true, "ordering": true, "fields": true, "exclude_fields": true}

// VersionFilterCount answers the count of a content list filtered by one
// repository version alone (repository_version, _added or _removed) from
// the version's stored content summary, so that it costs nothing however
// large the version. pulpType restricts it to one content type ("" for
// all). ok is false when the query filters otherwise.
func VersionFilterCount(ctx context.Context, s *store.Store, vals url.Values, pulpType string) (n int64, ok bool, err error) {
	var name, ref string
	for k, vs := range vals {
		if listParams[k] {
			continue
		}
		if name != "" || len(vs) != 1 {
			return 0, false, nil
		}
		name, ref = k, vs[0]
	}
	kind := map[string]string{"repository_version": "present", "repository_version_added": "added", "repository_version_removed": "removed"}[name]
	if kind == "" {
		return 0, false, nil
	}
	repoID, number, valid := ParseVersionRef(ref)
	if !valid {
		return 0, false, nil
	}
	v, err := repository.GetVersion(ctx, s, repoID, number)
	if err != nil {
		return 0, false, err
	}
	counts, err := repository.VersionCounts(ctx, s, v.ID)
	if err != nil {
		return 0, false, err
	}
	for typ, c := range counts[v.ID][kind] {
		if pulpType == "" || typ == pulpType {
			n += c
		}
	}
	return n, true, nil
}

func (d *Deps) listGenericContent(c *api.Ctx, fs *api.FilterSet) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	vals := c.Query()
	if err := CheckVersionRefs(c, d.Store, vals); err != nil {
		return nil, err
	}
	q := &api.Query{Regex: d.Store.RegexMatch}
	order, err := fs.Build(vals, q)
	if err != nil {
		return nil, err
	}
	where, args := q.SQL()
	n, ok, err := VersionFilterCount(c, d.Store, vals, "")
	switch {
	case err != nil:
	case ok:
	case where == "":
		n, err = d.Store.Count(c, "content")
	default:
		err = d.Store.QueryRow(c, `SELECT COUNT(*) FROM content c`+where, args...).Scan(&n)
	}
	if err != nil {
		return nil, fmt.Errorf("coreapi: count content: %w", err)
	}
	out, err := d.genericContentPage(c, where, args, order, limit, offset)
	if err != nil {
		return nil, err
	}
	return c.Page(n, limit, offset, out), nil
}

func (d *Deps) genericContentPage(ctx context.Context, where string, args []any, order string, limit, offset int) ([]GenericContentResponse, error) {
	rows, err := d.Store.Query(ctx, `SELECT c.id, c.created, c.last_updated, c.pulp_type, c.pulp_labels FROM content c`+where+
		` ORDER BY `+order+fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset), args...)
	if err != nil {
		return nil, fmt.Errorf("coreapi: list content: %w", err)
	}
	out := []GenericContentResponse{}
	index := map[string]int{}
	var ids []any
	for rows.Next() {
		var (
			id, typ, labels  string
			created, updated int64
		)
		if err := rows.Scan(&id, &created, &updated, &typ, &labels); err != nil {
			rows.Close()
			return nil, fmt.Errorf("coreapi: list content: %w", err)
		}
		ct := lookupContentType(typ)
		r := GenericContentResponse{Base: api.NewBase(api.Href(ct.Collection, id), ct.PRNType, id, created, updated), Artifacts: map[string]*string{}}
		if err := json.Unmarshal([]byte(labels), &r.PulpLabels); err != nil || r.PulpLabels == nil {
			r.PulpLabels = map[string]string{}
		}
		index[id] = len(out)
		ids = append(ids, id)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("coreapi: list content: %w", err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	ph := make([]string, len(ids))
	for i := range ids {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	arows, err := d.Store.Query(ctx, `SELECT content_id, relative_path, artifact_id FROM content_artifacts WHERE content_id IN (`+strings.Join(ph, ", ")+`)`, ids...)
	if err != nil {
		return nil, fmt.Errorf("coreapi: list content artifacts: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var (
			cid, path string
			art       sql.NullString
		)
		if err := arows.Scan(&cid, &path, &art); err != nil {
			return nil, fmt.Errorf("coreapi: list content artifacts: %w", err)
		}
		var href *string
		if art.Valid {
			h := api.Href(ArtifactsPath, art.String)
			href = &h
		}
		out[index[cid]].Artifacts[path] = href
	}
	return out, arows.Err()
}
