package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// LinkRepositoryRemote records that remote syncs content into repository.
func (s *Store) LinkRepositoryRemote(ctx context.Context, repositoryID, remoteID string) error {
	_, err := s.Exec(ctx, `INSERT INTO repository_remotes (repository_id, remote_id, created) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, repositoryID, remoteID, Now())
	if err != nil {
		return fmt.Errorf("store: link repository %s to remote %s: %w", repositoryID, remoteID, err)
	}
	return nil
}

// LazySource is a remote artifact the content app may fetch from.
type LazySource struct {
	RemoteArtifactID string
	RemoteID         string
	Policy           string
	URL              string
	Size             int64 // -1: unknown
	SHA256           string
	// Own is true for the repository's current remote, tried first.
	Own bool
	// FailedAt is when the source last sent wrong bytes (Unix µs), or 0.
	FailedAt int64
	// RemoteStamp is the remote's last_updated: a cached downloader built
	// from the same stamp is current.
	RemoteStamp int64
}

// The remote artifacts of content artifact $1 and whether each is from
// the current remote of repository $2, for LazySources and LazyPlan.
const (
	lazySourceColumns = `ra.id, ra.remote_id, r.policy, ra.url, COALESCE(ra.size, -1), COALESCE(ra.sha256, ''),
			COALESCE(rp.remote_id = ra.remote_id, FALSE), COALESCE(ra.failed_at, 0), r.last_updated`
	lazySourceFrom = ` FROM remote_artifacts ra JOIN remotes r ON r.id = ra.remote_id
		LEFT JOIN repositories rp ON rp.id = $2
		WHERE ra.content_artifact_id = $1`
	// lazySourceAllowed: repository $2 may fetch through the remote (its
	// current one, or one that synced into it).
	lazySourceAllowed = `(rp.remote_id = ra.remote_id OR EXISTS (SELECT 1 FROM repository_remotes rr
			WHERE rr.repository_id = $2 AND rr.remote_id = ra.remote_id))`
)

// LazySources lists where the content artifact's bytes may be fetched,
// best first.
// With repositoryID set only the repository's current remote and remotes
// that synced into it qualify; "" allows every remote (Pulp's domain-wide
// behaviour).
func (s *Store) LazySources(ctx context.Context, contentArtifactID, repositoryID string) ([]LazySource, error) {
	q := `SELECT ` + lazySourceColumns + lazySourceFrom
	if repositoryID != "" {
		q += ` AND ` + lazySourceAllowed
	}
	q += ` ORDER BY 7 DESC, ra.created, ra.id`
	rows, err := s.Query(ctx, q, contentArtifactID, repositoryID)
	if err != nil {
		return nil, fmt.Errorf("store: lazy sources of %s: %w", contentArtifactID, err)
	}
	defer rows.Close()
	var out []LazySource
	for rows.Next() {
		var l LazySource
		if err := rows.Scan(&l.RemoteArtifactID, &l.RemoteID, &l.Policy, &l.URL, &l.Size, &l.SHA256, &l.Own, &l.FailedAt, &l.RemoteStamp); err != nil {
			return nil, fmt.Errorf("store: lazy sources of %s: %w", contentArtifactID, err)
		}
		l.SHA256 = strings.ToLower(l.SHA256)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: lazy sources of %s: %w", contentArtifactID, err)
	}
	return out, nil
}

// LazyPlan is everything the content app needs to fetch a content
// artifact's bytes, read in one query (a cold request's first byte waits
// for it).
type LazyPlan struct {
	// Sources are LazySources' answer: the remotes the repository may use,
	// best first.
	Sources []LazySource
	// Others are the content artifact's remote artifacts the repository
	// may not use. They still tell which digest an alternate content
	// source would have to match.
	Others []LazySource
	// ACS are ACSSources' answers for every sha256 any remote artifact of
	// the content artifact names, in ACSSources' order; the caller keeps
	// those of the digest it settles on.
	ACS []LazySource
}

// LazyPlan reads LazySources, the other remote artifacts of the content
// artifact and the alternate content sources of their digests at once.
// While no ACS exists the ACS part is left out: on PostgreSQL, planning it
// took 1.5–2 ms of a cold request's first byte, for nothing.
func (s *Store) LazyPlan(ctx context.Context, contentArtifactID, repositoryID string) (LazyPlan, error) {
	withACS, err := s.anyACS(ctx)
	if err != nil {
		return LazyPlan{}, fmt.Errorf("store: lazy plan of %s: %w", contentArtifactID, err)
	}
	rows, err := s.Query(ctx, lazyPlanQuery(repositoryID, withACS), contentArtifactID, repositoryID)
	if err != nil {
		return LazyPlan{}, fmt.Errorf("store: lazy plan of %s: %w", contentArtifactID, err)
	}
	defer rows.Close()
	return scanLazyPlan(rows, contentArtifactID)
}

// acsPresence caches, per content generation (which ACSs coming and
// going bump, migration 0074), whether any alternate content source
// exists.
type acsPresence struct {
	seen atomic.Pointer[acsSeen] // nil: never asked
}

type acsSeen struct {
	gen    int64 // read before the query, so a later change moves past it
	exists bool
}

// anyACS reports whether an alternate content source exists, asking the
// database once per content generation.
func (s *Store) anyACS(ctx context.Context) (bool, error) {
	gen := s.ContentGeneration(ctx)
	if seen := s.acs.seen.Load(); seen != nil && seen.gen == gen {
		return seen.exists, nil
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM alternate_content_sources)`).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for alternate content sources: %w", err)
	}
	s.acs.seen.Store(&acsSeen{gen: gen, exists: exists})
	return exists, nil
}

