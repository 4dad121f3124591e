package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
	"github.com/pith-project/pith/pipeline"
)

func body(i int) []byte { return fmt.Appendf(nil, "file %d %s", i, strings.Repeat("x", i%7)) }

func TestStageNames(t *testing.T) {
	p := pipeline.NewDeclarativeVersion(pipeline.Deps{Version: dummyVersion{}})
	want := []string{pipeline.StageQueryArtifacts, pipeline.StageDownload, pipeline.StageSaveArtifacts, pipeline.StageQueryContent,
		pipeline.StageSaveContent, pipeline.StageSaveRemoteArtifact, pipeline.StageAssociate}
	if got := names(p); !slices.Equal(got, want) {
		t.Fatalf("stages = %v, want %v", got, want)
	}
	if got := names(pipeline.NewDeclarativeVersion(pipeline.Deps{})); slices.Contains(got, pipeline.StageAssociate) {
		t.Errorf("without a version the pipeline still associates: %v", got)
	}
}

type dummyVersion struct{}

func (dummyVersion) Add(context.Context, []string) error { return nil }
func (dummyVersion) RemoveAll(context.Context) error     { return nil }

func TestImmediateSync(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 30 {
			units = append(units, e.up.add(fmt.Sprintf("dir/f%d.txt", i), body(i)))
		}
		// Two paths with the same bytes share one artifact.
		units = append(units, e.up.add("dup/one", []byte("same")), e.up.add("dup/two", []byte("same")))
		repo := newRepo(t, s)

		n, err := e.sync(t, repo, units, false, false)
		if err != nil || n != 1 {
			t.Fatalf("sync = version %d, %v", n, err)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts`); got != 31 {
			t.Errorf("artifacts = %d, want 31", got)
		}
		rows, err := s.Query(t.Context(), `SELECT `+store.ArtifactColumns+` FROM artifacts`)
		if err != nil {
			t.Fatal(err)
		}
		var arts []*store.Artifact
		for rows.Next() {
			a, err := store.ScanArtifact(rows)
			if err != nil {
				t.Fatal(err)
			}
			arts = append(arts, a)
		}
		rows.Close()
		for _, a := range arts {
			b := e.storedBytes(t, a.File)
			if sha256Hex(b) != a.SHA256 || int64(len(b)) != a.Size || a.SHA512 == "" || a.SHA384 == "" || a.SHA224 == "" {
				t.Errorf("artifact %+v does not describe its stored bytes %q", a, b)
			}
		}
		if got := count(t, s, `SELECT COUNT(*) FROM content c JOIN file_content fc ON fc.content_id = c.id JOIN content_artifacts ca ON ca.content_id = c.id
			JOIN artifacts a ON a.id = ca.artifact_id WHERE a.sha256 = fc.digest AND ca.relative_path = fc.relative_path`); got != 32 {
			t.Errorf("content with detail and matching artifact = %d, want 32", got)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM remote_artifacts ra JOIN content_artifacts ca ON ca.id = ra.content_artifact_id
			WHERE ra.remote_id = $1 AND ra.url = $2 || '/' || ca.relative_path AND ra.sha512 IS NOT NULL AND ra.size IS NOT NULL`, e.remoteID, e.up.URL); got != 32 {
			t.Errorf("remote artifacts = %d, want 32", got)
		}
		if got := versionPaths(t, s, repo, 1); len(got) != 32 || !got["dup/two"] {
			t.Errorf("version 1 holds %d units", len(got))
		}
		for _, u := range units {
			if c := e.up.count(u.path); c != 1 {
				t.Errorf("%s requested %d times", u.path, c)
			}
		}
		if r := e.prog.get("sync.downloading.artifacts"); r == nil || r.done.Load() != 32 || r.state.Load() != "completed" || r.message != "Downloading Artifacts" {
			t.Errorf("download progress = %+v", r)
		}
		if r := e.prog.get("associating.content"); r == nil || r.done.Load() != 32 || r.state.Load() != "completed" || r.message != "Associating Content" {
			t.Errorf("association progress = %+v", r)
		}
		if r := e.prog.get("unassociating.content"); r != nil {
			t.Error("a non-mirror sync reported un-association")
		}
		if tmp := e.tempFiles(t); len(tmp) != 0 {
			t.Errorf("temp files left: %v", tmp)
		}

		// Re-sync of the same content: nothing downloaded, no version.
		e.prog.reset()
		before := e.up.total.Load()
		n, err = e.sync(t, repo, units, false, false)
		if err != nil || n != 0 {
			t.Fatalf("no-op re-sync = version %d, %v", n, err)
		}
		if got := e.up.total.Load() - before; got != 0 {
			t.Errorf("no-op re-sync made %d requests", got)
		}
		if r := e.prog.get("sync.downloading.artifacts"); r == nil || r.done.Load() != 0 {
			t.Errorf("no-op download progress = %+v", r)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM content`) + count(t, s, `SELECT COUNT(*) FROM remote_artifacts`); got != 64 {
			t.Errorf("re-sync changed row counts: %d", got)
		}
	})
}

func contentIDs(t *testing.T, s *store.Store) []string {
	t.Helper()
	rows, err := s.Query(t.Context(), `SELECT id FROM content ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

func TestDeferredThenImmediate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 20 {
			units = append(units, e.up.add(fmt.Sprintf("f%d", i), body(i)))
		}
		repo := newRepo(t, s)

		n, err := e.sync(t, repo, units, true, false)
		if err != nil || n != 1 {
			t.Fatalf("on_demand sync = version %d, %v", n, err)
		}
		if got := e.up.total.Load(); got != 0 {
			t.Errorf("on_demand sync made %d requests", got)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts`); got != 0 {
			t.Errorf("on_demand sync stored %d artifacts", got)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM content_artifacts WHERE artifact_id IS NULL`); got != 20 {
			t.Errorf("deferred content artifacts = %d, want 20", got)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM remote_artifacts ra JOIN content_artifacts ca ON ca.id = ra.content_artifact_id
			JOIN file_content fc ON fc.content_id = ca.content_id WHERE ra.sha256 = fc.digest AND ra.size IS NOT NULL AND ra.url LIKE $1`, e.up.URL+"/f%"); got != 20 {
			t.Errorf("remote artifacts with url, size and sha256 = %d, want 20", got)
		}
		if len(versionPaths(t, s, repo, 1)) != 20 {
			t.Error("version 1 does not hold the on_demand units")
		}
		ids := contentIDs(t, s)

		// The same units synced immediate: downloaded and attached to the
		// existing content; the version does not change.
		n, err = e.sync(t, repo, units, false, false)
		if err != nil || n != 0 {
			t.Fatalf("immediate re-sync = version %d, %v", n, err)
		}
		if got := e.up.total.Load(); got != 20 {
			t.Errorf("immediate sync made %d requests, want 20", got)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM content_artifacts ca JOIN artifacts a ON a.id = ca.artifact_id JOIN file_content fc ON fc.content_id = ca.content_id
			WHERE a.sha256 = fc.digest`); got != 20 {
			t.Errorf("content artifacts with their artifact = %d, want 20", got)
		}
		if got := contentIDs(t, s); !slices.Equal(got, ids) {
			t.Error("immediate sync created new content instead of upgrading")
		}
		if got := count(t, s, `SELECT COUNT(*) FROM remote_artifacts`); got != 20 {
			t.Errorf("remote artifacts = %d, want still 20", got)
		}

		// Deferred again: stored artifacts are kept, nothing is fetched,
		// and a new unit whose bytes are stored gets the artifact at once.
		units = append(units, fileUnit{path: "copy-of-f3", sha: units[3].sha})
		n, err = e.sync(t, repo, units, true, false)
		if err != nil || n != 2 {
			t.Fatalf("deferred re-sync = version %d, %v", n, err)
		}
		if got := e.up.total.Load(); got != 20 {
			t.Errorf("deferred re-sync made %d requests", got-20)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM content_artifacts WHERE artifact_id IS NULL`); got != 0 {
			t.Errorf("%d content artifacts without artifact, want 0", got)
		}
	})
}

func TestCorruptUpstreamFailsWithoutTrace(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 5 {
			units = append(units, e.up.add(fmt.Sprintf("ok%d", i), body(i)))
		}
		good := []byte("the right bytes")
		bad := e.up.add("bad", good)
		units = append(units, bad)
		e.up.fault = func(w http.ResponseWriter, r *http.Request, p string, _ int) bool {
			if p != "bad" {
				return false
			}
			w.Write(bytes.ToUpper(good)) // same size, other digest
			return true
		}
		repo := newRepo(t, s)
		_, err := e.sync(t, repo, units, false, false)
		if err == nil {
			t.Fatal("sync of a corrupt file succeeded")
		}
		if !strings.Contains(err.Error(), e.up.URL+"/bad") || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("error %q does not name the URL and the checksum failure", err)
		}
		if got := e.up.count("bad"); got != 4 {
			t.Errorf("corrupt file requested %d times, want 4 (1 + 3 retries)", got)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts WHERE sha256 = $1`, bad.sha); got != 0 {
			t.Error("an artifact row exists for the corrupt file")
		}
		if _, err := e.storage.Stat(t.Context(), storage.ArtifactName(sha256Hex(bytes.ToUpper(good)))); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("corrupt bytes stored: %v", err)
		}
		if _, err := e.storage.Stat(t.Context(), storage.ArtifactName(bad.sha)); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("file stored for the failed artifact: %v", err)
		}
		if tmp := e.tempFiles(t); len(tmp) != 0 {
			t.Errorf("temp files left: %v", tmp)
		}
		if r := e.prog.get("sync.downloading.artifacts"); r == nil || r.state.Load() != "failed" {
			t.Errorf("download progress = %+v, want failed", r)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM repository_versions WHERE repository_id = $1`, repo); got != 1 {
			t.Errorf("%d versions after a failed sync, want only version 0", got)
		}
	})
}

func TestTransientFaultsAreRetried(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		content := []byte(strings.Repeat("pulp ", 1000))
		u := e.up.add("flaky", content)
		// Pulp's test_bad_sync sequence: a truncated body, a corrupted
		// byte, a 429, then the right bytes.
		e.up.fault = func(w http.ResponseWriter, r *http.Request, p string, attempt int) bool {
			switch attempt {
			case 1:
				w.Header().Set("Content-Length", fmt.Sprint(len(content)))
				w.Write(content[:len(content)/2])
				return true
			case 2:
				c := bytes.Clone(content)
				c[100] ^= 1
				w.Write(c)
				return true
			case 3:
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}
			return false
		}
		n, err := e.sync(t, newRepo(t, s), []fileUnit{u}, false, false)
		if err != nil || n != 1 {
			t.Fatalf("sync = version %d, %v", n, err)
		}
		if got := e.up.count("flaky"); got != 4 {
			t.Errorf("requests = %d, want exactly 4", got)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts WHERE sha256 = $1`, u.sha); got != 1 {
			t.Error("artifact not stored")
		}
		if tmp := e.tempFiles(t); len(tmp) != 0 {
			t.Errorf("temp files left by failed attempts: %v", tmp)
		}
	})
}

