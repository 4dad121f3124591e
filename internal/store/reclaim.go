package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// This file holds the queries behind deliberate materialisation and
// release of content bytes: refusing to delete a remote that is the last
// source of served on-demand content, and reclaiming disk space.
//
// "May fetch from" follows the content app: lazy content of repository R is
// fetched only through R's remote and the remotes linked to R
// (repository_remotes), and only from remote artifacts with a sha256 to
// verify against.

// servedVersions is a CTE body listing (repository_id, number) of every
// repository version a distribution may serve: directly, through a
// publication, or for a distribution following a repository both its latest
// version and the version of its latest publication (the content app serves
// the latter; the former is served as soon as it is published).
const servedVersions = `
	SELECT rv.repository_id, rv.number FROM distributions d JOIN repository_versions rv ON rv.id = d.repository_version_id
	UNION
	SELECT rv.repository_id, rv.number FROM distributions d JOIN publications p ON p.id = d.publication_id
		JOIN repository_versions rv ON rv.id = p.repository_version_id
	UNION
	SELECT d.repository_id, (SELECT MAX(v.number) FROM repository_versions v WHERE v.repository_id = d.repository_id AND v.complete)
		FROM distributions d WHERE d.repository_id IS NOT NULL
	UNION
	SELECT d.repository_id, (SELECT rv.number FROM publications p JOIN repository_versions rv ON rv.id = p.repository_version_id
			WHERE rv.repository_id = d.repository_id AND p.complete ORDER BY rv.number DESC LIMIT 1)
		FROM distributions d WHERE d.repository_id IS NOT NULL`

// usableRemotes lists (repository_id, remote_id): the remotes each
// repository may fetch lazy content through. It is small (a few rows per
// repository); joining it turns "may this repository use that remote
// artifact" into plain joins instead of a subquery per unit.
const usableRemotes = `SELECT id AS repository_id, remote_id FROM repositories WHERE remote_id IS NOT NULL
	UNION SELECT repository_id, remote_id FROM repository_remotes`

// SoleSource is what deleting a remote would break: on-demand content units
// that distributions serve and that no other remote may provide.
type SoleSource struct {
	// Units counts distinct content units.
	Units int64
	// Repositories names the repositories serving them, sorted.
	Repositories []string
}

// soleSourceQuery finds, per served repository, the content units in a
// served version whose content artifact has no stored bytes, a remote
// artifact from the remote ($1), and no remote artifact from another remote
// the repository may fetch from (with a sha256). The last row (name NULL)
// is the distinct total. Its cost is linear in the remote's remote
// artifacts: both engines start from them (SQLite) or hash them
// (PostgreSQL), and the "other source" test is a plain anti-join.
var soleSourceQuery = `WITH served (repository_id, number) AS (` + servedVersions + `),
	usable (repository_id, remote_id) AS (` + usableRemotes + `),
	hits (repository_id, content_id) AS (
		SELECT DISTINCT s.repository_id, ca.content_id
		FROM served s
		JOIN repository_content rc ON rc.repository_id = s.repository_id AND rc.version_added <= s.number
			AND (rc.version_removed IS NULL OR rc.version_removed > s.number)
		JOIN content_artifacts ca ON ca.content_id = rc.content_id AND ca.artifact_id IS NULL
		JOIN remote_artifacts ra ON ra.content_artifact_id = ca.id AND ra.remote_id = $1
		WHERE NOT EXISTS (SELECT 1 FROM remote_artifacts o JOIN usable u ON u.remote_id = o.remote_id
			WHERE o.content_artifact_id = ca.id AND u.repository_id = s.repository_id AND o.remote_id <> $1 AND o.sha256 IS NOT NULL)
	)
	SELECT r.name, COUNT(*) FROM hits h JOIN repositories r ON r.id = h.repository_id GROUP BY r.name
	UNION ALL
	SELECT NULL, COUNT(*) FROM (SELECT DISTINCT content_id FROM hits) t`

// RemoteSoleSource reports the served on-demand content only remoteID can
// provide (see soleSourceQuery). tx may be nil.
func (s *Store) RemoteSoleSource(ctx context.Context, tx *Tx, remoteID string) (SoleSource, error) {
	var q querier = s.db
	if tx != nil {
		q = tx.tx
	}
	rows, err := q.QueryContext(ctx, soleSourceQuery, remoteID)
	if err != nil {
		return SoleSource{}, fmt.Errorf("store: sole source check of remote %s: %w", remoteID, err)
	}
	defer rows.Close()
	var out SoleSource
	for rows.Next() {
		var (
			name sql.NullString
			n    int64
		)
		if err := rows.Scan(&name, &n); err != nil {
			return SoleSource{}, fmt.Errorf("store: sole source check of remote %s: %w", remoteID, err)
		}
		if name.Valid {
			out.Repositories = append(out.Repositories, name.String)
		} else {
			out.Units = n
		}
	}
	if err := rows.Err(); err != nil {
		return SoleSource{}, fmt.Errorf("store: sole source check of remote %s: %w", remoteID, err)
	}
	slices.Sort(out.Repositories)
	return out, nil
}

