package coreapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// UploadsPath is the uploads collection.
const UploadsPath = api.Root + "uploads/"

// UploadCommitTask is the task name of an upload commit.
const UploadCommitTask = "pulpcore.app.tasks.upload.commit"

// UploadCreate is the body of uploads_create.
type UploadCreate struct {
	Size int64 `json:"size" api:"required" min:"0" doc:"The size of the upload in bytes."`
}

// SchemaName names the component as Pulp does.
func (UploadCreate) SchemaName() string { return "Upload" }

// UploadResponse is an upload.
type UploadResponse struct {
	api.Base
	Size      int64      `json:"size" api:"required" doc:"The size of the upload in bytes."`
	Completed *time.Time `json:"completed" api:"readonly,nullable" doc:"Timestamp when upload is committed."`
}

// UploadChunkResponse is one received chunk.
type UploadChunkResponse struct {
	Offset int64 `json:"offset" api:"readonly"`
	Size   int64 `json:"size" api:"readonly"`
}

// UploadDetailResponse is an upload with its chunks.
type UploadDetailResponse struct {
	UploadResponse
	Chunks []UploadChunkResponse `json:"chunks" api:"readonly"`
}

// UploadChunk is the multipart body of uploads_update.
type UploadChunk struct {
	File   api.File `json:"file" api:"required" doc:"A chunk of the uploaded file."`
	SHA256 *string  `json:"sha256" doc:"The SHA-256 checksum of the chunk if available."`
}

// UploadCommit is the body of uploads_commit.
type UploadCommit struct {
	SHA256 string `json:"sha256" api:"required" minlen:"1" doc:"The expected sha256 checksum for the file."`
}

func uploadResponse(u *store.Upload) UploadResponse {
	r := UploadResponse{Base: api.NewBase(api.Href(UploadsPath, u.ID), "core.upload", u.ID, u.Created, u.LastUpdated), Size: u.Size}
	if u.Completed != nil {
		t := store.Time(*u.Completed)
		r.Completed = &t
	}
	return r
}

func (d *Deps) uploadFile(id string) string { return filepath.Join(d.DataDir, "upload", id) }

func (d *Deps) getUpload(c *api.Ctx) (*store.Upload, error) {
	id := c.PathValue("pulp_id")
	if !store.ValidID(id) {
		return nil, api.NotFound()
	}
	return d.Store.GetUpload(c, id)
}

func uploadRoutes(d *Deps) []*api.Route {
	fs := &api.FilterSet{
		DefaultOrder: "created DESC", Tiebreak: "id DESC",
		Ordering: map[string]string{"pulp_created": "created", "size": "size"},
		Filters: []api.Filter{
			{Name: "size", Column: "size", Kind: api.Int},
			{Name: "pulp_created", Column: "created", Kind: api.Time},
		},
	}
	detail := UploadsPath + "{pulp_id}/"
	return []*api.Route{
		{OperationID: "uploads_list", Method: "GET", Path: UploadsPath, Tag: "Uploads", Summary: "List uploads",
			Query: fs.Params(), List: true, Response: UploadResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				return listTable(c, d, fs, "uploads", d.Store.ListUploads, each(uploadResponse))
			}},
		{OperationID: "uploads_create", Method: "POST", Path: UploadsPath, Tag: "Uploads", Summary: "Create an upload",
			Body: &UploadCreate{}, Response: UploadResponse{}, Status: http.StatusCreated,
			Handle: func(c *api.Ctx) (any, error) {
				u, err := d.Store.InsertUpload(c, api.Body[UploadCreate](c).Size)
				if err != nil {
					return nil, err
				}
				return uploadResponse(u), nil
			}},
		{OperationID: "uploads_read", Method: "GET", Path: detail, Href: "upload_href", Tag: "Uploads", Summary: "Inspect an upload",
			Response: UploadDetailResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				u, err := d.getUpload(c)
				if err != nil {
					return nil, err
				}
				chunks, err := d.Store.UploadChunks(c, u.ID)
				if err != nil {
					return nil, err
				}
				r := UploadDetailResponse{UploadResponse: uploadResponse(u), Chunks: []UploadChunkResponse{}}
				for _, ch := range chunks {
					r.Chunks = append(r.Chunks, UploadChunkResponse{Offset: ch.Offset, Size: ch.Size})
				}
				return r, nil
			}},
		{OperationID: "uploads_update", Method: "PUT", Path: detail, Href: "upload_href", Tag: "Uploads",
			Summary: "Upload a file chunk", Body: &UploadChunk{}, Multipart: true, Response: UploadResponse{},
			Headers: []api.Param{{Name: "Content-Range", Type: "string", Description: "The Content-Range header specifies the location of the file chunk within the file."}},
			Handle:  d.putChunk},
		{OperationID: "uploads_delete", Method: "DELETE", Path: detail, Href: "upload_href", Tag: "Uploads",
			Summary: "Delete an upload", Status: http.StatusNoContent,
			Handle: func(c *api.Ctx) (any, error) {
				u, err := d.getUpload(c)
				if err != nil {
					return nil, err
				}
				if err := d.Store.DeleteUpload(c, u.ID); err != nil {
					return nil, err
				}
				if err := os.Remove(d.uploadFile(u.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
					d.Log.Warn("remove upload file", "upload", u.ID, "err", err)
				}
				return nil, nil
			}},
		{OperationID: "uploads_commit", Method: "POST", Path: detail + "commit/", Href: "upload_href", Tag: "Uploads",
			Summary: "Finish an Upload", Body: &UploadCommit{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: d.commitUpload},
	}
}

var contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

