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
	out := map[string]bool{}
	for len(names) > 0 {
		n := min(len(names), 500)
		chunk := names[:n]
		names = names[n:]
		ph := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, name := range chunk {
			ph[i] = fmt.Sprintf("$%d", i+1)
			args[i] = name
		}
		rows, err := s.db.QueryContext(ctx, `SELECT file FROM artifacts WHERE file IN (`+strings.Join(ph, ",")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: artifact files: %w", err)
		}
		for rows.Next() {
			var f string
			if err := rows.Scan(&f); err != nil {
				rows.Close()
				return nil, err
			}
			out[f] = true
		}
		rows.Close()
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