func TestNotFoundIsNotRetried(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		u := fileUnit{path: "missing", sha: sha256Hex([]byte("x"))}
		_, err := e.sync(t, newRepo(t, s), []fileUnit{u}, false, false)
		if err == nil || !strings.Contains(err.Error(), e.up.URL+"/missing") || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v, want a 404 naming the URL", err)
		}
		if got := e.up.count("missing"); got != 1 {
			t.Errorf("404 requested %d times", got)
		}
	})
}

func TestCancelMidwayLeavesNoTempFiles(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 40 {
			units = append(units, e.up.add(fmt.Sprintf("f%d", i), bytes.Repeat([]byte{byte(i)}, 64<<10)))
		}
		// Every file after the first few sends half its bytes, then stalls.
		stalled := make(chan struct{}, 100)
		e.up.fault = func(w http.ResponseWriter, r *http.Request, p string, _ int) bool {
			if p < "f3" && len(p) == 2 {
				return false
			}
			e.up.mu.Lock()
			b := e.up.files[p]
			e.up.mu.Unlock()
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			stalled <- struct{}{}
			<-r.Context().Done()
			return true
		}
		created := make(chan struct{}, 100)
		d := e.deps(dummyVersion{}, false)
		d.Storage = notifyingCreator{e.storage, created}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- pipeline.NewDeclarativeVersion(d).Run(ctx, e.declare(units, false))
		}()
		for range 10 { // ten downloads are mid-body, their temp files open
			<-stalled
			<-created
		}
		if len(e.tempFiles(t)) == 0 {
			t.Fatal("no download in progress to cancel")
		}
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not stop after cancellation")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("stopping took %v", d)
		}
		if tmp := e.tempFiles(t); len(tmp) != 0 {
			t.Errorf("temp files left after cancellation: %v", tmp)
		}
	})
}