// lazyPlanQuery is LazyPlan's statement.
func lazyPlanQuery(repositoryID string, withACS bool) string {
	allowed := `TRUE`
	if repositoryID != "" {
		allowed = `COALESCE(` + lazySourceAllowed + `, FALSE)`
	}
	// Two kinds of rows, each in its own order: the repository's (its own
	// remote first, then the oldest), then the ACSs' (never failed first,
	// then the oldest).
	own := `SELECT 0, ` + lazySourceColumns + `, ` + allowed + `,
			CASE WHEN COALESCE(rp.remote_id = ra.remote_id, FALSE) THEN 0 ELSE 1 END, ra.created` + lazySourceFrom
	if !withACS {
		return own + ` ORDER BY 1, 12, 13, 2`
	}
	return own + `
		UNION ALL
		SELECT 1, ra.id, ra.remote_id, r.policy, ra.url, COALESCE(ra.size, -1), COALESCE(ra.sha256, ''),
			FALSE, COALESCE(ra.failed_at, 0), r.last_updated, TRUE, COALESCE(ra.failed_at, 0), ra.created` + acsSourceFrom + `
		WHERE ra.sha256 IN (SELECT lower(x.sha256) FROM remote_artifacts x WHERE x.content_artifact_id = $1 AND x.sha256 IS NOT NULL)` +
		acsSourceExists + `
		ORDER BY 1, 12, 13, 2`
}

func scanLazyPlan(rows *sql.Rows, contentArtifactID string) (LazyPlan, error) {
	var p LazyPlan
	for rows.Next() {
		var l LazySource
		var kind, order, created int64
		var ok bool
		if err := rows.Scan(&kind, &l.RemoteArtifactID, &l.RemoteID, &l.Policy, &l.URL, &l.Size, &l.SHA256, &l.Own, &l.FailedAt,
			&l.RemoteStamp, &ok, &order, &created); err != nil {
			return LazyPlan{}, fmt.Errorf("store: lazy plan of %s: %w", contentArtifactID, err)
		}
		l.SHA256 = strings.ToLower(l.SHA256)
		switch {
		case kind == 1:
			p.ACS = append(p.ACS, l)
		case ok:
			p.Sources = append(p.Sources, l)
		default:
			p.Others = append(p.Others, l)
		}
	}
	if err := rows.Err(); err != nil {
		return LazyPlan{}, fmt.Errorf("store: lazy plan of %s: %w", contentArtifactID, err)
	}
	return p, nil
}

