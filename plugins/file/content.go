package file

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// Task names of content creation. Pulp runs a create from an uploaded
// file as general_create_from_temp_file; its other creates run as the
// generic general_create, which pith's core keeps for resources whose task
// records one created resource, so they get a name of their own here.
const (
	ContentFromFileTask = "pulpcore.app.tasks.base.general_create_from_temp_file"
	ContentCreateTask   = "pulp_file.app.tasks.content.create"
)

const (
	contentHrefParam = "file_file_content_href"
	contentTag       = "Content: Files"
)

func init() {
	coreapi.RegisterContentType(coreapi.ContentType{PulpType: Type, Collection: ContentPath, PRNType: PRNContent})
}

// ContentResponse is a file content unit as the API shows it. The
// checksums are the attached artifact's, all null while the unit has none
// (on-demand content), as in Pulp.
type ContentResponse struct {
	api.Base
	PulpLabels   map[string]string `json:"pulp_labels"`
	VulnReport   *string           `json:"vuln_report" api:"readonly,contentNullString"`
	Artifact     *string           `json:"artifact" api:"contentNullString" doc:"Href of the artifact holding the file's bytes; null while not downloaded."`
	RelativePath string            `json:"relative_path" api:"required" doc:"Where the file is served below a distribution's base path: a relative path without '.', '..' or empty segments."`
	MD5          *string           `json:"md5" api:"readonly,contentNullString" doc:"MD5 of the artifact, if recorded."`
	SHA1         *string           `json:"sha1" api:"readonly,contentNullString" doc:"SHA-1 of the artifact, if recorded."`
	SHA224       *string           `json:"sha224" api:"readonly,contentNullString" doc:"SHA-224 of the artifact; null without one."`
	SHA256       *string           `json:"sha256" api:"readonly,contentNullString" doc:"SHA-256 of the artifact; null without one."`
	SHA384       *string           `json:"sha384" api:"readonly,contentNullString" doc:"SHA-384 of the artifact; null without one."`
	SHA512       *string           `json:"sha512" api:"readonly,contentNullString" doc:"SHA-512 of the artifact; null without one."`
}

// SchemaName names the component as Pulp does.
func (ContentResponse) SchemaName() string { return "file.FileContentResponse" }

// ContentCreate is the body of content_file_files_create: a relative path
// and exactly one source of bytes.
type ContentCreate struct {
	Repository *string `json:"repository" api:"writeonly" doc:"Href of a repository to add the unit to, in a new version."`
	ContentUpload
}

// SchemaName names the component as Pulp does.
func (ContentCreate) SchemaName() string { return "file.FileContent" }

// ContentUpload is the body of content_file_files_upload (no repository).
type ContentUpload struct {
	Overwrite    *bool             `json:"overwrite" api:"writeonly" default:"true" doc:"When false, adding the unit to the repository fails if the repository already holds other content at its relative_path."`
	PulpLabels   map[string]string `json:"pulp_labels" doc:"Labels of a new unit; an existing unit keeps its own."`
	Artifact     *string           `json:"artifact" doc:"Href of an existing artifact holding the bytes."`
	RelativePath string            `json:"relative_path" api:"required" minlen:"1" doc:"Where the file is served below a distribution's base path: a relative path without '.', '..' or empty segments."`
	File         *api.File         `json:"file" api:"writeonly" doc:"The file's bytes (multipart)."`
	Upload       *string           `json:"upload" api:"writeonly" doc:"Href of a complete chunked upload holding the bytes; it is deleted once used."`
	FileURL      *string           `json:"file_url" api:"writeonly" doc:"An http(s) URL to download the bytes from, or a file URL below an allowed import path."`
}

// SchemaName names the component as Pulp does.
func (ContentUpload) SchemaName() string { return "file.FileContentUpload" }