// notifyingCreator tells when a storage write starts. It names each temp
// file (as a reader tailing it would), so tests can see it in tmp/, and
// keeps the group commit of the storage it wraps.
type notifyingCreator struct {
	*fs.Backend
	created chan<- struct{}
}

func (n notifyingCreator) Create(ctx context.Context) (storage.Writer, error) {
	w, err := n.Backend.Create(ctx)
	if err == nil {
		w.(storage.TempPather).TempPath()
	}
	n.created <- struct{}{}
	return w, err
}

func TestDownloadConcurrencyBounded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 30 {
			units = append(units, e.up.add(fmt.Sprintf("f%d", i), body(i)))
		}
		var inflight, peak atomic.Int64
		e.up.fault = func(w http.ResponseWriter, r *http.Request, p string, _ int) bool {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond) // let downloads overlap
			return false
		}
		d := e.deps(nil, false)
		d.Concurrency = 3
		if err := pipeline.NewDeclarativeVersion(d).Run(t.Context(), e.declare(units, false)); err != nil {
			t.Fatal(err)
		}
		if p := peak.Load(); p > 3 || p < 2 {
			t.Errorf("peak concurrent downloads = %d, want 2..3 (bounded by Concurrency 3)", p)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts`); got != 30 {
			t.Errorf("artifacts = %d", got)
		}
	})
}

func TestMirror(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		a, b, c, d, x := e.up.add("a", []byte("A")), e.up.add("b", []byte("B")), e.up.add("c", []byte("C")), e.up.add("d", []byte("D")), e.up.add("x", []byte("X"))
		repo := newRepo(t, s)
		if n, err := e.sync(t, repo, []fileUnit{a, b, c}, true, false); err != nil || n != 1 {
			t.Fatalf("sync 1 = %d, %v", n, err)
		}
		e.prog.reset()
		if n, err := e.sync(t, repo, []fileUnit{b, c, d}, true, true); err != nil || n != 2 {
			t.Fatalf("mirror sync = %d, %v", n, err)
		}
		if got := versionPaths(t, s, repo, 2); len(got) != 3 || !got["b"] || !got["c"] || !got["d"] {
			t.Errorf("mirrored version holds %v, want b c d", got)
		}
		if r := e.prog.get("unassociating.content"); r == nil || r.state.Load() != "completed" || r.message != "Un-Associating Content" {
			t.Errorf("un-association progress = %+v", r)
		}
		// Without mirror, units are only added.
		if n, err := e.sync(t, repo, []fileUnit{x}, true, false); err != nil || n != 3 {
			t.Fatalf("additive sync = %d, %v", n, err)
		}
		if got := versionPaths(t, s, repo, 3); len(got) != 4 {
			t.Errorf("additive sync version holds %v", got)
		}
		// A mirror sync of the same set changes nothing.
		if n, err := e.sync(t, repo, []fileUnit{b, c, d, x}, true, true); err != nil || n != 0 {
			t.Fatalf("no-op mirror sync = %d, %v", n, err)
		}
		// Mirroring an empty upstream empties the repository.
		if n, err := e.sync(t, repo, nil, true, true); err != nil || n != 4 {
			t.Fatalf("empty mirror sync = %d, %v", n, err)
		}
		if got := versionPaths(t, s, repo, 4); len(got) != 0 {
			t.Errorf("empty mirror left %v", got)
		}
	})
}

// TestMemoryStaysBounded pushes 10,000 units, each carrying a 64 KiB
// payload, through every stage: holding them all would take over 600 MiB,
// while the pipeline only ever holds a few batches (about 250 units here).
// Under the race detector SQLite is so slow that 2,000 units (125 MiB if
// held) must do.
func TestMemoryStaysBounded(t *testing.T) {
	const (
		payload = 64 << 10
		bound   = 64 << 20
	)
	units := 10000
	if raceEnabled {
		units = 2000
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		d := e.deps(nil, false)
		d.BatchSize = 20
		var base, peak uint64
		sample := func() {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base = ms.HeapInuse
		first := func(ctx context.Context, out chan<- *pipeline.DeclarativeContent) error {
			for i := range units {
				path := fmt.Sprintf("big/%05d", i)
				sum := sha256Hex([]byte(path))
				dc := &pipeline.DeclarativeContent{Unit: fileUnit{path, sum}, Extra: make([]byte, payload),
					Artifacts: []*pipeline.DeclarativeArtifact{{URL: e.up.URL + "/" + path, RelativePath: path, Size: 1,
						Digests: map[string]string{"sha256": sum}, RemoteID: e.remoteID, Deferred: true}}}
				if err := pipeline.Send(ctx, out, dc); err != nil {
					return err
				}
				if i%200 == 0 {
					sample()
				}
			}
			return nil
		}
		if err := pipeline.NewDeclarativeVersion(d).Run(t.Context(), first); err != nil {
			t.Fatal(err)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM content`); got != units {
			t.Fatalf("content = %d, want %d", got, units)
		}
		grew := int64(peak) - int64(base)
		t.Logf("heap in use grew by %d MiB at most", grew>>20)
		if grew > bound {
			t.Errorf("heap in use grew by %d MiB, bound %d MiB: the pipeline accumulates items", grew>>20, bound>>20)
		}
	})
}
