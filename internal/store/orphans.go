package store

import (
	"context"
	"fmt"
	"strings"
)

// artifactUnreferenced is the condition, on artifacts aliased a, that no
// content refers to the artifact.
const artifactUnreferenced = `NOT EXISTS (SELECT 1 FROM content_artifacts ca WHERE ca.artifact_id = a.id)
	AND NOT EXISTS (SELECT 1 FROM published_artifacts pa WHERE pa.artifact_id = a.id)`

// OrphanArtifacts returns up to limit artifacts nothing references whose
// timestamp_of_interest is older than olderThan.
func (s *Store) OrphanArtifacts(ctx context.Context, olderThan int64, limit int) ([]*Artifact, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+prefixed("a.", ArtifactColumns)+` FROM artifacts a
		WHERE a.timestamp_of_interest < $1 AND `+artifactUnreferenced+` ORDER BY a.id LIMIT $2`, olderThan, limit)
	if err != nil {
		return nil, fmt.Errorf("store: orphan artifacts: %w", err)
	}
	defer rows.Close()
	var out []*Artifact
	for rows.Next() {
		a, err := ScanArtifact(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeleteArtifactsIfOrphan deletes those of the given artifacts that are
// still unreferenced and untouched, re-checking inside the transaction so a
// concurrent sync that just started using one keeps it.
func (s *Store) DeleteArtifactsIfOrphan(ctx context.Context, batch []*Artifact, olderThan int64) ([]*Artifact, error) {
	var deleted []*Artifact
	err := s.InTx(ctx, func(tx *Tx) error {
		for _, a := range batch {
			res, err := tx.Exec(ctx, `DELETE FROM artifacts WHERE id = $1 AND timestamp_of_interest < $2 AND `+
				strings.ReplaceAll(artifactUnreferenced, "a.id", "artifacts.id"), a.ID, olderThan)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				deleted = append(deleted, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: delete orphan artifacts: %w", err)
	}
	return deleted, nil
}

// ArtifactFilesExist reports which storage names have an artifact row.
func (s *Store) ArtifactFilesExist(ctx context.Context, names []string) (map[string]bool, error) {
	out, err := s.stringsIn(ctx, `SELECT file FROM artifacts WHERE file IN (%s)`, names)
	if err != nil {
		return nil, fmt.Errorf("store: artifact files: %w", err)
	}
	return out, nil
}

// stringsIn runs query, whose %s is replaced by a list of placeholders,
// over values in chunks of 500 and returns the set of strings it selects.
func (s *Store) stringsIn(ctx context.Context, query string, values []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(values) > 0 {
		n := min(len(values), 500)
		chunk := values[:n]
		values = values[n:]
		ph := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, v := range chunk {
			ph[i] = fmt.Sprintf("$%d", i+1)
			args[i] = v
		}
		rows, err := s.db.QueryContext(ctx, fmt.Sprintf(query, strings.Join(ph, ",")), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return nil, err
			}
			out[v] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// contentOrphan is the condition, on content aliased c, that the unit is in
// no repository version (not even an old one), no publication places it,
// and nothing touched it since olderThan (bound to the placeholder that
// replaces $T).
const contentOrphan = `c.timestamp_of_interest < $T
	AND NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = c.id)
	AND NOT EXISTS (SELECT 1 FROM content_artifacts ca JOIN published_artifacts pa ON pa.content_artifact_id = ca.id WHERE ca.content_id = c.id)`

// ExistingContent reports which of ids are content units.
func (s *Store) ExistingContent(ctx context.Context, ids []string) (map[string]bool, error) {
	out, err := s.stringsIn(ctx, `SELECT id FROM content WHERE id IN (%s)`, ids)
	if err != nil {
		return nil, fmt.Errorf("store: existing content: %w", err)
	}
	return out, nil
}

// DeleteOrphanContent deletes content in no repository version untouched
// since olderThan (only among ids when ids is not nil), in batches of
// limit, and returns how many units it removed. Their content artifacts and
// plugin rows go with them (ON DELETE CASCADE); the artifacts themselves
// are left for the artifact cleanup. Each unit is re-checked inside the
// deleting transaction, so one a sync just added to a repository stays.
func (s *Store) DeleteOrphanContent(ctx context.Context, olderThan int64, ids []string, limit int) (int64, error) {
	var total int64
	if ids != nil {
		for len(ids) > 0 {
			n := min(len(ids), limit)
			k, err := s.deleteOrphanContent(ctx, olderThan, ids[:n])
			total += k
			if err != nil {
				return total, err
			}
			ids = ids[n:]
		}
		return total, nil
	}
	after := ""
	for {
		var batch []string
		rows, err := s.db.QueryContext(ctx, `SELECT c.id FROM content c WHERE `+strings.Replace(contentOrphan, "$T", "$1", 1)+` AND c.id > $2 ORDER BY c.id LIMIT $3`, olderThan, after, limit)
		if err != nil {
			return total, fmt.Errorf("store: orphan content: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return total, fmt.Errorf("store: orphan content: %w", err)
			}
			batch = append(batch, id)
		}
		rows.Close()
		if len(batch) == 0 {
			return total, nil
		}
		after = batch[len(batch)-1]
		k, err := s.deleteOrphanContent(ctx, olderThan, batch)
		total += k
		if err != nil {
			return total, err
		}
	}
}

func (s *Store) deleteOrphanContent(ctx context.Context, olderThan int64, ids []string) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(tx *Tx) error {
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return err
			}
			res, err := tx.Exec(ctx, `DELETE FROM content WHERE id IN (SELECT c.id FROM content c WHERE c.id = $1 AND `+strings.Replace(contentOrphan, "$T", "$2", 1)+`)`, id, olderThan)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete orphan content: %w", err)
	}
	return n, nil
}
