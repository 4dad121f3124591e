package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// Helpers of the publication and distribution tests; their names start
// with "pd" so they cannot clash with the package's other test helpers.

const (
	pdOrigin = "https://content.example:24816"
	pdPrefix = "/pulp/content/"
)

// pdEnv is the package's test environment with a content origin and the
// generic publication and distribution lists.
func pdEnv(t testing.TB, s *store.Store, workers int) *testEnv {
	t.Helper()
	e := newTestEnvWorkers(t, s, workers)
	e.Deps.ContentOrigin, e.Deps.ContentPathPrefix = pdOrigin, pdPrefix
	e.Core.ContentOrigin, e.Core.ContentPathPrefix = pdOrigin, pdPrefix
	if !hasRoute(e.API, "publications_list") {
		e.API.Register(coreapi.GenericPublicationRoutes(e.Core)...)
	}
	if !hasRoute(e.API, "distributions_list") {
		e.API.Register(coreapi.GenericDistributionRoutes(e.Core)...)
	}
	return e
}

// pdEach runs fn on every backend with a fresh pdEnv.
func pdEach(t *testing.T, fn func(t *testing.T, e *testEnv)) {
	t.Helper()
	storetest.Each(t, func(t *testing.T, s *store.Store) { fn(t, pdEnv(t, s, 2)) })
}

var pdSeq atomic.Int64

