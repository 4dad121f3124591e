package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Artifact is a stored file, addressed by its sha256.
type Artifact struct {
	ID                  string
	Created             int64
	LastUpdated         int64
	File                string
	Size                int64
	MD5, SHA1           *string
	SHA224, SHA256      string
	SHA384, SHA512      string
	TimestampOfInterest int64
}

// ArtifactColumns lists the artifact columns in scan order.
const ArtifactColumns = `id, created, last_updated, file, size, md5, sha1, sha224, sha256, sha384, sha512, timestamp_of_interest`

// ScanArtifact reads a row selected with ArtifactColumns.
func ScanArtifact(row interface{ Scan(...any) error }) (*Artifact, error) {
	a := &Artifact{}
	var sha224, sha384, sha512 sql.NullString
	if err := row.Scan(&a.ID, &a.Created, &a.LastUpdated, &a.File, &a.Size, &a.MD5, &a.SHA1, &sha224, &a.SHA256, &sha384, &sha512, &a.TimestampOfInterest); err != nil {
		return nil, err
	}
	a.SHA224, a.SHA384, a.SHA512 = sha224.String, sha384.String, sha512.String
	return a, nil
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// InsertArtifact records a committed artifact. If one with the same sha256
// exists, it is touched and returned instead with existed=true.
func (s *Store) InsertArtifact(ctx context.Context, tx *Tx, a *Artifact) (out *Artifact, existed bool, err error) {
	now := Now()
	if a.ID == "" {
		a.ID = NewID()
	}
	a.Created, a.LastUpdated, a.TimestampOfInterest = now, now, now
	var q querier = s.db
	if tx != nil {
		q = tx.tx
	}
	res, err := q.ExecContext(ctx, `INSERT INTO artifacts (`+ArtifactColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (sha256) DO NOTHING`,
		a.ID, a.Created, a.LastUpdated, a.File, a.Size, a.MD5, a.SHA1, nullStr(a.SHA224), a.SHA256, nullStr(a.SHA384), nullStr(a.SHA512), a.TimestampOfInterest)
	if err != nil {
		return nil, false, fmt.Errorf("store: insert artifact %s: %w", a.SHA256, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return a, false, nil
	}
	if _, err := q.ExecContext(ctx, `UPDATE artifacts SET timestamp_of_interest = $1 WHERE sha256 = $2`, now, a.SHA256); err != nil {
		return nil, false, fmt.Errorf("store: touch artifact %s: %w", a.SHA256, err)
	}
	ex, err := ScanArtifact(q.QueryRowContext(ctx, `SELECT `+ArtifactColumns+` FROM artifacts WHERE sha256 = $1`, a.SHA256))
	if err != nil {
		return nil, false, fmt.Errorf("store: read artifact %s: %w", a.SHA256, err)
	}
	return ex, true, nil
}

// GetArtifact returns an artifact by id.
func (s *Store) GetArtifact(ctx context.Context, id string) (*Artifact, error) {
	a, err := ScanArtifact(s.db.QueryRowContext(ctx, `SELECT `+ArtifactColumns+` FROM artifacts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get artifact %s: %w", id, err)
	}
	return a, nil
}

// ArtifactBySHA256 returns the artifact with that digest.
func (s *Store) ArtifactBySHA256(ctx context.Context, sha256 string) (*Artifact, error) {
	a, err := ScanArtifact(s.db.QueryRowContext(ctx, `SELECT `+ArtifactColumns+` FROM artifacts WHERE sha256 = $1`, strings.ToLower(sha256)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get artifact by sha256: %w", err)
	}
	return a, nil
}

// ListArtifacts returns one page of artifacts matching where (with args).
func (s *Store) ListArtifacts(ctx context.Context, where string, args []any, orderBy string, limit, offset int) ([]*Artifact, error) {
	if orderBy == "" {
		orderBy = "created DESC, id DESC"
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+ArtifactColumns+` FROM artifacts`+where+` ORDER BY `+orderBy+
		fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list artifacts: %w", err)
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

// CountRows counts rows of table matching where; an empty where uses the
// maintained row count, so unfiltered counts cost nothing at any size.
func (s *Store) CountRows(ctx context.Context, table, where string, args []any) (int64, error) {
	if where == "" {
		return s.Count(ctx, table)
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count %s: %w", table, err)
	}
	return n, nil
}

// DeleteArtifact removes an artifact row.
func (s *Store) DeleteArtifact(ctx context.Context, tx *Tx, id string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM artifacts WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: delete artifact %s: %w", id, err)
	}
	return nil
}

// ArtifactsAfter returns up to limit artifacts with id > after, in id
// order, optionally restricted by a condition on the artifacts table
// aliased a (with its args numbered from $3).
func (s *Store) ArtifactsAfter(ctx context.Context, after, where string, args []any, limit int) ([]*Artifact, error) {
	q := `SELECT ` + prefixed("a.", ArtifactColumns) + ` FROM artifacts a WHERE a.id > $1`
	if where != "" {
		q += ` AND (` + where + `)`
	}
	q += ` ORDER BY a.id LIMIT $2`
	rows, err := s.db.QueryContext(ctx, q, append([]any{after, limit}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("store: artifacts after %s: %w", after, err)
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
