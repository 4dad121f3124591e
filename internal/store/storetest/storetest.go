// Package storetest opens real databases for tests: always SQLite in a
// temporary directory, and PostgreSQL when PITH_TEST_DATABASE_URL is set
// (each test gets its own schema, dropped afterwards).
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/pith-project/pith/internal/store"
)

// EnvPostgres names the variable holding the PostgreSQL test database URL.
const EnvPostgres = "PITH_TEST_DATABASE_URL"

// Backend is a named way to open a fresh, empty, migrated store.
type Backend struct {
	Name string
	// URL opens a fresh database and returns the URL to pass to store.Open
	// ("" for SQLite in dataDir), registering its cleanup on t.
	URL func(t testing.TB) string
}

// Backends lists the backends available to this test run.
func Backends() []Backend {
	bs := []Backend{{Name: "sqlite", URL: func(testing.TB) string { return "" }}}
	if u := os.Getenv(EnvPostgres); u != "" {
		bs = append(bs, Backend{Name: "postgres", URL: func(t testing.TB) string { return FreshPostgres(t, u) }})
	}
	return bs
}

// Each runs fn once per available backend, each with a fresh store.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, Open(t, b))
		})
	}
}

// Open opens a fresh store on backend b, closed when the test ends.
func Open(t testing.TB, b Backend) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, b.URL(t), t.TempDir())
	if err != nil {
		t.Fatalf("open %s store: %v", b.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var schemaSeq atomic.Int64

// FreshPostgres creates a new schema in the database at base and returns a
// URL whose connections use it; the schema is dropped at cleanup.
func FreshPostgres(t testing.TB, base string) string {
	t.Helper()
	schema := fmt.Sprintf("pith_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemaSeq.Add(1))
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		t.Fatalf("postgres: create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		// Terminate stragglers (listeners) holding the schema before dropping.
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Logf("postgres: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return strings.TrimSpace(u.String())
}
