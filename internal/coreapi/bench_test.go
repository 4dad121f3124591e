package coreapi_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
	"github.com/pith-project/pith/internal/tasking"
)

const (
	benchTasks      = 1_000_000
	benchTasksShort = 10_000
	// benchDataVersion changes whenever the generator below changes, so a
	// cached SQLite database built by an older generator is not reused.
	benchDataVersion = "1"
	benchSeed        = 0x5eed_7a5c
	// benchChunk tasks are generated and written per transaction (COPY
	// batch on PostgreSQL).
	benchChunk = 50_000
	// benchSpan is the time over which task creation is spread.
	benchSpan = 180 * 24 * time.Hour
	// benchHotPermille is how often a repository task picks the "hot"
	// repository, so that it appears in about 1% of all tasks.
	benchHotPermille = 12
	benchRepos       = 2000
	benchSyncName    = "pulp_file.app.tasks.synchronizing.synchronize"
)

var benchStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// benchNames are Pulp task names with their share of tasks (in percent) and
// whether they lock a repository.
var benchNames = []struct {
	name      string
	percent   int
	repo      bool
	immediate bool
}{
	{benchSyncName, 40, true, false},
	{"pulp_file.app.tasks.publishing.publish", 20, true, false},
	{"pulpcore.app.tasks.repository.add_and_remove", 10, true, false},
	{"pulpcore.app.tasks.base.general_create", 10, false, false},
	{"pulpcore.app.tasks.base.general_update", 5, true, true},
	{"pulpcore.app.tasks.base.general_delete", 5, true, true},
	{"pulpcore.app.tasks.orphan.orphan_cleanup", 5, false, false},
	{"pulpcore.app.tasks.reclaim_space.reclaim_space", 3, true, false},
	{"pulpcore.app.tasks.purge.purge", 2, false, false},
}

// benchTables are the tables the generator fills, parents first, with their
// columns in generated order.
var benchTables = []struct {
	name string
	cols []string
}{
	{"tasks", strings.Split(strings.ReplaceAll(store.TaskColumns, " ", ""), ",")},
	{"task_resources", []string{"task_id", "resource", "exclusive"}},
	{"progress_reports", []string{"id", "task_id", "seq", "message", "code", "state", "total", "done", "suffix"}},
	{"created_resources", []string{"task_id", "seq", "href"}},
}

// benchGen derives every task from its index alone, so any task can be
// regenerated (to check a response) without keeping the data set around.
type benchGen struct {
	n       int
	step    int64
	pcg     *rand.PCG
	r       *rand.Rand
	repos   []string // repository ids
	workers []string
	user    string
	hotPRN  string
}

func newBenchGen(n int) *benchGen {
	g := &benchGen{n: n, step: benchSpan.Microseconds() / int64(n), pcg: rand.NewPCG(benchSeed, 0)}
	g.r = rand.New(g.pcg)
	for i := range benchRepos {
		g.pcg.Seed(benchSeed, uint64(1<<40+i))
		g.repos = append(g.repos, g.uuidAt(benchStart/1000-int64(i)*60_000))
	}
	g.user = g.repos[len(g.repos)-1]
	for i := range 8 {
		g.workers = append(g.workers, fmt.Sprintf("%d@pulp-worker-%d.example.com/%d", 1000+i, i/2, 1+i%2))
	}
	g.hotPRN = "prn:file.filerepository:" + g.repos[0]
	return g
}

// uuidAt returns a UUIDv7 for the millisecond ms, as store.NewID would
// have made at that time.
func (g *benchGen) uuidAt(ms int64) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[8:], g.r.Uint64())
	binary.BigEndian.PutUint64(u[:8], uint64(ms)<<16|g.r.Uint64()&0x0fff)
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}

func (g *benchGen) hex(n int) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], g.r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], g.r.Uint64())
	return hex.EncodeToString(b[:n/2])
}

// benchTask is one generated task with its child rows.
type benchTask struct {
	benchHead
	exclusive []string
	shared    []string
	rows      [4][][]any // per benchTables entry
}

// benchHead is what the filters look at: the first values drawn for a task,
// cheap enough to regenerate for the expected counts.
type benchHead struct {
	id, name, state string
	created         int64
	kind            int
	repo            int // index into repos, -1 for none
}

