package file

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pith-project/pith/internal/content"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// PublishTask is the task name of Pulp's file publish.
const PublishTask = "pulp_file.app.tasks.publishing.publish"

// DefaultManifest is the manifest name publications use unless told.
const DefaultManifest = "PULP_MANIFEST"

// publishArgs are the publish task's arguments, named as Pulp's.
type publishArgs struct {
	Manifest            *string `json:"manifest"`
	RepositoryVersionPK string  `json:"repository_version_pk"`
	Checkpoint          bool    `json:"checkpoint,omitempty"`
}

// RegisterPublishTask registers the publish task function.
func RegisterPublishTask(d *Deps) {
	d.Tasks.Register(PublishTask, func(ctx context.Context, t *tasking.Task) error {
		var a publishArgs
		if err := t.Args(&a); err != nil {
			return err
		}
		id, err := publish(ctx, d, t, a.RepositoryVersionPK, a.Manifest, a.Checkpoint)
		if err != nil {
			return err
		}
		p, err := coreapi.GetPublication(ctx, d.Store, id)
		if err != nil {
			return err
		}
		body, err := publicationResponses(ctx, d.Store, []*coreapi.PublicationRow{p})
		if err != nil {
			return err
		}
		return t.SetResult(body[0])
	})
}

// dispatchPublish publishes version v of repository repoID in a task
// holding the repository shared: publishes run side by side but not
// during a sync or modify of the repository.
func dispatchPublish(ctx context.Context, d *Deps, cid, user, repoID, versionID string, manifest *string, checkpoint bool) (*store.Task, error) {
	return d.Tasks.Dispatch(ctx, tasking.DispatchRequest{
		Name:       PublishTask,
		Args:       publishArgs{Manifest: manifest, RepositoryVersionPK: versionID, Checkpoint: checkpoint},
		Shared:     []string{RepoPRN(repoID)},
		LoggingCID: cid,
		CreatedBy:  user,
	})
}

// Publish creates a pass-through publication of the repository version
// with id versionID: file content is served straight from the version, and
// when manifest is non-nil a PULP_MANIFEST listing every file is written
// under that name. The publication stays incomplete (invisible) until it is
// fully written and its paths are checked; on failure or cancellation it
// is removed. Its href is recorded among t's created resources; t may be
// nil outside tasks.
func Publish(ctx context.Context, d *Deps, t *tasking.Task, versionID string, manifest *string) (publicationID string, err error) {
	return publish(ctx, d, t, versionID, manifest, false)
}

// AutoPublish publishes a repository's new version when the repository has
// autopublish set, inside the task that created the version, so the task's
// created resources hold the version and then the publication.
func AutoPublish(ctx context.Context, d *Deps, t *tasking.Task, repo *repository.Repo, version *repository.VersionRow) error {
	if !repo.Autopublish {
		return nil
	}
	if _, err := Publish(ctx, d, t, version.ID, repo.Manifest); err != nil {
		return fmt.Errorf("autopublish %s version %d: %w", repo.Name, version.Number, err)
	}
	return nil
}