// contentArgs is a validated content create: the task's arguments.
type contentArgs struct {
	RelativePath string            `json:"relative_path"`
	ArtifactID   string            `json:"artifact_id,omitempty"`
	UploadID     string            `json:"upload_id,omitempty"`
	FileURL      string            `json:"file_url,omitempty"`
	RepoID       string            `json:"repository_id,omitempty"`
	Overwrite    bool              `json:"overwrite"`
	Labels       map[string]string `json:"pulp_labels,omitempty"`
}

func contentRoutes(d *Deps) []*api.Route {
	fs := d.contentFilters()
	detail := ContentPath + "{pulp_id}/"
	routes := []*api.Route{
		{OperationID: "content_file_files_list", Method: http.MethodGet, Path: ContentPath, Tag: contentTag,
			Summary: "List file contents", Query: fs.Params(), List: true, Response: ContentResponse{},
			Handle: func(c *api.Ctx) (any, error) { return d.listFileContent(c, fs) }},
		{OperationID: "content_file_files_create", Method: http.MethodPost, Path: ContentPath, Tag: contentTag,
			Summary: "Create a file content", Body: &ContentCreate{}, Multipart: true,
			Response: api.AsyncResponse{}, Status: http.StatusAccepted, Handle: d.createFileContent},
		{OperationID: "content_file_files_read", Method: http.MethodGet, Path: detail, Href: contentHrefParam, Tag: contentTag,
			Summary: "Inspect a file content", Response: ContentResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				id := c.PathValue("pulp_id")
				if !store.ValidID(id) {
					return nil, api.NotFound()
				}
				return d.fileContentByID(c, id)
			}},
		{OperationID: "content_file_files_upload", Method: http.MethodPost, Path: ContentPath + "upload/", Tag: contentTag,
			Summary: "Synchronous file upload", Body: &ContentUpload{}, Multipart: true,
			Response: ContentResponse{}, Status: http.StatusCreated, Handle: d.uploadFileContent},
	}
	labels := api.LabelActions{
		OperationPrefix: "content_file_files", Detail: detail, Href: contentHrefParam, Tag: contentTag,
		Status: http.StatusCreated,
		Modify: func(c *api.Ctx, id string, fn func(map[string]string) error) error {
			if !store.ValidID(id) {
				return api.NotFound()
			}
			if _, err := d.fileContentByID(c, id); err != nil {
				return err
			}
			_, err := d.Store.ModifyLabels(c, "content", id, fn)
			return err
		},
	}
	return append(routes, labels.Routes()...)
}

func registerContentTasks(d *Deps) {
	d.Tasks.Register(ContentFromFileTask, d.runCreateFileContent)
	d.Tasks.Register(ContentCreateTask, d.runCreateFileContent)
}

// createFileContent validates a create, stores an uploaded file as an
// artifact right away (the spool file lives only as long as the request),
// and dispatches the task that makes the unit and, with a repository, the
// new version.
func (d *Deps) createFileContent(c *api.Ctx) (any, error) {
	b := api.Body[ContentCreate](c)
	args, err := d.validateFileContent(c, &b.ContentUpload, b.Repository)
	if err != nil {
		return nil, err
	}
	name := ContentCreateTask
	if b.File != nil {
		a, err := d.contentSaveFile(c, b.File)
		if err != nil {
			return nil, err
		}
		args.ArtifactID = a.ID
		name = ContentFromFileTask
	}
	var exclusive []string
	if args.UploadID != "" {
		exclusive = append(exclusive, contentUploadPRN(args.UploadID))
	}
	if args.RepoID != "" {
		exclusive = append(exclusive, RepoPRN(args.RepoID))
	}
	t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{
		Name: name, Args: args, Exclusive: exclusive, LoggingCID: c.CID, CreatedBy: c.User,
		// Local sources finish quickly: run them inline when the locks are
		// free, so clients polling the task rarely wait. A download may
		// take long and belongs to a worker.
		Immediate: args.FileURL == "",
	})
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: coreapi.TaskHref(t.ID)}, nil
}

