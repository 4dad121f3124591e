package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Upload is a chunked upload in progress.
type Upload struct {
	ID          string
	Created     int64
	LastUpdated int64
	Size        int64
	Completed   *int64
}

// UploadChunk is one received byte range of an upload.
type UploadChunk struct {
	Offset int64
	Size   int64
	SHA256 *string
}

const uploadColumns = `id, created, last_updated, size, completed`

func scanUpload(row interface{ Scan(...any) error }) (*Upload, error) {
	u := &Upload{}
	return u, row.Scan(&u.ID, &u.Created, &u.LastUpdated, &u.Size, &u.Completed)
}

// InsertUpload records a new upload of the given size.
func (s *Store) InsertUpload(ctx context.Context, size int64) (*Upload, error) {
	now := Now()
	u := &Upload{ID: NewID(), Created: now, LastUpdated: now, Size: size}
	if _, err := s.Exec(ctx, `INSERT INTO uploads (`+uploadColumns+`) VALUES ($1, $2, $3, $4, NULL)`, u.ID, u.Created, u.LastUpdated, u.Size); err != nil {
		return nil, fmt.Errorf("store: insert upload: %w", err)
	}
	return u, nil
}

// GetUpload returns an upload by id.
func (s *Store) GetUpload(ctx context.Context, id string) (*Upload, error) {
	u, err := scanUpload(s.db.QueryRowContext(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get upload %s: %w", id, err)
	}
	return u, nil
}

// ListUploads returns a page of uploads.
func (s *Store) ListUploads(ctx context.Context, where string, args []any, orderBy string, limit, offset int) ([]*Upload, error) {
	if orderBy == "" {
		orderBy = "created DESC, id DESC"
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+uploadColumns+` FROM uploads`+where+` ORDER BY `+orderBy+fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list uploads: %w", err)
	}
	defer rows.Close()
	var out []*Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// PutUploadChunk records a chunk; a chunk at the same offset replaces the
// earlier one, as Pulp does.
func (s *Store) PutUploadChunk(ctx context.Context, uploadID string, c UploadChunk) error {
	return s.InTx(ctx, func(tx *Tx) error {
		now := Now()
		if _, err := tx.Exec(ctx, `DELETE FROM upload_chunks WHERE upload_id = $1 AND "offset" = $2`, uploadID, c.Offset); err != nil {
			return fmt.Errorf("store: replace chunk: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO upload_chunks (upload_id, "offset", size, sha256, created) VALUES ($1, $2, $3, $4, $5)`,
			uploadID, c.Offset, c.Size, c.SHA256, now); err != nil {
			return fmt.Errorf("store: insert chunk: %w", err)
		}
		_, err := tx.Exec(ctx, `UPDATE uploads SET last_updated = $1 WHERE id = $2`, now, uploadID)
		return err
	})
}

// UploadChunks lists an upload's chunks by offset.
func (s *Store) UploadChunks(ctx context.Context, uploadID string) ([]UploadChunk, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT "offset", size, sha256 FROM upload_chunks WHERE upload_id = $1 ORDER BY "offset"`, uploadID)
	if err != nil {
		return nil, fmt.Errorf("store: list chunks: %w", err)
	}
	defer rows.Close()
	var out []UploadChunk
	for rows.Next() {
		var c UploadChunk
		if err := rows.Scan(&c.Offset, &c.Size, &c.SHA256); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteUpload removes an upload and its chunk records.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	res, err := s.Exec(ctx, `DELETE FROM uploads WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("store: delete upload %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
