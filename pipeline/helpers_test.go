package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/pipeline"
)

// fileUnit is a minimal file-like unit: a path and the sha256 of its bytes.
type fileUnit struct{ path, sha string }

func (u fileUnit) Type() string       { return "file.file" }
func (u fileUnit) NaturalKey() string { return u.path + "|" + u.sha }
func (u fileUnit) RepoKey() string    { return u.path }

// saveFileDetail writes the file plugin's detail table for new units, in
// one statement as a plugin would.
func saveFileDetail(ctx context.Context, tx *store.Tx, units []pipeline.Unit, ids []string) error {
	var (
		vals []string
		args []any
	)
	for i, u := range units {
		f := u.(fileUnit)
		args = append(args, ids[i], f.path, f.sha)
		vals = append(vals, fmt.Sprintf("($%d, $%d, $%d)", len(args)-2, len(args)-1, len(args)))
	}
	_, err := tx.Exec(ctx, `INSERT INTO file_content (content_id, relative_path, digest) VALUES `+strings.Join(vals, ", "), args...)
	return err
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// upstream is a loopback file server whose files and faults tests control.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	requests map[string]int
	total    atomic.Int64
	// fault, if set, may answer a request instead of the file; attempt
	// counts from 1 per path.
	fault func(w http.ResponseWriter, r *http.Request, path string, attempt int) bool
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{files: map[string][]byte{}, requests: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		u.total.Add(1)
		u.mu.Lock()
		u.requests[p]++
		n, body, ok, fault := u.requests[p], u.files[p], u.files[p] != nil, u.fault
		u.mu.Unlock()
		if fault != nil && fault(w, r, p, n) {
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) add(path string, body []byte) fileUnit {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[path] = body
	return fileUnit{path: path, sha: sha256Hex(body)}
}

func (u *upstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests[path]
}

// env is a store, a storage and a remote to sync from.
type env struct {
	s        *store.Store
	storage  *fs.Backend
	dir      string
	remoteID string
	dl       *download.Downloader
	up       *upstream
	prog     *progressLog
}

func newEnv(t testing.TB, s *store.Store) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dl, err := download.New(download.Config{DownloadConcurrency: 20, MaxRetries: 3, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dl.Close)
	e := &env{s: s, storage: st, dir: dir, remoteID: store.NewID(), dl: dl, up: newUpstream(t), prog: &progressLog{}}
	ctx := context.Background()
	if _, err := s.Exec(ctx, `INSERT INTO remotes (id, created, last_updated, pulp_type, name, url, policy, tls_validation) VALUES ($1, 1, 1, 'file.file', $2, $3, 'immediate', TRUE)`,
		e.remoteID, "remote-"+e.remoteID, e.up.URL+"/"); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) deps(v pipeline.Version, mirror bool) pipeline.Deps {
	return pipeline.Deps{
		Store:   e.s,
		Storage: e.storage,
		Downloaders: func(id string) (*download.Downloader, error) {
			if id != e.remoteID {
				return nil, fmt.Errorf("unknown remote %s", id)
			}
			return e.dl, nil
		},
		SaveDetail: saveFileDetail,
		Version:    v,
		Mirror:     mirror,
		Progress:   e.prog.new,
	}
}

// declare turns upstream units into declarative content.
func (e *env) declare(units []fileUnit, deferred bool) pipeline.FirstStage {
	return func(ctx context.Context, out chan<- *pipeline.DeclarativeContent) error {
		for _, u := range units {
			e.up.mu.Lock()
			size := int64(len(e.up.files[u.path]))
			e.up.mu.Unlock()
			d := &pipeline.DeclarativeContent{Unit: u, Artifacts: []*pipeline.DeclarativeArtifact{{
				URL: e.up.URL + "/" + u.path, RelativePath: u.path, Size: size,
				Digests: map[string]string{"sha256": u.sha}, RemoteID: e.remoteID, Deferred: deferred,
			}}}
			if err := pipeline.Send(ctx, out, d); err != nil {
				return err
			}
		}
		return nil
	}
}

// sync runs the full declarative pipeline into a new version of repo and
// finalizes it, returning the new version's number (0 if none was made).
func (e *env) sync(t testing.TB, repoID string, units []fileUnit, deferred, mirror bool) (int, error) {
	t.Helper()
	ctx := context.Background()
	v, err := repository.NewVersion(ctx, e.s, repoID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.NewDeclarativeVersion(e.deps(v, mirror)).Run(ctx, e.declare(units, deferred)); err != nil {
		if derr := v.Discard(ctx); derr != nil {
			t.Fatal(derr)
		}
		return 0, err
	}
	row, err := v.Finalize(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if row == nil {
		return 0, nil
	}
	return row.Number, nil
}

func newRepo(t testing.TB, s *store.Store) string {
	t.Helper()
	r := &repository.Repo{PulpType: "file.file", Name: "repo-" + store.NewID()}
	if err := repository.Create(context.Background(), s, r); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// versionPaths lists the relative paths of the units in a version.
func versionPaths(t testing.TB, s *store.Store, repoID string, number int) map[string]bool {
	t.Helper()
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	cond := repository.Membership(arg, repoID, number)
	rows, err := s.Query(context.Background(), `SELECT fc.relative_path FROM repository_content rc JOIN file_content fc ON fc.content_id = rc.content_id WHERE `+cond, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out[p] = true
	}
	return out
}

func count(t testing.TB, s *store.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// tempFiles lists the storage's in-progress write files.
func (e *env) tempFiles(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

// storedBytes reads an artifact file back from storage.
func (e *env) storedBytes(t testing.TB, file string) []byte {
	t.Helper()
	r, err := e.storage.Open(context.Background(), file, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// progressLog records progress reports, as a task would.
type progressLog struct {
	mu      sync.Mutex
	reports []*report
}

type report struct {
	message, code string
	done          atomic.Int64
	state         atomic.Value // "", "completed", "failed"
}

func (r *report) Increment(n int64) { r.done.Add(n) }
func (r *report) Done()             { r.state.Store("completed") }
func (r *report) Fail()             { r.state.Store("failed") }

func (l *progressLog) new(message, code string) pipeline.Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &report{message: message, code: code}
	l.reports = append(l.reports, r)
	return r
}

// get returns the last report with code, or nil.
func (l *progressLog) get(code string) *report {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.reports) - 1; i >= 0; i-- {
		if l.reports[i].code == code {
			return l.reports[i]
		}
	}
	return nil
}

func (l *progressLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = nil
}