func (h benchHead) reports() [][2]string {
	switch h.name {
	case benchSyncName:
		return [][2]string{{"Downloading Metadata Files", "sync.downloading.metadata"}, {"Downloading Artifacts", "sync.downloading.artifacts"}}
	case "pulp_file.app.tasks.publishing.publish":
		return [][2]string{{"Publishing files", "publish.files"}}
	case "pulpcore.app.tasks.orphan.orphan_cleanup":
		return [][2]string{{"Clean up orphan Content", "clean-up.content"}}
	}
	return [][2]string{{"Processing", "processing"}}
}

// head draws task i's identity; created times increase strictly with i.
func (g *benchGen) head(i int) benchHead {
	g.pcg.Seed(benchSeed, uint64(i))
	r := g.r
	h := benchHead{created: benchStart + int64(i)*g.step + r.Int64N(g.step/2+1), state: store.TaskCompleted, repo: -1}
	h.id = g.uuidAt(h.created / 1000)
	pick := r.IntN(100)
	for acc := 0; ; h.kind++ {
		acc += benchNames[h.kind].percent
		if pick < acc {
			break
		}
	}
	h.name = benchNames[h.kind].name
	switch p := r.IntN(100); {
	case p < 5:
		h.state = store.TaskFailed
	case p < 8:
		h.state = store.TaskCanceled
	}
	if benchNames[h.kind].repo {
		if r.IntN(1000) < benchHotPermille {
			h.repo = 0
		} else {
			h.repo = 1 + r.IntN(benchRepos-1)
		}
	}
	return h
}

var benchError = string(store.TaskError("Response status 404: Not Found for url https://fixtures.example.com/file/PULP_MANIFEST",
	"Traceback (most recent call last):\n  File \"/usr/lib/python3/site-packages/pulpcore/tasking/tasks.py\", line 66, in _execute_task\n"+
		"    result = func(*args, **kwargs)\n  File \"/usr/lib/python3/site-packages/pulp_file/app/tasks/synchronizing.py\", line 71, in synchronize\n"+
		"    dv.create()\naiohttp.client_exceptions.ClientResponseError: 404, message='Not Found'\n"))

// jsonList renders strings that need no escaping (ids, hrefs, PRNs).
func jsonList(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	return `["` + strings.Join(items, `", "`) + `"]`
}

