package coreapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/store"
)

// This file holds what publications and distributions of every type
// share: rows, hrefs, response bodies, filters, and the generic lists
// publications_list and distributions_list. Plugins build their typed
// endpoints on top.

// Collections of the generic lists.
const (
	PublicationsPath  = api.Root + "publications/"
	DistributionsPath = api.Root + "distributions/"
)

// Lock names of Pulp's distribution tasks: the base_path lock serialises
// every change that could make two base paths overlap; the legacy lock is
// taken shared by every distribution task, as Pulp does.
const (
	DistributionBasePathLock = "pdrn:default:distribution.base_path"
	DistributionsLock        = "pdrn:default:distributions"
)

// ErrBadReference is returned (wrapped) for a reference that is not an href
// or PRN of the expected kind at all, as opposed to store.ErrNotFound for
// one that names nothing.
var ErrBadReference = errors.New("not a valid reference")

// pdTypedCollection returns the collection of a typed resource, e.g.
// ("publications", "file.file") → /pulp/api/v3/publications/file/file/.
func pdTypedCollection(kind, pulpType string) string {
	app, typ, _ := strings.Cut(pulpType, ".")
	return api.Root + kind + "/" + app + "/" + typ + "/"
}

// pdModelLabel is Pulp's model label of a typed model: ("file.file",
// "publication") → "file.filepublication"; ("file.git", "remote") →
// "file.filegitremote".
func pdModelLabel(pulpType, model string) string {
	app, typ, _ := strings.Cut(pulpType, ".")
	typ = strings.ReplaceAll(typ, "_", "")
	if typ == app {
		return app + "." + app + model
	}
	return app + "." + app + typ + model
}

// PublicationHref is the typed href of a publication.
func PublicationHref(pulpType, id string) string {
	return api.Href(pdTypedCollection("publications", pulpType), id)
}

// PublicationPRNType is the PRN model label of a publication type.
func PublicationPRNType(pulpType string) string { return pdModelLabel(pulpType, "publication") }

// DistributionHref is the typed href of a distribution.
func DistributionHref(pulpType, id string) string {
	return api.Href(pdTypedCollection("distributions", pulpType), id)
}

// DistributionPRNType is the PRN model label of a distribution type.
func DistributionPRNType(pulpType string) string { return pdModelLabel(pulpType, "distribution") }

// DistributionPRN is a distribution's resource name, which is also its lock.
func DistributionPRN(pulpType, id string) string {
	return "prn:" + DistributionPRNType(pulpType) + ":" + id
}

// RepositoryHrefOf is the typed href of a repository of pulpType.
func RepositoryHrefOf(pulpType, id string) string {
	return api.Href(pdTypedCollection("repositories", pulpType), id)
}

// RepositoryVersionHrefOf is the href of version number of a repository.
func RepositoryVersionHrefOf(pulpType, repoID string, number int) string {
	return RepositoryHrefOf(pulpType, repoID) + "versions/" + strconv.Itoa(number) + "/"
}

// ContentGuardHref is the typed href of a content guard:
// "core.header" → /pulp/api/v3/contentguards/core/header/<id>/.
func ContentGuardHref(pulpType, id string) string {
	return api.Href(pdTypedCollection("contentguards", pulpType), id)
}

// ContentGuardPRN is a content guard's PRN: Pulp's models are named
// <Type>ContentGuard in the app, e.g. core.headercontentguard.
func ContentGuardPRN(pulpType, id string) string {
	app, typ, _ := strings.Cut(pulpType, ".")
	return "prn:" + app + "." + strings.ReplaceAll(typ, "_", "") + "contentguard:" + id
}