// DeleteRemoteUnlessSoleSource deletes the remote in one transaction with
// the sole-source check, so nothing it finds can change in between: on
// SQLite the transaction is the only writer; on PostgreSQL the
// distributions table is locked against writers and the remote's row
// against new references (remote artifacts, links) until commit. When
// the remote is the sole source of served content it is kept and the
// finding returned with a nil error.
func (s *Store) DeleteRemoteUnlessSoleSource(ctx context.Context, id string) (SoleSource, error) {
	var found SoleSource
	err := s.InTx(ctx, func(tx *Tx) error {
		if s.dialect.name() == "postgres" {
			// Table lock first, row lock second: a distribution writer
			// that already holds its table lock may still need a key
			// share on the remote's row (distributions.remote_id). The
			// mode conflicts with itself, so two remote deletes, whose
			// cascades both write distributions, queue instead of
			// deadlocking on the upgrade.
			if _, err := tx.Exec(ctx, `LOCK TABLE distributions IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
			var x string
			err := tx.QueryRow(ctx, `SELECT id FROM remotes WHERE id = $1 FOR UPDATE`, id).Scan(&x)
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
		}
		var err error
		if found, err = s.RemoteSoleSource(ctx, tx, id); err != nil {
			return err
		}
		if found.Units > 0 {
			return nil
		}
		return s.DeleteRemote(ctx, tx, id)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			return SoleSource{}, err
		}
		return SoleSource{}, fmt.Errorf("store: delete remote %s: %w", id, err)
	}
	return found, nil
}

// VersionRef names a repository version by repository and number.
type VersionRef struct {
	RepositoryID string
	Number       int
}

// ReclaimScope says which content a space reclaim releases: content in any
// version of the repositories (every repository when All), except content
// in a kept version or in any version of a repository outside the scope.
type ReclaimScope struct {
	All          bool
	Repositories []string
	Keep         []VersionRef
}

// reclaimable renders the condition, on content artifact ca joined with its
// artifact a, that the artifact may be released: ca's content is in scope
// and not kept, and every repository holding it (in any version) may fetch
// the same bytes again from a remote artifact with a matching sha256 (so a
// later fetch is verified and re-attached). arg binds a value and returns
// its placeholder; byContent is the index hint (indexedBy) that makes
// SQLite look kept versions up by content.
func (sc ReclaimScope) reclaimable(arg func(any) string, byContent string) string {
	var b strings.Builder
	if !sc.All && len(sc.Repositories) == 0 {
		return `1 = 0`
	}
	if sc.All {
		b.WriteString(`EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = ca.content_id)`)
	} else {
		ph := make([]string, len(sc.Repositories))
		for i, id := range sc.Repositories {
			ph[i] = arg(id)
		}
		list := strings.Join(ph, ", ")
		b.WriteString(`ca.content_id IN (SELECT rc.content_id FROM repository_content rc WHERE rc.repository_id IN (` + list + `))`)
		ph = ph[:0]
		for _, id := range sc.Repositories {
			ph = append(ph, arg(id))
		}
		b.WriteString(` AND NOT EXISTS (SELECT 1 FROM repository_content o WHERE o.content_id = ca.content_id
			AND o.repository_id NOT IN (` + strings.Join(ph, ", ") + `))`)
	}
	if len(sc.Keep) > 0 {
		kept := make([]string, len(sc.Keep))
		for i, k := range sc.Keep {
			kept[i] = `(k.repository_id = ` + arg(k.RepositoryID) + ` AND k.version_added <= ` + arg(k.Number) +
				` AND (k.version_removed IS NULL OR k.version_removed > ` + arg(k.Number) + `))`
		}
		b.WriteString(` AND NOT EXISTS (SELECT 1 FROM repository_content k` + byContent + ` WHERE k.content_id = ca.content_id AND (` +
			strings.Join(kept, " OR ") + `))`)
	}
	b.WriteString(` AND NOT EXISTS (SELECT 1 FROM repository_content q WHERE q.content_id = ca.content_id
		AND NOT EXISTS (SELECT 1 FROM remote_artifacts ra JOIN (` + usableRemotes + `) u ON u.remote_id = ra.remote_id
			WHERE ra.content_artifact_id = ca.id AND u.repository_id = q.repository_id AND ra.sha256 = a.sha256))`)
	return b.String()
}

// indexedBy returns SQLite's hint to use index idx ("" on PostgreSQL,
// whose planner has statistics). Without statistics SQLite prefers the
// index matching more equality columns, e.g. (repository_id, version_added)
// over (content_id) for a per-unit membership test, which would scan a
// whole version once per unit.
func (s *Store) indexedBy(idx string) string {
	if s.dialect.name() == "sqlite" {
		return " INDEXED BY " + idx
	}
	return ""
}

// argList numbers placeholders from $start as values are bound.
type argList struct {
	args  []any
	start int
}

func (l *argList) bind(v any) string {
	l.args = append(l.args, v)
	return "$" + strconv.Itoa(l.start+len(l.args)-1)
}

// CountReclaimable returns how many distinct artifacts a reclaim of scope
// would release.
func (s *Store) CountReclaimable(ctx context.Context, sc ReclaimScope) (int64, error) {
	l := &argList{start: 1}
	cond := sc.reclaimable(l.bind, s.indexedBy("repository_content_content"))
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT ca.artifact_id) FROM content_artifacts ca
		JOIN artifacts a ON a.id = ca.artifact_id WHERE `+cond, l.args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count reclaimable artifacts: %w", err)
	}
	return n, nil
}

// Reclaimed is a content artifact whose stored bytes are to be released.
type Reclaimed struct {
	ContentArtifactID string
	ArtifactID        string
}

// ReclaimCandidates streams the content artifacts a reclaim of scope would
// release to fn in batches of up to size, reading them in one pass. fn may
// write (ReleaseArtifacts): the read sees the database as it was when it
// started, and every release re-checks the condition.
func (s *Store) ReclaimCandidates(ctx context.Context, sc ReclaimScope, size int, fn func([]Reclaimed) error) error {
	l := &argList{start: 1}
	cond := sc.reclaimable(l.bind, s.indexedBy("repository_content_content"))
	rows, err := s.db.QueryContext(ctx, `SELECT ca.id, ca.artifact_id FROM content_artifacts ca
		JOIN artifacts a ON a.id = ca.artifact_id WHERE `+cond, l.args...)
	if err != nil {
		return fmt.Errorf("store: reclaim candidates: %w", err)
	}
	defer rows.Close()
	batch := make([]Reclaimed, 0, size)
	for rows.Next() {
		var r Reclaimed
		if err := rows.Scan(&r.ContentArtifactID, &r.ArtifactID); err != nil {
			return fmt.Errorf("store: reclaim candidates: %w", err)
		}
		batch = append(batch, r)
		if len(batch) == size {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: reclaim candidates: %w", err)
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// ReleaseArtifacts detaches the artifacts of the given content artifacts
// that still satisfy scope's condition, and returns the ids of the
// artifacts detached (deduplicated). The content stays; its bytes are
// fetched again through its remote artifacts when needed.
func (s *Store) ReleaseArtifacts(ctx context.Context, sc ReclaimScope, batch []Reclaimed) ([]string, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	var released []string
	err := s.InTx(ctx, func(tx *Tx) error {
		l := &argList{start: 1}
		now := l.bind(Now())
		ids := make([]string, len(batch))
		for i, r := range batch {
			ids[i] = l.bind(r.ContentArtifactID)
		}
		cond := sc.reclaimable(l.bind, s.indexedBy("repository_content_content"))
		// The condition reads ca and a as of this statement: content that
		// joined another repository meanwhile keeps its bytes.
		rows, err := tx.Query(ctx, `UPDATE content_artifacts SET artifact_id = NULL, last_updated = `+now+`
			WHERE id IN (`+strings.Join(ids, ", ")+`) AND id IN (SELECT ca.id FROM content_artifacts ca
				JOIN artifacts a ON a.id = ca.artifact_id WHERE ca.id IN (`+strings.Join(ids, ", ")+`) AND `+cond+`)
			RETURNING id`, l.args...)
		if err != nil {
			return err
		}
		done := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			done[id] = true
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		seen := map[string]bool{}
		for _, r := range batch {
			if done[r.ContentArtifactID] && !seen[r.ArtifactID] {
				seen[r.ArtifactID] = true
				released = append(released, r.ArtifactID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: release artifacts: %w", err)
	}
	return released, nil
}

// ArtifactsByID returns the artifacts with the given ids that exist.
func (s *Store) ArtifactsByID(ctx context.Context, ids []string) ([]*Artifact, error) {
	var out []*Artifact
	err := chunks(ids, func(c []string) error {
		rows, err := s.db.QueryContext(ctx, `SELECT `+ArtifactColumns+` FROM artifacts WHERE id IN (`+inList(1, len(c))+`)`, anys(c)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := ScanArtifact(rows)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: artifacts by id: %w", err)
	}
	return out, nil
}
