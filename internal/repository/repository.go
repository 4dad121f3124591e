// Package repository implements Pulp's repository and repository-version
// semantics: version 0 on create, immutable numbered versions built inside
// tasks, replace-on-add by repository key, no version for a no-op change,
// squash on delete, protected versions and retention.
//
// Membership is stored as intervals (repository_content): a unit is in
// version N when version_added <= N and (version_removed is NULL or
// version_removed > N). A version under construction changes rows with its
// own number only, so it is invisible to every query about a complete
// version until it completes, and can be discarded exactly.
package repository

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pith-project/pith/internal/store"
)

// ErrLastVersion is returned when deleting the only complete version.
var ErrLastVersion = errors.New("cannot delete the last repository version")

// ErrProtected is returned when deleting a version a distribution serves.
var ErrProtected = errors.New("the repository version is protected: a distribution serves it")

// DuplicateKeyError reports two new units with one repository key.
type DuplicateKeyError struct {
	PulpType string
	Key      string
}

func (e *DuplicateKeyError) Error() string {
	return fmt.Sprintf("Cannot create repository version. More than one %s content with the duplicate values for relative_path: %s.", e.PulpType, e.Key)
}

// Repo is a repository row.
type Repo struct {
	ID                 string
	Created            int64
	LastUpdated        int64
	PulpType           string
	Name               string
	Description        *string
	NextVersion        int
	RetainRepoVersions *int
	RetainCheckpoints  *int
	RemoteID           *string
	UserHidden         bool
	Labels             map[string]string
	Autopublish        bool
	Manifest           *string
	LastSyncDetails    json.RawMessage
}

// Columns lists repository columns in Scan order.
const Columns = `id, created, last_updated, pulp_type, name, description, next_version, retain_repo_versions, retain_checkpoints, remote_id, user_hidden, pulp_labels, autopublish, manifest, last_sync_details`

// Scan reads a row selected with Columns.
func Scan(row interface{ Scan(...any) error }) (*Repo, error) {
	r := &Repo{}
	var labels, details string
	if err := row.Scan(&r.ID, &r.Created, &r.LastUpdated, &r.PulpType, &r.Name, &r.Description, &r.NextVersion,
		&r.RetainRepoVersions, &r.RetainCheckpoints, &r.RemoteID, &r.UserHidden, &labels, &r.Autopublish, &r.Manifest, &details); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(labels), &r.Labels); err != nil || r.Labels == nil {
		r.Labels = map[string]string{}
	}
	r.LastSyncDetails = json.RawMessage(details)
	return r, nil
}

func labelsJSON(m map[string]string) string {
	if m == nil {
		m = map[string]string{}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Create inserts a repository with its empty, complete version 0.
func Create(ctx context.Context, s *store.Store, r *Repo) error {
	now := store.Now()
	r.ID, r.Created, r.LastUpdated, r.NextVersion = store.NewID(), now, now, 1
	if len(r.LastSyncDetails) == 0 {
		r.LastSyncDetails = json.RawMessage(`{}`)
	}
	err := s.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO repositories (`+Columns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			r.ID, r.Created, r.LastUpdated, r.PulpType, r.Name, r.Description, r.NextVersion, r.RetainRepoVersions, r.RetainCheckpoints,
			r.RemoteID, r.UserHidden, labelsJSON(r.Labels), r.Autopublish, r.Manifest, string(r.LastSyncDetails)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO repository_versions (id, created, last_updated, repository_id, number, complete) VALUES ($1, $2, $2, $3, 0, TRUE)`,
			store.NewID(), now, r.ID)
		return err
	})
	if err != nil {
		if s.IsUniqueViolation(err) {
			return store.ErrConflict
		}
		return fmt.Errorf("repository: create %s: %w", r.Name, err)
	}
	return nil
}

