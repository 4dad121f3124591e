// Package storage defines content-addressed artifact storage.
//
// Artifacts are stored under storage-relative names of the form
// artifact/<sha256[:2]>/<sha256[2:]> (see [ArtifactName]), the layout Pulp
// uses. Bytes are written in two phases: [Creator.Create] returns a [Writer]
// that hashes what is written, and [Writer.Commit] verifies the expected size
// and digests before the artifact becomes visible. A failed or cancelled
// write leaves nothing visible.
//
// A [Backend] is the union of small role interfaces; code that needs only
// one role should accept only that interface. Backends may offer more,
// discovered by type assertion:
//
//   - [LocalFiler]: the artifact is a local file; the content app hands the
//     *os.File to http.ServeContent, which uses sendfile.
//   - [TempPather] (on a Writer): the partially written data is a local file
//     that other readers may tail while it grows.
//   - [Usager]: capacity of the underlying storage, for the status endpoint.
//   - [Walker]: enumerate stored names, for repair and orphan checks.
//
// Every backend must pass the conformance suite in package storagetest.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/pith-project/pith/internal/digest"
)

// ErrNotExist is returned (wrapped) for a name that holds no artifact. It is
// fs.ErrNotExist, so either sentinel works with errors.Is.
var ErrNotExist = fs.ErrNotExist

// ErrInvalidName is returned (wrapped) for a name that is not a valid
// storage-relative name; see CheckName. It matches fs.ErrInvalid too.
var ErrInvalidName = fmt.Errorf("invalid storage name: %w", fs.ErrInvalid)

// ErrInvalidOffset is returned (wrapped) by Open for an offset that is
// negative or beyond the end of the artifact.
var ErrInvalidOffset = fmt.Errorf("invalid offset: %w", fs.ErrInvalid)

// ErrClosed is returned (wrapped) by a Writer used after Commit or Cancel.
var ErrClosed = errors.New("writer already committed or cancelled")

// Creator starts writes.
type Creator interface {
	// Create starts a two-phase write. Bytes written are hashed as they
	// stream in; nothing is visible until Writer.Commit succeeds.
	Create(ctx context.Context) (Writer, error)
}

// Opener reads artifacts.
type Opener interface {
	// Open returns a reader of name positioned at offset. An offset equal to
	// the size yields an empty reader; a larger one is ErrInvalidOffset.
	Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error)
}

// Statter describes artifacts.
type Statter interface {
	// Stat returns the size and modification time of name, or an error
	// matching ErrNotExist.
	Stat(ctx context.Context, name string) (Info, error)
}

// Deleter removes artifacts.
type Deleter interface {
	// Delete removes name. Deleting a missing name is not an error.
	Delete(ctx context.Context, name string) error
}

// Redirector says where clients may fetch an artifact directly.
type Redirector interface {
	// RedirectURL returns a URL clients may be redirected to, or "" meaning
	// "serve it yourself". It does not check that name exists.
	RedirectURL(ctx context.Context, name string, opts RedirectOptions) (string, error)
}

// Backend is artifact storage.
type Backend interface {
	Creator
	Opener
	Statter
	Deleter
	Redirector
}

// Writer is one two-phase write. It is not safe for concurrent use.
type Writer interface {
	io.Writer
	// Size returns the number of bytes written so far.
	Size() int64
	// Digests returns the digests of the bytes written so far (final once
	// writing is done).
	Digests() digest.Digests
	// Commit verifies the size and digests against expect, then makes the
	// artifact visible at ArtifactName(sha256) atomically. If an artifact
	// with that sha256 already exists it is kept (the store is
	// content-addressed) and the written data is discarded. Commit ends the
	// write whether or not it succeeds: after a failure nothing is visible
	// and the written data is gone. Verification errors are the typed
	// errors of package digest, wrapped.
	Commit(ctx context.Context, expect digest.Expect) (Committed, error)
	// Cancel discards the write. It is idempotent and safe after Commit.
	Cancel(ctx context.Context) error
}

// Info describes a stored artifact.
type Info struct {
	Size    int64
	ModTime time.Time
}

// Committed describes the result of a successful Commit.
type Committed struct {
	Name    string // ArtifactName(Digests.SHA256)
	Size    int64
	Digests digest.Digests
	// Existed reports that an artifact with this sha256 was already stored
	// and was kept. Under concurrent commits of the same content a backend
	// that cannot tell reports false.
	Existed bool
}

// RedirectOptions shape a redirect URL's response, where the backend can
// (e.g. S3 response-override parameters).
type RedirectOptions struct {
	// Filename, if set, is sent as Content-Disposition: attachment.
	Filename string
	// ContentType, if set, overrides the stored content type.
	ContentType string
	// Expires is how long the URL stays valid; zero means the backend's
	// default.
	Expires time.Duration
}

// LocalFiler is implemented by backends whose artifacts are local files.
type LocalFiler interface {
	// OpenFile opens name for reading. The caller closes the file.
	OpenFile(ctx context.Context, name string) (*os.File, error)
}

// TempPather is implemented by Writers that write to a local file. Readers
// may open and tail TempPath while the write is in progress: each Write
// reaches the file before it returns. After Commit or Cancel the path is
// gone; an already-open reader keeps working.
type TempPather interface {
	TempPath() string
}

// Usage is the capacity of a backend's storage in bytes.
type Usage struct {
	Total int64
	Used  int64
	Free  int64
}

// Usager is implemented by backends that can report capacity.
type Usager interface {
	Usage(ctx context.Context) (Usage, error)
}

// Walker is implemented by backends that can enumerate stored names.
type Walker interface {
	// Walk calls fn for every stored name that starts with prefix (a plain
	// string prefix, as in object-store listings; "" walks everything).
	// Data of in-progress writes is not visited. The order is unspecified.
	// An error from fn stops the walk and is returned.
	Walk(ctx context.Context, prefix string, fn func(name string, info Info) error) error
}

const artifactPrefix = "artifact/"

// ArtifactName returns the storage name of the artifact with the given
// sha256 (hex, either case), or "" if sha256 is not valid hex of the right
// length. "" is never a valid name, so passing it on fails safely.
func ArtifactName(sha256 string) string {
	if !digest.ValidHex(digest.SHA256, sha256) {
		return ""
	}
	s := strings.ToLower(sha256)
	return artifactPrefix + s[:2] + "/" + s[2:]
}

// ParseArtifactName returns the sha256 of an artifact name as produced by
// ArtifactName, and whether name is one.
func ParseArtifactName(name string) (sha256 string, ok bool) {
	rest, found := strings.CutPrefix(name, artifactPrefix)
	if !found || len(rest) != 65 || rest[2] != '/' {
		return "", false
	}
	s := rest[:2] + rest[3:]
	if !digest.ValidHex(digest.SHA256, s) || strings.ToLower(s) != s {
		return "", false
	}
	return s, true
}

// CheckName reports whether name is a valid storage-relative name: slash
// separated, not absolute, no empty, "." or ".." elements, no trailing
// slash, no backslash and no NUL. It returns an error wrapping
// ErrInvalidName.
func CheckName(name string) error {
	if name == "." || !fs.ValidPath(name) || strings.ContainsAny(name, "\\\x00") {
		return fmt.Errorf("%q: %w", name, ErrInvalidName)
	}
	return nil
}
