package repository

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pith-project/pith/internal/store"
)

const batchSize = 500

// Version is a repository version under construction inside a task. Its
// changes are invisible until Finalize; Discard undoes them.
type Version struct {
	s      *store.Store
	repo   *Repo
	id     string
	number int
	base   *VersionRow
	// removed is set once this version removed units: only then can Add
	// meet units to bring back.
	removed bool
}

// Number is the number the version will have.
func (v *Version) Number() int { return v.number }

// ID is the version's id.
func (v *Version) ID() string { return v.id }

// Repo is the repository the version belongs to.
func (v *Version) Repo() *Repo { return v.repo }

// NewVersion starts version next_version of the repository. Its content
// starts as the latest version's, or as base's when base is given.
// Callers hold the repository exclusively (task lock).
func NewVersion(ctx context.Context, s *store.Store, repoID string, base *VersionRow) (*Version, error) {
	repo, err := Get(ctx, s, repoID)
	if err != nil {
		return nil, err
	}
	// A crash may have left an incomplete version; undo it first.
	if err := discardIncomplete(ctx, s, repoID); err != nil {
		return nil, err
	}
	latest, err := Latest(ctx, s, repoID)
	if err != nil {
		return nil, err
	}
	v := &Version{s: s, repo: repo, id: store.NewID(), number: repo.NextVersion, base: latest}
	var baseID *string
	if base != nil {
		baseID = &base.ID
	}
	now := store.Now()
	if _, err := s.Exec(ctx, `INSERT INTO repository_versions (id, created, last_updated, repository_id, number, complete, base_version_id) VALUES ($1, $2, $2, $3, $4, FALSE, $5)`,
		v.id, now, repoID, v.number, baseID); err != nil {
		return nil, fmt.Errorf("repository: new version: %w", err)
	}
	if base != nil && base.Number != latest.Number {
		if err := v.RemoveAll(ctx); err != nil {
			return nil, err
		}
		if err := v.addVersionContent(ctx, base); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (v *Version) addVersionContent(ctx context.Context, from *VersionRow) error {
	after := ""
	for {
		rows, err := v.s.Query(ctx, `SELECT rc.content_id FROM repository_content rc WHERE rc.repository_id = $1 AND rc.version_added <= $2
			AND (rc.version_removed IS NULL OR rc.version_removed > $2) AND rc.content_id > $3 ORDER BY rc.content_id LIMIT $4`,
			from.RepositoryID, from.Number, after, batchSize)
		if err != nil {
			return fmt.Errorf("repository: read version content: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) == 0 {
			return nil
		}
		if err := v.Add(ctx, ids); err != nil {
			return err
		}
		after = ids[len(ids)-1]
	}
}

// Add puts units into the version: units removed earlier in this version
// come back, units already present stay, others are added.
func (v *Version) Add(ctx context.Context, ids []string) error {
	for len(ids) > 0 {
		n := min(len(ids), batchSize)
		if err := v.add(ctx, dedupe(ids[:n])); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// membershipCols are the columns Add inserts; version_removed stays NULL.
var membershipCols = []store.Col{{Name: "id", Type: "text"}, {Name: "created", Type: "bigint"}, {Name: "repository_id", Type: "text"},
	{Name: "content_id", Type: "text"}, {Name: "version_added", Type: "integer"}}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func (v *Version) add(ctx context.Context, ids []string) error {
	return v.s.InTx(ctx, func(tx *store.Tx) error {
		if v.removed {
			// Units removed earlier in this version come back.
			where, keys := v.s.KeyedRows("repository_content", `repository_id = $1 AND version_removed = $2`, "content_id", 3, ids)
			if _, err := tx.Exec(ctx, v.s.Bulk(`UPDATE repository_content SET version_removed = NULL WHERE `+where),
				append([]any{v.repo.ID, v.number}, keys...)...); err != nil {
				return fmt.Errorf("repository: add: %w", err)
			}
		}
		where, keys := v.s.KeyedRows("repository_content", `repository_id = $1 AND version_removed IS NULL`, "content_id", 2, ids)
		rows, err := tx.Query(ctx, v.s.Bulk(`SELECT content_id FROM repository_content WHERE `+where), append([]any{v.repo.ID}, keys...)...)
		if err != nil {
			return fmt.Errorf("repository: add: %w", err)
		}
		present := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			present[id] = true
		}
		rows.Close()
		var vals [][]any
		now := store.Now()
		for _, id := range ids {
			if !present[id] {
				vals = append(vals, []any{store.NewID(), now, v.repo.ID, id, v.number})
			}
		}
		if len(vals) == 0 {
			return nil
		}
		q, args := v.s.InsertRows("repository_content", membershipCols, vals, "")
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("repository: add: %w", err)
		}
		return nil
	})
}

// Remove takes units out of the version.
func (v *Version) Remove(ctx context.Context, ids []string) error {
	for len(ids) > 0 {
		n := min(len(ids), batchSize)
		batch := ids[:n]
		ids = ids[n:]
		err := v.s.InTx(ctx, func(tx *store.Tx) error {
			// Added and removed within this version: it was never there.
			where, keys := v.s.KeyedRows("repository_content", `repository_id = $1 AND version_added = $2`, "content_id", 3, batch)
			if _, err := tx.Exec(ctx, v.s.Bulk(`DELETE FROM repository_content WHERE `+where), append([]any{v.repo.ID, v.number}, keys...)...); err != nil {
				return err
			}
			where, keys = v.s.KeyedRows("repository_content", `repository_id = $2 AND version_removed IS NULL`, "content_id", 3, batch)
			_, err := tx.Exec(ctx, v.s.Bulk(`UPDATE repository_content SET version_removed = $1 WHERE `+where), append([]any{v.number, v.repo.ID}, keys...)...)
			return err
		})
		if err != nil {
			return fmt.Errorf("repository: remove: %w", err)
		}
		v.removed = true
	}
	return nil
}

// RemoveAll empties the version; units added afterwards that were present
// before come back unchanged (mirror syncs use this).
func (v *Version) RemoveAll(ctx context.Context) error {
	err := v.s.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM repository_content WHERE repository_id = $1 AND version_added = $2`, v.repo.ID, v.number); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE repository_content SET version_removed = $2 WHERE repository_id = $1 AND version_removed IS NULL`, v.repo.ID, v.number)
		return err
	})
	if err != nil {
		return fmt.Errorf("repository: remove all: %w", err)
	}
	v.removed = true
	return nil
}

