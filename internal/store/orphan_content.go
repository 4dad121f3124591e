package store

import (
	"context"
	"fmt"
	"strings"
)

// contentOrphaned is the condition, on content aliased c, that no
// repository version (past or present) holds the unit: repository_content
// keeps a row for every version interval, so a unit with none is in no
// version at all.
const contentOrphaned = `NOT EXISTS (SELECT 1 FROM repository_content rc WHERE rc.content_id = c.id)`

// orphanContentBatch bounds one delete statement, so a cleanup of millions
// of units never holds one huge transaction.
const orphanContentBatch = 500

// DeleteOrphanContent deletes content units that no repository version
// holds and whose timestamp_of_interest is older than olderThan; with ids,
// only among those units. Their content artifacts, remote artifacts and
// plugin detail rows go with them (ON DELETE CASCADE); the artifacts stay,
// for artifact orphan cleanup to judge. It returns how many units it
// deleted.
func (s *Store) DeleteOrphanContent(ctx context.Context, olderThan int64, ids []string) (int64, error) {
	if ids != nil {
		var total int64
		for len(ids) > 0 {
			n := min(len(ids), orphanContentBatch)
			batch := ids[:n]
			ids = ids[n:]
			args := []any{olderThan}
			ph := make([]string, len(batch))
			for i, id := range batch {
				args = append(args, id)
				ph[i] = fmt.Sprintf("$%d", i+2)
			}
			deleted, err := s.deleteOrphanContent(ctx, ` AND c.id IN (`+strings.Join(ph, ", ")+`)`, args)
			if err != nil {
				return total, err
			}
			total += deleted
		}
		return total, nil
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.deleteOrphanContent(ctx, ``, []any{olderThan})
		if err != nil {
			return total, err
		}
		total += n
		if n < orphanContentBatch {
			return total, nil
		}
	}
}

// deleteOrphanContent deletes up to orphanContentBatch orphans matching
// the extra condition in one statement: the orphan check and the delete
// are one step, so a unit a concurrent task just added to a version is
// never removed.
func (s *Store) deleteOrphanContent(ctx context.Context, extra string, args []any) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM content WHERE id IN (SELECT c.id FROM content c
		WHERE c.timestamp_of_interest < $1 AND `+contentOrphaned+extra+fmt.Sprintf(` LIMIT %d)`, orphanContentBatch), args...)
	if err != nil {
		return 0, fmt.Errorf("store: delete orphan content: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: delete orphan content: %w", err)
	}
	return n, nil
}