// uploadFileContent is the synchronous create: the unit is made within the
// request and answered with 201.
func (d *Deps) uploadFileContent(c *api.Ctx) (any, error) {
	b := api.Body[ContentUpload](c)
	args, err := d.validateFileContent(c, b, nil)
	if err != nil {
		return nil, err
	}
	if b.File != nil {
		a, err := d.contentSaveFile(c, b.File)
		if err != nil {
			return nil, err
		}
		args.ArtifactID = a.ID
	}
	if args.FileURL != "" {
		// Here the client waits for the download, so its failure is the
		// request's.
		a, err := d.contentArtifactFromURL(c, args.FileURL)
		if err != nil {
			return nil, api.FieldError("file_url", err.Error())
		}
		args.ArtifactID, args.FileURL = a.ID, ""
	}
	id, _, err := d.makeFileContent(c, args)
	if err != nil {
		return nil, err
	}
	d.contentDropUpload(c, args.UploadID)
	return d.fileContentByID(c, id)
}

func contentUploadPRN(id string) string { return "prn:core.upload:" + id }

// validateFileContent checks everything a create can be refused for before
// anything is written, collecting the errors of every field.
func (d *Deps) validateFileContent(ctx context.Context, b *ContentUpload, repo *string) (*contentArgs, error) {
	args := &contentArgs{RelativePath: b.RelativePath, Overwrite: b.Overwrite == nil || *b.Overwrite, Labels: b.PulpLabels}
	fe := api.FieldErrors{}
	if err := ValidatePath(b.RelativePath); err != nil {
		fe.Add("relative_path", err.Error())
	}
	if lfe := api.ValidateLabels(b.PulpLabels); lfe != nil {
		for k, msgs := range lfe {
			fe[k] = append(fe[k], msgs...)
		}
	}
	sources := 0
	for _, present := range []bool{b.File != nil, b.Artifact != nil, b.Upload != nil, b.FileURL != nil} {
		if present {
			sources++
		}
	}
	switch {
	case sources == 0:
		fe.Add("non_field_errors", "One of 'file', 'artifact', 'upload' or 'file_url' must be specified.")
	case sources > 1:
		fe.Add("non_field_errors", "Only one of 'file', 'artifact', 'upload' or 'file_url' may be specified.")
	}
	if b.Artifact != nil {
		id, msg, err := d.contentArtifactRef(ctx, *b.Artifact)
		if err != nil {
			return nil, err
		}
		if msg != "" {
			fe.Add("artifact", msg)
		}
		args.ArtifactID = id
	}
	if b.Upload != nil {
		id, msg, err := d.contentUploadRef(ctx, *b.Upload)
		if err != nil {
			return nil, err
		}
		if msg != "" {
			fe.Add("upload", msg)
		}
		args.UploadID = id
	}
	if b.FileURL != nil {
		if *b.FileURL == "" {
			fe.Add("file_url", "This field may not be blank.")
		} else if msg := d.remoteURLProblem(*b.FileURL); msg != "" {
			fe.Add("file_url", msg)
		}
		args.FileURL = *b.FileURL
	}
	if repo != nil {
		id := api.IDFromHref(*repo, RepositoriesPath, PRNRepository)
		if id == "" {
			fe.Add("repository", "Invalid hyperlink - No URL match.")
		} else if r, err := repository.Get(ctx, d.Store, id); errors.Is(err, store.ErrNotFound) || (err == nil && r.PulpType != Type) {
			fe.Add("repository", "Invalid hyperlink - Object does not exist.")
		} else if err != nil {
			return nil, err
		}
		args.RepoID = id
	}
	if len(fe) > 0 {
		return nil, fe
	}
	return args, nil
}

// contentArtifactRef resolves an artifact href or PRN; msg is the 400 message
// when it names nothing.
func (d *Deps) contentArtifactRef(ctx context.Context, ref string) (id, msg string, err error) {
	id = api.IDFromHref(ref, coreapi.ArtifactsPath, "core.artifact")
	if id == "" {
		return "", "Invalid hyperlink - No URL match.", nil
	}
	if _, err := d.Store.GetArtifact(ctx, id); errors.Is(err, store.ErrNotFound) {
		return "", "Invalid hyperlink - Object does not exist.", nil
	} else if err != nil {
		return "", "", err
	}
	return id, "", nil
}