func (d *Deps) putChunk(c *api.Ctx) (any, error) {
	u, err := d.getUpload(c)
	if err != nil {
		return nil, err
	}
	if u.Completed != nil {
		return nil, api.NonFieldError("Cannot upload chunks to a completed upload.")
	}
	m := contentRangeRE.FindStringSubmatch(strings.TrimSpace(c.R.Header.Get("Content-Range")))
	if m == nil {
		return nil, api.NonFieldError("A valid Content-Range header (bytes start-end/size) is required.")
	}
	start, _ := strconv.ParseInt(m[1], 10, 64)
	end, _ := strconv.ParseInt(m[2], 10, 64)
	if m[3] != "*" {
		if total, _ := strconv.ParseInt(m[3], 10, 64); total != u.Size {
			return nil, api.NonFieldError(fmt.Sprintf("Content-Range total %d does not match the upload size %d.", total, u.Size))
		}
	}
	if end < start || end >= u.Size {
		return nil, api.NonFieldError(fmt.Sprintf("Content-Range %d-%d is beyond the upload size %d.", start, end, u.Size))
	}
	b := api.Body[UploadChunk](c)
	if b.File.Size != end-start+1 {
		return nil, api.NonFieldError(fmt.Sprintf("The chunk is %d bytes but Content-Range declares %d.", b.File.Size, end-start+1))
	}
	f, err := b.File.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Verify before writing: a bad chunk must not overwrite good bytes.
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash chunk: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if b.SHA256 != nil && *b.SHA256 != "" && !strings.EqualFold(*b.SHA256, sum) {
		return nil, api.FieldError("sha256", "The provided sha256 value does not match the sha256 of the uploaded chunk.")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(d.uploadFile(u.ID)), 0o750); err != nil {
		return nil, fmt.Errorf("upload dir: %w", err)
	}
	out, err := os.OpenFile(d.uploadFile(u.ID), os.O_WRONLY|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open upload file: %w", err)
	}
	_, err = io.Copy(io.NewOffsetWriter(out, start), f)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write chunk: %w", err)
	}
	if err := d.Store.PutUploadChunk(c, u.ID, store.UploadChunk{Offset: start, Size: end - start + 1, SHA256: &sum}); err != nil {
		return nil, err
	}
	u, err = d.Store.GetUpload(c, u.ID)
	if err != nil {
		return nil, err
	}
	return uploadResponse(u), nil
}

// coverage reports whether the chunks cover [0, size) exactly once over.
func coverage(chunks []store.UploadChunk, size int64) bool {
	var next int64
	for _, ch := range chunks {
		if ch.Offset > next {
			return false
		}
		next = max(next, ch.Offset+ch.Size)
	}
	return next == size
}

type uploadCommitArgs struct {
	UploadID string `json:"upload_id"`
	SHA256   string `json:"sha256"`
}

func (d *Deps) commitUpload(c *api.Ctx) (any, error) {
	u, err := d.getUpload(c)
	if err != nil {
		return nil, err
	}
	want := strings.ToLower(api.Body[UploadCommit](c).SHA256)
	if !digest.ValidHex("sha256", want) {
		return nil, api.FieldError("sha256", "Enter a valid sha256 checksum.")
	}
	chunks, err := d.Store.UploadChunks(c, u.ID)
	if err != nil {
		return nil, err
	}
	if !coverage(chunks, u.Size) {
		return nil, api.NonFieldError("The upload is incomplete: its chunks do not cover all bytes.")
	}
	// Check the digest here so a wrong checksum is a 400 and leaves the
	// upload intact for another try, rather than a failed task.
	got, err := fileSHA256(d.uploadFile(u.ID), u.Size)
	if err != nil {
		return nil, err
	}
	if got != want {
		return nil, api.FieldError("sha256", fmt.Sprintf("The provided sha256 %s does not match the uploaded file's sha256 %s.", want, got))
	}
	t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{
		Name: UploadCommitTask, Args: uploadCommitArgs{UploadID: u.ID, SHA256: want},
		Exclusive: []string{"prn:core.upload:" + u.ID}, LoggingCID: c.CID, CreatedBy: c.User, Immediate: true,
	})
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
}

func fileSHA256(path string, size int64) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && size == 0 {
		return hex.EncodeToString(sha256.New().Sum(nil)), nil
	}
	if err != nil {
		return "", fmt.Errorf("open upload file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, size)); err != nil {
		return "", fmt.Errorf("hash upload: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func registerUploadTasks(d *Deps) {
	d.Tasks.Register(UploadCommitTask, func(ctx context.Context, t *tasking.Task) error {
		var args uploadCommitArgs
		if err := t.Args(&args); err != nil {
			return err
		}
		path := d.uploadFile(args.UploadID)
		f, err := os.Open(path)
		var r io.Reader = f
		if errors.Is(err, os.ErrNotExist) {
			r = strings.NewReader("") // a zero-byte upload has no file
		} else if err != nil {
			return fmt.Errorf("open upload: %w", err)
		} else {
			defer f.Close()
		}
		u, err := d.Store.GetUpload(ctx, args.UploadID)
		if err != nil {
			return fmt.Errorf("upload %s: %w", args.UploadID, err)
		}
		a, _, err := SaveArtifact(ctx, d, io.LimitReader(r, u.Size), digest.Expect{Size: u.Size, Digests: map[string]string{"sha256": args.SHA256}})
		if err != nil {
			return err
		}
		t.AddCreatedResource(api.Href(ArtifactsPath, a.ID))
		if err := d.Store.DeleteUpload(ctx, args.UploadID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if f != nil {
			f.Close()
		}
		os.Remove(path)
		return nil
	})
}