// task generates task i with its resources, progress reports and created
// resources.
func (g *benchGen) task(i int) *benchTask {
	t := &benchTask{benchHead: g.head(i)}
	r := g.r
	kind := benchNames[t.kind]
	repo := ""
	if t.repo >= 0 {
		repo = g.repos[t.repo]
	}
	repoPRN := "prn:file.filerepository:" + repo
	repoHref := api.Root + "repositories/file/file/" + repo + "/"
	ms := t.created / 1000
	var args string
	var created []string
	switch kind.name {
	case benchSyncName:
		remote := g.repos[r.IntN(benchRepos)]
		t.exclusive = []string{repoPRN}
		t.shared = []string{"prn:file.fileremote:" + remote}
		args = `{"remote_pk": "` + remote + `", "repository_pk": "` + repo + `", "mirror": ` + strconv.FormatBool(r.IntN(4) == 0) + `, "optimize": true}`
		if r.IntN(2) == 0 {
			created = append(created, repoHref+"versions/"+strconv.Itoa(1+r.IntN(200))+"/")
		}
	case "pulp_file.app.tasks.publishing.publish":
		t.shared = []string{repoPRN}
		args = `{"repository_version_pk": "` + g.uuidAt(ms) + `", "manifest": "PULP_MANIFEST"}`
		created = append(created, api.Root+"publications/file/file/"+g.uuidAt(ms)+"/")
	case "pulpcore.app.tasks.repository.add_and_remove":
		t.exclusive = []string{repoPRN}
		t.shared = []string{repoHref + "versions/" + strconv.Itoa(r.IntN(200)) + "/"}
		args = `{"repository_pk": "` + repo + `", "add_content_units": ["` + g.uuidAt(ms) + `"], "remove_content_units": []}`
		created = append(created, repoHref+"versions/"+strconv.Itoa(1+r.IntN(200))+"/")
	case "pulpcore.app.tasks.base.general_create":
		t.exclusive = []string{api.Root + "repositories/file/file/"}
		args = `{"app_label": "file", "serializer_name": "FileRepositorySerializer", "data": {"name": "repo-` + g.hex(8) + `"}}`
		created = append(created, api.Root+"repositories/file/file/"+g.uuidAt(ms)+"/")
	case "pulpcore.app.tasks.base.general_update", "pulpcore.app.tasks.base.general_delete":
		t.exclusive = []string{repoPRN}
		args = `{"instance_id": "` + repo + `", "app_label": "file", "serializer_name": "FileRepositorySerializer"}`
	case "pulpcore.app.tasks.orphan.orphan_cleanup":
		t.exclusive = []string{"/pulp/api/v3/orphans/cleanup/"}
		args = `{"orphan_protection_time": 1440}`
	case "pulpcore.app.tasks.reclaim_space.reclaim_space":
		t.exclusive = []string{repoPRN}
		args = `{"repo_pks": ["` + repo + `"], "force": false}`
	case "pulpcore.app.tasks.purge.purge":
		t.exclusive = []string{"/pulp/api/v3/tasks/purge/"}
		args = `{"finished_before": "2025-01-01T00:00:00Z", "states": ["completed"]}`
	}
	record := slices.Clone(t.exclusive)
	for _, s := range t.shared {
		record = append(record, "shared:"+s)
	}
	unblocked := t.created + 1000 + r.Int64N(2_000_000)
	started := unblocked + r.Int64N(500_000)
	finished := started + 50_000 + r.Int64N(600_000_000)
	var errJSON any
	if t.state == store.TaskFailed {
		errJSON = benchError
	}
	if t.state != store.TaskCompleted {
		created = nil
	}
	t.rows[0] = [][]any{{
		t.id, t.created, finished, t.name, t.state, g.hex(32), g.user,
		unblocked, started, finished, errJSON, g.workers[r.IntN(len(g.workers))], nil, nil, args, nil, kind.immediate, jsonList(record),
	}}
	for _, e := range t.exclusive {
		t.rows[1] = append(t.rows[1], []any{t.id, e, true})
	}
	for _, s := range t.shared {
		t.rows[1] = append(t.rows[1], []any{t.id, s, false})
	}
	for seq, rep := range t.reports() {
		total := r.Int64N(5000)
		done := total
		if t.state != store.TaskCompleted {
			done = r.Int64N(total + 1)
		}
		t.rows[2] = append(t.rows[2], []any{g.uuidAt(started / 1000), t.id, seq, rep[0], rep[1], t.state, total, done, nil})
	}
	for seq, h := range created {
		t.rows[3] = append(t.rows[3], []any{t.id, seq + 1, h})
	}
	return t
}

// benchExpect is what the generator put in the table.
type benchExpect struct {
	total   int64
	states  map[string]int64
	names   map[string]int64
	hot     int64
	reports int64
}

func (g *benchGen) expect() benchExpect {
	e := benchExpect{total: int64(g.n), states: map[string]int64{}, names: map[string]int64{}}
	for i := range g.n {
		h := g.head(i)
		e.states[h.state]++
		e.names[h.name]++
		if h.repo == 0 {
			e.hot++
		}
		e.reports += int64(len(h.reports()))
	}
	return e
}

// benchSink writes one chunk of generated rows, per table.
type benchSink func(ctx context.Context, rows [4][][]any) error

