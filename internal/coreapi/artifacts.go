package coreapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/store"
)

// ArtifactsPath is the artifacts collection.
const ArtifactsPath = api.Root + "artifacts/"

// ArtifactResponse is an artifact as the API shows it.
type ArtifactResponse struct {
	api.Base
	File   string  `json:"file" api:"required" doc:"The stored file."`
	Size   int64   `json:"size" doc:"The size of the file in bytes."`
	MD5    *string `json:"md5" api:"nullable" doc:"The MD5 checksum of the file if available."`
	SHA1   *string `json:"sha1" api:"nullable" doc:"The SHA-1 checksum of the file if available."`
	SHA224 *string `json:"sha224" api:"nullable" doc:"The SHA-224 checksum of the file if available."`
	SHA256 *string `json:"sha256" api:"nullable" doc:"The SHA-256 checksum of the file if available."`
	SHA384 *string `json:"sha384" api:"nullable" doc:"The SHA-384 checksum of the file if available."`
	SHA512 *string `json:"sha512" api:"nullable" doc:"The SHA-512 checksum of the file if available."`
}

// ArtifactCreate is the multipart body of artifacts_create.
type ArtifactCreate struct {
	File   api.File `json:"file" api:"required" doc:"The stored file."`
	Size   *int64   `json:"size" doc:"The size of the file in bytes."`
	MD5    *string  `json:"md5" api:"nullable" doc:"The MD5 checksum of the file if available."`
	SHA1   *string  `json:"sha1" api:"nullable" doc:"The SHA-1 checksum of the file if available."`
	SHA224 *string  `json:"sha224" api:"nullable" doc:"The SHA-224 checksum of the file if available."`
	SHA256 *string  `json:"sha256" api:"nullable" doc:"The SHA-256 checksum of the file if available."`
	SHA384 *string  `json:"sha384" api:"nullable" doc:"The SHA-384 checksum of the file if available."`
	SHA512 *string  `json:"sha512" api:"nullable" doc:"The SHA-512 checksum of the file if available."`
}

// SchemaName names the component as Pulp does.
func (ArtifactCreate) SchemaName() string { return "Artifact" }

// SchemaName names the component as Pulp does.
func (ArtifactResponse) SchemaName() string { return "ArtifactResponse" }

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// NewArtifactResponse renders an artifact row.
func NewArtifactResponse(a *store.Artifact) ArtifactResponse {
	return ArtifactResponse{
		Base:   api.NewBase(api.Href(ArtifactsPath, a.ID), "core.artifact", a.ID, a.Created, a.LastUpdated),
		File:   a.File,
		Size:   a.Size,
		MD5:    a.MD5,
		SHA1:   a.SHA1,
		SHA224: strp(a.SHA224),
		SHA256: strp(a.SHA256),
		SHA384: strp(a.SHA384),
		SHA512: strp(a.SHA512),
	}
}

func artifactFilters() *api.FilterSet {
	fs := &api.FilterSet{
		DefaultOrder: "created DESC",
		Tiebreak:     "id DESC",
		Ordering:     map[string]string{"pulp_created": "created", "size": "size", "pulp_id": "id", "pulp_last_updated": "last_updated"},
		Filters: []api.Filter{
			{Name: "pulp_id", Column: "id", Kind: api.Exact, Lookups: []string{"in"}},
			{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Apply: hrefIn(ArtifactsPath, "core.artifact")},
			{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Apply: hrefIn(ArtifactsPath, "core.artifact")},
			{Name: "pulp_created", Column: "created", Kind: api.Time},
		},
	}
	for _, alg := range []string{"md5", "sha1", "sha224", "sha256", "sha384", "sha512"} {
		fs.Filters = append(fs.Filters, api.Filter{Name: alg, Column: alg, Kind: api.Exact, Lookups: []string{""}})
	}
	return fs
}