// Discard undoes the version's changes and deletes it (failed or canceled
// tasks).
func (v *Version) Discard(ctx context.Context) error {
	return discard(ctx, v.s, v.repo.ID, v.id, v.number)
}

func discard(ctx context.Context, s *store.Store, repoID, versionID string, number int) error {
	return s.InTx(ctx, func(tx *store.Tx) error {
		// Only an incomplete version is discarded: once complete (a task
		// failing after Finalize), it is a version like any other.
		var complete bool
		err := tx.QueryRow(ctx, `SELECT complete FROM repository_versions WHERE id = $1`, versionID).Scan(&complete)
		if isNoRows(err) || (err == nil && complete) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM repository_content WHERE repository_id = $1 AND version_added = $2`, repoID, number); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE repository_content SET version_removed = NULL WHERE repository_id = $1 AND version_removed = $2`, repoID, number); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM publications WHERE repository_version_id = $1`, versionID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM repository_versions WHERE id = $1 AND NOT complete`, versionID)
		return err
	})
}

func discardIncomplete(ctx context.Context, s *store.Store, repoID string) error {
	rows, err := s.Query(ctx, `SELECT id, number FROM repository_versions WHERE repository_id = $1 AND NOT complete`, repoID)
	if err != nil {
		return fmt.Errorf("repository: find incomplete versions: %w", err)
	}
	type inc struct {
		id string
		n  int
	}
	var list []inc
	for rows.Next() {
		var x inc
		if err := rows.Scan(&x.id, &x.n); err != nil {
			rows.Close()
			return err
		}
		list = append(list, x)
	}
	rows.Close()
	for _, x := range list {
		if err := discard(ctx, s, repoID, x.id, x.n); err != nil {
			return fmt.Errorf("repository: discard incomplete version %d: %w", x.n, err)
		}
	}
	return nil
}

