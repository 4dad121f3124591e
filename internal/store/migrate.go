package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one schema step. A file named NNNN_x.sql applies to every
// backend; NNNN_x.sqlite.sql or NNNN_x.postgres.sql only to that one.
type migration struct {
	name string
	sql  string
}

func (s *Store) migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		n := e.Name()
		base := strings.TrimSuffix(n, ".sql")
		if i := strings.LastIndexByte(base, '.'); i >= 0 && base[i+1:] != s.dialect.name() {
			continue
		}
		b, err := migrationFS.ReadFile("migrations/" + n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{name: n, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// migrate applies every migration not yet recorded, each in its own
// transaction, so a crash leaves the schema at a clean step.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := s.migrations()
	if err != nil {
		return fmt.Errorf("store: read migrations: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	return s.InTx(ctx, func(tx *Tx) error {
		if s.dialect.name() == "postgres" {
			// Serialise concurrent starters (api, content, workers) on one database.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7413201)`); err != nil {
				return fmt.Errorf("store: migration lock: %w", err)
			}
		}
		applied := map[string]bool{}
		rows, err := tx.Query(ctx, `SELECT name FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("store: list migrations: %w", err)
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			applied[n] = true
		}
		rows.Close()
		for _, m := range ms {
			if applied[m.name] {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("store: apply migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name, applied) VALUES ($1, $2)`, m.name, Now()); err != nil {
				return fmt.Errorf("store: record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}

// Migrations lists the applied migration names, oldest first.
func (s *Store) Migrations(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM schema_migrations ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list migrations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