// contentUploadRef resolves an upload href or PRN and checks that its chunks
// cover every byte; msg is the 400 message otherwise.
func (d *Deps) contentUploadRef(ctx context.Context, ref string) (id, msg string, err error) {
	id = api.IDFromHref(ref, coreapi.UploadsPath, "core.upload")
	if id == "" {
		return "", "Invalid hyperlink - No URL match.", nil
	}
	u, err := d.Store.GetUpload(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", "Invalid hyperlink - Object does not exist.", nil
	} else if err != nil {
		return "", "", err
	}
	chunks, err := d.Store.UploadChunks(ctx, id)
	if err != nil {
		return "", "", err
	}
	if !contentChunksCover(chunks, u.Size) {
		return "", "The upload is incomplete: its chunks do not cover all bytes.", nil
	}
	return id, "", nil
}

// contentChunksCover reports whether chunks, ordered by offset, cover [0, size).
func contentChunksCover(chunks []store.UploadChunk, size int64) bool {
	var next int64
	for _, ch := range chunks {
		if ch.Offset > next {
			return false
		}
		next = max(next, ch.Offset+ch.Size)
	}
	return next == size
}

// contentUploadPath is where the core keeps an upload's bytes (coreapi's layout).
func (d *Deps) contentUploadPath(id string) string {
	return filepath.Join(d.Core.DataDir, "upload", id)
}

func (d *Deps) contentSaveFile(ctx context.Context, f *api.File) (*store.Artifact, error) {
	r, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("file: open uploaded file: %w", err)
	}
	defer r.Close()
	a, _, err := coreapi.SaveArtifact(ctx, d.Core, r, digest.Expect{Size: f.Size})
	return a, err
}

func (d *Deps) runCreateFileContent(ctx context.Context, t *tasking.Task) error {
	var a contentArgs
	if err := t.Args(&a); err != nil {
		return err
	}
	id, created, err := d.makeFileContent(ctx, &a)
	if err != nil {
		return err
	}
	if created {
		// A unit this task made must not outlive its failure. Cleanups run
		// in reverse order, so the version's discard below runs first.
		t.OnCleanup(func(ctx context.Context) error { return d.dropFreshFileContent(ctx, id) })
	}
	if err := t.AddCreatedResource(ContentHref(id)); err != nil {
		return err
	}
	if a.RepoID != "" {
		v, err := repository.NewVersion(ctx, d.Store, a.RepoID, nil)
		if err != nil {
			return err
		}
		t.OnCleanup(v.Discard)
		if !a.Overwrite {
			if err := d.checkOverwrite(ctx, v, []string{id}); err != nil {
				return tasking.WithCode(err, "PLP0023")
			}
		}
		if err := v.Add(ctx, []string{id}); err != nil {
			return err
		}
		if err := d.finishVersion(ctx, t, v); err != nil {
			return err
		}
	}
	d.contentDropUpload(ctx, a.UploadID)
	return nil
}

// makeFileContent gets or creates the unit (relative_path, digest of the
// source's bytes), attaching the artifact to a unit that had none. created
// tells whether this call inserted the unit.
func (d *Deps) makeFileContent(ctx context.Context, a *contentArgs) (id string, created bool, err error) {
	art, err := d.contentSourceArtifact(ctx, a)
	if err != nil {
		return "", false, err
	}
	u := Unit{RelativePath: a.RelativePath, Digest: art.SHA256}
	ids, err := d.Store.SaveContent(ctx, Type, []store.NewContent{{
		NaturalKey: u.NaturalKey(), RepoKey: u.RepoKey(), Labels: a.Labels,
		Artifacts: []store.NewContentArtifact{{RelativePath: u.RelativePath, ArtifactID: art.ID}},
	}}, func(tx *store.Tx, _ []int, newIDs []string) error {
		created = true
		return SaveDetail(ctx, tx, []Unit{u}, newIDs)
	})
	if err != nil {
		return "", false, err
	}
	id = ids[0]
	if !created {
		// Reuse counts as interest: orphan cleanup must spare the unit, and
		// a failing task that made it must not delete it now (see
		// dropFreshFileContent).
		if _, err := d.Store.Exec(ctx, `UPDATE content SET timestamp_of_interest = CASE WHEN $2 > created THEN $2 ELSE created + 1 END WHERE id = $1`,
			id, store.Now()); err != nil {
			return "", false, fmt.Errorf("file: touch content %s: %w", id, err)
		}
	}
	return id, created, nil
}