// generate produces the data set in chunks; the next chunk is generated
// while the previous one is written.
func (g *benchGen) generate(ctx context.Context, write benchSink) error {
	chunks := make(chan [4][][]any, 1)
	go func() {
		defer close(chunks)
		for lo := 0; lo < g.n; lo += benchChunk {
			var c [4][][]any
			for i := lo; i < min(lo+benchChunk, g.n); i++ {
				t := g.task(i)
				for k := range c {
					c[k] = append(c[k], t.rows[k]...)
				}
			}
			select {
			case chunks <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	for c := range chunks {
		if err := write(ctx, c); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// benchDDL is a piece of schema set aside during the bulk load.
type benchDDL struct{ kind, name, sql string }

// benchRowsPerInsert is the number of rows of one multi-row INSERT on
// SQLite; larger statements cost more to prepare than they save.
const benchRowsPerInsert = 64

// loadSQLite fills st with g's tasks. It works on one dedicated connection,
// tuned for a bulk load (no syncing, a large cache, in-memory sorting), with
// prepared multi-row INSERTs and one transaction per chunk. Secondary
// indexes and the row-count triggers are dropped during the load and
// recreated from their own definitions afterwards (a sorted index build is
// far faster than a million incremental inserts); row_counts is then set
// from the table. Nothing else uses the store meanwhile, so bypassing
// Store.InTx's writer lock is safe.
func loadSQLite(ctx context.Context, st *store.Store, g *benchGen) error {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range []string{`PRAGMA synchronous = OFF`, `PRAGMA cache_size = -262144`, `PRAGMA temp_store = MEMORY`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	defer func() {
		for _, q := range []string{`PRAGMA synchronous = NORMAL`, `PRAGMA cache_size = -2000`, `PRAGMA temp_store = DEFAULT`} {
			_, _ = conn.ExecContext(context.Background(), q)
		}
	}()
	inTx := func(fn func(tx *sql.Tx) error) error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}

	var ddl []benchDDL
	rows, err := conn.QueryContext(ctx, `SELECT type, name, sql FROM sqlite_master
		WHERE type IN ('index', 'trigger') AND sql IS NOT NULL AND tbl_name IN ('tasks', 'task_resources', 'progress_reports', 'created_resources')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var d benchDDL
		if err := rows.Scan(&d.kind, &d.name, &d.sql); err != nil {
			rows.Close()
			return err
		}
		// Only counting triggers are replaced by the fix-up below; any
		// other trigger keeps firing.
		if d.kind == "index" || strings.Contains(d.sql, "row_counts") {
			ddl = append(ddl, d)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	err = inTx(func(tx *sql.Tx) error {
		for _, d := range ddl {
			if _, err := tx.ExecContext(ctx, "DROP "+d.kind+" "+d.name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop indexes: %w", err)
	}

	insert := func(table string, cols []string, n int) string {
		// Anonymous parameters: SQLite resolves each "$n" by a linear
		// search of the names seen so far, quadratic in a long statement.
		row := "(" + strings.Repeat("?, ", len(cols)-1) + "?)"
		return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " + strings.Repeat(row+", ", n-1) + row
	}
	err = g.generate(ctx, func(ctx context.Context, chunk [4][][]any) error {
		return inTx(func(tx *sql.Tx) error {
			for k, tbl := range benchTables {
				var stmt *sql.Stmt
				args := make([]any, 0, benchRowsPerInsert*len(tbl.cols))
				for rs := chunk[k]; len(rs) > 0; {
					n := min(benchRowsPerInsert, len(rs))
					args = args[:0]
					for _, row := range rs[:n] {
						args = append(args, row...)
					}
					var err error
					if n == benchRowsPerInsert {
						if stmt == nil {
							if stmt, err = tx.PrepareContext(ctx, insert(tbl.name, tbl.cols, n)); err != nil {
								return err
							}
							defer stmt.Close()
						}
						_, err = stmt.ExecContext(ctx, args...)
					} else {
						_, err = tx.ExecContext(ctx, insert(tbl.name, tbl.cols, n), args...)
					}
					if err != nil {
						return fmt.Errorf("insert %s: %w", tbl.name, err)
					}
					rs = rs[n:]
				}
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	return inTx(func(tx *sql.Tx) error {
		for _, d := range ddl {
			if _, err := tx.ExecContext(ctx, d.sql); err != nil {
				return fmt.Errorf("recreate %s: %w", d.name, err)
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE row_counts SET n = (SELECT count(*) FROM tasks) WHERE table_name = 'tasks'`)
		return err
	})
}

// loadPostgres fills st with g's tasks using COPY on one connection, with
// secondary indexes dropped and count triggers disabled during the load,
// then vacuums so that counts can use index-only scans.
func loadPostgres(ctx context.Context, st *store.Store, g *benchGen) error {
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		exec := func(q string) error {
			if _, err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			return nil
		}
		tables := `('tasks', 'task_resources', 'progress_reports', 'created_resources')`
		rows, err := c.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes i
			WHERE schemaname = current_schema() AND tablename IN `+tables+`
			  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)`)
		if err != nil {
			return err
		}
		var ddl []benchDDL
		for rows.Next() {
			d := benchDDL{kind: "index"}
			if err := rows.Scan(&d.name, &d.sql); err != nil {
				rows.Close()
				return err
			}
			ddl = append(ddl, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range ddl {
			if err := exec("DROP INDEX " + pgx.Identifier{d.name}.Sanitize()); err != nil {
				return err
			}
		}
		// Only the counting triggers are disabled, as on SQLite; the
		// row count is set after the load.
		var counting []string
		trows, err := c.Query(ctx, `SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
			WHERE t.tgrelid = 'tasks'::regclass AND NOT t.tgisinternal AND p.proname = 'pith_count_rows'`)
		if err != nil {
			return err
		}
		for trows.Next() {
			var name string
			if err := trows.Scan(&name); err != nil {
				trows.Close()
				return err
			}
			counting = append(counting, pgx.Identifier{name}.Sanitize())
		}
		trows.Close()
		if err := trows.Err(); err != nil {
			return err
		}
		for _, t := range counting {
			if err := exec(`ALTER TABLE tasks DISABLE TRIGGER ` + t); err != nil {
				return err
			}
		}
		// Replica mode skips foreign-key checks (halving the load time) but
		// also every other trigger, so it is used only when there are none;
		// it needs a superuser, and without one the load is only slower.
		var others int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
			WHERE t.tgrelid IN ('tasks'::regclass, 'task_resources'::regclass, 'progress_reports'::regclass, 'created_resources'::regclass)
			  AND NOT t.tgisinternal AND p.proname <> 'pith_count_rows'`).Scan(&others); err != nil {
			return err
		}
		replica := false
		if others == 0 {
			_, err := c.Exec(ctx, `SET session_replication_role = replica`)
			replica = err == nil
		}
		err = g.generate(ctx, func(ctx context.Context, rows [4][][]any) error {
			for k, tbl := range benchTables {
				if _, err := c.CopyFrom(ctx, pgx.Identifier{tbl.name}, tbl.cols, pgx.CopyFromRows(rows[k])); err != nil {
					return fmt.Errorf("copy %s: %w", tbl.name, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if replica {
			if err := exec(`RESET session_replication_role`); err != nil {
				return err
			}
		}
		for _, t := range counting {
			if err := exec(`ALTER TABLE tasks ENABLE TRIGGER ` + t); err != nil {
				return err
			}
		}
		if err := exec(`SET maintenance_work_mem = '256MB'`); err != nil {
			return err
		}
		for _, d := range ddl {
			if err := exec(d.sql); err != nil {
				return err
			}
		}
		if err := exec(`UPDATE row_counts SET n = (SELECT count(*) FROM tasks) WHERE table_name = 'tasks'`); err != nil {
			return err
		}
		return exec(`VACUUM ANALYZE tasks, task_resources, progress_reports, created_resources, row_counts`)
	})
}

// schemaKey fingerprints the schema of the tables the data set fills,
// naming the cache file. Other tables do not matter: opening the cached
// database migrates them.
func schemaKey(ctx context.Context, st *store.Store, n int) (string, error) {
	rows, err := st.Query(ctx, `SELECT coalesce(sql, '') FROM sqlite_master
		WHERE tbl_name IN ('tasks', 'task_resources', 'progress_reports', 'created_resources', 'row_counts') ORDER BY type, name`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	h := sha256.New()
	fmt.Fprintf(h, "%s/%d\n", benchDataVersion, n)
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "", err
		}
		fmt.Fprintln(h, s)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], rows.Err()
}

const benchCachePrefix = "pith-bench-tasks-"

// openSQLiteDataset returns a store holding g's tasks, from the cache in
// os.TempDir() when one matches the current schema, else freshly built
// (and then cached).
func openSQLiteDataset(b *testing.B, g *benchGen) *store.Store {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		b.Fatal(err)
	}
	key, err := schemaKey(ctx, st, g.n)
	if err != nil {
		st.Close()
		b.Fatal(err)
	}
	prefix := filepath.Join(os.TempDir(), benchCachePrefix+strconv.Itoa(g.n)+"-")
	cache := prefix + key + ".db"
	if _, err := os.Stat(cache); err == nil {
		st.Close()
		b.Logf("sqlite: using cached data set %s", cache)
		return openSQLiteFile(b, cache)
	}
	start := time.Now()
	if err := loadSQLite(ctx, st, g); err != nil {
		st.Close()
		b.Fatalf("sqlite: load: %v", err)
	}
	b.Logf("sqlite: built %d tasks in %v", g.n, time.Since(start).Round(time.Millisecond))
	// Closing checkpoints the WAL into the main file, which is then
	// complete on its own and can be moved into the cache atomically.
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	built := filepath.Join(dir, "pith.db")
	old, _ := filepath.Glob(prefix + "*") // data sets of older schemas
	for _, f := range old {
		_ = os.Remove(f)
	}
	if err := os.Rename(built, cache); err != nil {
		b.Logf("sqlite: not caching data set: %v", err)
		return openSQLiteFile(b, built)
	}
	b.Logf("sqlite: cached data set in %s", cache)
	return openSQLiteFile(b, cache)
}

func openSQLiteFile(b *testing.B, path string) *store.Store {
	st, err := store.Open(context.Background(), "sqlite:"+path, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func openPostgresDataset(b *testing.B, be storetest.Backend, g *benchGen) *store.Store {
	st := storetest.Open(b, be)
	start := time.Now()
	if err := loadPostgres(context.Background(), st, g); err != nil {
		b.Fatalf("postgres: load: %v", err)
	}
	b.Logf("postgres: built %d tasks in %v", g.n, time.Since(start).Round(time.Millisecond))
	return st
}

type benchAuth struct{}

func (benchAuth) Authenticate(context.Context, string, string) (bool, error) { return true, nil }

func benchHandler(b *testing.B, st *store.Store) http.Handler {
	log := slog.New(slog.DiscardHandler)
	mgr, err := tasking.New(st, tasking.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	storage, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { storage.Close() })
	srv := api.New(api.Options{Auth: benchAuth{}, Logger: log, SpoolDir: b.TempDir()})
	coreapi.Register(srv, &coreapi.Deps{Store: st, Storage: storage, Tasks: mgr, Log: log, DataDir: b.TempDir()})
	return srv
}

// benchPage is the part of a tasks_list response the checks read.
type benchPage struct {
	Count   int64 `json:"count"`
	Results []struct {
		PulpHref        string            `json:"pulp_href"`
		Name            string            `json:"name"`
		State           string            `json:"state"`
		Reserved        []string          `json:"reserved_resources_record"`
		ProgressReports []json.RawMessage `json:"progress_reports"`
		Created         time.Time         `json:"pulp_created"`
	} `json:"results"`
}

type benchCase struct {
	name   string
	query  url.Values
	count  int64
	offset int
	// match checks one result against the filter.
	match func(state, name string, reserved []string) bool
	// first is the href the page must start with ("" to skip).
	first string
}

// BenchmarkTaskList measures tasks_list against a table of 1,000,000
// finished tasks (10,000 with -short), on SQLite and, when
// PITH_TEST_DATABASE_URL is set, PostgreSQL:
//
//	go test -run XXX -bench BenchmarkTaskList -benchtime 20x ./internal/coreapi/
//
// The data set is generated deterministically, so every response is
// checked against what was inserted; a wrong answer fails the benchmark.
// The SQLite database is kept in os.TempDir() as pith-bench-tasks-<n>-<key>.db
// (about 2 GB for 1M tasks), keyed by the schema of the task tables, and
// reused until a migration changes them. PostgreSQL is loaded afresh (COPY)
// into a schema dropped afterwards.
func BenchmarkTaskList(b *testing.B) {
	n := benchTasks
	if testing.Short() {
		n = benchTasksShort
	}
	g := newBenchGen(n)
	want := g.expect()
	if want.hot < int64(n)/200 || want.hot > int64(n)/50 {
		b.Fatalf("generator: hot resource in %d of %d tasks, want about 1%%", want.hot, n)
	}
	href := func(i int) string { return coreapi.TaskHref(g.task(i).id) }
	all := func(string, string, []string) bool { return true }
	cases := []benchCase{
		{name: "first_page", query: url.Values{}, count: want.total, match: all, first: href(n - 1)},
		{name: "count_only", query: url.Values{"limit": {"1"}}, count: want.total, match: all, first: href(n - 1)},
		{name: "filter_state", query: url.Values{"state": {store.TaskFailed}}, count: want.states[store.TaskFailed],
			match: func(st, _ string, _ []string) bool { return st == store.TaskFailed }},
		{name: "filter_name", query: url.Values{"name": {benchSyncName}}, count: want.names[benchSyncName],
			match: func(_, nm string, _ []string) bool { return nm == benchSyncName }},
		{name: "filter_reserved", query: url.Values{"reserved_resources": {g.hotPRN}}, count: want.hot,
			match: func(_, _ string, rr []string) bool {
				return slices.Contains(rr, g.hotPRN) || slices.Contains(rr, "shared:"+g.hotPRN)
			}},
		{name: "deep_offset", query: url.Values{"offset": {strconv.Itoa(n / 2)}, "limit": {"100"}}, count: want.total,
			offset: n / 2, match: all, first: href(n - 1 - n/2)},
	}
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			var st *store.Store
			if be.Name == "sqlite" {
				st = openSQLiteDataset(b, g)
			} else {
				st = openPostgresDataset(b, be, g)
			}
			if err := checkBenchData(st, want); err != nil {
				b.Fatal(err)
			}
			h := benchHandler(b, st)
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) { runBenchCase(b, h, c) })
			}
		})
	}
}

