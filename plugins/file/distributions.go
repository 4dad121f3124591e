package file

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/content"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// DistributionKind names file distributions among the general tasks'
// mutators.
const DistributionKind = "file.filedistribution"

// FileDistributionResponse is a file distribution as the API shows it.
type FileDistributionResponse struct {
	coreapi.DistributionResponse
	Publication *string `json:"publication" api:"nullable" doc:"Publication to be served"`
	Checkpoint  bool    `json:"checkpoint"`
	Remote      *string `json:"remote" api:"nullable" doc:"Remote that can be used to fetch content when using pull-through caching."`
	// CacheControl is pith's own: Pulp has no such field, and clients
	// that do not know it ignore it.
	CacheControl *string `json:"cache_control" api:"nullable" doc:"Cache-Control header sent with everything this distribution serves, instead of the server's settings. Null: the server's."`
}

// SchemaName names the component as Pulp does.
func (FileDistributionResponse) SchemaName() string { return "file.FileDistributionResponse" }

// FileDistribution is the body of distribution create, update and partial
// update. The read-only fields are accepted and ignored, so a client may
// send back what it read.
type FileDistribution struct {
	api.Base
	BasePath             string            `json:"base_path" api:"required" minlen:"1" doc:"The base (relative) path component of the published url. Avoid paths that overlap with other distribution base paths (e.g. \"foo\" and \"foo/bar\")"`
	BaseURL              *string           `json:"base_url" api:"readonly"`
	ContentGuard         *string           `json:"content_guard" api:"nullable" doc:"An optional content-guard."`
	ContentGuardPRN      *string           `json:"content_guard_prn" api:"readonly"`
	NoContentChangeSince *string           `json:"no_content_change_since" api:"readonly"`
	Hidden               bool              `json:"hidden" default:"false" doc:"Whether this distribution should be shown in the content app."`
	PulpLabels           map[string]string `json:"pulp_labels"`
	Name                 string            `json:"name" api:"required" minlen:"1" doc:"A unique name. Ex, rawhide and stable."`
	Repository           *string           `json:"repository" api:"nullable" doc:"The latest RepositoryVersion for this Repository will be served."`
	RepositoryVersion    *string           `json:"repository_version" api:"nullable" doc:"RepositoryVersion to be served"`
	Publication          *string           `json:"publication" api:"nullable" doc:"Publication to be served"`
	Checkpoint           bool              `json:"checkpoint"`
	Remote               *string           `json:"remote" api:"nullable" doc:"Remote that can be used to fetch content when using pull-through caching."`
	CacheControl         *string           `json:"cache_control" api:"nullable" doc:"Cache-Control header sent with everything this distribution serves, instead of the server's settings. Null: the server's."`
}

// SchemaName names the component as Pulp does.
func (FileDistribution) SchemaName() string { return "file.FileDistribution" }

// distState is what a distribution stores that the API can change; nil
// references are NULL.
type distState struct {
	Name, BasePath                string
	Hidden, Checkpoint            bool
	Labels                        map[string]string
	ContentGuard, Publication     *string
	Repository, RepositoryVersion *string
	Remote                        *string
	CacheControl                  *string
}

// distChange is a validated request, with references resolved to ids: the
// general task applies it to the distribution as it is when the task runs,
// so concurrent changes of other fields are kept. A nil field is
// unchanged; an empty reference is NULL.
type distChange struct {
	Name              *string            `json:"name,omitempty"`
	BasePath          *string            `json:"base_path,omitempty"`
	Hidden            *bool              `json:"hidden,omitempty"`
	Checkpoint        *bool              `json:"checkpoint,omitempty"`
	Labels            *map[string]string `json:"pulp_labels,omitempty"`
	ContentGuard      *string            `json:"content_guard,omitempty"`
	Publication       *string            `json:"publication,omitempty"`
	Repository        *string            `json:"repository,omitempty"`
	RepositoryVersion *string            `json:"repository_version,omitempty"`
	Remote            *string            `json:"remote,omitempty"`
	CacheControl      *string            `json:"cache_control,omitempty"`
}