// MarkRemoteArtifactFailed starts a remote artifact's cooldown: it served
// bytes that did not match, so other processes skip it too.
func (s *Store) MarkRemoteArtifactFailed(ctx context.Context, remoteArtifactID string, at int64) error {
	if _, err := s.Exec(ctx, `UPDATE remote_artifacts SET failed_at = $2 WHERE id = $1`, remoteArtifactID, at); err != nil {
		return fmt.Errorf("store: mark remote artifact %s failed: %w", remoteArtifactID, err)
	}
	return nil
}

// AttachArtifact records a committed artifact and links it to every
// content artifact still waiting for those bytes (known by a remote
// artifact with the same sha256). It returns the stored artifact row.
func (s *Store) AttachArtifact(ctx context.Context, a *Artifact) (*Artifact, error) {
	stored, err := s.InsertArtifacts(ctx, []*Artifact{a})
	if err != nil {
		return nil, err
	}
	art := stored[0]
	_, err = s.Exec(ctx, `UPDATE content_artifacts SET artifact_id = $1, last_updated = $3
		WHERE artifact_id IS NULL AND id IN (SELECT content_artifact_id FROM remote_artifacts WHERE sha256 = $2)`,
		art.ID, art.SHA256, Now())
	if err != nil {
		return nil, fmt.Errorf("store: attach artifact %s: %w", art.SHA256, err)
	}
	return art, nil
}

// LazyLease is a claim on fetching one artifact.
type LazyLease struct {
	SHA256, Owner, Spool string
	Size                 int64
	Expires              int64
}