// dropFreshFileContent deletes a unit a failed task created, unless anything
// took an interest in it meanwhile: a repository holds it, or another
// create reused it (which touched it).
func (d *Deps) dropFreshFileContent(ctx context.Context, id string) error {
	_, err := d.Store.Exec(ctx, `DELETE FROM content WHERE id = $1 AND timestamp_of_interest = created
		AND NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = $1)`, id)
	if err != nil {
		return fmt.Errorf("file: drop content %s: %w", id, err)
	}
	return nil
}

// contentSourceArtifact returns the artifact holding the create's bytes, storing
// them first for an upload or a file_url.
func (d *Deps) contentSourceArtifact(ctx context.Context, a *contentArgs) (*store.Artifact, error) {
	switch {
	case a.ArtifactID != "":
		art, err := d.Store.GetArtifact(ctx, a.ArtifactID)
		if err != nil {
			return nil, fmt.Errorf("file: artifact %s: %w", a.ArtifactID, err)
		}
		// Touch it so orphan cleanup spares it while the unit is made.
		if _, err := d.Store.ArtifactsBySHA256(ctx, []string{art.SHA256}); err != nil {
			return nil, err
		}
		return art, nil
	case a.UploadID != "":
		return d.contentArtifactFromUpload(ctx, a.UploadID)
	case a.FileURL != "":
		return d.contentArtifactFromURL(ctx, a.FileURL)
	}
	return nil, errors.New("file: content create without a source")
}

func (d *Deps) contentArtifactFromUpload(ctx context.Context, id string) (*store.Artifact, error) {
	u, err := d.Store.GetUpload(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("file: upload %s: %w", id, err)
	}
	var r io.Reader = strings.NewReader("")
	f, err := os.Open(d.contentUploadPath(id))
	switch {
	case err == nil:
		defer f.Close()
		r = io.LimitReader(f, u.Size)
	case errors.Is(err, os.ErrNotExist) && u.Size == 0:
		// A zero-byte upload has no file.
	default:
		return nil, fmt.Errorf("file: open upload %s: %w", id, err)
	}
	a, _, err := coreapi.SaveArtifact(ctx, d.Core, r, digest.Expect{Size: u.Size})
	if err != nil {
		return nil, fmt.Errorf("file: save upload %s: %w", id, err)
	}
	return a, nil
}

// contentArtifactFromURL downloads url straight into artifact storage, hashing
// while it writes.
func (d *Deps) contentArtifactFromURL(ctx context.Context, rawURL string) (*store.Artifact, error) {
	dl, err := download.New(download.Config{AllowedImportPaths: d.AllowedImportPaths, Logger: d.contentLog()})
	if err != nil {
		return nil, err
	}
	defer dl.Close()
	res, err := dl.Download(ctx, rawURL, digest.Expect{Size: digest.UnknownSize}, func() (download.Dest, error) {
		return d.Storage.Create(ctx)
	})
	if err != nil {
		return nil, err
	}
	w := res.Dest.(storage.Writer)
	defer w.Cancel(context.WithoutCancel(ctx))
	com, err := w.Commit(ctx, digest.Expect{Size: res.Size, Digests: map[string]string{"sha256": res.Digests.SHA256}})
	if err != nil {
		return nil, fmt.Errorf("file: store %s: %w", rawURL, err)
	}
	a, _, err := d.Store.InsertArtifact(ctx, nil, &store.Artifact{
		File: com.Name, Size: com.Size,
		SHA224: com.Digests.SHA224, SHA256: com.Digests.SHA256, SHA384: com.Digests.SHA384, SHA512: com.Digests.SHA512,
	})
	return a, err
}