func nullable(id *string) *string {
	if id == nil || *id == "" {
		return nil
	}
	return id
}

func sameRef(a, b *string) bool {
	a, b = nullable(a), nullable(b)
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// apply returns s with the change made.
func (ch *distChange) apply(s distState) distState {
	if ch.Name != nil {
		s.Name = *ch.Name
	}
	if ch.BasePath != nil {
		s.BasePath = *ch.BasePath
	}
	if ch.Hidden != nil {
		s.Hidden = *ch.Hidden
	}
	if ch.Checkpoint != nil {
		s.Checkpoint = *ch.Checkpoint
	}
	if ch.Labels != nil {
		s.Labels = *ch.Labels
	}
	set := func(dst **string, v *string) {
		if v != nil {
			*dst = nullable(v)
		}
	}
	set(&s.ContentGuard, ch.ContentGuard)
	set(&s.Publication, ch.Publication)
	set(&s.Repository, ch.Repository)
	set(&s.RepositoryVersion, ch.RepositoryVersion)
	set(&s.Remote, ch.Remote)
	set(&s.CacheControl, ch.CacheControl)
	return s
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (s distState) equal(o distState) bool {
	return s.Name == o.Name && s.BasePath == o.BasePath && s.Hidden == o.Hidden && s.Checkpoint == o.Checkpoint &&
		labelsEqual(s.Labels, o.Labels) && sameRef(s.ContentGuard, o.ContentGuard) && sameRef(s.Publication, o.Publication) &&
		sameRef(s.Repository, o.Repository) && sameRef(s.RepositoryVersion, o.RepositoryVersion) && sameRef(s.Remote, o.Remote) &&
		sameRef(s.CacheControl, o.CacheControl)
}

func stateOf(r *coreapi.DistributionRow) distState {
	return distState{
		Name: r.Name, BasePath: r.BasePath, Hidden: r.Hidden, Checkpoint: r.Checkpoint, Labels: r.Labels,
		ContentGuard: r.ContentGuardID, Publication: r.PublicationID, Repository: r.RepositoryID,
		RepositoryVersion: r.RepositoryVersionID, Remote: r.RemoteID, CacheControl: r.CacheControl,
	}
}

// queryer is what both *store.Store and *store.Tx offer for reads.
type queryer = coreapi.RowQueryer

func exists(ctx context.Context, q queryer, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ValidBasePath reports why p cannot be a distribution base path, or "":
// it must be a safe relative path (see ValidatePath) without whitespace,
// '?' or '#', the characters Pulp refuses in relative paths.
func ValidBasePath(p string) string {
	bad := ValidatePath(p) != nil || strings.ContainsFunc(p, func(r rune) bool { return unicode.IsSpace(r) || r == '?' || r == '#' })
	if bad {
		return "Relative path is not in canonical form. " + p
	}
	return ""
}

// likeEscape escapes LIKE wildcards for a pattern with ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// checkDistribution validates the state a distribution (selfID, "" for a
// new one) would have, as Pulp's serializer does: unique name and base
// path, base paths that do not nest, references that exist, and at most
// one source of content. It runs in the API and again in the task, where
// the base_path lock makes the check and the write atomic.
func checkDistribution(ctx context.Context, q queryer, selfID string, s distState, old *distState) error {
	fe := api.FieldErrors{}
	if old == nil || s.Name != old.Name {
		taken, err := exists(ctx, q, `SELECT 1 FROM distributions WHERE name = $1 AND id <> $2`, s.Name, selfID)
		if err != nil {
			return err
		}
		if taken {
			fe.Add("name", "This field must be unique.")
		}
	}
	if old == nil || s.BasePath != old.BasePath {
		if msg := ValidBasePath(s.BasePath); msg != "" {
			fe.Add("base_path", msg)
		} else if msg, err := basePathConflict(ctx, q, selfID, s.BasePath); err != nil {
			return err
		} else if msg != "" {
			fe.Add("base_path", msg)
		}
	}
	if old == nil || !labelsEqual(s.Labels, old.Labels) {
		if le := api.ValidateLabels(s.Labels); le != nil {
			for k, v := range le {
				fe[k] = append(fe[k], v...)
			}
		}
	}
	refs := []struct {
		field string
		id    *string
		query string
	}{
		{"content_guard", s.ContentGuard, `SELECT 1 FROM content_guards WHERE id = $1`},
		{"repository", s.Repository, `SELECT 1 FROM repositories WHERE id = $1`},
		{"repository_version", s.RepositoryVersion, `SELECT 1 FROM repository_versions WHERE id = $1 AND complete`},
		{"publication", s.Publication, `SELECT 1 FROM publications WHERE id = $1 AND complete`},
		{"remote", s.Remote, `SELECT 1 FROM remotes WHERE id = $1`},
	}
	for _, r := range refs {
		if r.id == nil {
			continue
		}
		ok, err := exists(ctx, q, r.query, *r.id)
		if err != nil {
			return err
		}
		if !ok {
			fe.Add(r.field, msgDoesNotExist)
		}
	}
	if len(fe) > 0 {
		return fe
	}
	pub, repo, ver := s.Publication != nil, s.Repository != nil, s.RepositoryVersion != nil
	switch {
	case pub && ver:
		return api.NonFieldError("Only one of the attributes 'publication' and 'repository_version' may be used simultaneously.")
	case repo && ver:
		return api.NonFieldError("Only one of the attributes 'repository' and 'repository_version' may be used simultaneously.")
	case repo && pub:
		return api.NonFieldError("Only one of the attributes 'repository' and 'publication' may be used simultaneously.")
	case s.Checkpoint && !repo:
		return api.NonFieldError("The 'checkpoint' attribute may only be used with the 'repository' attribute.")
	}
	return nil
}

// basePathConflict returns the 400 message for a base path that another
// distribution already has, or that nests with another's: "a/b" conflicts
// with "a" and with "a/b/c", never with "a/bc".
func basePathConflict(ctx context.Context, q queryer, selfID, p string) (string, error) {
	taken, err := exists(ctx, q, `SELECT 1 FROM distributions WHERE base_path = $1 AND id <> $2`, p, selfID)
	if err != nil || taken {
		return "This field must be unique.", err
	}
	args := []any{selfID, likeEscape(p) + "/%"}
	var ph []string
	for i := range len(p) {
		if p[i] == '/' {
			args = append(args, p[:i])
			ph = append(ph, fmt.Sprintf("$%d", len(args)))
		}
	}
	cond := `base_path LIKE $2 ESCAPE '\'`
	if len(ph) > 0 {
		cond = `(` + cond + ` OR base_path IN (` + strings.Join(ph, ", ") + `))`
	}
	var name string
	err = q.QueryRow(ctx, `SELECT name FROM distributions WHERE id <> $1 AND `+cond+` ORDER BY base_path LIMIT 1`, args...).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("check base path: %w", err)
	}
	return fmt.Sprintf("Overlaps with existing distribution '%s'", name), nil
}

// refProblem is a reference that names nothing of the right kind: a 400
// with DRF's message, unlike a failing lookup.
type refProblem string

func (p refProblem) Error() string { return string(p) }

// resolveRefs turns the references of a request body into ids (empty for
// null), with DRF's messages for references that name nothing.
func resolveRefs(c *api.Ctx, s *store.Store, b *FileDistribution, ch *distChange) error {
	fe := api.FieldErrors{}
	var failed error
	resolve := func(field string, ref *string, dst **string, find func(ref string) (string, error)) {
		if !c.Has(field) || failed != nil {
			return
		}
		id := ""
		if ref != nil && *ref != "" {
			var err error
			id, err = find(*ref)
			var rp refProblem
			switch {
			case errors.Is(err, store.ErrNotFound):
				fe.Add(field, msgDoesNotExist)
				return
			case errors.As(err, &rp):
				fe.Add(field, rp.Error())
				return
			case err != nil:
				failed = err
				return
			}
		}
		*dst = &id
	}
	typed := func(kind, suffix, query string) func(string) (string, error) {
		return func(ref string) (string, error) {
			id, _, ok := coreapi.TypedID(ref, kind, suffix)
			if !ok {
				return "", refProblem(msgNoURLMatch)
			}
			found, err := exists(c, s, query, id)
			if err != nil {
				return "", err
			}
			if !found {
				return "", store.ErrNotFound
			}
			return id, nil
		}
	}
	resolve("content_guard", b.ContentGuard, &ch.ContentGuard, typed("contentguards", "contentguard", `SELECT 1 FROM content_guards WHERE id = $1`))
	resolve("repository", b.Repository, &ch.Repository, typed("repositories", "repository", `SELECT 1 FROM repositories WHERE id = $1`))
	resolve("publication", b.Publication, &ch.Publication, typed("publications", "publication", `SELECT 1 FROM publications WHERE id = $1 AND complete`))
	resolve("repository_version", b.RepositoryVersion, &ch.RepositoryVersion, func(ref string) (string, error) {
		id, err := coreapi.RepositoryVersionRef(c, s, ref, false)
		if errors.Is(err, coreapi.ErrBadReference) {
			return "", refProblem(msgNoURLMatch)
		}
		return id, err
	})
	resolve("remote", b.Remote, &ch.Remote, func(ref string) (string, error) {
		id := coreapi.RemoteIDFromRef(ref)
		if id == "" {
			return "", refProblem(msgNoURLMatch)
		}
		var typ string
		err := s.QueryRow(c, `SELECT pulp_type FROM remotes WHERE id = $1`, id).Scan(&typ)
		if errors.Is(err, sql.ErrNoRows) {
			return "", store.ErrNotFound
		}
		if err != nil {
			return "", err
		}
		if typ != Type {
			return "", refProblem(msgIncorrectMatch)
		}
		return id, nil
	})
	if failed != nil {
		return fmt.Errorf("resolve references: %w", failed)
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}

// changeFromBody turns a decoded body into a change. Create and PUT
// replace the whole distribution: omitted optional fields take their
// defaults. PATCH changes only what the body names.
func changeFromBody(c *api.Ctx, s *store.Store, partial bool) (*distChange, error) {
	b := api.Body[FileDistribution](c)
	ch := &distChange{}
	if c.Has("name") {
		ch.Name = &b.Name
	}
	if c.Has("base_path") {
		ch.BasePath = &b.BasePath
	}
	if c.Has("hidden") || !partial {
		ch.Hidden = &b.Hidden
	}
	if c.Has("checkpoint") || !partial {
		ch.Checkpoint = &b.Checkpoint
	}
	if c.Has("cache_control") || !partial {
		v := ""
		if b.CacheControl != nil {
			v = *b.CacheControl
		}
		if msg := validCacheControl(v); msg != "" {
			return nil, api.FieldErrors{"cache_control": {msg}}
		}
		ch.CacheControl = &v
	}
	if c.Has("pulp_labels") || !partial {
		labels := b.PulpLabels
		if labels == nil {
			labels = map[string]string{}
		}
		ch.Labels = &labels
	}
	if err := resolveRefs(c, s, b, ch); err != nil {
		return nil, err
	}
	if !partial {
		empty := ""
		for _, p := range []**string{&ch.ContentGuard, &ch.Publication, &ch.Repository, &ch.RepositoryVersion, &ch.Remote} {
			if *p == nil {
				*p = &empty
			}
		}
	}
	return ch, nil
}

// newFileDistributionResponse renders a distribution row.
func newFileDistributionResponse(d *Deps, r *coreapi.DistributionRow) FileDistributionResponse {
	out := FileDistributionResponse{
		DistributionResponse: coreapi.NewDistributionResponse(r, d.ContentOrigin, d.ContentPathPrefix, true),
		Checkpoint:           r.Checkpoint,
		CacheControl:         nullable(r.CacheControl),
	}
	if r.PublicationID != nil && r.PublicationType != nil {
		h := coreapi.PublicationHref(*r.PublicationType, *r.PublicationID)
		out.Publication = &h
	}
	if r.RemoteID != nil && r.RemoteType != nil {
		h := coreapi.RemoteHref(*r.RemoteType, *r.RemoteID)
		out.Remote = &h
	}
	return out
}

// getFileDistribution returns the file distribution named by the request
// path, or a 404.
func getFileDistribution(c *api.Ctx, s *store.Store) (*coreapi.DistributionRow, error) {
	id := c.PathValue("pulp_id")
	if !store.ValidID(id) {
		return nil, api.NotFound()
	}
	r, err := coreapi.GetDistribution(c, s, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.PulpType != Type) {
		return nil, api.NotFound()
	}
	return r, err
}

// generalArgs mirrors the arguments of coreapi's general tasks, which run
// the mutator registered for kind. Distributions dispatch those tasks
// themselves because Pulp also holds a shared lock the coreapi helpers do
// not take.
type generalArgs struct {
	Kind string          `json:"kind"`
	ID   string          `json:"id,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
}

func dispatchGeneral(c *api.Ctx, d *Deps, name, id string, ch *distChange, immediate bool, exclusive ...string) (any, error) {
	var body json.RawMessage
	if ch != nil {
		b, err := json.Marshal(ch)
		if err != nil {
			return nil, err
		}
		body = b
	}
	t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{
		Name: name, Args: generalArgs{Kind: DistributionKind, ID: id, Body: body},
		Exclusive: exclusive, Shared: []string{coreapi.DistributionsLock},
		LoggingCID: c.CID, CreatedBy: c.User, Immediate: immediate,
	})
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: coreapi.TaskHref(t.ID)}, nil
}

func distributionRoutes(d *Deps) []*api.Route {
	detail := DistributionsPath + "{pulp_id}/"
	const tag = "Distributions: File"
	const href = "file_file_distribution_href"
	base := func(q *api.Query) { q.Where("d.pulp_type = ?", Type) }
	doc := coreapi.DistributionFilterSet(context.Background(), d.Store)
	update := func(partial bool) func(c *api.Ctx) (any, error) {
		return func(c *api.Ctx) (any, error) {
			cur, err := getFileDistribution(c, d.Store)
			if err != nil {
				return nil, err
			}
			ch, err := changeFromBody(c, d.Store, partial)
			if err != nil {
				return nil, err
			}
			old := stateOf(cur)
			next := ch.apply(old)
			if err := checkDistribution(c, d.Store, cur.ID, next, &old); err != nil {
				return nil, err
			}
			if next.equal(old) {
				c.SetStatus(http.StatusOK)
				return newFileDistributionResponse(d, cur), nil
			}
			locks := []string{coreapi.DistributionPRN(cur.PulpType, cur.ID)}
			if next.BasePath != old.BasePath {
				locks = append(locks, coreapi.DistributionBasePathLock)
			}
			return dispatchGeneral(c, d, coreapi.GeneralUpdateTask, cur.ID, ch, true, locks...)
		}
	}
	routes := []*api.Route{
		{OperationID: "distributions_file_file_list", Method: http.MethodGet, Path: DistributionsPath, Tag: tag, Summary: "List file distributions",
			Query: doc.Params(), List: true, Response: FileDistributionResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				fs := coreapi.DistributionFilterSet(c, d.Store)
				return coreapi.ListDistributions(c, d.Store, fs, base, func(r *coreapi.DistributionRow) FileDistributionResponse {
					return newFileDistributionResponse(d, r)
				})
			}},
		{OperationID: "distributions_file_file_create", Method: http.MethodPost, Path: DistributionsPath, Tag: tag, Summary: "Create a file distribution",
			Body: &FileDistribution{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				ch, err := changeFromBody(c, d.Store, false)
				if err != nil {
					return nil, err
				}
				if err := checkDistribution(c, d.Store, "", ch.apply(distState{}), nil); err != nil {
					return nil, err
				}
				// Creates are never immediate in Pulp (AsyncCreateMixin).
				return dispatchGeneral(c, d, coreapi.GeneralCreateTask, "", ch, false, coreapi.DistributionBasePathLock)
			}},
		{OperationID: "distributions_file_file_read", Method: http.MethodGet, Path: detail, Href: href, Tag: tag,
			Summary: "Inspect a file distribution", Response: FileDistributionResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				r, err := getFileDistribution(c, d.Store)
				if err != nil {
					return nil, err
				}
				return newFileDistributionResponse(d, r), nil
			}},
		{OperationID: "distributions_file_file_update", Method: http.MethodPut, Path: detail, Href: href, Tag: tag,
			Summary: "Update a file distribution", Body: &FileDistribution{}, Response: api.AsyncResponse{},
			Status: http.StatusAccepted, AltStatus: []int{http.StatusOK}, Handle: update(false)},
		{OperationID: "distributions_file_file_partial_update", Method: http.MethodPatch, Path: detail, Href: href, Tag: tag,
			Summary: "Update a file distribution", Body: &FileDistribution{}, Partial: true, Response: api.AsyncResponse{},
			Status: http.StatusAccepted, AltStatus: []int{http.StatusOK}, Handle: update(true)},
		{OperationID: "distributions_file_file_delete", Method: http.MethodDelete, Path: detail, Href: href, Tag: tag,
			Summary: "Delete a file distribution", Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				r, err := getFileDistribution(c, d.Store)
				if err != nil {
					return nil, err
				}
				return dispatchGeneral(c, d, coreapi.GeneralDeleteTask, r.ID, nil, true, coreapi.DistributionPRN(r.PulpType, r.ID))
			}},
	}
	labels := api.LabelActions{
		OperationPrefix: "distributions_file_file", Detail: detail, Href: href, Tag: tag, Status: http.StatusOK,
		Modify: func(c *api.Ctx, id string, fn func(map[string]string) error) error {
			if _, err := getFileDistribution(c, d.Store); err != nil {
				return err
			}
			_, err := d.Store.ModifyLabels(c, "distributions", id, fn)
			return err
		},
	}
	return append(routes, labels.Routes()...)
}

// maxCASAttempts bounds retries of an update that lost a race with a
// concurrent label change (which is not a task, so holds no lock).
const maxCASAttempts = 10

// registerDistributionMutator makes file distributions creatable,
// updatable and deletable by the general tasks.
func registerDistributionMutator(d *Deps) {
	decode := func(body json.RawMessage) (*distChange, error) {
		ch := &distChange{}
		if err := json.Unmarshal(body, ch); err != nil {
			return nil, fmt.Errorf("distribution: decode change: %w", err)
		}
		return ch, nil
	}
	d.Core.RegisterMutator(DistributionKind, coreapi.Mutator{
		Create: func(ctx context.Context, body json.RawMessage) (string, error) {
			ch, err := decode(body)
			if err != nil {
				return "", err
			}
			st := ch.apply(distState{Labels: map[string]string{}})
			id := store.NewID()
			err = d.Store.InTx(ctx, func(tx *store.Tx) error {
				if err := checkDistribution(ctx, tx, "", st, nil); err != nil {
					return err
				}
				now := store.Now()
				_, err := tx.Exec(ctx, `INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path, hidden, checkpoint,
					pulp_labels, content_guard_id, publication_id, repository_id, repository_version_id, remote_id, cache_control)
					VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
					id, now, Type, st.Name, st.BasePath, st.Hidden, st.Checkpoint, store.EncodeLabels(st.Labels),
					st.ContentGuard, st.Publication, st.Repository, st.RepositoryVersion, st.Remote, st.CacheControl)
				if err != nil {
					return err
				}
				return content.RecordServed(ctx, tx, id, d.retention())
			})
			if err != nil {
				return "", fmt.Errorf("distribution: create %s: %w", st.Name, err)
			}
			return DistributionHref(id), nil
		},
		Update: func(ctx context.Context, id string, body json.RawMessage) error {
			ch, err := decode(body)
			if err != nil {
				return err
			}
			for range maxCASAttempts {
				done := false
				err := d.Store.InTx(ctx, func(tx *store.Tx) error {
					cur, err := coreapi.GetDistribution(ctx, tx, id)
					if err != nil {
						return err
					}
					old := stateOf(cur)
					next := ch.apply(old)
					if err := checkDistribution(ctx, tx, id, next, &old); err != nil {
						return err
					}
					res, err := tx.Exec(ctx, `UPDATE distributions SET last_updated = $3, name = $4, base_path = $5, hidden = $6, checkpoint = $7,
						pulp_labels = $8, content_guard_id = $9, publication_id = $10, repository_id = $11, repository_version_id = $12, remote_id = $13,
						cache_control = $14 WHERE id = $1 AND last_updated = $2`,
						id, cur.LastUpdated, max(store.Now(), cur.LastUpdated+1), next.Name, next.BasePath, next.Hidden, next.Checkpoint,
						store.EncodeLabels(next.Labels), next.ContentGuard, next.Publication, next.Repository, next.RepositoryVersion, next.Remote, next.CacheControl)
					if err != nil {
						return err
					}
					n, _ := res.RowsAffected()
					done = n == 1
					if !done {
						return nil
					}
					return content.RecordServed(ctx, tx, id, d.retention())
				})
				if err != nil {
					return fmt.Errorf("distribution: update %s: %w", id, err)
				}
				if done {
					return nil
				}
			}
			return fmt.Errorf("distribution: update %s: too many concurrent changes", id)
		},
		Delete: func(ctx context.Context, id string) error {
			res, err := d.Store.Exec(ctx, `DELETE FROM distributions WHERE id = $1`, id)
			if err != nil {
				return fmt.Errorf("distribution: delete %s: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("distribution: delete %s: %w", id, store.ErrNotFound)
			}
			return nil
		},
	})
}

// registerPublishTasks registers the publish task and the distribution
// mutator.
func registerPublishTasks(d *Deps) {
	RegisterPublishTask(d)
	registerDistributionMutator(d)
}

// ResolveDistribution returns the publication a file distribution serves,
// by Pulp's rule for types serving publications: its publication; else
// the latest complete publication of its repository version; else the
// latest complete publication of any version of its repository, ordered
// by version number, then creation. It returns "" when the distribution
// serves nothing, and store.ErrNotFound when it does not exist.
func ResolveDistribution(ctx context.Context, s *store.Store, distID string) (publicationID string, err error) {
	return content.ResolvePublication(ctx, s, distID)
}

// maxCacheControl bounds a distribution's Cache-Control value.
const maxCacheControl = 1024

// validCacheControl reports why v cannot be sent as a Cache-Control
// header, or "": it must fit in a header line (no control characters,
// which could split the response) and be of reasonable length.
func validCacheControl(v string) string {
	if len(v) > maxCacheControl {
		return fmt.Sprintf("Ensure this field has no more than %d characters.", maxCacheControl)
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
		return "Enter a valid Cache-Control header value: printable ASCII only."
	}
	return ""
}
