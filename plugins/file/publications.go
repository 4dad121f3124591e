package file

import (
	"context"
	"errors"
	"net/http"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
)

// FilePublicationResponse is a file publication as the API shows it.
type FilePublicationResponse struct {
	coreapi.PublicationResponse
	Distributions []string `json:"distributions" api:"readonly" doc:"This publication is currently hosted as defined by these distributions."`
	Manifest      *string  `json:"manifest" api:"nullable" default:"PULP_MANIFEST" doc:"Filename to use for manifest file containing metadata for all the files."`
	Checkpoint    bool     `json:"checkpoint"`
}

// SchemaName names the component as Pulp does.
func (FilePublicationResponse) SchemaName() string { return "file.FilePublicationResponse" }

// FilePublication is the body of publications_file_file_create.
type FilePublication struct {
	RepositoryVersion *string `json:"repository_version"`
	Repository        *string `json:"repository" doc:"A URI of the repository to be published."`
	Manifest          *string `json:"manifest" api:"nullable" default:"PULP_MANIFEST" doc:"Filename to use for manifest file containing metadata for all the files."`
	Checkpoint        bool    `json:"checkpoint"`
}

// SchemaName names the component as Pulp does.
func (FilePublication) SchemaName() string { return "file.FilePublication" }

// DRF's messages for a related field that names nothing usable.
const (
	msgNoURLMatch     = "Invalid hyperlink - No URL match."
	msgDoesNotExist   = "Invalid hyperlink - Object does not exist."
	msgIncorrectMatch = "Invalid hyperlink - Incorrect URL match."
)

// publicationResponses renders publications with the distributions
// serving each (one query for the page).
func publicationResponses(ctx context.Context, s *store.Store, ps []*coreapi.PublicationRow) ([]FilePublicationResponse, error) {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	dists, err := coreapi.PublicationDistributions(ctx, s, ids)
	if err != nil {
		return nil, err
	}
	out := make([]FilePublicationResponse, len(ps))
	for i, p := range ps {
		ds := dists[p.ID]
		if ds == nil {
			ds = []string{}
		}
		out[i] = FilePublicationResponse{
			PublicationResponse: coreapi.NewPublicationResponse(p),
			Distributions:       ds,
			Manifest:            p.Manifest,
			Checkpoint:          p.Checkpoint,
		}
	}
	return out, nil
}

// getFilePublication returns the complete file publication named by the
// request path, or a 404.
func getFilePublication(c *api.Ctx, s *store.Store) (*coreapi.PublicationRow, error) {
	id := c.PathValue("pulp_id")
	if !store.ValidID(id) {
		return nil, api.NotFound()
	}
	p, err := coreapi.GetPublication(c, s, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.PulpType != Type) {
		return nil, api.NotFound()
	}
	return p, err
}

func publicationRoutes(d *Deps) []*api.Route {
	detail := PublicationsPath + "{pulp_id}/"
	const tag = "Publications: File"
	base := func(q *api.Query) { q.Where("p.pulp_type = ?", Type) }
	doc := coreapi.PublicationFilterSet(context.Background(), d.Store)
	return []*api.Route{
		{OperationID: "publications_file_file_list", Method: http.MethodGet, Path: PublicationsPath, Tag: tag, Summary: "List file publications",
			Query: doc.Params(), List: true, Response: FilePublicationResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				fs := coreapi.PublicationFilterSet(c, d.Store)
				return coreapi.ListPublications(c, d.Store, fs, base, func(ps []*coreapi.PublicationRow) ([]FilePublicationResponse, error) {
					return publicationResponses(c, d.Store, ps)
				})
			}},
		{OperationID: "publications_file_file_create", Method: http.MethodPost, Path: PublicationsPath, Tag: tag, Summary: "Create a file publication",
			Body: &FilePublication{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) { return createPublication(c, d) }},
		{OperationID: "publications_file_file_read", Method: http.MethodGet, Path: detail, Href: "file_file_publication_href", Tag: tag,
			Summary: "Inspect a file publication", Response: FilePublicationResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				p, err := getFilePublication(c, d.Store)
				if err != nil {
					return nil, err
				}
				out, err := publicationResponses(c, d.Store, []*coreapi.PublicationRow{p})
				if err != nil {
					return nil, err
				}
				return out[0], nil
			}},
		{OperationID: "publications_file_file_delete", Method: http.MethodDelete, Path: detail, Href: "file_file_publication_href", Tag: tag,
			Summary: "Delete a file publication", Status: http.StatusNoContent,
			Handle: func(c *api.Ctx) (any, error) {
				p, err := getFilePublication(c, d.Store)
				if err != nil {
					return nil, err
				}
				// Distributions serving it let go of it (ON DELETE SET NULL);
				// its published artifacts go with it.
				res, err := d.Store.Exec(c, `DELETE FROM publications WHERE id = $1 AND complete`, p.ID)
				if err != nil {
					return nil, err
				}
				if n, _ := res.RowsAffected(); n == 0 {
					return nil, api.NotFound()
				}
				return nil, nil
			}},
	}
}

// createPublication validates a publish request as Pulp's
// FilePublicationSerializer does and dispatches the publish task.
func createPublication(c *api.Ctx, d *Deps) (any, error) {
	b := api.Body[FilePublication](c)
	hasRepo, hasVersion := b.Repository != nil && *b.Repository != "", b.RepositoryVersion != nil && *b.RepositoryVersion != ""
	switch {
	case !hasRepo && !hasVersion:
		return nil, api.NonFieldError("Either the 'repository' or 'repository_version' need to be specified")
	case hasRepo && hasVersion:
		return nil, api.NonFieldError("Either the 'repository' or 'repository_version' need to be specified but not both.")
	case hasVersion && b.Checkpoint:
		return nil, api.NonFieldError("'checkpoint' may only be used with 'repository'")
	}
	manifest := b.Manifest
	if !c.Has("manifest") {
		m := DefaultManifest
		manifest = &m
	}
	if manifest != nil {
		if err := ValidatePath(*manifest); err != nil {
			return nil, api.FieldError("manifest", "Not a valid file name: "+err.Error())
		}
	}
	var v *repository.VersionRow
	if hasRepo {
		id := api.IDFromHref(*b.Repository, RepositoriesPath, PRNRepository)
		if id == "" {
			return nil, api.FieldError("repository", msgNoURLMatch)
		}
		var err error
		v, err = repository.Latest(c, d.Store, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.FieldError("repository", msgDoesNotExist)
		}
		if err != nil {
			return nil, err
		}
	} else {
		id, err := coreapi.RepositoryVersionRef(c, d.Store, *b.RepositoryVersion, false)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, api.FieldError("repository_version", msgDoesNotExist)
		case errors.Is(err, coreapi.ErrBadReference):
			return nil, api.FieldError("repository_version", msgNoURLMatch)
		case err != nil:
			return nil, err
		}
		if v, err = repository.GetVersionByID(c, d.Store, id); err != nil {
			return nil, err
		}
		repo, err := repository.Get(c, d.Store, v.RepositoryID)
		if err != nil {
			return nil, err
		}
		if repo.PulpType != Type {
			return nil, api.FieldError("repository_version", msgIncorrectMatch)
		}
	}
	t, err := dispatchPublish(c, d, c.CID, c.User, v.RepositoryID, v.ID, manifest, b.Checkpoint)
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: coreapi.TaskHref(t.ID)}, nil
}