// contentDropUpload deletes an upload once its bytes became content, as Pulp
// does. Failing to is not the create's failure: orphaned uploads are
// harmless and deletable.
func (d *Deps) contentDropUpload(ctx context.Context, id string) {
	if id == "" {
		return
	}
	if err := d.Store.DeleteUpload(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		d.contentLog().Warn("delete upload after content create", "upload", id, "err", err)
		return
	}
	if err := os.Remove(d.contentUploadPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.contentLog().Warn("remove upload file after content create", "upload", id, "err", err)
	}
}

func (d *Deps) contentLog() *slog.Logger {
	switch {
	case d.Log != nil:
		return d.Log
	case d.Core != nil && d.Core.Log != nil:
		return d.Core.Log
	}
	return slog.Default()
}

// contentFrom is the FROM clause of file content reads; filters use the
// aliases c (content) and fc (file_content).
const contentFrom = ` FROM content c JOIN file_content fc ON fc.content_id = c.id`

// contentColumns and contentJoins complete a file content read: the
// unit's artifact, if it has one, gives the checksums.
const (
	contentColumns = `SELECT c.id, c.created, c.last_updated, c.pulp_labels, fc.relative_path,
	a.id, a.md5, a.sha1, a.sha224, a.sha256, a.sha384, a.sha512`
	contentJoins = `
	LEFT JOIN content_artifacts ca ON ca.content_id = c.id AND ca.relative_path = fc.relative_path
	LEFT JOIN artifacts a ON a.id = ca.artifact_id`
)