// pdRepo creates a file repository (with its version 0).
func pdRepo(t testing.TB, e *testEnv, opts ...func(*repository.Repo)) *repository.Repo {
	t.Helper()
	r := &repository.Repo{PulpType: Type, Name: fmt.Sprintf("repo-%d", pdSeq.Add(1)), Labels: map[string]string{}}
	for _, o := range opts {
		o(r)
	}
	if err := repository.Create(context.Background(), e.Store, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// pdFile is a unit to put into a version: its bytes are stored as an
// artifact, or, when onDemand, only announced by a remote artifact.
type pdFile struct {
	path     string
	data     string
	onDemand bool
}

func pdSHA(b string) string {
	s := sha256.Sum256([]byte(b))
	return hex.EncodeToString(s[:])
}

// pdRemote creates a file remote and returns its id.
func pdRemote(t testing.TB, e *testEnv) string {
	t.Helper()
	r := &store.Remote{PulpType: Type, Name: fmt.Sprintf("remote-%d", pdSeq.Add(1)), URL: "http://upstream.example/PULP_MANIFEST",
		Policy: "on_demand", TLSValidation: true, Headers: []map[string]string{}, Labels: map[string]string{}}
	if err := e.Store.InsertRemote(context.Background(), nil, r); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// pdUnits saves the files as file content, one unit at a time so their
// creation order is the order given, and returns their ids.
func pdUnits(t testing.TB, e *testEnv, files ...pdFile) []string {
	t.Helper()
	ctx := context.Background()
	var remoteID string
	ids := make([]string, len(files))
	for i, f := range files {
		u := Unit{RelativePath: f.path, Digest: pdSHA(f.data)}
		ca := store.NewContentArtifact{RelativePath: f.path}
		if !f.onDemand {
			a, _, err := coreapi.SaveArtifact(ctx, e.Core, strings.NewReader(f.data), digest.Expect{Size: int64(len(f.data))})
			if err != nil {
				t.Fatal(err)
			}
			ca.ArtifactID = a.ID
		}
		got, err := e.Store.SaveContent(ctx, Type, []store.NewContent{{NaturalKey: u.NaturalKey(), RepoKey: u.RepoKey(), Artifacts: []store.NewContentArtifact{ca}}},
			func(tx *store.Tx, idx []int, newIDs []string) error { return SaveDetail(ctx, tx, []Unit{u}, newIDs) })
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = got[0]
		if f.onDemand {
			if remoteID == "" {
				remoteID = pdRemote(t, e)
			}
			if err := e.Store.SaveRemoteArtifacts(ctx, []store.NewRemoteArtifact{{ContentID: got[0], RelativePath: f.path, RemoteID: remoteID,
				URL: "http://upstream.example/" + f.path, Size: int64(len(f.data)), SHA256: pdSHA(f.data)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ids
}

// pdVersion makes a new version of repo holding exactly the given units
// (no path validation: tests build versions a sync would refuse).
func pdVersion(t testing.TB, e *testEnv, repo *repository.Repo, ids ...string) *repository.VersionRow {
	t.Helper()
	ctx := context.Background()
	v, err := repository.NewVersion(ctx, e.Store, repo.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Add(ctx, ids); err != nil {
		t.Fatal(err)
	}
	row, err := v.Finalize(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if row == nil {
		t.Fatal("version changed nothing")
	}
	return row
}

func pdStr(s string) *string { return &s }

// pdManifest returns the bytes of the manifest a publication serves, and
// the name it is published at.
func pdManifest(t testing.TB, e *testEnv, pubID string) (name string, data []byte) {
	t.Helper()
	ctx := context.Background()
	var artifactID string
	if err := e.Store.QueryRow(ctx, `SELECT relative_path, artifact_id FROM published_artifacts WHERE publication_id = $1`, pubID).Scan(&name, &artifactID); err != nil {
		t.Fatalf("published manifest of %s: %v", pubID, err)
	}
	a, err := e.Store.GetArtifact(ctx, artifactID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e.Deps.Storage.Open(ctx, a.File, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err = io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if a.SHA256 != pdSHA(string(data)) || a.Size != int64(len(data)) {
		t.Fatalf("manifest artifact records sha256 %s size %d, its file has %s size %d", a.SHA256, a.Size, pdSHA(string(data)), len(data))
	}
	return name, data
}

func pdCount(t testing.TB, e *testEnv, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.Store.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPublishWritesManifest(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		repo := pdRepo(t, e)
		files := []pdFile{
			{path: "1.iso", data: "one"},
			{path: "dir/with,commas,in it.txt", data: "commas"},
			{path: "lazy/2.iso", data: "not downloaded yet", onDemand: true},
			{path: "dir/sub/3.iso", data: ""},
		}
		v := pdVersion(t, e, repo, pdUnits(t, e, files...)...)
		id, err := Publish(ctx, e.Deps, nil, v.ID, pdStr("PULP_MANIFEST"))
		if err != nil {
			t.Fatal(err)
		}
		// Newest content first, as Pulp writes it; digest and size of the
		// on-demand unit come from its remote artifact.
		var want strings.Builder
		for i := len(files) - 1; i >= 0; i-- {
			fmt.Fprintf(&want, "%s,%s,%d\n", files[i].path, pdSHA(files[i].data), len(files[i].data))
		}
		name, data := pdManifest(t, e, id)
		if name != "PULP_MANIFEST" || string(data) != want.String() {
			t.Fatalf("published %q:\n%s\nwant PULP_MANIFEST:\n%s", name, data, want.String())
		}
		// pith's own manifest reader gets the paths back, commas included.
		var paths []string
		if err := ReadManifest(bytes.NewReader(data), func(m ManifestEntry) error { paths = append(paths, m.RelativePath); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(paths, "dir/with,commas,in it.txt") || len(paths) != len(files) {
			t.Fatalf("manifest reads back as %q", paths)
		}
		p, err := coreapi.GetPublication(ctx, e.Store, id)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Complete || !p.PassThrough || p.Manifest == nil || *p.Manifest != "PULP_MANIFEST" || p.VersionID != v.ID || p.Checkpoint {
			t.Fatalf("publication row %+v", p)
		}
	})
}

func TestPublishWithoutManifest(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repo := pdRepo(t, e)
		v := pdVersion(t, e, repo, pdUnits(t, e, pdFile{path: "a", data: "a"})...)
		id, err := Publish(context.Background(), e.Deps, nil, v.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := coreapi.GetPublication(context.Background(), e.Store, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Manifest != nil || pdCount(t, e, `SELECT COUNT(*) FROM published_artifacts WHERE publication_id = $1`, id) != 0 {
			t.Fatalf("manifest %v written for a publication without one", p.Manifest)
		}
	})
}

func TestPublishEmptyVersion(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repo := pdRepo(t, e)
		v0, err := repository.Latest(context.Background(), e.Store, repo.ID)
		if err != nil {
			t.Fatal(err)
		}
		id, err := Publish(context.Background(), e.Deps, nil, v0.ID, pdStr("M"))
		if err != nil {
			t.Fatal(err)
		}
		if name, data := pdManifest(t, e, id); name != "M" || len(data) != 0 {
			t.Fatalf("empty version published %q = %q", name, data)
		}
	})
}

func TestPublishRefusesConflictingPaths(t *testing.T) {
	cases := []struct {
		name     string
		files    []pdFile
		manifest string
		want     string
	}{
		{"file below file", []pdFile{{path: "a/b", data: "1"}, {path: "a/b/c", data: "2"}}, "PULP_MANIFEST", "The path for file 'a/b/c' overlaps: a/b"},
		{"file above file", []pdFile{{path: "a/b/c", data: "2"}, {path: "a/b", data: "1"}}, "PULP_MANIFEST", "The path for file 'a/b/c' overlaps: a/b"},
		{"manifest over a file", []pdFile{{path: "M", data: "x"}}, "M", "Paths are duplicated: M"},
		{"manifest over a directory", []pdFile{{path: "M/x", data: "x"}}, "M", "The path for file 'M/x' overlaps: M"},
		{"manifest over a lazy file", []pdFile{{path: "M", data: "x", onDemand: true}}, "M", "Paths are duplicated: M"},
	}
	pdEach(t, func(t *testing.T, e *testEnv) {
		for _, tc := range cases {
			repo := pdRepo(t, e)
			v := pdVersion(t, e, repo, pdUnits(t, e, tc.files...)...)
			before := pdCount(t, e, `SELECT COUNT(*) FROM publications`)
			_, err := Publish(context.Background(), e.Deps, nil, v.ID, &tc.manifest)
			var pe *PathConflictError
			if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "Cannot create publication.") {
				t.Fatalf("%s: err = %v, want a path conflict %q", tc.name, err, tc.want)
			}
			if n := pdCount(t, e, `SELECT COUNT(*) FROM publications`); n != before {
				t.Fatalf("%s: a failed publish left %d publications behind", tc.name, n-before)
			}
		}
	})
}

func TestPublishFailureLeavesNothing(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		repo := pdRepo(t, e)
		ids := pdUnits(t, e, pdFile{path: "ok", data: "ok"}, pdFile{path: "lost", data: "lost", onDemand: true})
		// The remote went away: the lazy unit can no longer be described.
		if _, err := e.Store.Exec(ctx, `DELETE FROM remotes`); err != nil {
			t.Fatal(err)
		}
		v := pdVersion(t, e, repo, ids...)
		_, err := Publish(ctx, e.Deps, nil, v.ID, pdStr("PULP_MANIFEST"))
		if err == nil || !strings.Contains(err.Error(), `"lost" has neither an artifact nor a remote source`) {
			t.Fatalf("err = %v", err)
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM publications`); n != 0 {
			t.Fatalf("%d publications left behind", n)
		}
	})
}

// pdGatedStorage holds the first write of an artifact until released, so
// a test can act while a publish is half-way through its manifest.
type pdGatedStorage struct {
	storage.Backend
	entered, release chan struct{}
	once             sync.Once
}

func (g *pdGatedStorage) Create(ctx context.Context) (storage.Writer, error) {
	w, err := g.Backend.Create(ctx)
	if err != nil {
		return nil, err
	}
	return &pdGatedWriter{Writer: w, g: g}, nil
}

type pdGatedWriter struct {
	storage.Writer
	g *pdGatedStorage
}

func (w *pdGatedWriter) Write(p []byte) (int, error) {
	w.g.once.Do(func() { close(w.g.entered) })
	<-w.g.release
	return w.Writer.Write(p)
}

// TestPublishCanceledLeavesNothing cancels a publish task while it writes
// its manifest: the task ends canceled, with no publication left and none
// recorded as created.
func TestPublishCanceledLeavesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := pdEnv(t, s, 1)
		repo := pdRepo(t, e)
		// Over 64 KiB of manifest, so storage sees writes before the end.
		v := pdBulkVersion(t, e, repo, 2000, func(i int) string { return fmt.Sprintf("dir/file-%07d.bin", i) })
		gate := &pdGatedStorage{Backend: e.Core.Storage, entered: make(chan struct{}), release: make(chan struct{})}
		e.Core.Storage = gate
		ctx := context.Background()
		task, err := dispatchPublish(ctx, e.Deps, "", "", repo.ID, v.ID, pdStr(DefaultManifest), false)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-gate.entered:
		case <-time.After(15 * time.Second):
			t.Fatal("the publish never wrote its manifest")
		}
		if _, err := e.Tasks.Cancel(ctx, task.ID); err != nil {
			t.Fatal(err)
		}
		close(gate.release)
		got := e.waitTask(coreapi.TaskHref(task.ID))
		if got.State != "canceled" || len(got.CreatedResources) != 0 {
			t.Fatalf("canceled publish ended %s with created resources %q", got.State, got.CreatedResources)
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM publications`); n != 0 {
			t.Fatalf("a canceled publish left %d publications", n)
		}
	})
}

func TestAutoPublish(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		plain := pdRepo(t, e)
		v := pdVersion(t, e, plain, pdUnits(t, e, pdFile{path: "a", data: "a"})...)
		if err := AutoPublish(ctx, e.Deps, nil, mustRepo(t, e, plain.ID), v); err != nil {
			t.Fatal(err)
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM publications`); n != 0 {
			t.Fatalf("a repository without autopublish got %d publications", n)
		}
		auto := pdRepo(t, e, func(r *repository.Repo) { r.Autopublish = true; r.Manifest = pdStr("TEST_MANIFEST") })
		v = pdVersion(t, e, auto, pdUnits(t, e, pdFile{path: "b", data: "b"})...)
		if err := AutoPublish(ctx, e.Deps, nil, mustRepo(t, e, auto.ID), v); err != nil {
			t.Fatal(err)
		}
		var id string
		if err := e.Store.QueryRow(ctx, `SELECT id FROM publications WHERE repository_version_id = $1 AND complete`, v.ID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if name, data := pdManifest(t, e, id); name != "TEST_MANIFEST" || string(data) != "b,"+pdSHA("b")+",1\n" {
			t.Fatalf("autopublished %q = %q", name, data)
		}
	})
}

// TestAutoPublishInModifyTask checks the wiring through the repository's
// modify task: its created resources are the version, then the
// publication, whose manifest grows with the repository.
func TestAutoPublishInModifyTask(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repo := pdRepo(t, e, func(r *repository.Repo) { r.Autopublish = true; r.Manifest = pdStr("TEST_MANIFEST") })
		ids := pdUnits(t, e, pdFile{path: "1.iso", data: "1"}, pdFile{path: "2.iso", data: "2"})
		for n, id := range ids {
			task := e.async("POST", RepoHref(repo.ID)+"modify/", map[string]any{"add_content_units": []string{ContentHref(id)}})
			if len(task.CreatedResources) != 2 || task.CreatedResources[0] != VersionHref(repo.ID, n+1) ||
				!strings.HasPrefix(task.CreatedResources[1], PublicationsPath) {
				t.Fatalf("modify created %q", task.CreatedResources)
			}
			var pub FilePublicationResponse
			e.call("GET", task.CreatedResources[1], nil, 200, &pub)
			if pub.Manifest == nil || *pub.Manifest != "TEST_MANIFEST" || *pub.RepositoryVersion != VersionHref(repo.ID, n+1) {
				t.Fatalf("autopublished %+v", pub)
			}
			_, data := pdManifest(t, e, pub.PRN[strings.LastIndexByte(pub.PRN, ':')+1:])
			if lines := strings.Count(string(data), "\n"); lines != n+1 {
				t.Fatalf("manifest of version %d has %d lines:\n%s", n+1, lines, data)
			}
		}
	})
}

func mustRepo(t testing.TB, e *testEnv, id string) *repository.Repo {
	t.Helper()
	r, err := repository.Get(context.Background(), e.Store, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPathChecker(t *testing.T) {
	cases := []struct {
		paths []string // in byte order
		want  string   // "" for none
	}{
		{[]string{"a", "ab", "abc", "b"}, ""},
		{[]string{"a/b", "a/bc", "a/c"}, ""},
		{[]string{"a", "a!b", "a/c"}, "The path for file 'a/c' overlaps: a"},
		{[]string{"a", "a-b", "a-b/c"}, "The path for file 'a-b/c' overlaps: a-b"},
		{[]string{"a/b", "a/b/c/d"}, "The path for file 'a/b/c/d' overlaps: a/b"},
		{[]string{"x", "x"}, "Paths are duplicated: x"},
		{[]string{"a", "a.txt", "b", "b/c"}, "The path for file 'b/c' overlaps: b"},
	}
	for _, tc := range cases {
		var c pathChecker
		var err error
		for _, p := range tc.paths {
			if err = c.add(p); err != nil {
				break
			}
		}
		got := ""
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) || (tc.want == "") != (err == nil) {
			t.Errorf("%q: got %q, want %q", tc.paths, got, tc.want)
		}
	}
	var c pathChecker
	_ = c.add("b")
	if err := c.add("a"); err == nil || !strings.Contains(err.Error(), "not in byte order") {
		t.Fatalf("unsorted input: %v", err)
	}
}

// pdBulkVersion makes a version of n units directly in SQL, much faster
// than the content pipeline, for scale tests: each unit has its own
// artifact row (the files are never read) and a content artifact at
// pathOf(i); there are no file_content detail rows, which publishing does
// not need for downloaded units.
func pdBulkVersion(t testing.TB, e *testEnv, repo *repository.Repo, n int, pathOf func(i int) string) *repository.VersionRow {
	t.Helper()
	ctx := context.Background()
	now := store.Now()
	const batch = 500
	// One transaction per batch: PostgreSQL's row-count triggers update
	// one row per insert, which slows down quadratically in a single huge
	// transaction.
	for start := 0; start < n; start += batch {
		err := e.Store.InTx(ctx, func(tx *store.Tx) error {
			end := min(start+batch, n)
			var art, con, ca, rc []string
			var aArgs, cArgs, caArgs, rcArgs []any
			ph := func(args *[]any, vals ...any) string {
				ps := make([]string, len(vals))
				for i, v := range vals {
					*args = append(*args, v)
					ps[i] = fmt.Sprintf("$%d", len(*args))
					if e.Store.Dialect() == "sqlite" {
						ps[i] = "?" // numbered parameters are slow in bulk on SQLite
					}
				}
				return "(" + strings.Join(ps, ", ") + ")"
			}
			for i := start; i < end; i++ {
				aid, cid := store.NewID(), store.NewID()
				path := pathOf(i)
				sum := fmt.Sprintf("%064x", i)
				art = append(art, ph(&aArgs, aid, now, now, "artifact/"+sum[:2]+"/"+sum[2:], int64(i), sum, now))
				// Only the content artifact carries the (possibly long) path;
				// the keys stay short so indexes stay cheap to fill.
				con = append(con, ph(&cArgs, cid, now, now, Type, now, sum, sum))
				ca = append(ca, ph(&caArgs, store.NewID(), now, now, cid, aid, path))
				rc = append(rc, ph(&rcArgs, store.NewID(), now, repo.ID, cid))
			}
			stmts := []struct {
				q    string
				args []any
			}{
				{`INSERT INTO artifacts (id, created, last_updated, file, size, sha256, timestamp_of_interest) VALUES ` + strings.Join(art, ","), aArgs},
				{`INSERT INTO content (id, created, last_updated, pulp_type, timestamp_of_interest, natural_key, repo_key) VALUES ` + strings.Join(con, ","), cArgs},
				{`INSERT INTO content_artifacts (id, created, last_updated, content_id, artifact_id, relative_path) VALUES ` + strings.Join(ca, ","), caArgs},
				{`INSERT INTO repository_content (id, created, repository_id, content_id, version_added) VALUES ` + strings.ReplaceAll(strings.Join(rc, ","), ")", ", 1)"), rcArgs},
			}
			for _, st := range stmts {
				if _, err := tx.Exec(ctx, st.q, st.args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err := e.Store.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO repository_versions (id, created, last_updated, repository_id, number, complete) VALUES ($1, $2, $2, $3, 1, TRUE)`,
			store.NewID(), now, repo.ID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE repositories SET next_version = 2 WHERE id = $1`, repo.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := repository.GetVersion(ctx, e.Store, repo.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// heapPeak samples the live heap while fn runs and returns the largest
// growth over the heap before it. The GC runs often meanwhile, so garbage
// does not hide what is really held.
func heapPeak(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base && m.HeapAlloc-base > peak.Load() {
				peak.Store(m.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// pdLongPath names unit i with a path of about 2,000 bytes, so that a
// version of few units makes a large manifest.
func pdLongPath(i int) string {
	return fmt.Sprintf("%sfile-%07d.bin", strings.Repeat("long-directory-name/", 100), i)
}

// pdCheckManifest reads a published manifest back and checks it lists n
// units, newest first.
func pdCheckManifest(t testing.TB, data []byte, n int) {
	t.Helper()
	lines, last := 0, ""
	if err := ReadManifest(bytes.NewReader(data), func(m ManifestEntry) error {
		lines++
		name := m.RelativePath[strings.LastIndexByte(m.RelativePath, '/')+1:]
		if last != "" && name >= last {
			return fmt.Errorf("%q after %q: not newest first", name, last)
		}
		last = name
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if lines != n {
		t.Fatalf("manifest has %d lines, want %d", lines, n)
	}
}

// TestPublishStreamsManifest publishes a version whose manifest (about
// 12 MB) is larger than what the heap may grow by meanwhile: the version is
// never held in memory. (Streaming holds well under 2 MB here.)
func TestPublishStreamsManifest(t *testing.T) {
	const n = 6000
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := pdEnv(t, s, 0)
		repo := pdRepo(t, e)
		start := time.Now()
		v := pdBulkVersion(t, e, repo, n, pdLongPath)
		t.Logf("built %d units in %v", n, time.Since(start).Round(time.Millisecond))
		start = time.Now()
		var id string
		var err error
		peak := heapPeak(func() { id, err = Publish(context.Background(), e.Deps, nil, v.ID, pdStr("PULP_MANIFEST")) })
		if err != nil {
			t.Fatal(err)
		}
		_, data := pdManifest(t, e, id)
		pdCheckManifest(t, data, n)
		t.Logf("%d-byte manifest published in %v with the heap growing by at most %d KiB", len(data), time.Since(start).Round(time.Millisecond), peak>>10)
		if limit := uint64(len(data)) / 2; peak > limit {
			t.Fatalf("heap grew by %d bytes while publishing a %d-byte manifest: the version is held in memory", peak, len(data))
		}
	})
}

// BenchmarkPublish100k publishes a version of 100,000 units (SQLite, and
// PostgreSQL when configured) and reports the heap growth, which must stay
// far below the manifest's size:
//
//	go test -run XXX -bench BenchmarkPublish100k -benchtime 3x ./plugins/file/
func BenchmarkPublish100k(b *testing.B) {
	const n = 100_000
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			e := pdEnv(b, storetest.Open(b, be), 0)
			repo := pdRepo(b, e)
			v := pdBulkVersion(b, e, repo, n, func(i int) string { return fmt.Sprintf("dir%03d/file-%07d.bin", i%1000, i) })
			b.ResetTimer()
			var maxPeak uint64
			var size int
			for range b.N {
				var id string
				var err error
				peak := heapPeak(func() { id, err = Publish(context.Background(), e.Deps, nil, v.ID, pdStr("PULP_MANIFEST")) })
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_, data := pdManifest(b, e, id)
				pdCheckManifest(b, data, n)
				size = len(data)
				maxPeak = max(maxPeak, peak)
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "units/s")
			b.ReportMetric(float64(maxPeak), "heap-peak-B")
			if maxPeak > uint64(size)/4 {
				b.Fatalf("heap grew by %d bytes publishing a %d-byte manifest", maxPeak, size)
			}
		})
	}
}
