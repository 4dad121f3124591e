package content

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pith-project/pith/internal/store"
)

// DefaultRetention is how long a superseded publication stays servable
// (Pulp's DISTRIBUTED_PUBLICATION_RETENTION_PERIOD).
const DefaultRetention = 72 * time.Hour

// maxPrevious bounds how many superseded publications a request looks
// through.
const maxPrevious = 8

// execQuerier is a store or a transaction.
type execQuerier interface {
	Exec(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

// resolveSQL is Pulp's rule for what a distribution serves; see
// ResolvePublication.
const resolveSQL = `SELECT COALESCE(d.publication_id,
		(SELECT p.id FROM publications p WHERE p.repository_version_id = d.repository_version_id AND p.complete
			ORDER BY p.created DESC, p.id DESC LIMIT 1),
		(SELECT p.id FROM publications p JOIN repository_versions rv ON rv.id = p.repository_version_id
			WHERE rv.repository_id = d.repository_id AND p.complete ORDER BY rv.number DESC, p.created DESC, p.id DESC LIMIT 1))
	FROM distributions d WHERE d.id = $1`

// RecordServed notes the publication distribution distID serves now, and
// starts the retention period of the one it served before. Call it, in the
// same transaction, after anything that may change what a distribution
// serves: creating or updating it, completing a publication it may serve.
func RecordServed(ctx context.Context, q execQuerier, distID string, retention time.Duration) error {
	var pub sql.NullString
	err := q.QueryRow(ctx, resolveSQL, distID).Scan(&pub)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record served publication of %s: %w", distID, err)
	}
	now := store.Now()
	if _, err := q.Exec(ctx, `UPDATE distributed_publications SET expires_at = $3
		WHERE distribution_id = $1 AND expires_at IS NULL AND publication_id <> $2`,
		distID, pub.String, now+retention.Microseconds()); err != nil {
		return fmt.Errorf("record served publication of %s: %w", distID, err)
	}
	if !pub.Valid {
		return nil
	}
	if _, err := q.Exec(ctx, `INSERT INTO distributed_publications (distribution_id, publication_id, created) VALUES ($1, $2, $3)
		ON CONFLICT (distribution_id, publication_id) DO UPDATE SET expires_at = NULL`, distID, pub.String, now); err != nil {
		return fmt.Errorf("record served publication of %s: %w", distID, err)
	}
	return nil
}

// RecordServedByVersion runs RecordServed for every distribution that may
// serve a publication of the repository version: through the version or
// through its repository.
func RecordServedByVersion(ctx context.Context, q interface {
	execQuerier
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}, repositoryID, versionID string, retention time.Duration) error {
	rows, err := q.Query(ctx, `SELECT id FROM distributions WHERE repository_id = $1 OR repository_version_id = $2`, repositoryID, versionID)
	if err != nil {
		return fmt.Errorf("distributions of %s: %w", repositoryID, err)
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
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if err := RecordServed(ctx, q, id, retention); err != nil {
			return err
		}
	}
	return nil
}

// previousPublications lists the publications a distribution served before
// its current one and may still serve, newest first.
func (h *Handler) previousPublications(ctx context.Context, distID, currentID string) ([]*publication, error) {
	rows, err := h.Store.Query(ctx, `SELECT p.id, p.repository_version_id, rv.repository_id, rv.number, p.pass_through, p.created, dp.expires_at
		FROM distributed_publications dp JOIN publications p ON p.id = dp.publication_id
		JOIN repository_versions rv ON rv.id = p.repository_version_id
		WHERE dp.distribution_id = $1 AND dp.publication_id <> $2 AND dp.expires_at > $3 AND p.complete
		ORDER BY dp.expires_at DESC LIMIT `+fmt.Sprint(maxPrevious), distID, currentID, store.Now())
	if err != nil {
		return nil, fmt.Errorf("previous publications of %s: %w", distID, err)
	}
	defer rows.Close()
	var out []*publication
	for rows.Next() {
		p := &publication{}
		if err := rows.Scan(&p.id, &p.versionID, &p.repoID, &p.number, &p.passThrough, &p.created, &p.expires); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