func (d *Deps) queryFileContent(ctx context.Context, where string, args []any, orderBy string, limit, offset int) ([]ContentResponse, error) {
	q := contentColumns + contentFrom + contentJoins + where
	if limit > 0 {
		// Page through unit ids alone, then join the page's artifacts, so
		// that skipped rows cost no joins.
		q = contentColumns + ` FROM (SELECT c.id` + contentFrom + where + ` ORDER BY ` + orderBy +
			fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset) + `) page
			JOIN content c ON c.id = page.id JOIN file_content fc ON fc.content_id = c.id` + contentJoins + ` ORDER BY ` + orderBy
	}
	rows, err := d.Store.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("file: list content: %w", err)
	}
	defer rows.Close()
	out := []ContentResponse{}
	for rows.Next() {
		var (
			r                                ContentResponse
			id, labels                       string
			created, updated                 int64
			artID, md5, sha1, sha224, sha256 sql.NullString
			sha384, sha512                   sql.NullString
		)
		if err := rows.Scan(&id, &created, &updated, &labels, &r.RelativePath,
			&artID, &md5, &sha1, &sha224, &sha256, &sha384, &sha512); err != nil {
			return nil, fmt.Errorf("file: list content: %w", err)
		}
		r.Base = api.NewBase(ContentHref(id), PRNContent, id, created, updated)
		if err := json.Unmarshal([]byte(labels), &r.PulpLabels); err != nil || r.PulpLabels == nil {
			r.PulpLabels = map[string]string{}
		}
		if artID.Valid {
			href := api.Href(coreapi.ArtifactsPath, artID.String)
			r.Artifact = &href
			r.MD5, r.SHA1, r.SHA224 = contentNullString(md5), contentNullString(sha1), contentNullString(sha224)
			r.SHA256, r.SHA384, r.SHA512 = contentNullString(sha256), contentNullString(sha384), contentNullString(sha512)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func contentNullString(s sql.NullString) *string {
	if !s.Valid || s.String == "" {
		return nil
	}
	return &s.String
}

func (d *Deps) fileContentByID(ctx context.Context, id string) (*ContentResponse, error) {
	rs, err := d.queryFileContent(ctx, " WHERE c.id = $1", []any{id}, "", 0, 0)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, api.NotFound()
	}
	return &rs[0], nil
}

// pathColumn is a unit's relative path as the list orders it: the content
// row's repo key, which for file units is the path, indexed with the type
// by content (pulp_type, repo_key). file_content has no index on its path
// (migration 0072).
const pathColumn = "c.repo_key"

// pathLookups renders the relative_path lookups on content.repo_key.
var pathLookups = &api.FilterSet{Filters: []api.Filter{{Name: "relative_path", Column: "repo_key", Kind: api.Text}}}

// pathFilter filters by relative path (api.TextLookups) through content
// (pulp_type, repo_key), in a subquery: given the type condition beside the
// list's ORDER BY, SQLite (which has no statistics) would rather walk all
// units of the type in order than look the paths up.
func pathFilter(q *api.Query, lookup, v string) error {
	key := "relative_path"
	if lookup != "" {
		key += "__" + lookup
	}
	sub := &api.Query{Regex: q.Regex}
	if _, err := pathLookups.Build(url.Values{key: {v}}, sub); err != nil {
		return err
	}
	cond, args := sub.SQL()
	// Renumber the subquery's placeholders ($1…) into the list query's.
	var b strings.Builder
	for i := 0; i < len(cond); i++ {
		j := i + 1
		for j < len(cond) && cond[j] >= '0' && cond[j] <= '9' {
			j++
		}
		if cond[i] != '$' || j == i+1 {
			b.WriteByte(cond[i])
			continue
		}
		n, _ := strconv.Atoi(cond[i+1 : j])
		b.WriteString(q.Arg(args[n-1]))
		i = j - 1
	}
	cond = strings.TrimPrefix(b.String(), " WHERE ")
	if cond == "" {
		return nil
	}
	q.Where("c.id IN (SELECT id FROM content WHERE pulp_type = " + q.Arg(Type) + " AND " + cond + ")")
	return nil
}

// contentFilters are Pulp's FileContentFilter plus the common ones.
func (d *Deps) contentFilters() *api.FilterSet {
	fs := &api.FilterSet{
		DefaultOrder: "c.created DESC",
		Tiebreak:     "c.id DESC",
		Ordering: map[string]string{
			"pulp_id": "c.id", "pulp_created": "c.created", "pulp_last_updated": "c.last_updated",
			"relative_path": pathColumn, "digest": "fc.digest",
		},
		Filters: []api.Filter{
			{Name: "relative_path", Kind: api.Custom, Lookups: api.TextLookups, Doc: "Relative path of the file.", Apply: pathFilter},
			{Name: "digest", Column: "fc.digest", Kind: api.Exact, Doc: "SHA-256 of the file."},
			{Name: "sha256", Column: "fc.digest", Kind: api.Exact, Lookups: []string{""}, Doc: "SHA-256 of the file."},
		},
	}
	if d.Store.Dialect() == "sqlite" {
		// No index on file_content (digest) there (migration 0070).
		for i, f := range fs.Filters {
			if f.Column == "fc.digest" {
				lookups := f.Lookups
				if lookups == nil {
					lookups = []string{"", "in"} // Exact's default
				}
				fs.Filters[i] = api.Filter{Name: f.Name, Kind: api.Custom, Lookups: lookups, Doc: f.Doc, Apply: digestByNaturalKey}
			}
		}
	}
	fs.Filters = append(fs.Filters, coreapi.ContentVersionFilters()...)
	fs.Filters = append(fs.Filters,
		d.Core.OrphanedForFilter(),
		api.LabelSelectFilter("c.pulp_labels", d.Store.JSONText),
		api.Filter{Name: "pulp_id", Column: "c.id", Kind: api.Exact, Lookups: []string{"in"}},
		api.Filter{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Doc: "Comma-separated list.", Apply: contentIDsIn},
		api.Filter{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Doc: "Comma-separated list.", Apply: contentIDsIn},
		api.Filter{Name: "pulp_created", Column: "c.created", Kind: api.Time},
		api.Filter{Name: "pulp_last_updated", Column: "c.last_updated", Kind: api.Time},
	)
	return fs
}

// digestByNaturalKey filters by sha256 (lookups "" and "in") through the
// units' natural keys, "<digest>:<path>": every unit with a digest is the
// range [digest+":", digest+";") of the content (pulp_type, natural_key)
// index. SQLite has no index on file_content (digest): a sync added one
// scattered entry to it per unit, and this filter was its only reader.
// SQLite compares text bytewise, so the range is exact; PostgreSQL, whose
// collation may not be, keeps the index and the plain filter.
func digestByNaturalKey(q *api.Query, lookup, v string) error {
	vals := []string{v}
	if lookup == "in" {
		vals = vals[:0]
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				vals = append(vals, x)
			}
		}
	}
	if len(vals) == 0 {
		q.Where("1 = 0")
		return nil
	}
	// The ranges go into a subquery: beside an ORDER BY, SQLite would
	// rather walk content in order than take a multi-index OR of them.
	ors := make([]string, len(vals))
	digests := make([]string, len(vals))
	for i, x := range vals {
		ors[i] = "(pulp_type = " + q.Arg(Type) + " AND natural_key >= " + q.Arg(x+":") + " AND natural_key < " + q.Arg(x+";") + ")"
		digests[i] = q.Arg(x)
	}
	q.Where("c.id IN (SELECT id FROM content WHERE " + strings.Join(ors, " OR ") + ") AND fc.digest IN (" + strings.Join(digests, ", ") + ")")
	return nil
}