func publish(ctx context.Context, d *Deps, t *tasking.Task, versionID string, manifest *string, checkpoint bool) (id string, err error) {
	v, err := repository.GetVersionByID(ctx, d.Store, versionID)
	if err != nil {
		return "", fmt.Errorf("publish: version %s: %w", versionID, err)
	}
	if manifest != nil {
		if err := ValidatePath(*manifest); err != nil {
			return "", fmt.Errorf("publish: manifest name: %w", err)
		}
	}
	id = store.NewID()
	now := store.Now()
	if _, err := d.Store.Exec(ctx, `INSERT INTO publications (id, created, last_updated, pulp_type, repository_version_id, complete, pass_through, checkpoint, manifest)
		VALUES ($1, $2, $2, $3, $4, FALSE, TRUE, $5, $6)`, id, now, Type, v.ID, checkpoint, manifest); err != nil {
		return "", fmt.Errorf("publish: create publication: %w", err)
	}
	pubID := id // the named result is cleared by failing returns
	drop := func(ctx context.Context) error { return deleteIncompletePublication(ctx, d.Store, pubID) }
	if t != nil {
		// A crash or cancellation removes what this left behind.
		t.OnCleanup(drop)
	}
	defer func() {
		if err != nil {
			if derr := drop(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()

	if manifest != nil {
		a, err := saveManifest(ctx, d, v)
		if err != nil {
			return "", fmt.Errorf("publish: write %s: %w", *manifest, err)
		}
		if _, err := d.Store.Exec(ctx, `INSERT INTO published_artifacts (id, created, publication_id, relative_path, artifact_id) VALUES ($1, $2, $3, $4, $5)`,
			store.NewID(), store.Now(), id, *manifest, a.ID); err != nil {
			return "", fmt.Errorf("publish: record %s: %w", *manifest, err)
		}
	}
	if err := checkPublicationPaths(ctx, d.Store, id, v); err != nil {
		return "", err
	}
	err = d.Store.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE publications SET complete = TRUE, last_updated = $2 WHERE id = $1 AND NOT complete`, id, store.Now())
		if err != nil {
			return fmt.Errorf("publish: complete publication: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("publish: publication %s vanished while being written", id)
		}
		// Distributions that now serve it keep the one they served before
		// for the retention period.
		return content.RecordServedByVersion(ctx, tx, v.RepositoryID, v.ID, d.retention())
	})
	if err != nil {
		return "", err
	}
	if t != nil {
		if err := t.AddCreatedResource(PublicationHref(id)); err != nil {
			return id, fmt.Errorf("publish: record created publication: %w", err)
		}
	}
	return id, nil
}

func deleteIncompletePublication(ctx context.Context, s *store.Store, id string) error {
	if _, err := s.Exec(ctx, `DELETE FROM publications WHERE id = $1 AND NOT complete`, id); err != nil {
		return fmt.Errorf("publish: remove incomplete publication %s: %w", id, err)
	}
	return nil
}

var errManifestReaderGone = errors.New("manifest reader closed")

// saveManifest streams the version's manifest into storage through a pipe:
// one goroutine reads the version and writes lines, SaveArtifact hashes and
// stores what it reads. Neither holds more than a buffer.
func saveManifest(ctx context.Context, d *Deps, v *repository.VersionRow) (*store.Artifact, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		err := writeManifest(ctx, d.Store, v, bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	a, _, err := coreapi.SaveArtifact(ctx, d.Core, pr, digest.Expect{Size: digest.UnknownSize})
	// Unblock the writer if SaveArtifact stopped reading early.
	pr.CloseWithError(errManifestReaderGone)
	cancel()
	werr := <-done
	if err != nil {
		// The writer's own failure explains the reader's; the reader
		// going away explains nothing.
		if werr != nil && !errors.Is(werr, errManifestReaderGone) && !errors.Is(werr, context.Canceled) {
			return nil, werr
		}
		return nil, err
	}
	return a, nil
}

// manifestRow is one content artifact of the version with what the
// manifest needs to say about it.
type manifestRow struct {
	path     string
	sha256   sql.NullString // of the artifact
	size     sql.NullInt64
	raID     sql.NullString // first remote artifact, for on-demand units
	raSHA256 sql.NullString
	raSize   sql.NullInt64
	digest   sql.NullString // file_content.digest
}

// writeManifest writes one "relative_path,sha256,size" line per content
// artifact of the version, newest content first as Pulp orders them (ids
// are time-ordered uuid7, so descending id is descending creation). It is
// one streamed query: the database sorts, spilling to disk for large
// versions, and pith holds one row at a time. (Keyset pages would each
// re-sort the version's membership, which has no index in id order.)
func writeManifest(ctx context.Context, s *store.Store, v *repository.VersionRow, w io.Writer) error {
	args := []any{}
	arg := func(x any) string {
		args = append(args, x)
		return fmt.Sprintf("$%d", len(args))
	}
	const firstRA = `FROM remote_artifacts ra WHERE ra.content_artifact_id = ca.id ORDER BY ra.created, ra.id LIMIT 1`
	rows, err := s.Query(ctx, `SELECT ca.relative_path, a.sha256, a.size,
			(SELECT ra.id `+firstRA+`), (SELECT ra.sha256 `+firstRA+`), (SELECT ra.size `+firstRA+`), fc.digest
		FROM repository_content rc
		JOIN content_artifacts ca ON ca.content_id = rc.content_id
		LEFT JOIN artifacts a ON a.id = ca.artifact_id
		LEFT JOIN file_content fc ON fc.content_id = ca.content_id
		WHERE `+repository.Membership(arg, v.RepositoryID, v.Number)+`
		ORDER BY rc.content_id DESC, ca.relative_path`+byteOrder(s), args...)
	if err != nil {
		return fmt.Errorf("read version content: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r manifestRow
		if err := rows.Scan(&r.path, &r.sha256, &r.size, &r.raID, &r.raSHA256, &r.raSize, &r.digest); err != nil {
			return fmt.Errorf("read version content: %w", err)
		}
		e, err := r.entry()
		if err != nil {
			return err
		}
		if err := WriteManifestLine(w, e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read version content: %w", err)
	}
	return nil
}

// entry is the manifest line of a content artifact: the digest and size of
// its artifact, or for a unit not downloaded yet those its first remote
// source announced (the unit's own digest when the source gave none).
func (r *manifestRow) entry() (ManifestEntry, error) {
	switch {
	case r.sha256.Valid:
		return ManifestEntry{RelativePath: r.path, SHA256: r.sha256.String, Size: r.size.Int64}, nil
	case !r.raID.Valid:
		return ManifestEntry{}, fmt.Errorf("%q has neither an artifact nor a remote source", r.path)
	case !r.raSize.Valid:
		return ManifestEntry{}, fmt.Errorf("%q has no artifact and its remote source has no size", r.path)
	}
	sum := r.raSHA256.String
	if !r.raSHA256.Valid {
		sum = r.digest.String
	}
	if sum == "" {
		return ManifestEntry{}, fmt.Errorf("%q has no artifact and no known sha256", r.path)
	}
	return ManifestEntry{RelativePath: r.path, SHA256: sum, Size: r.raSize.Int64}, nil
}

// PathConflictError reports two paths that cannot both be served: the same
// path twice, or a path inside another (a/b and a/b/c).
type PathConflictError struct {
	Path, Other string
	Duplicate   bool
}

func (e *PathConflictError) Error() string {
	if e.Duplicate {
		return "Path errors found. Paths are duplicated: " + e.Path
	}
	return fmt.Sprintf("Path errors found. The path for file '%s' overlaps: %s", e.Path, e.Other)
}

// pathChecker finds duplicate and nested paths in a stream of paths sorted
// by bytes. Paths that are string prefixes of a later path come right
// before the run of paths they prefix, so the earlier paths that can still
// conflict are always prefixes of the previous path: a stack of their
// lengths is all it keeps.
type pathChecker struct {
	prev  string
	stack []int
	n     int
}

func (c *pathChecker) add(p string) error {
	if c.n > 0 && p < c.prev {
		return fmt.Errorf("path check: %q came after %q: paths are not in byte order", p, c.prev)
	}
	c.n++
	for len(c.stack) > 0 && !strings.HasPrefix(p, c.prev[:c.stack[len(c.stack)-1]]) {
		c.stack = c.stack[:len(c.stack)-1]
	}
	for _, l := range c.stack {
		if l == len(p) {
			return &PathConflictError{Path: p, Duplicate: true}
		}
		if p[l] == '/' {
			return &PathConflictError{Path: p, Other: p[:l]}
		}
	}
	c.stack = append(c.stack, len(p))
	c.prev = p
	return nil
}

// byteOrder is the ORDER BY suffix sorting text by bytes: PostgreSQL's
// default collation may not, SQLite's does.
func byteOrder(s *store.Store) string {
	if s.Dialect() == "postgres" {
		return ` COLLATE "C"`
	}
	return ""
}

// checkPaths streams the paths selected by inner (one column named path)
// in byte order through a pathChecker. The database sorts, spilling to
// disk for large versions; pith holds one row at a time.
func checkPaths(ctx context.Context, s *store.Store, inner string, args ...any) error {
	rows, err := s.Query(ctx, `SELECT x.path FROM (`+inner+`) x ORDER BY x.path`+byteOrder(s), args...)
	if err != nil {
		return fmt.Errorf("path check: %w", err)
	}
	defer rows.Close()
	var c pathChecker
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return err
		}
		if err := c.add(p); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("path check: %w", err)
	}
	return nil
}

// checkPublicationPaths refuses a publication whose files (the metadata it
// wrote and, pass-through, every content artifact of the version) contain
// a duplicate or nested path, as Pulp's finalize_new_publication does.
func checkPublicationPaths(ctx context.Context, s *store.Store, pubID string, v *repository.VersionRow) error {
	args := []any{pubID}
	arg := func(x any) string {
		args = append(args, x)
		return fmt.Sprintf("$%d", len(args))
	}
	inner := `SELECT relative_path AS path FROM published_artifacts WHERE publication_id = $1
		UNION ALL
		SELECT ca.relative_path AS path FROM repository_content rc JOIN content_artifacts ca ON ca.content_id = rc.content_id
		WHERE ` + repository.Membership(arg, v.RepositoryID, v.Number)
	if err := checkPaths(ctx, s, inner, args...); err != nil {
		var pe *PathConflictError
		if errors.As(err, &pe) {
			return &publicationPathError{err}
		}
		return err
	}
	return nil
}

// publicationPathError words a path conflict as Pulp does for publications.
type publicationPathError struct{ err error }

func (e *publicationPathError) Error() string {
	return "Cannot create publication. " + e.err.Error() + "."
}
func (e *publicationPathError) Unwrap() error { return e.err }