// TypedID returns the id named by a typed href of kind
// (/pulp/api/v3/<kind>/<app>/<type>/<id>/, absolute URLs too) or by a PRN
// whose model label ends in modelSuffix. pulpType is the href's
// "<app>.<type>" ("" for a PRN). ok is false if ref names nothing of kind.
func TypedID(ref, kind, modelSuffix string) (id, pulpType string, ok bool) {
	if rest, found := strings.CutPrefix(ref, "prn:"); found {
		label, id, found := strings.Cut(rest, ":")
		if !found || !strings.HasSuffix(label, modelSuffix) || !store.ValidID(id) {
			return "", "", false
		}
		return id, "", true
	}
	if i := strings.Index(ref, api.Root); i > 0 {
		ref = ref[i:]
	}
	rest, found := strings.CutPrefix(ref, api.Root+kind+"/")
	if !found || !strings.HasSuffix(rest, "/") {
		return "", "", false
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || !store.ValidID(parts[2]) {
		return "", "", false
	}
	return parts[2], parts[0] + "." + parts[1], true
}

// RepositoryVersionRef resolves a repository version href
// (…/repositories/<app>/<type>/<id>/versions/<n>/) or PRN
// (prn:core.repositoryversion:<id>) to the version's id. A repository href
// names its latest version when latestOfRepo is set, as Pulp's version
// filters do. It returns store.ErrNotFound when the reference is well
// formed but names no complete version, and ErrBadReference when it is not
// a version reference at all.
func RepositoryVersionRef(ctx context.Context, s *store.Store, ref string, latestOfRepo bool) (string, error) {
	if rest, ok := strings.CutPrefix(ref, "prn:core.repositoryversion:"); ok {
		if !store.ValidID(rest) {
			return "", fmt.Errorf("%w: %q is not a repository version PRN", ErrBadReference, ref)
		}
		return pdOneID(ctx, s, `SELECT id FROM repository_versions WHERE id = $1 AND complete`, rest)
	}
	if latestOfRepo {
		if id, _, ok := TypedID(ref, "repositories", "repository"); ok {
			return pdOneID(ctx, s, `SELECT id FROM repository_versions WHERE repository_id = $1 AND complete ORDER BY number DESC LIMIT 1`, id)
		}
	}
	p := ref
	if i := strings.Index(p, api.Root); i > 0 {
		p = p[i:]
	}
	rest, ok := strings.CutPrefix(p, api.Root+"repositories/")
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if !ok || !strings.HasSuffix(rest, "/") || len(parts) != 5 || parts[3] != "versions" || !store.ValidID(parts[2]) {
		return "", fmt.Errorf("%w: %q is not a repository version href", ErrBadReference, ref)
	}
	n, err := strconv.Atoi(parts[4])
	if err != nil || n < 0 {
		return "", fmt.Errorf("%w: %q is not a repository version href", ErrBadReference, ref)
	}
	return pdOneID(ctx, s, `SELECT id FROM repository_versions WHERE repository_id = $1 AND number = $2 AND complete`, parts[2], n)
}

func pdOneID(ctx context.Context, s *store.Store, q string, args ...any) (string, error) {
	var id string
	err := s.QueryRow(ctx, q, args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("resolve reference: %w", err)
	}
	return id, nil
}

// ContentRef resolves a content href (…/content/<app>/<type>/<id>/) or PRN
// to an existing unit's id. It returns store.ErrNotFound for a well-formed
// reference to nothing and ErrBadReference for anything else.
func ContentRef(ctx context.Context, s *store.Store, ref string) (string, error) {
	id, _, ok := TypedID(ref, "content", "")
	if !ok {
		return "", fmt.Errorf("%w: %q is not a content href", ErrBadReference, ref)
	}
	return pdOneID(ctx, s, `SELECT id FROM content WHERE id = $1`, id)
}

// PublicationRow is a publication with the repository version it
// publishes.
type PublicationRow struct {
	ID, PulpType           string
	Created, LastUpdated   int64
	VersionID              string
	RepositoryID, RepoType string
	VersionNumber          int
	Complete, PassThrough  bool
	Checkpoint             bool
	Manifest               *string
}

// pdPublicationFrom selects publications (aliased p) with their version and
// repository; PublicationFilterSet's columns refer to these aliases.
const pdPublicationFrom = ` FROM publications p JOIN repository_versions rv ON rv.id = p.repository_version_id JOIN repositories r ON r.id = rv.repository_id`

const pdPublicationColumns = `p.id, p.pulp_type, p.created, p.last_updated, p.repository_version_id, rv.repository_id, r.pulp_type, rv.number, p.complete, p.pass_through, p.checkpoint, p.manifest`

func pdScanPublication(row interface{ Scan(...any) error }) (*PublicationRow, error) {
	p := &PublicationRow{}
	err := row.Scan(&p.ID, &p.PulpType, &p.Created, &p.LastUpdated, &p.VersionID, &p.RepositoryID, &p.RepoType,
		&p.VersionNumber, &p.Complete, &p.PassThrough, &p.Checkpoint, &p.Manifest)
	return p, err
}

// GetPublication returns the complete publication with id; incomplete ones
// are invisible, as in Pulp.
func GetPublication(ctx context.Context, s *store.Store, id string) (*PublicationRow, error) {
	p, err := pdScanPublication(s.QueryRow(ctx, `SELECT `+pdPublicationColumns+pdPublicationFrom+` WHERE p.id = $1 AND p.complete`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get publication %s: %w", id, err)
	}
	return p, nil
}

// PublicationResponse holds the fields every publication type shows.
type PublicationResponse struct {
	api.Base
	RepositoryVersion *string `json:"repository_version"`
	Repository        *string `json:"repository" doc:"A URI of the repository to be published."`
}

// SchemaName names the component as Pulp does.
func (PublicationResponse) SchemaName() string { return "PublicationResponse" }

// NewPublicationResponse renders a publication row.
func NewPublicationResponse(p *PublicationRow) PublicationResponse {
	v := RepositoryVersionHrefOf(p.RepoType, p.RepositoryID, p.VersionNumber)
	r := RepositoryHrefOf(p.RepoType, p.RepositoryID)
	return PublicationResponse{
		Base:              api.NewBase(PublicationHref(p.PulpType, p.ID), PublicationPRNType(p.PulpType), p.ID, p.Created, p.LastUpdated),
		RepositoryVersion: &v,
		Repository:        &r,
	}
}

// PublicationDistributions returns, per publication id, the hrefs of the
// distributions serving it directly, in creation order.
func PublicationDistributions(ctx context.Context, s *store.Store, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	ph := make([]string, len(ids))
	for i, id := range ids {
		args[i] = id
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	rows, err := s.Query(ctx, `SELECT publication_id, id, pulp_type FROM distributions WHERE publication_id IN (`+
		strings.Join(ph, ", ")+`) ORDER BY created, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("publication distributions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pub, id, typ string
		if err := rows.Scan(&pub, &id, &typ); err != nil {
			return nil, err
		}
		out[pub] = append(out[pub], DistributionHref(typ, id))
	}
	return out, rows.Err()
}

// pdVersionHasContent is the condition, on the version aliased vr, that the
// version holds the unit bound at param.
func pdVersionHasContent(param string) string {
	return `EXISTS (SELECT 1 FROM repository_content rc WHERE rc.repository_id = vr.repository_id AND rc.content_id = ` + param +
		` AND rc.version_added <= vr.number AND (rc.version_removed IS NULL OR rc.version_removed > vr.number))`
}

// pdRefsIn applies an __in filter over hrefs or PRNs of one kind to col.
func pdRefsIn(col, kind, modelSuffix string) func(q *api.Query, lookup, v string) error {
	return func(q *api.Query, _, v string) error {
		var ph []string
		for _, ref := range strings.Split(v, ",") {
			if ref = strings.TrimSpace(ref); ref == "" {
				continue
			}
			id, _, ok := TypedID(ref, kind, modelSuffix)
			if !ok {
				return api.FieldError("href", "URI couldn't be resolved: "+ref)
			}
			ph = append(ph, q.Arg(id))
		}
		if len(ph) == 0 {
			q.Where("1 = 0")
			return nil
		}
		q.Where(col + " IN (" + strings.Join(ph, ", ") + ")")
		return nil
	}
}

// pdContentFilter is Pulp's content / content__in filter of publications:
// those whose version holds any of the units. Unknown units are a 400.
func pdContentFilter(ctx context.Context, s *store.Store) func(q *api.Query, lookup, v string) error {
	return func(q *api.Query, lookup, v string) error {
		refs := []string{v}
		if lookup == "in" {
			refs = strings.Split(v, ",")
		}
		var ph []string
		for _, ref := range refs {
			if ref = strings.TrimSpace(ref); ref == "" {
				continue
			}
			id, err := ContentRef(ctx, s, ref)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return api.FieldError("content", fmt.Sprintf("Could not find the following content units: ['%s']", ref))
			case errors.Is(err, ErrBadReference):
				return api.FieldError("content", "URI not valid: "+ref)
			case err != nil:
				return err
			}
			ph = append(ph, q.Arg(id))
		}
		if len(ph) == 0 {
			return api.FieldError("content", "No value supplied for content filter")
		}
		conds := make([]string, len(ph))
		for i, p := range ph {
			conds[i] = pdVersionHasContent(p)
		}
		q.Where(`EXISTS (SELECT 1 FROM repository_versions vr WHERE vr.id = p.repository_version_id AND (` + strings.Join(conds, " OR ") + `))`)
		return nil
	}
}

// PublicationFilterSet returns Pulp's PublicationFilter over publications
// selected as in ListPublications; ctx bounds the lookups some filters
// make to validate their references.
func PublicationFilterSet(ctx context.Context, s *store.Store, extra ...api.Filter) *api.FilterSet {
	fs := &api.FilterSet{
		Tiebreak: "p.created DESC, p.id DESC",
		Ordering: map[string]string{
			"pk": "p.id", "pulp_id": "p.id", "pulp_created": "p.created", "pulp_last_updated": "p.last_updated",
			"pulp_type": "p.pulp_type", "complete": "p.complete", "pass_through": "p.pass_through", "checkpoint": "p.checkpoint",
		},
		Filters: []api.Filter{
			{Name: "pulp_id", Column: "p.id", Kind: api.Exact, Lookups: []string{"in"}, Doc: "Multiple values may be separated by commas."},
			{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Apply: pdRefsIn("p.id", "publications", "publication"), Doc: "Multiple values may be separated by commas."},
			{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Apply: pdRefsIn("p.id", "publications", "publication"), Doc: "Multiple values may be separated by commas."},
			{Name: "repository", Kind: api.Custom, Lookups: []string{""}, Doc: "Repository referenced by HREF/PRN",
				Apply: func(q *api.Query, _, v string) error {
					id, _, ok := TypedID(v, "repositories", "repository")
					if !ok {
						return api.FieldError("repository", "URI not valid: "+v)
					}
					if _, err := pdOneID(ctx, s, `SELECT id FROM repositories WHERE id = $1`, id); errors.Is(err, store.ErrNotFound) {
						return api.FieldError("repository", fmt.Sprintf("URI %s not found for repository.", v))
					} else if err != nil {
						return err
					}
					q.Where("rv.repository_id = ?", id)
					return nil
				}},
			{Name: "repository_version", Kind: api.Custom, Lookups: []string{""}, Doc: "Repository Version referenced by HREF/PRN",
				Apply: func(q *api.Query, _, v string) error {
					id, err := RepositoryVersionRef(ctx, s, v, true)
					if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrBadReference) {
						return api.FieldError("repository_version", fmt.Sprintf("URI %s not found for repositoryversion.", v))
					}
					if err != nil {
						return err
					}
					q.Where("p.repository_version_id = ?", id)
					return nil
				}},
			{Name: "content", Kind: api.Custom, Lookups: []string{"", "in"}, Apply: pdContentFilter(ctx, s), Doc: "Content Unit referenced by HREF/PRN"},
			{Name: "pulp_created", Column: "p.created", Kind: api.Time, Doc: "Filter results where pulp_created matches value"},
			{Name: "checkpoint", Column: "p.checkpoint", Kind: api.Bool, Doc: "Filter results where checkpoint matches value"},
		},
	}
	fs.Filters = append(fs.Filters, extra...)
	return fs
}

// ListPublications serves one page of complete publications; base adds the
// list's own conditions (e.g. its pulp_type) before the request's filters.
func ListPublications[T any](c *api.Ctx, s *store.Store, fs *api.FilterSet, base func(q *api.Query), render func([]*PublicationRow) ([]T, error)) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	q := &api.Query{Regex: s.RegexMatch}
	q.Where("p.complete")
	if base != nil {
		base(q)
	}
	order, err := fs.Build(c.Query(), q)
	if err != nil {
		return nil, err
	}
	where, args := q.SQL()
	var n int64
	if err := s.QueryRow(c, `SELECT COUNT(*)`+pdPublicationFrom+where, args...).Scan(&n); err != nil {
		return nil, fmt.Errorf("count publications: %w", err)
	}
	rows, err := s.Query(c, `SELECT `+pdPublicationColumns+pdPublicationFrom+where+` ORDER BY `+order+
		` LIMIT `+strconv.Itoa(limit)+` OFFSET `+strconv.Itoa(offset), args...)
	if err != nil {
		return nil, fmt.Errorf("list publications: %w", err)
	}
	var pubs []*PublicationRow
	for rows.Next() {
		p, err := pdScanPublication(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		pubs = append(pubs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out, err := render(pubs)
	if err != nil {
		return nil, err
	}
	return c.Page(n, limit, offset, out), nil
}

// DistributionRow is a distribution with the types of what it refers to,
// so hrefs can be rendered without further queries.
type DistributionRow struct {
	ID, PulpType         string
	Created, LastUpdated int64
	Name, BasePath       string
	Hidden, Checkpoint   bool
	Labels               map[string]string

	ContentGuardID, ContentGuardType *string
	PublicationID, PublicationType   *string
	RepositoryID, RepositoryType     *string
	// RepositoryVersionID is the served version; VersionRepoID,
	// VersionNumber and VersionRepoType locate its href.
	RepositoryVersionID, VersionRepoID, VersionRepoType *string
	VersionNumber                                       *int
	RemoteID, RemoteType                                *string
	// CacheControl is the distribution's own Cache-Control, if set.
	CacheControl *string
}

// pdDistributionFrom selects distributions (aliased d) with the types of the
// rows they refer to; DistributionFilterSet's columns use these aliases.
const pdDistributionFrom = ` FROM distributions d
	LEFT JOIN content_guards dg ON dg.id = d.content_guard_id
	LEFT JOIN publications dp ON dp.id = d.publication_id
	LEFT JOIN repositories dr ON dr.id = d.repository_id
	LEFT JOIN repository_versions dv ON dv.id = d.repository_version_id
	LEFT JOIN repositories dvr ON dvr.id = dv.repository_id
	LEFT JOIN remotes dm ON dm.id = d.remote_id`

const pdDistributionColumns = `d.id, d.pulp_type, d.created, d.last_updated, d.name, d.base_path, d.hidden, d.checkpoint, d.pulp_labels,
	d.content_guard_id, dg.pulp_type, d.publication_id, dp.pulp_type, d.repository_id, dr.pulp_type,
	d.repository_version_id, dv.repository_id, dvr.pulp_type, dv.number, d.remote_id, dm.pulp_type, d.cache_control`

func pdScanDistribution(row interface{ Scan(...any) error }) (*DistributionRow, error) {
	d := &DistributionRow{}
	var labels string
	err := row.Scan(&d.ID, &d.PulpType, &d.Created, &d.LastUpdated, &d.Name, &d.BasePath, &d.Hidden, &d.Checkpoint, &labels,
		&d.ContentGuardID, &d.ContentGuardType, &d.PublicationID, &d.PublicationType, &d.RepositoryID, &d.RepositoryType,
		&d.RepositoryVersionID, &d.VersionRepoID, &d.VersionRepoType, &d.VersionNumber, &d.RemoteID, &d.RemoteType, &d.CacheControl)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil || d.Labels == nil {
		d.Labels = map[string]string{}
	}
	return d, nil
}

// RowQueryer runs single-row queries: *store.Store and *store.Tx are ones.
type RowQueryer interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

// GetDistribution returns the distribution with id, read through q (the
// store, or a transaction).
func GetDistribution(ctx context.Context, q RowQueryer, id string) (*DistributionRow, error) {
	d, err := pdScanDistribution(q.QueryRow(ctx, `SELECT `+pdDistributionColumns+pdDistributionFrom+` WHERE d.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get distribution %s: %w", id, err)
	}
	return d, nil
}

// DistributionResponse holds the fields every distribution type shows.
type DistributionResponse struct {
	api.Base
	BasePath             string            `json:"base_path" api:"required" doc:"The base (relative) path component of the published url. Avoid paths that overlap with other distribution base paths (e.g. \"foo\" and \"foo/bar\")"`
	BaseURL              string            `json:"base_url" api:"readonly" doc:"The URL for accessing the publication as defined by this distribution."`
	ContentGuard         *string           `json:"content_guard" api:"nullable" doc:"An optional content-guard."`
	ContentGuardPRN      *string           `json:"content_guard_prn" api:"readonly" doc:"The Pulp Resource Name (PRN) of the associated optional content guard."`
	NoContentChangeSince *string           `json:"no_content_change_since" api:"readonly" doc:"Timestamp since when the distributed content served by this distribution has not changed. If equals to null, no guarantee is provided about content changes."`
	Hidden               bool              `json:"hidden" default:"false" doc:"Whether this distribution should be shown in the content app."`
	PulpLabels           map[string]string `json:"pulp_labels"`
	Name                 string            `json:"name" api:"required" doc:"A unique name. Ex, rawhide and stable."`
	Repository           *string           `json:"repository" api:"nullable" doc:"The latest RepositoryVersion for this Repository will be served."`
	RepositoryVersion    *string           `json:"repository_version" api:"nullable" doc:"RepositoryVersion to be served"`
}

// SchemaName names the component as Pulp does.
func (DistributionResponse) SchemaName() string { return "DistributionResponse" }

// BaseURL is where the content app serves a base path: the content origin
// ("" for a relative URL), the path prefix and the base path, with a
// trailing slash.
func BaseURL(origin, prefix, basePath string) string {
	p := "/" + strings.Trim(prefix, "/") + "/"
	if p == "//" {
		p = "/"
	}
	return strings.TrimRight(origin, "/") + p + strings.Trim(basePath, "/") + "/"
}

func pdPtr[T any](v T) *T { return &v }

// NewDistributionResponse renders a distribution row. servesFromPublication
// is the type's SERVE_FROM_PUBLICATION: it decides when
// no_content_change_since can be promised.
func NewDistributionResponse(d *DistributionRow, origin, prefix string, servesFromPublication bool) DistributionResponse {
	r := DistributionResponse{
		Base:       api.NewBase(DistributionHref(d.PulpType, d.ID), DistributionPRNType(d.PulpType), d.ID, d.Created, d.LastUpdated),
		BasePath:   d.BasePath,
		BaseURL:    BaseURL(origin, prefix, d.BasePath),
		Hidden:     d.Hidden,
		PulpLabels: d.Labels,
		Name:       d.Name,
	}
	if r.PulpLabels == nil {
		r.PulpLabels = map[string]string{}
	}
	if d.ContentGuardID != nil && d.ContentGuardType != nil {
		r.ContentGuard = pdPtr(ContentGuardHref(*d.ContentGuardType, *d.ContentGuardID))
		r.ContentGuardPRN = pdPtr(ContentGuardPRN(*d.ContentGuardType, *d.ContentGuardID))
	}
	if d.RepositoryID != nil && d.RepositoryType != nil {
		r.Repository = pdPtr(RepositoryHrefOf(*d.RepositoryType, *d.RepositoryID))
	}
	if d.RepositoryVersionID != nil && d.VersionRepoID != nil && d.VersionRepoType != nil && d.VersionNumber != nil {
		r.RepositoryVersion = pdPtr(RepositoryVersionHrefOf(*d.VersionRepoType, *d.VersionRepoID, *d.VersionNumber))
	}
	// What a distribution serves cannot change without changing the
	// distribution itself only when it names a publication (or a version,
	// for types serving versions directly).
	if d.PublicationID != nil || (d.RepositoryVersionID != nil && !servesFromPublication) {
		r.NoContentChangeSince = pdPtr(store.Time(d.LastUpdated).Format(time.RFC3339Nano))
	}
	return r
}

// DistributionFilterSet returns Pulp's DistributionFilter over
// distributions selected as in ListDistributions. ctx bounds the lookups
// of with_content.
func DistributionFilterSet(ctx context.Context, s *store.Store, extra ...api.Filter) *api.FilterSet {
	fs := &api.FilterSet{
		Tiebreak: "d.created DESC, d.id DESC",
		Ordering: map[string]string{
			"pk": "d.id", "pulp_id": "d.id", "pulp_created": "d.created", "pulp_last_updated": "d.last_updated",
			"pulp_type": "d.pulp_type", "name": "d.name", "base_path": "d.base_path", "hidden": "d.hidden",
			"checkpoint": "d.checkpoint", "pulp_labels": "d.pulp_labels",
		},
		Filters: []api.Filter{
			{Name: "pulp_id", Column: "d.id", Kind: api.Exact, Lookups: []string{"in"}, Doc: "Multiple values may be separated by commas."},
			{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Apply: pdRefsIn("d.id", "distributions", "distribution"), Doc: "Multiple values may be separated by commas."},
			{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Apply: pdRefsIn("d.id", "distributions", "distribution"), Doc: "Multiple values may be separated by commas."},
			{Name: "name", Column: "d.name", Kind: api.Text, Doc: "Filter results where name matches value"},
			{Name: "base_path", Column: "d.base_path", Kind: api.Exact, Lookups: []string{"", "contains", "icontains", "in"}, Doc: "Filter results where base_path matches value"},
			{Name: "repository", Kind: api.Custom, Lookups: []string{"", "in"}, Doc: "Filter results where repository matches value",
				Apply: func(q *api.Query, lookup, v string) error {
					if lookup == "in" {
						return pdRefsIn("d.repository_id", "repositories", "repository")(q, lookup, v)
					}
					id, _, ok := TypedID(strings.TrimSpace(v), "repositories", "repository")
					if !ok {
						return api.FieldError("repository", "URI couldn't be resolved: "+v)
					}
					q.Where("d.repository_id = ?", id)
					return nil
				}},
			{Name: "checkpoint", Column: "d.checkpoint", Kind: api.Bool, Doc: "Filter results where checkpoint matches value"},
			api.LabelSelectFilter("d.pulp_labels", s.JSONText),
			{Name: "with_content", Kind: api.Custom, Lookups: []string{""}, Doc: "Filter distributions based on the content served by them",
				Apply: func(q *api.Query, _, v string) error {
					id, err := ContentRef(ctx, s, strings.TrimSpace(v))
					switch {
					case errors.Is(err, store.ErrNotFound):
						return api.FieldError("with_content", fmt.Sprintf("URI %s not found for content.", v))
					case errors.Is(err, ErrBadReference):
						return api.FieldError("with_content", "URI not valid: "+v)
					case err != nil:
						return err
					}
					q.Where(`EXISTS (SELECT 1 FROM repository_versions vr WHERE vr.id = (` + pdServedVersion("d") + `) AND ` + pdVersionHasContent(q.Arg(id)) + `)`)
					return nil
				}},
		},
	}
	fs.Filters = append(fs.Filters, extra...)
	return fs
}

// pdServedVersion is a scalar SQL expression: the id of the
// repository version whose publication the distribution aliased d serves
// (NULL when it serves none), by Pulp's rule for publication-serving
// types — its publication; else the latest complete publication of its
// repository version; else the latest complete publication of any version
// of its repository, by version number then creation.
func pdServedVersion(d string) string {
	return `CASE
		WHEN ` + d + `.publication_id IS NOT NULL THEN (SELECT sp.repository_version_id FROM publications sp WHERE sp.id = ` + d + `.publication_id AND sp.complete)
		WHEN ` + d + `.repository_version_id IS NOT NULL THEN (SELECT sp.repository_version_id FROM publications sp
			WHERE sp.repository_version_id = ` + d + `.repository_version_id AND sp.complete LIMIT 1)
		WHEN ` + d + `.repository_id IS NOT NULL THEN (SELECT sp.repository_version_id FROM publications sp
			JOIN repository_versions sv ON sv.id = sp.repository_version_id
			WHERE sv.repository_id = ` + d + `.repository_id AND sp.complete ORDER BY sv.number DESC, sp.created DESC, sp.id DESC LIMIT 1)
		END`
}

// ListDistributions serves one page of distributions; base adds the list's
// own conditions before the request's filters.
func ListDistributions[T any](c *api.Ctx, s *store.Store, fs *api.FilterSet, base func(q *api.Query), render func(*DistributionRow) T) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	q := &api.Query{Regex: s.RegexMatch}
	if base != nil {
		base(q)
	}
	order, err := fs.Build(c.Query(), q)
	if err != nil {
		return nil, err
	}
	where, args := q.SQL()
	var n int64
	if err := s.QueryRow(c, `SELECT COUNT(*) FROM distributions d`+where, args...).Scan(&n); err != nil {
		return nil, fmt.Errorf("count distributions: %w", err)
	}
	rows, err := s.Query(c, `SELECT `+pdDistributionColumns+pdDistributionFrom+where+` ORDER BY `+order+
		` LIMIT `+strconv.Itoa(limit)+` OFFSET `+strconv.Itoa(offset), args...)
	if err != nil {
		return nil, fmt.Errorf("list distributions: %w", err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		d, err := pdScanDistribution(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, render(d))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return c.Page(n, limit, offset, out), nil
}

// pdTypeFilter is the generic lists' pulp_type / pulp_type__in filter.
func pdTypeFilter(col string) api.Filter {
	return api.Filter{Name: "pulp_type", Column: col, Kind: api.Exact, Doc: "Pulp type"}
}

// GenericPublicationRoutes returns publications_list, the list of every
// publication type.
func GenericPublicationRoutes(d *Deps) []*api.Route {
	doc := PublicationFilterSet(context.Background(), d.Store, pdTypeFilter("p.pulp_type"))
	return []*api.Route{
		{OperationID: "publications_list", Method: "GET", Path: PublicationsPath, Tag: "Publications", Summary: "List publications",
			Query: doc.Params(), List: true, Response: PublicationResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				fs := PublicationFilterSet(c, d.Store, pdTypeFilter("p.pulp_type"))
				return ListPublications(c, d.Store, fs, nil, func(ps []*PublicationRow) ([]PublicationResponse, error) {
					out := make([]PublicationResponse, len(ps))
					for i, p := range ps {
						out[i] = NewPublicationResponse(p)
					}
					return out, nil
				})
			}},
	}
}

// pdServesFromPublication says, per distribution type, whether it serves
// only publications (Pulp's SERVE_FROM_PUBLICATION). Every type pith
// knows does; a plugin serving versions directly would register here.
var pdServesFromPublication = map[string]bool{"file.file": true}

// GenericDistributionRoutes returns distributions_list, the list of every
// distribution type.
func GenericDistributionRoutes(d *Deps) []*api.Route {
	doc := DistributionFilterSet(context.Background(), d.Store, pdTypeFilter("d.pulp_type"))
	return []*api.Route{
		{OperationID: "distributions_list", Method: "GET", Path: DistributionsPath, Tag: "Distributions", Summary: "List distributions",
			Query: doc.Params(), List: true, Response: DistributionResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				fs := DistributionFilterSet(c, d.Store, pdTypeFilter("d.pulp_type"))
				return ListDistributions(c, d.Store, fs, nil, func(r *DistributionRow) DistributionResponse {
					return NewDistributionResponse(r, d.ContentOrigin, d.ContentPathPrefix, pdServesFromPublication[r.PulpType])
				})
			}},
	}
}