// checkBenchData verifies the load itself: the kept count and the tables.
func checkBenchData(st *store.Store, want benchExpect) error {
	ctx := context.Background()
	kept, err := st.Count(ctx, "tasks")
	if err != nil {
		return err
	}
	var rows, reports int64
	if err := st.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM progress_reports)`).Scan(&rows, &reports); err != nil {
		return err
	}
	if kept != want.total || rows != want.total || reports != want.reports {
		return fmt.Errorf("data set: row_counts %d, tasks %d, progress reports %d; want %d tasks, %d reports", kept, rows, reports, want.total, want.reports)
	}
	return nil
}

func runBenchCase(b *testing.B, h http.Handler, c benchCase) {
	target := coreapi.TasksPath
	if len(c.query) > 0 {
		target += "?" + c.query.Encode()
	}
	limit := api.DefaultLimit
	if l := c.query.Get("limit"); l != "" {
		limit, _ = strconv.Atoi(l)
	}
	wantLen := int(min(int64(limit), max(c.count-int64(c.offset), 0)))
	var slowest, cpu time.Duration
	cpuOK := true
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.SetBasicAuth("admin", "password")
		rec := httptest.NewRecorder()
		b.StopTimer()
		cpu0, ok0 := processCPU()
		b.StartTimer()
		start := time.Now()
		h.ServeHTTP(rec, req)
		slowest = max(slowest, time.Since(start))
		b.StopTimer()
		cpu1, ok1 := processCPU()
		cpu += cpu1 - cpu0
		cpuOK = cpuOK && ok0 && ok1
		if err := checkBenchPage(rec, c, wantLen); err != nil {
			b.Fatalf("GET %s: %v", target, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
	b.ReportMetric(float64(slowest.Nanoseconds())/1e6, "max-ms")
	if cpuOK {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e6, "cpu-ms/op")
	}
}

// processCPU returns the CPU time this process's threads have run, from
// Linux's per-thread scheduler statistics. Unlike wall time it does not
// grow while other processes hold the CPUs, so it stays comparable on a
// busy machine (though the database server's share is not in it). It
// reports false where /proc is unavailable.
func processCPU() (time.Duration, bool) {
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, false
	}
	var total time.Duration
	for _, t := range tids {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(ns)
	}
	return total, true
}

func checkBenchPage(rec *httptest.ResponseRecorder, c benchCase, wantLen int) error {
	if rec.Code != http.StatusOK {
		return fmt.Errorf("status %d: %.300s", rec.Code, rec.Body.String())
	}
	var p benchPage
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		return err
	}
	if p.Count != c.count {
		return fmt.Errorf("count %d, want %d", p.Count, c.count)
	}
	if len(p.Results) != wantLen {
		return fmt.Errorf("%d results, want %d", len(p.Results), wantLen)
	}
	if c.first != "" && p.Results[0].PulpHref != c.first {
		return fmt.Errorf("first result %s, want %s", p.Results[0].PulpHref, c.first)
	}
	for i, r := range p.Results {
		if !c.match(r.State, r.Name, r.Reserved) {
			return fmt.Errorf("result %d (%s, %s, %v) does not match the filter", i, r.State, r.Name, r.Reserved)
		}
		if len(r.ProgressReports) == 0 {
			return fmt.Errorf("result %d (%s) has no progress reports", i, r.PulpHref)
		}
		if i > 0 && r.Created.After(p.Results[i-1].Created) {
			return errors.New("results not newest first")
		}
	}
	return nil
}