// contentIDsIn filters by a comma-separated list of file content hrefs or
// PRNs.
func contentIDsIn(q *api.Query, _, v string) error {
	var ph []string
	for _, ref := range strings.Split(v, ",") {
		if ref = strings.TrimSpace(ref); ref == "" {
			continue
		}
		id := api.IDFromHref(ref, ContentPath, PRNContent)
		if id == "" {
			return api.FieldErrors{"pulp_href": {fmt.Sprintf("%q is not a valid file content reference.", ref)}}
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

func (d *Deps) listFileContent(c *api.Ctx, fs *api.FilterSet) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	vals := c.Query()
	if err := coreapi.CheckVersionRefs(c, d.Store, vals); err != nil {
		return nil, err
	}
	q := &api.Query{Regex: d.Store.RegexMatch}
	order, err := fs.Build(vals, q)
	if err != nil {
		return nil, err
	}
	where, args := q.SQL()
	n, ok, err := coreapi.VersionFilterCount(c, d.Store, vals, Type)
	if err != nil {
		return nil, err
	}
	if !ok {
		if n, err = d.countFileContent(c, where, args); err != nil {
			return nil, err
		}
	}
	if strings.Contains(order, pathColumn) {
		// Ordered by path: the type condition lets the page walk content
		// (pulp_type, repo_key) in order instead of sorting every unit. The
		// count above, unfiltered, keeps its maintained total.
		args = append(slices.Clone(args), Type)
		cond := "c.pulp_type = $" + strconv.Itoa(len(args))
		if where == "" {
			where = " WHERE " + cond
		} else {
			where += " AND " + cond
		}
	}
	rows, err := d.queryFileContent(c, where, args, order, limit, offset)
	if err != nil {
		return nil, err
	}
	return c.Page(n, limit, offset, rows), nil
}

// countFileContent counts matching units. Unfiltered, it is the maintained
// count of all content while file units are the only kind there is.
func (d *Deps) countFileContent(ctx context.Context, where string, args []any) (int64, error) {
	var n int64
	if where == "" {
		var other bool
		if err := d.Store.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM content WHERE pulp_type <> $1)`, Type).Scan(&other); err != nil {
			return 0, fmt.Errorf("file: count content: %w", err)
		}
		if !other {
			return d.Store.Count(ctx, "content")
		}
	}
	if err := d.Store.QueryRow(ctx, `SELECT COUNT(*)`+contentFrom+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("file: count content: %w", err)
	}
	return n, nil
}