// Validator checks a finished version before it completes (e.g. the file
// plugin refuses paths that overlap).
type Validator func(ctx context.Context, s *store.Store, repoID string, number int) error

// Finalize applies replace-on-add, validates, and completes the version.
// It returns nil (and deletes the version) when nothing changed, so a no-op
// sync or modify creates no version and consumes no number.
func (v *Version) Finalize(ctx context.Context, validate Validator) (*VersionRow, error) {
	if err := v.replaceByRepoKey(ctx); err != nil {
		return nil, err
	}
	var added, removed int64
	if err := v.s.QueryRow(ctx, `SELECT COUNT(*) FROM repository_content WHERE repository_id = $1 AND version_added = $2`, v.repo.ID, v.number).Scan(&added); err != nil {
		return nil, fmt.Errorf("repository: finalize: %w", err)
	}
	if err := v.s.QueryRow(ctx, `SELECT COUNT(*) FROM repository_content WHERE repository_id = $1 AND version_removed = $2`, v.repo.ID, v.number).Scan(&removed); err != nil {
		return nil, fmt.Errorf("repository: finalize: %w", err)
	}
	if added == 0 && removed == 0 {
		return nil, v.Discard(ctx)
	}
	if validate != nil {
		if err := validate(ctx, v.s, v.repo.ID, v.number); err != nil {
			return nil, err
		}
	}
	err := v.s.InTx(ctx, func(tx *store.Tx) error {
		if err := writeCounts(ctx, tx, v.repo.ID, v.id, v.number, v.base); err != nil {
			return err
		}
		now := store.Now()
		if _, err := tx.Exec(ctx, `UPDATE repository_versions SET complete = TRUE, last_updated = $2 WHERE id = $1`, v.id, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE repositories SET next_version = $2, last_updated = $3 WHERE id = $1`, v.repo.ID, v.number+1, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("repository: complete version %d: %w", v.number, err)
	}
	v.repo.NextVersion = v.number + 1
	return GetVersionByID(ctx, v.s, v.id)
}

// replaceByRepoKey removes units of earlier versions whose repository key
// (file: relative_path) a unit added in this version takes over, and fails
// when two units added in this version share a key.
func (v *Version) replaceByRepoKey(ctx context.Context) error {
	var typ, key string
	err := v.s.QueryRow(ctx, `SELECT c.pulp_type, c.repo_key FROM repository_content rc JOIN content c ON c.id = rc.content_id
		WHERE rc.repository_id = $1 AND rc.version_added = $2 AND rc.version_removed IS NULL
		GROUP BY c.pulp_type, c.repo_key HAVING COUNT(*) > 1 LIMIT 1`, v.repo.ID, v.number).Scan(&typ, &key)
	if err == nil {
		return &DuplicateKeyError{PulpType: typ, Key: key}
	}
	if !isNoRows(err) {
		return fmt.Errorf("repository: check duplicates: %w", err)
	}
	_, err = v.s.Exec(ctx, `UPDATE repository_content SET version_removed = $2
		WHERE repository_id = $1 AND version_removed IS NULL AND version_added < $2 AND content_id IN (
			SELECT co.id FROM repository_content nw
			JOIN content cn ON cn.id = nw.content_id
			JOIN content co ON co.pulp_type = cn.pulp_type AND co.repo_key = cn.repo_key AND co.id <> cn.id
			WHERE nw.repository_id = $1 AND nw.version_added = $2 AND nw.version_removed IS NULL)`, v.repo.ID, v.number)
	if err != nil {
		return fmt.Errorf("repository: replace by key: %w", err)
	}
	return nil
}

func isNoRows(err error) bool { return err != nil && strings.Contains(err.Error(), "no rows") }

// writeCounts stores added, removed and present counts per content type.
// Present is derived from the previous version's present count, so the
// cost is proportional to the change, not to the repository.
func writeCounts(ctx context.Context, tx *store.Tx, repoID, versionID string, number int, prev *VersionRow) error {
	counts := map[string]map[string]int64{"A": {}, "R": {}, "P": {}}
	q := func(ct, cond string) error {
		rows, err := tx.Query(ctx, `SELECT c.pulp_type, COUNT(*) FROM repository_content rc JOIN content c ON c.id = rc.content_id
			WHERE rc.repository_id = $1 AND `+cond+` GROUP BY c.pulp_type`, repoID, number)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t string
			var n int64
			if err := rows.Scan(&t, &n); err != nil {
				return err
			}
			counts[ct][t] = n
		}
		return rows.Err()
	}
	if err := q("A", "rc.version_added = $2"); err != nil {
		return err
	}
	if err := q("R", "rc.version_removed = $2"); err != nil {
		return err
	}
	if prev != nil {
		rows, err := tx.Query(ctx, `SELECT content_type, count FROM repository_version_counts WHERE version_id = $1 AND count_type = 'P'`, prev.ID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t string
			var n int64
			if err := rows.Scan(&t, &n); err != nil {
				rows.Close()
				return err
			}
			counts["P"][t] = n
		}
		rows.Close()
	}
	for t, n := range counts["A"] {
		counts["P"][t] += n
	}
	for t, n := range counts["R"] {
		counts["P"][t] -= n
	}
	if _, err := tx.Exec(ctx, `DELETE FROM repository_version_counts WHERE version_id = $1`, versionID); err != nil {
		return err
	}
	for ct, m := range counts {
		for t, n := range m {
			if n == 0 && ct == "P" {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO repository_version_counts (version_id, count_type, content_type, count) VALUES ($1, $2, $3, $4)`, versionID, ct, t, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Protected reports whether a distribution serves the version: directly,
// through a publication of it, or as the version of the latest publication
// of a repository it follows.
func Protected(ctx context.Context, s *store.Store, v *VersionRow) (bool, error) {
	var n int
	err := s.QueryRow(ctx, `SELECT COUNT(*) FROM distributions d WHERE d.repository_version_id = $1
		OR d.publication_id IN (SELECT p.id FROM publications p WHERE p.repository_version_id = $1)`, v.ID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("repository: protected: %w", err)
	}
	if n > 0 {
		return true, nil
	}
	if err := s.QueryRow(ctx, `SELECT COUNT(*) FROM distributions WHERE repository_id = $1`, v.RepositoryID).Scan(&n); err != nil {
		return false, fmt.Errorf("repository: protected: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	var served string
	err = s.QueryRow(ctx, `SELECT p.repository_version_id FROM publications p JOIN repository_versions rv ON rv.id = p.repository_version_id
		WHERE rv.repository_id = $1 AND p.complete ORDER BY rv.number DESC, p.created DESC LIMIT 1`, v.RepositoryID).Scan(&served)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("repository: protected: %w", err)
	}
	return served == v.ID, nil
}

// DeleteVersion deletes a complete version, squashing its changes into the
// next complete version (or reverting them when it is the latest). Version
// numbers are never reused.
func DeleteVersion(ctx context.Context, s *store.Store, v *VersionRow) error {
	var complete int
	if err := s.QueryRow(ctx, `SELECT COUNT(*) FROM repository_versions WHERE repository_id = $1 AND complete`, v.RepositoryID).Scan(&complete); err != nil {
		return fmt.Errorf("repository: delete version: %w", err)
	}
	if complete <= 1 {
		return ErrLastVersion
	}
	if p, err := Protected(ctx, s, v); err != nil {
		return err
	} else if p {
		return ErrProtected
	}
	next, err := oneVersion(ctx, s, `SELECT `+VersionColumns+` FROM repository_versions WHERE repository_id = $1 AND complete AND number > $2 ORDER BY number LIMIT 1`, v.RepositoryID, v.Number)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	prev, err := oneVersion(ctx, s, `SELECT `+VersionColumns+` FROM repository_versions WHERE repository_id = $1 AND complete AND number < $2 ORDER BY number DESC LIMIT 1`, v.RepositoryID, v.Number)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.InTx(ctx, func(tx *store.Tx) error {
		repo, n := v.RepositoryID, v.Number
		if next == nil {
			// The latest version: revert its changes.
			if _, err := tx.Exec(ctx, `DELETE FROM repository_content WHERE repository_id = $1 AND version_added = $2`, repo, n); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE repository_content SET version_removed = NULL WHERE repository_id = $1 AND version_removed = $2`, repo, n); err != nil {
				return err
			}
		} else {
			m := next.Number
			// Removed in n and re-added in m: one continuous interval.
			rows, err := tx.Query(ctx, `SELECT content_id FROM repository_content WHERE repository_id = $1 AND version_removed = $2
				AND content_id IN (SELECT content_id FROM repository_content WHERE repository_id = $1 AND version_added = $3)`, repo, n, m)
			if err != nil {
				return err
			}
			var merge []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				merge = append(merge, id)
			}
			rows.Close()
			for len(merge) > 0 {
				k := min(len(merge), batchSize)
				batch := merge[:k]
				merge = merge[k:]
				where, keys := s.KeyedRows("repository_content", `repository_id = $1 AND version_removed = $2`, "content_id", 4, batch)
				if _, err := tx.Exec(ctx, `UPDATE repository_content SET version_removed = (
						SELECT r2.version_removed FROM repository_content r2
						WHERE r2.repository_id = $1 AND r2.version_added = $3 AND r2.content_id = repository_content.content_id)
					WHERE `+where, append([]any{repo, n, m}, keys...)...); err != nil {
					return err
				}
				where, keys = s.KeyedRows("repository_content", `repository_id = $1 AND version_added = $2`, "content_id", 3, batch)
				if _, err := tx.Exec(ctx, `DELETE FROM repository_content WHERE `+where, append([]any{repo, m}, keys...)...); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `UPDATE repository_content SET version_removed = $3 WHERE repository_id = $1 AND version_removed = $2`, repo, n, m); err != nil {
				return err
			}
			// Added in n and removed in m: transient, drop it.
			if _, err := tx.Exec(ctx, `DELETE FROM repository_content WHERE repository_id = $1 AND version_added = $2 AND version_removed = $3`, repo, n, m); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE repository_content SET version_added = $3 WHERE repository_id = $1 AND version_added = $2`, repo, n, m); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE repository_versions SET base_version_id = NULL WHERE base_version_id = $1`, v.ID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM publications WHERE repository_version_id = $1`, v.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE repository_versions SET base_version_id = NULL WHERE base_version_id = $1`, v.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM repository_versions WHERE id = $1`, v.ID); err != nil {
			return err
		}
		if next != nil {
			return writeCounts(ctx, tx, repo, next.ID, next.Number, prev)
		}
		return nil
	})
}

// ApplyRetention deletes the oldest complete versions beyond the
// repository's retain_repo_versions, skipping protected ones.
func ApplyRetention(ctx context.Context, s *store.Store, repoID string) error {
	repo, err := Get(ctx, s, repoID)
	if err != nil {
		return err
	}
	if repo.RetainRepoVersions == nil || *repo.RetainRepoVersions < 1 {
		return nil
	}
	rows, err := s.Query(ctx, `SELECT `+VersionColumns+` FROM repository_versions WHERE repository_id = $1 AND complete ORDER BY number DESC`, repoID)
	if err != nil {
		return fmt.Errorf("repository: retention: %w", err)
	}
	var versions []*VersionRow
	for rows.Next() {
		v, err := ScanVersion(rows)
		if err != nil {
			rows.Close()
			return err
		}
		versions = append(versions, v)
	}
	rows.Close()
	keep := *repo.RetainRepoVersions
	if len(versions) <= keep {
		return nil
	}
	old := versions[keep:]
	sort.Slice(old, func(i, j int) bool { return old[i].Number < old[j].Number })
	for _, v := range old {
		if err := DeleteVersion(ctx, s, v); err != nil && !errors.Is(err, ErrProtected) && !errors.Is(err, ErrLastVersion) {
			return err
		}
	}
	return nil
}
