package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ACS is an alternate content source (Pulp's AlternateContentSource): a
// remote whose content, recorded by refreshing each path into a hidden
// repository, may be downloaded for any repository.
type ACS struct {
	ID            string
	Created       int64
	LastUpdated   int64
	PulpType      string
	Name          string
	LastRefreshed *int64
	RemoteID      string
	// Paths are ordered by path.
	Paths []ACSPath
}

// ACSPath is one path of an ACS and the hidden repository its refresh
// syncs into (nil until the first refresh).
type ACSPath struct {
	ID           string
	Path         string
	RepositoryID *string
}

const acsColumns = `id, created, last_updated, pulp_type, name, last_refreshed, remote_id`

func scanACS(row interface{ Scan(...any) error }) (*ACS, error) {
	a := &ACS{}
	if err := row.Scan(&a.ID, &a.Created, &a.LastUpdated, &a.PulpType, &a.Name, &a.LastRefreshed, &a.RemoteID); err != nil {
		return nil, err
	}
	return a, nil
}

// InsertACS records a new ACS with its paths (each once) in one
// transaction, filling ID, timestamps and Paths. A taken name is
// ErrConflict.
func (s *Store) InsertACS(ctx context.Context, a *ACS, paths []string) error {
	now := Now()
	a.ID, a.Created, a.LastUpdated = NewID(), now, now
	err := s.InTx(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO alternate_content_sources (`+acsColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			a.ID, a.Created, a.LastUpdated, a.PulpType, a.Name, a.LastRefreshed, a.RemoteID); err != nil {
			return err
		}
		a.Paths = nil
		return addACSPaths(ctx, tx, a, paths)
	})
	if err != nil {
		if s.IsUniqueViolation(err) {
			return ErrConflict
		}
		return fmt.Errorf("store: insert acs %s: %w", a.Name, err)
	}
	return nil
}

func addACSPaths(ctx context.Context, tx *Tx, a *ACS, paths []string) error {
	for _, p := range dedupeSorted(paths) {
		id := NewID()
		if _, err := tx.Exec(ctx, `INSERT INTO alternate_content_source_paths (id, acs_id, path) VALUES ($1, $2, $3)`, id, a.ID, p); err != nil {
			return err
		}
		a.Paths = append(a.Paths, ACSPath{ID: id, Path: p})
	}
	slices.SortFunc(a.Paths, func(x, y ACSPath) int { return strings.Compare(x.Path, y.Path) })
	return nil
}

func dedupeSorted(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// GetACS returns the ACS with id and its paths, or ErrNotFound.
func (s *Store) GetACS(ctx context.Context, id string) (*ACS, error) {
	a, err := scanACS(s.db.QueryRowContext(ctx, `SELECT `+acsColumns+` FROM alternate_content_sources WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get acs %s: %w", id, err)
	}
	if err := s.loadACSPaths(ctx, []*ACS{a}); err != nil {
		return nil, err
	}
	return a, nil
}

// ACSByName returns the ACS named name (without paths), or ErrNotFound.
func (s *Store) ACSByName(ctx context.Context, name string) (*ACS, error) {
	a, err := scanACS(s.db.QueryRowContext(ctx, `SELECT `+acsColumns+` FROM alternate_content_sources WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: acs named %s: %w", name, err)
	}
	return a, nil
}

// ListACS returns one page of ACSes with their paths; where (with args)
// and orderBy come from the API's filter set.
func (s *Store) ListACS(ctx context.Context, where string, args []any, orderBy string, limit, offset int) ([]*ACS, error) {
	q := `SELECT ` + acsColumns + ` FROM alternate_content_sources` + where
	if orderBy != "" {
		q += ` ORDER BY ` + orderBy
	}
	q += fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list acs: %w", err)
	}
	var out []*ACS
	for rows.Next() {
		a, err := scanACS(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list acs: %w", err)
		}
		out = append(out, a)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("store: list acs: %w", err)
	}
	if err := s.loadACSPaths(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// CountACS counts the ACSes matching where. ACSes are a handful of
// administrator-made rows, so a COUNT(*) is cheap and they need no
// row_counts entry.
func (s *Store) CountACS(ctx context.Context, where string, args []any) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM alternate_content_sources`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count acs: %w", err)
	}
	return n, nil
}

func (s *Store) loadACSPaths(ctx context.Context, acs []*ACS) error {
	if len(acs) == 0 {
		return nil
	}
	byID := make(map[string]*ACS, len(acs))
	ids := make([]string, len(acs))
	for i, a := range acs {
		a.Paths = []ACSPath{}
		byID[a.ID] = a
		ids[i] = a.ID
	}
	err := chunks(ids, func(c []string) error {
		rows, err := s.db.QueryContext(ctx, `SELECT acs_id, id, path, repository_id FROM alternate_content_source_paths
			WHERE acs_id IN (`+inList(1, len(c))+`)`, anys(c)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var acsID string
			var p ACSPath
			if err := rows.Scan(&acsID, &p.ID, &p.Path, &p.RepositoryID); err != nil {
				return err
			}
			byID[acsID].Paths = append(byID[acsID].Paths, p)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("store: acs paths: %w", err)
	}
	// Sorted here, not by the database, so both backends agree whatever
	// their collation.
	for _, a := range acs {
		slices.SortFunc(a.Paths, func(x, y ACSPath) int { return strings.Compare(x.Path, y.Path) })
	}
	return nil
}

// UpdateACS writes a's name, remote and last_refreshed and, when paths is
// not nil, makes them its paths: paths no longer listed go, new ones are
// added, kept ones keep their hidden repository. It refreshes a.Paths and
// a.LastUpdated, and returns the hidden repositories of the paths it
// removed (the caller deletes them; deleting them before is better still,
// as a crash then leaves nothing behind). A taken name is ErrConflict; a
// missing ACS ErrNotFound.
func (s *Store) UpdateACS(ctx context.Context, a *ACS, paths []string) (orphaned []string, err error) {
	now := Now()
	err = s.InTx(ctx, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `UPDATE alternate_content_sources SET last_updated = $2, name = $3, remote_id = $4, last_refreshed = $5 WHERE id = $1`,
			a.ID, now, a.Name, a.RemoteID, a.LastRefreshed)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if paths == nil {
			return nil
		}
		want := dedupeSorted(paths)
		rows, err := tx.Query(ctx, `SELECT path FROM alternate_content_source_paths WHERE acs_id = $1`, a.ID)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			have[p] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		var add []string
		for _, p := range want {
			if !have[p] {
				add = append(add, p)
			}
			delete(have, p)
		}
		for p := range have {
			ids, err := deletePathsReturning(ctx, tx, `DELETE FROM alternate_content_source_paths WHERE acs_id = $1 AND path = $2 RETURNING repository_id`, a.ID, p)
			if err != nil {
				return err
			}
			orphaned = append(orphaned, ids...)
		}
		return addACSPaths(ctx, tx, a, add)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, ErrNotFound
	case err != nil && s.IsUniqueViolation(err):
		return nil, ErrConflict
	case err != nil:
		return nil, fmt.Errorf("store: update acs %s: %w", a.ID, err)
	}
	a.LastUpdated = now
	got, err := s.GetACS(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	a.Paths = got.Paths
	return orphaned, nil
}

// deletePathsReturning runs a DELETE … RETURNING repository_id on paths and
// collects the non-NULL ids. RETURNING sees a hidden repository linked by
// a concurrent refresh up to the moment of the delete.
func deletePathsReturning(ctx context.Context, tx *Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id *string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if id != nil {
			out = append(out, *id)
		}
	}
	return out, rows.Err()
}

// DeleteACS removes an ACS and its paths, or returns ErrNotFound. It
// returns the hidden repositories its paths still named, for the caller
// to delete (deleting them before is better still, as a crash then leaves
// nothing behind).
func (s *Store) DeleteACS(ctx context.Context, id string) (orphaned []string, err error) {
	err = s.InTx(ctx, func(tx *Tx) error {
		var err error
		if orphaned, err = deletePathsReturning(ctx, tx, `DELETE FROM alternate_content_source_paths WHERE acs_id = $1 RETURNING repository_id`, id); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `DELETE FROM alternate_content_sources WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: delete acs %s: %w", id, err)
	}
	return orphaned, nil
}

// SetACSPathRepository links a path to its hidden repository unless it
// already has one (a concurrent refresh won). It reports whether it did.
func (s *Store) SetACSPathRepository(ctx context.Context, pathID, repositoryID string) (bool, error) {
	res, err := s.Exec(ctx, `UPDATE alternate_content_source_paths SET repository_id = $2 WHERE id = $1 AND repository_id IS NULL`, pathID, repositoryID)
	if err != nil {
		return false, fmt.Errorf("store: link acs path %s: %w", pathID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetACSRefreshed records when an ACS was last refreshed.
func (s *Store) SetACSRefreshed(ctx context.Context, id string, at int64) error {
	if _, err := s.Exec(ctx, `UPDATE alternate_content_sources SET last_refreshed = $2 WHERE id = $1`, id, at); err != nil {
		return fmt.Errorf("store: acs %s refreshed: %w", id, err)
	}
	return nil
}

// acsSourceColumns and acsSourceFrom select the remote artifacts an ACS
// offers: those of its remote whose content is in the latest complete
// version of one of its paths' hidden repositories. The lookup starts at
// remote_artifacts_sha256 and reaches the hidden repository through the
// content's memberships, so it costs a few index probes per sha256.
const (
	acsSourceColumns = `ra.id, ra.remote_id, r.policy, ra.url, COALESCE(ra.size, -1), COALESCE(ra.sha256, ''), COALESCE(ra.failed_at, 0), r.last_updated`
	acsSourceFrom    = ` FROM remote_artifacts ra
		JOIN remotes r ON r.id = ra.remote_id
		JOIN content_artifacts ca ON ca.id = ra.content_artifact_id`
	acsSourceExists = ` AND EXISTS (SELECT 1 FROM alternate_content_sources a
			JOIN alternate_content_source_paths p ON p.acs_id = a.id
			JOIN repository_content rc ON rc.repository_id = p.repository_id
			WHERE a.remote_id = ra.remote_id AND rc.content_id = ca.content_id
				AND rc.version_added <= ` + acsLatest + `
				AND (rc.version_removed IS NULL OR rc.version_removed > ` + acsLatest + `))`
	// acsLatest is the number of the latest complete version of a path's
	// hidden repository, read backwards on (repository_id, number).
	acsLatest = `(SELECT v.number FROM repository_versions v WHERE v.repository_id = p.repository_id AND v.complete ORDER BY v.number DESC LIMIT 1)`
	// Sources that never sent wrong bytes first, then the oldest.
	acsSourceOrder = `COALESCE(ra.failed_at, 0), ra.created, ra.id`
)

const acsSourcesQuery = `SELECT ` + acsSourceColumns + acsSourceFrom + ` WHERE ra.sha256 = $1` + acsSourceExists + ` ORDER BY ` + acsSourceOrder

func scanACSSource(rows *sql.Rows) (LazySource, error) {
	var l LazySource
	err := rows.Scan(&l.RemoteArtifactID, &l.RemoteID, &l.Policy, &l.URL, &l.Size, &l.SHA256, &l.FailedAt, &l.RemoteStamp)
	l.SHA256 = strings.ToLower(l.SHA256)
	return l, err
}

// ACSSources lists where the bytes with sha256 can be fetched through an
// alternate content source: the remote artifacts of an ACS's remote whose
// content the latest version of one of the ACS's hidden repositories
// holds. Sources that failed (FailedAt set) come last; the caller applies
// its cooldown.
func (s *Store) ACSSources(ctx context.Context, sha256 string) ([]LazySource, error) {
	rows, err := s.db.QueryContext(ctx, acsSourcesQuery, strings.ToLower(sha256))
	if err != nil {
		return nil, fmt.Errorf("store: acs sources of %s: %w", sha256, err)
	}
	defer rows.Close()
	var out []LazySource
	for rows.Next() {
		l, err := scanACSSource(rows)
		if err != nil {
			return nil, fmt.Errorf("store: acs sources of %s: %w", sha256, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: acs sources of %s: %w", sha256, err)
	}
	return out, nil
}

// ACSURLs returns, for each sha256 an ACS can deliver, its first source
// in ACSSources' order, keyed by lower-case sha256; the others are absent.
// It queries in batches, for a sync stage that substitutes download URLs.
func (s *Store) ACSURLs(ctx context.Context, sha256s []string) (map[string]LazySource, error) {
	out := map[string]LazySource{}
	want := make([]string, 0, len(sha256s))
	for _, h := range sha256s {
		want = append(want, strings.ToLower(h))
	}
	want = dedupeSorted(want)
	err := chunks(want, func(c []string) error {
		rows, err := s.db.QueryContext(ctx, `SELECT `+acsSourceColumns+acsSourceFrom+` WHERE ra.sha256 IN (`+inList(1, len(c))+`)`+acsSourceExists+
			` ORDER BY ra.sha256, `+acsSourceOrder, anys(c)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			l, err := scanACSSource(rows)
			if err != nil {
				return err
			}
			if _, ok := out[l.SHA256]; !ok {
				out[l.SHA256] = l
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: acs urls: %w", err)
	}
	return out, nil
}
