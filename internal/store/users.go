package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// User is an API account.
type User struct {
	ID           string
	Created      int64
	LastUpdated  int64
	Username     string
	PasswordHash string
	IsSuperuser  bool
}

// GetUser returns the user with the given name.
func (s *Store) GetUser(ctx context.Context, username string) (*User, error) {
	u := &User{}
	err := s.db.QueryRowContext(ctx, `SELECT id, created, last_updated, username, password_hash, is_superuser FROM users WHERE username = $1`, username).
		Scan(&u.ID, &u.Created, &u.LastUpdated, &u.Username, &u.PasswordHash, &u.IsSuperuser)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get user %s: %w", username, err)
	}
	return u, nil
}

// SetUserPassword creates the user or replaces its password hash. It
// reports whether the user was created.
func (s *Store) SetUserPassword(ctx context.Context, username, hash string, superuser bool) (created bool, err error) {
	err = s.InTx(ctx, func(tx *Tx) error {
		now := Now()
		res, err := tx.Exec(ctx, `UPDATE users SET password_hash = $1, last_updated = $2 WHERE username = $3`, hash, now, username)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		created = true
		_, err = tx.Exec(ctx, `INSERT INTO users (id, created, last_updated, username, password_hash, is_superuser) VALUES ($1, $2, $2, $3, $4, $5)`,
			NewID(), now, username, hash, superuser)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: set password for %s: %w", username, err)
	}
	return created, nil
}