// AcquireLazyLease claims the fetch of sha256 for owner until expires. If
// another owner holds an unexpired lease, that lease is returned with
// ok=false.
func (s *Store) AcquireLazyLease(ctx context.Context, l LazyLease) (held LazyLease, ok bool, err error) {
	if s.dialect.name() == "postgres" {
		held, ok, _, err = s.acquireLazyLeasePG(ctx, l, false)
		return held, ok, err
	}
	err = s.InTx(ctx, func(tx *Tx) error {
		var cur LazyLease
		err := tx.QueryRow(ctx, `SELECT sha256, owner, spool, size, expires FROM lazy_fetches WHERE sha256 = $1`+s.forUpdate(), l.SHA256).
			Scan(&cur.SHA256, &cur.Owner, &cur.Spool, &cur.Size, &cur.Expires)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.Exec(ctx, `INSERT INTO lazy_fetches (sha256, owner, spool, size, expires) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (sha256) DO NOTHING`, l.SHA256, l.Owner, l.Spool, l.Size, l.Expires)
			if err != nil {
				return err
			}
			held, ok = l, true
			return nil
		case err != nil:
			return err
		case cur.Owner != l.Owner && cur.Expires > Now():
			held, ok = cur, false
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE lazy_fetches SET owner = $2, spool = $3, size = $4, expires = $5 WHERE sha256 = $1`,
			l.SHA256, l.Owner, l.Spool, l.Size, l.Expires)
		held, ok = l, err == nil
		return err
	})
	if err != nil {
		return LazyLease{}, false, fmt.Errorf("store: acquire lazy lease %s: %w", l.SHA256, err)
	}
	return held, ok, nil
}

// AcquireLazyLeaseUnlessStored is AcquireLazyLease for bytes that may have
// been stored meanwhile: if an artifact with l.SHA256 exists, it takes no
// lease and reports stored. On PostgreSQL the check and the claim are one
// statement, one round trip in front of a cold request's first byte.
func (s *Store) AcquireLazyLeaseUnlessStored(ctx context.Context, l LazyLease) (held LazyLease, ok, stored bool, err error) {
	if s.dialect.name() == "postgres" {
		return s.acquireLazyLeasePG(ctx, l, true)
	}
	if _, err := s.ArtifactBySHA256(ctx, l.SHA256); err == nil {
		return LazyLease{}, false, true, nil
	} else if !errors.Is(err, ErrNotFound) {
		return LazyLease{}, false, false, err
	}
	held, ok, err = s.AcquireLazyLease(ctx, l)
	return held, ok, false, err
}

// acquireLazyLeasePG takes the lease in one autocommitted statement (the
// table is unlogged, so its commit waits for no WAL flush): the upsert
// claims a missing or expired row, or renews this owner's own, and the
// outer select reports the holder otherwise. The holder is read from the
// statement's snapshot: a row another process inserted a moment ago may not
// be visible yet, and is then reported with an empty owner and spool, which
// callers treat as "held, spool not yet known".
func (s *Store) acquireLazyLeasePG(ctx context.Context, l LazyLease, checkStored bool) (held LazyLease, ok, stored bool, err error) {
	err = s.db.QueryRowContext(ctx, `WITH art AS (SELECT $7::boolean AND EXISTS (SELECT 1 FROM artifacts WHERE sha256 = $1) AS stored),
		claim AS (INSERT INTO lazy_fetches (sha256, owner, spool, size, expires)
			SELECT $1, $2, $3, $4, $5 FROM art WHERE NOT art.stored
			ON CONFLICT (sha256) DO UPDATE SET owner = EXCLUDED.owner, spool = EXCLUDED.spool, size = EXCLUDED.size, expires = EXCLUDED.expires
				WHERE lazy_fetches.owner = EXCLUDED.owner OR lazy_fetches.expires <= $6
			RETURNING 1)
		SELECT art.stored, EXISTS (SELECT 1 FROM claim), COALESCE(f.owner, ''), COALESCE(f.spool, ''), COALESCE(f.size, 0), COALESCE(f.expires, 0)
		FROM art LEFT JOIN lazy_fetches f ON f.sha256 = $1`,
		l.SHA256, l.Owner, l.Spool, l.Size, l.Expires, Now(), checkStored).
		Scan(&stored, &ok, &held.Owner, &held.Spool, &held.Size, &held.Expires)
	if err != nil {
		return LazyLease{}, false, false, fmt.Errorf("store: acquire lazy lease %s: %w", l.SHA256, err)
	}
	switch {
	case stored:
		return LazyLease{}, false, true, nil
	case ok:
		return l, true, false, nil
	}
	held.SHA256 = l.SHA256
	return held, false, false, nil
}

// UpdateLazyLease sets the spool and expiry of owner's lease.
func (s *Store) UpdateLazyLease(ctx context.Context, l LazyLease) error {
	if _, err := s.Exec(ctx, `UPDATE lazy_fetches SET spool = $3, size = $4, expires = $5 WHERE sha256 = $1 AND owner = $2`,
		l.SHA256, l.Owner, l.Spool, l.Size, l.Expires); err != nil {
		return fmt.Errorf("store: update lazy lease %s: %w", l.SHA256, err)
	}
	return nil
}

// ReleaseLazyLease drops owner's lease on sha256.
func (s *Store) ReleaseLazyLease(ctx context.Context, sha256, owner string) error {
	if _, err := s.Exec(ctx, `DELETE FROM lazy_fetches WHERE sha256 = $1 AND owner = $2`, sha256, owner); err != nil {
		return fmt.Errorf("store: release lazy lease %s: %w", sha256, err)
	}
	return nil
}

// GetLazyLease reads the lease on sha256, or ErrNotFound.
func (s *Store) GetLazyLease(ctx context.Context, sha256 string) (LazyLease, error) {
	var l LazyLease
	err := s.QueryRow(ctx, `SELECT sha256, owner, spool, size, expires FROM lazy_fetches WHERE sha256 = $1`, sha256).
		Scan(&l.SHA256, &l.Owner, &l.Spool, &l.Size, &l.Expires)
	if errors.Is(err, sql.ErrNoRows) {
		return l, ErrNotFound
	}
	if err != nil {
		return l, fmt.Errorf("store: read lazy lease %s: %w", sha256, err)
	}
	return l, nil
}

// forUpdate locks selected rows on PostgreSQL; SQLite transactions are
// already serialized by the store's writer lock.
func (s *Store) forUpdate() string {
	if s.dialect.name() == "postgres" {
		return ` FOR UPDATE`
	}
	return ""
}
