package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var registerSQLiteFuncs sync.Once

// regexCache keeps compiled patterns; filters reuse the same few patterns
// across many rows.
var regexCache sync.Map

func sqliteRegexp(pattern, s string) (bool, error) {
	if v, ok := regexCache.Load(pattern); ok {
		return v.(*regexp.Regexp).MatchString(s), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return false, err
	}
	regexCache.Store(pattern, re)
	return re.MatchString(s), nil
}

func openSQLite(ctx context.Context, url, dataDir string) (*Store, error) {
	registerSQLiteFuncs.Do(func() {
		sqlite.MustRegisterDeterministicScalarFunction("regexp", 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			p, _ := args[0].(string)
			var s string
			switch v := args[1].(type) {
			case string:
				s = v
			case []byte:
				s = string(v)
			case nil:
				return false, nil
			default:
				s = fmt.Sprint(v)
			}
			return sqliteRegexp(p, s)
		})
	})
	path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "file:")
	if path == "" {
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create data dir: %w", err)
		}
		path = filepath.Join(dataDir, "pith.db")
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)&_pragma=case_sensitive_like(1)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	// Every write goes through one connection (see Store.wdb). Its page
	// cache stays valid between transactions only because no other
	// connection of this process writes, and it holds what big syncs
	// rewrite over and over (index pages); a cache too small for one
	// batch spills dirty pages to the WAL mid-transaction and writes them
	// again at commit. The WAL is checkpointed less often, so a page that
	// many transactions change is copied into the database once.
	wdb, err := sql.Open("sqlite", dsn+
		"&_pragma=cache_size("+strconv.Itoa(-sqliteWriterCacheKiB)+")&_pragma=wal_autocheckpoint("+strconv.Itoa(sqliteCheckpointPages)+")")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	if err := wdb.PingContext(ctx); err != nil {
		db.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	return &Store{db: db, wdb: wdb, dialect: sqliteDialect{}, writeMu: &sync.Mutex{}}, nil
}

// Shape of SQLite's writer connection: its page cache (32 MiB, filled only
// as a database grows that big) and the WAL size, in 4 KiB pages, at which
// a commit checkpoints (64,000 pages: about 250 MiB, which the WAL file
// keeps on disk). A big sync rewrites the same scattered index pages in
// batch after batch; the more batches a checkpoint spans, the fewer copies
// of each page it writes into the database file (at 16,000 pages, the
// checkpoints cost a sixth of an on_demand sync's CPU).
const (
	sqliteWriterCacheKiB  = 32 << 10
	sqliteCheckpointPages = 64000
)

type sqliteDialect struct{}

func (sqliteDialect) name() string { return "sqlite" }

func (sqliteDialect) regexOp(col, p string, ci bool) string {
	if ci {
		return col + " REGEXP ('(?i)' || " + p + ")"
	}
	return col + " REGEXP " + p
}

func (sqliteDialect) isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

func (sqliteDialect) listen(context.Context, string) (<-chan string, error) { return nil, nil }

func (sqliteDialect) notify(context.Context, querier, string, string) error { return nil }

func (sqliteDialect) close() error { return nil }