// Get returns the repository with id.
func Get(ctx context.Context, s *store.Store, id string) (*Repo, error) {
	r, err := Scan(s.QueryRow(ctx, `SELECT `+Columns+` FROM repositories WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("repository: get %s: %w", id, err)
	}
	return r, nil
}

// Update writes the mutable fields of r.
func Update(ctx context.Context, s *store.Store, r *Repo) error {
	r.LastUpdated = store.Now()
	_, err := s.Exec(ctx, `UPDATE repositories SET last_updated = $2, name = $3, description = $4, retain_repo_versions = $5,
		retain_checkpoints = $6, remote_id = $7, pulp_labels = $8, autopublish = $9, manifest = $10, last_sync_details = $11 WHERE id = $1`,
		r.ID, r.LastUpdated, r.Name, r.Description, r.RetainRepoVersions, r.RetainCheckpoints, r.RemoteID, labelsJSON(r.Labels),
		r.Autopublish, r.Manifest, string(r.LastSyncDetails))
	if err != nil {
		if s.IsUniqueViolation(err) {
			return store.ErrConflict
		}
		return fmt.Errorf("repository: update %s: %w", r.ID, err)
	}
	return nil
}

// Delete removes a repository, its versions and publications. Its content
// stays and becomes orphaned if nothing else holds it.
func Delete(ctx context.Context, s *store.Store, id string) error {
	return s.InTx(ctx, func(tx *store.Tx) error {
		// Publications reference versions; distributions referencing them
		// are set NULL by their foreign keys.
		if _, err := tx.Exec(ctx, `DELETE FROM publications WHERE repository_version_id IN (SELECT id FROM repository_versions WHERE repository_id = $1)`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM repository_content WHERE repository_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE repository_versions SET base_version_id = NULL WHERE repository_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM repository_versions WHERE repository_id = $1`, id); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `DELETE FROM repositories WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// VersionRow is a repository version.
type VersionRow struct {
	ID            string
	Created       int64
	LastUpdated   int64
	RepositoryID  string
	Number        int
	Complete      bool
	BaseVersionID *string
}

// VersionColumns lists version columns in ScanVersion order.
const VersionColumns = `id, created, last_updated, repository_id, number, complete, base_version_id`

// ScanVersion reads a row selected with VersionColumns.
func ScanVersion(row interface{ Scan(...any) error }) (*VersionRow, error) {
	v := &VersionRow{}
	return v, row.Scan(&v.ID, &v.Created, &v.LastUpdated, &v.RepositoryID, &v.Number, &v.Complete, &v.BaseVersionID)
}

func oneVersion(ctx context.Context, s *store.Store, q string, args ...any) (*VersionRow, error) {
	v, err := ScanVersion(s.QueryRow(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("repository: version: %w", err)
	}
	return v, nil
}

// Latest returns the newest complete version of a repository.
func Latest(ctx context.Context, s *store.Store, repoID string) (*VersionRow, error) {
	return oneVersion(ctx, s, `SELECT `+VersionColumns+` FROM repository_versions WHERE repository_id = $1 AND complete ORDER BY number DESC LIMIT 1`, repoID)
}

// GetVersion returns a complete version by number.
func GetVersion(ctx context.Context, s *store.Store, repoID string, number int) (*VersionRow, error) {
	return oneVersion(ctx, s, `SELECT `+VersionColumns+` FROM repository_versions WHERE repository_id = $1 AND number = $2 AND complete`, repoID, number)
}

// GetVersionByID returns a complete version by id.
func GetVersionByID(ctx context.Context, s *store.Store, id string) (*VersionRow, error) {
	return oneVersion(ctx, s, `SELECT `+VersionColumns+` FROM repository_versions WHERE id = $1 AND complete`, id)
}

// Membership returns the SQL condition (on repository_content aliased rc)
// selecting the content of version number of repository repoID, binding
// its arguments through arg.
func Membership(arg func(any) string, repoID string, number int) string {
	n := arg(number)
	return "rc.repository_id = " + arg(repoID) + " AND rc.version_added <= " + n + " AND (rc.version_removed IS NULL OR rc.version_removed > " + n + ")"
}

// Counts is a version's content summary: per count type (added, removed,
// present), per content type, the number of units.
type Counts map[string]map[string]int64

// VersionCounts returns the stored counts of versions by id.
func VersionCounts(ctx context.Context, s *store.Store, ids ...string) (map[string]Counts, error) {
	out := map[string]Counts{}
	if len(ids) == 0 {
		return out, nil
	}
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		ph[i] = fmt.Sprintf("$%d", i+1)
		args[i] = id
	}
	rows, err := s.Query(ctx, `SELECT version_id, count_type, content_type, count FROM repository_version_counts WHERE version_id IN (`+strings.Join(ph, ",")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("repository: counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, ct, typ string
		var n int64
		if err := rows.Scan(&id, &ct, &typ, &n); err != nil {
			return nil, err
		}
		if out[id] == nil {
			out[id] = Counts{"added": {}, "removed": {}, "present": {}}
		}
		out[id][map[string]string{"A": "added", "R": "removed", "P": "present"}[ct]][typ] = n
	}
	return out, rows.Err()
}
