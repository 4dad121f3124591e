// Package store is pith's data layer: one schema and one set of queries over
// two SQL backends, SQLite (embedded default) and PostgreSQL (scale-out).
//
// Queries are written once with $n placeholders, which both drivers accept.
// What differs between the engines (opening, regular expressions, claiming
// tasks, cross-process notification) sits behind the small dialect interface.
package store

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would violate a uniqueness rule.
var ErrConflict = errors.New("conflict")

// Store is the database handle shared by every part of pith.
type Store struct {
	db *sql.DB
	// wdb runs writes: on SQLite a one-connection pool of its own, used
	// only under writeMu; on PostgreSQL the same pool as db.
	wdb     *sql.DB
	dialect dialect
	// writeMu serialises write transactions in-process on SQLite, where the
	// engine allows one writer: waiting here is cheaper and fairer than
	// SQLite's sleeping busy handler. Nil on PostgreSQL.
	writeMu *sync.Mutex
	// aead encrypts remote secrets at rest; nil stores them as given.
	aead cipher.AEAD
	// gen is the content generation, kept in memory (generation.go).
	gen contentGen
	// acs caches whether any alternate content source exists (lazy.go).
	acs acsPresence
	// bg ends background watchers on Close.
	bg       context.Context
	bgCancel context.CancelFunc
}

// dialect holds what differs between SQLite and PostgreSQL.
type dialect interface {
	name() string
	// regexOp returns a SQL boolean expression matching col against the
	// regular-expression parameter p (case-insensitively when ci).
	regexOp(col, p string, ci bool) string
	// isUniqueViolation reports whether err is a unique-constraint failure.
	isUniqueViolation(err error) bool
	// listen subscribes to a notification channel; nil when the backend has
	// no cross-process notifications (SQLite is single-process).
	listen(ctx context.Context, channel string) (<-chan string, error)
	// notify sends a notification inside or outside a transaction.
	notify(ctx context.Context, q querier, channel, payload string) error
	close() error
}

// Open connects to the database at url and applies pending migrations. An
// empty url means SQLite at dataDir/pith.db; "postgres://…" means PostgreSQL.
func Open(ctx context.Context, url, dataDir string) (*Store, error) {
	var (
		s   *Store
		err error
	)
	switch {
	case url == "" || strings.HasPrefix(url, "sqlite:") || strings.HasPrefix(url, "file:"):
		s, err = openSQLite(ctx, url, dataDir)
	case strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://"):
		s, err = openPostgres(ctx, url)
	default:
		return nil, fmt.Errorf("store: open: unsupported database url %q (want empty for SQLite or postgres://…)", url)
	}
	if err != nil {
		return nil, err
	}
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.readGeneration(ctx)
	return s, nil
}

// Close releases the database.
func (s *Store) Close() error {
	if s.bgCancel != nil {
		s.bgCancel()
	}
	err := s.dialect.close()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if s.wdb != s.db {
		if cerr := s.wdb.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Dialect names the backend: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect.name() }

// DB exposes the handle for packages that add their own tables (plugins).
func (s *Store) DB() *sql.DB { return s.db }

// Ping checks the connection.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is a transaction handle passed to callbacks of InTx.
type Tx struct {
	tx *sql.Tx
	s  *Store
	// after runs once the transaction committed (notifications, cache drops).
	after []func()
	// content: a statement may have changed the content generation.
	content bool
}

// Exec runs a statement in the transaction.
func (t *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	t.content = t.content || touchesContent(q)
	return t.tx.ExecContext(ctx, q, args...)
}

// Query runs a query in the transaction.
func (t *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	t.content = t.content || touchesContent(q)
	return t.tx.QueryContext(ctx, q, args...)
}

// QueryRow runs a single-row query in the transaction.
func (t *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	t.content = t.content || touchesContent(q)
	return t.tx.QueryRowContext(ctx, q, args...)
}

// AfterCommit registers fn to run after a successful commit.
func (t *Tx) AfterCommit(fn func()) { t.after = append(t.after, fn) }

// Store returns the store the transaction belongs to.
func (t *Tx) Store() *Store { return t.s }

// InTx runs fn in a transaction, committing if it returns nil. On SQLite the
// transaction takes the write lock up front (BEGIN IMMEDIATE), so
// read-then-write sequences never fail with a busy upgrade.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	if s.writeMu != nil {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	sqlTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	tx := &Tx{tx: sqlTx, s: s}
	if err := fn(tx); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if tx.content {
		s.afterWrite()
	}
	for _, f := range tx.after {
		f()
	}
	return nil
}

// Exec runs a statement outside a transaction.
func (s *Store) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if s.writeMu != nil {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	res, err := s.wdb.ExecContext(ctx, q, args...)
	if err == nil && touchesContent(q) {
		s.afterWrite()
	}
	return res, err
}

// Query runs a query outside a transaction.
func (s *Store) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, q, args...)
}

// QueryRow runs a single-row query outside a transaction.
func (s *Store) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, q, args...)
}

// IsUniqueViolation reports whether err comes from a uniqueness constraint.
func (s *Store) IsUniqueViolation(err error) bool { return s.dialect.isUniqueViolation(err) }

// Listen subscribes to a cross-process notification channel. It returns a
// nil channel on backends without notifications.
func (s *Store) Listen(ctx context.Context, channel string) (<-chan string, error) {
	return s.dialect.listen(ctx, channel)
}

// Notify sends a cross-process notification (a no-op on SQLite).
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	return s.dialect.notify(ctx, s.db, channel, payload)
}

// NewID returns a new time-ordered primary key.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// Now returns the current time in the store's unit: microseconds since the
// Unix epoch.
func Now() int64 { return time.Now().UnixMicro() }

// Time converts a stored timestamp to a time.Time in UTC.
func Time(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Micros converts a time to the stored unit.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// ValidID reports whether s looks like a primary key (a UUID).
func ValidID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// Count returns the number of rows of a table kept in row_counts.
func (s *Store) Count(ctx context.Context, table string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT n FROM row_counts WHERE table_name = $1`, table).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count %s: %w", table, err)
	}
	return n, nil
}

// RegexMatch renders a regular-expression match of col against the bound
// parameter p for this backend.
func (s *Store) RegexMatch(col, p string, ci bool) string { return s.dialect.regexOp(col, p, ci) }