// hrefIn filters by a list of hrefs or PRNs of one collection.
func hrefIn(collection, prnType string) func(q *api.Query, lookup, v string) error {
	return func(q *api.Query, _, v string) error {
		var ph []string
		for _, ref := range strings.Split(v, ",") {
			ref = strings.TrimSpace(ref)
			if ref == "" {
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

func artifactRoutes(d *Deps) []*api.Route {
	fs := artifactFilters()
	return []*api.Route{
		{OperationID: "artifacts_list", Method: "GET", Path: ArtifactsPath, Tag: "Artifacts", Summary: "List artifacts",
			Query: fs.Params(), List: true, Response: ArtifactResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				return listTable(c, d, fs, "artifacts", d.Store.ListArtifacts, each(NewArtifactResponse))
			}},
		{OperationID: "artifacts_read", Method: "GET", Path: ArtifactsPath + "{pulp_id}/", Href: "artifact_href", Tag: "Artifacts",
			Summary: "Inspect an artifact", Response: ArtifactResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				if !store.ValidID(c.PathValue("pulp_id")) {
					return nil, api.NotFound()
				}
				a, err := d.Store.GetArtifact(c, c.PathValue("pulp_id"))
				if err != nil {
					return nil, err
				}
				return NewArtifactResponse(a), nil
			}},
		{OperationID: "artifacts_create", Method: "POST", Path: ArtifactsPath, Tag: "Artifacts", Summary: "Create an artifact",
			Body: &ArtifactCreate{}, Multipart: true, Response: ArtifactResponse{}, Status: http.StatusCreated,
			Handle: d.createArtifact},
		{OperationID: "artifacts_delete", Method: "DELETE", Path: ArtifactsPath + "{pulp_id}/", Href: "artifact_href", Tag: "Artifacts",
			Summary: "Delete an artifact", Status: http.StatusNoContent,
			Handle: func(c *api.Ctx) (any, error) {
				// Pulp's access policy denies artifact deletion: artifacts go
				// away through orphan cleanup, which knows what references them.
				return nil, api.Detail(http.StatusForbidden, "You do not have permission to perform this action.")
			}},
	}
}

func (d *Deps) createArtifact(c *api.Ctx) (any, error) {
	b := api.Body[ArtifactCreate](c)
	expect, fe := expectFromFields(b.Size, map[string]*string{"md5": b.MD5, "sha1": b.SHA1, "sha224": b.SHA224, "sha256": b.SHA256, "sha384": b.SHA384, "sha512": b.SHA512})
	if fe != nil {
		return nil, fe
	}
	f, err := b.File.Open()
	if err != nil {
		return nil, fmt.Errorf("open upload: %w", err)
	}
	defer f.Close()
	a, existed, err := SaveArtifact(c, d, f, expect)
	if err != nil {
		return nil, err
	}
	if existed {
		return nil, api.NonFieldError(fmt.Sprintf("Artifact with sha256 checksum of '%s' already exists.", a.SHA256))
	}
	return NewArtifactResponse(a), nil
}

// expectFromFields validates client-supplied size and digests. md5 and sha1
// are not allowed, as in Pulp's default ALLOWED_CONTENT_CHECKSUMS.
func expectFromFields(size *int64, digests map[string]*string) (digest.Expect, api.FieldErrors) {
	e := digest.Expect{Size: -1, Digests: map[string]string{}}
	fe := api.FieldErrors{}
	if size != nil {
		if *size < 0 {
			fe.Add("size", "Ensure this value is greater than or equal to 0.")
		}
		e.Size = *size
	}
	for alg, v := range digests {
		if v == nil || *v == "" {
			continue
		}
		if !digest.IsAllowed(alg) {
			fe.Add(alg, fmt.Sprintf("Checksum type '%s' is not allowed.", alg))
			continue
		}
		h := strings.ToLower(*v)
		if !digest.ValidHex(alg, h) {
			fe.Add(alg, fmt.Sprintf("Enter a valid %s checksum.", alg))
			continue
		}
		e.Digests[alg] = h
	}
	if len(fe) > 0 {
		return e, fe
	}
	return e, nil
}

// SaveArtifact streams r into storage, verifying expect, and records the
// artifact. If the artifact already existed (same sha256) it is returned
// with existed=true; its file is restored if it had gone missing.
func SaveArtifact(ctx context.Context, d *Deps, r io.Reader, expect digest.Expect) (a *store.Artifact, existed bool, err error) {
	w, err := d.Storage.Create(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("save artifact: %w", err)
	}
	defer w.Cancel(context.WithoutCancel(ctx))
	if _, err := io.Copy(w, r); err != nil {
		return nil, false, fmt.Errorf("save artifact: %w", err)
	}
	com, err := w.Commit(ctx, expect)
	if err != nil {
		return nil, false, verificationError(err)
	}
	a, existed, err = d.Store.InsertArtifact(ctx, nil, &store.Artifact{
		File:   com.Name,
		Size:   com.Size,
		SHA224: com.Digests.SHA224,
		SHA256: com.Digests.SHA256,
		SHA384: com.Digests.SHA384,
		SHA512: com.Digests.SHA512,
	})
	return a, existed, err
}

// verificationError maps size and digest mismatches to Pulp's 400s.
func verificationError(err error) error {
	var de *digest.DigestMismatchError
	if errors.As(err, &de) {
		return api.FieldError(de.Algorithm, fmt.Sprintf("The %s checksum did not match. Expected %s, got %s.", de.Algorithm, de.Expected, de.Actual))
	}
	var se *digest.SizeMismatchError
	if errors.As(err, &se) {
		return api.FieldError("size", fmt.Sprintf("The size did not match actual size of file. Expected %d, got %d.", se.Expected, se.Actual))
	}
	return err
}
