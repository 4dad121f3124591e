package file

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// rsUpstream serves a PULP_MANIFEST and its files under /repo/, counting
// the requests for each path. A corrupted path is listed with its true
// digest but served with other bytes of the same size.
type rsUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	files   map[string]string
	corrupt map[string]bool
	counts  map[string]int
}

func newRSUpstream(t *testing.T, files map[string]string) *rsUpstream {
	t.Helper()
	u := &rsUpstream{counts: map[string]int{}, corrupt: map[string]bool{}}
	u.set(files)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		defer u.mu.Unlock()
		p := strings.TrimPrefix(r.URL.Path, "/repo/")
		u.counts[p]++
		if p == "PULP_MANIFEST" {
			paths := make([]string, 0, len(u.files))
			for k := range u.files {
				paths = append(paths, k)
			}
			sort.Strings(paths)
			for _, k := range paths {
				fmt.Fprintf(w, "%s,%s,%d\n", k, pdSHA(u.files[k]), len(u.files[k]))
			}
			return
		}
		data, ok := u.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if u.corrupt[p] {
			data = strings.Repeat("X", len(data))
		}
		w.Write([]byte(data))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *rsUpstream) set(files map[string]string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files = files
}

func (u *rsUpstream) breakFile(p string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.corrupt[p] = true
}

func (u *rsUpstream) count(p string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[p]
}

// fileRequests counts requests for anything but the manifest.
func (u *rsUpstream) fileRequests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for p, c := range u.counts {
		if p != "PULP_MANIFEST" {
			n += c
		}
	}
	return n
}

func (u *rsUpstream) manifest() string { return u.URL + "/repo/PULP_MANIFEST" }

// rsRemote creates a remote on up's manifest; extra fields may be given.
func rsRemote(t *testing.T, e *testEnv, name string, up *rsUpstream, policy string, extra ...map[string]any) FileRemoteResponse {
	t.Helper()
	body := map[string]any{"name": name, "url": up.manifest(), "policy": policy}
	for _, x := range extra {
		for k, v := range x {
			body[k] = v
		}
	}
	return e.createRemote(body)
}

// rsNewRepo creates an empty repository.
func rsNewRepo(t *testing.T, e *testEnv, name string) RepositoryResponse {
	t.Helper()
	var repo RepositoryResponse
	e.call("POST", RepositoriesPath, map[string]any{"name": name}, http.StatusCreated, &repo)
	return repo
}

// rsRepo creates a repository named name and syncs it from a new remote
// (named name+"-remote") of the given policy on up.
func rsRepo(t *testing.T, e *testEnv, name string, up *rsUpstream, policy string, extra ...map[string]any) (RepositoryResponse, FileRemoteResponse) {
	t.Helper()
	remote := rsRemote(t, e, name+"-remote", up, policy, extra...)
	repo := rsNewRepo(t, e, name)
	rsSync(t, e, repo, remote)
	return repo, remote
}

func rsID(href string) string {
	parts := strings.Split(strings.TrimSuffix(href, "/"), "/")
	return parts[len(parts)-1]
}

// rsSync syncs repo from remote.
func rsSync(t *testing.T, e *testEnv, repo RepositoryResponse, remote FileRemoteResponse) {
	t.Helper()
	e.async("POST", repo.PulpHref+"sync/", map[string]any{"remote": remote.PulpHref})
}

func rsLatest(t *testing.T, e *testEnv, repo RepositoryResponse) string {
	t.Helper()
	var r RepositoryResponse
	e.call("GET", repo.PulpHref, nil, http.StatusOK, &r)
	return r.LatestVersionHref
}

// rsArtifact returns the artifact id of the unit at relPath ("" when not
// stored).
func rsArtifact(t *testing.T, e *testEnv, relPath string) string {
	t.Helper()
	var id sql.NullString
	if err := e.Store.QueryRow(context.Background(), `SELECT artifact_id FROM content_artifacts WHERE relative_path = $1`, relPath).Scan(&id); err != nil {
		t.Fatalf("content artifact %s: %v", relPath, err)
	}
	return id.String
}

func rsContentHref(t *testing.T, e *testEnv, relPath string) string {
	t.Helper()
	var id string
	if err := e.Store.QueryRow(context.Background(), `SELECT content_id FROM content_artifacts WHERE relative_path = $1`, relPath).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return ContentHref(id)
}

// rsStored lists the artifact files in storage.
func rsStored(t *testing.T, e *testEnv) []string {
	t.Helper()
	var out []string
	err := e.Deps.Storage.(storage.Walker).Walk(context.Background(), "artifact/", func(name string, _ storage.Info) error {
		out = append(out, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func rsName(sha string) string { return "artifact/" + sha[:2] + "/" + sha[2:] }

// rsRefused deletes href expecting the sole-source refusal and returns its
// message.
func rsRefused(t *testing.T, e *testEnv, href string) string {
	t.Helper()
	var errs map[string][]string
	e.call("DELETE", href, nil, http.StatusBadRequest, &errs)
	if len(errs["non_field_errors"]) != 1 {
		t.Fatalf("DELETE %s: %v", href, errs)
	}
	return errs["non_field_errors"][0]
}

func TestRemoteDeleteSoleSource(t *testing.T) {
	t.Parallel()
	pdEach(t, func(t *testing.T, e *testEnv) {
		up := newRSUpstream(t, map[string]string{"a.txt": "alpha", "b.txt": "bravo", "c.txt": "charlie"})

		// Served on-demand content with one source: refused before any
		// task, and the remote stays.
		served, od := rsRepo(t, e, "served", up, "on_demand")
		pdDistribute(t, e, map[string]any{"name": "served", "base_path": "served", "repository": served.PulpHref})
		tasks := pdCount(t, e, `SELECT COUNT(*) FROM tasks`)
		msg := rsRefused(t, e, od.PulpHref)
		want := "Remote 'served-remote' is the only source of 3 on-demand content units served by distributions of repository 'served'."
		if !strings.HasPrefix(msg, want) || !strings.Contains(msg, "download/") {
			t.Fatalf("refusal %q, want it to start with %q", msg, want)
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM tasks`); n != tasks {
			t.Fatal("a refused delete dispatched a task")
		}
		e.readRemote(od.PulpHref)

		// A second served repository fetching through the same remote is
		// named too; units are counted once.
		other := rsNewRepo(t, e, "other")
		rsSync(t, e, other, od)
		e.async("POST", other.PulpHref+"modify/", map[string]any{"remove_content_units": []string{rsContentHref(t, e, "b.txt"), rsContentHref(t, e, "c.txt")}})
		otherDist, _ := pdDistribute(t, e, map[string]any{"name": "other", "base_path": "other", "repository": other.PulpHref})
		if msg := rsRefused(t, e, od.PulpHref); !strings.Contains(msg, " of 3 on-demand content units served by distributions of repositories 'other', 'served'.") {
			t.Fatalf("refusal %q", msg)
		}

		// Another remote of 'served' provides its units, but 'other' may
		// not fetch through it: only a.txt of 'other' blocks the delete.
		alt := rsRemote(t, e, "alt", up, "on_demand")
		rsSync(t, e, served, alt)
		if msg := rsRefused(t, e, od.PulpHref); !strings.Contains(msg, " of 1 on-demand content unit served by distributions of repository 'other'.") {
			t.Fatalf("refusal %q", msg)
		}
		// Without the distribution nothing is broken by the delete.
		e.async("DELETE", otherDist.PulpHref, nil)
		task := e.async("DELETE", od.PulpHref, nil)
		if task.Name != coreapi.GeneralDeleteTask {
			t.Fatalf("delete ran %s", task.Name)
		}
		if code, _ := e.do("GET", od.PulpHref, nil); code != http.StatusNotFound {
			t.Fatalf("GET after delete: %d", code)
		}
		// Now alt is the only source.
		if msg := rsRefused(t, e, alt.PulpHref); !strings.Contains(msg, "Remote 'alt' is the only source of 3 ") {
			t.Fatalf("refusal %q", msg)
		}
		// Once the units are stored, alt may go.
		e.async("POST", rsLatest(t, e, served)+"download/", nil)
		e.async("DELETE", alt.PulpHref, nil)

		// Immediate content served: allowed.
		imm, immRemote := rsRepo(t, e, "imm", newRSUpstream(t, map[string]string{"i.txt": "india"}), "immediate")
		pdDistribute(t, e, map[string]any{"name": "imm", "base_path": "imm", "repository": imm.PulpHref})
		e.async("DELETE", immRemote.PulpHref, nil)

		// On-demand content nobody serves: allowed.
		_, lone := rsRepo(t, e, "lone", newRSUpstream(t, map[string]string{"z.txt": "zulu"}), "on_demand")
		e.async("DELETE", lone.PulpHref, nil)
	})
}

// TestRemoteDeleteTaskChecksAgain makes the check pass when the delete is
// requested and fail by the time the task runs: the task refuses.
func TestRemoteDeleteTaskChecksAgain(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := pdEnv(t, s, 0)
		ctx := t.Context()
		repo := pdRepo(t, e)
		ids := pdUnits(t, e, pdFile{path: "a.iso", data: "lazy", onDemand: true})
		v := pdVersion(t, e, repo, ids...)
		var remoteID string
		if err := e.Store.QueryRow(ctx, `SELECT remote_id FROM remote_artifacts`).Scan(&remoteID); err != nil {
			t.Fatal(err)
		}
		href := RemoteHref(remoteID)
		var ar api.AsyncResponse
		e.call("DELETE", href, nil, http.StatusAccepted, &ar)
		// A distribution appears before a worker picks the task up.
		if _, err := e.Store.Exec(ctx, `INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path, repository_version_id)
			VALUES ($1, 1, 1, $2, 'late', 'late', $3)`, store.NewID(), Type, v.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.Tasks.RunWorkers(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		task := e.waitTask(ar.Task)
		desc, _ := task.Error["description"].(string)
		if task.State != "failed" || !strings.Contains(desc, "is the only source of 1 on-demand content unit served by distributions of repository '"+repo.Name+"'") {
			t.Fatalf("delete task %s: %v", task.State, task.Error)
		}
		e.readRemote(href)
	})
}

// TestRemoteSoleSourceServedVersions checks every way a distribution
// serves a version.
func TestRemoteSoleSourceServedVersions(t *testing.T) {
	t.Parallel()
	pdEach(t, func(t *testing.T, e *testEnv) {
		ctx := t.Context()
		repo := pdRepo(t, e)
		ids := pdUnits(t, e, pdFile{path: "old.iso", data: "old", onDemand: true}, pdFile{path: "new.iso", data: "new", onDemand: true},
			pdFile{path: "kept.iso", data: "kept"})
		v1 := pdVersion(t, e, repo, ids[0], ids[2])
		v2 := pdVersion(t, e, repo, ids[1], ids[2])
		var remoteID string
		if err := e.Store.QueryRow(ctx, `SELECT remote_id FROM remote_artifacts`).Scan(&remoteID); err != nil {
			t.Fatal(err)
		}
		check := func(what string, want int64) {
			t.Helper()
			got, err := e.Store.RemoteSoleSource(ctx, nil, remoteID)
			if err != nil {
				t.Fatal(err)
			}
			wantRepos := []string(nil)
			if want > 0 {
				wantRepos = []string{repo.Name}
			}
			if got.Units != want || !slices.Equal(got.Repositories, wantRepos) {
				t.Fatalf("%s: %+v, want %d units", what, got, want)
			}
		}
		check("no distribution", 0)
		distID := store.NewID()
		if _, err := e.Store.Exec(ctx, `INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path, repository_version_id)
			VALUES ($1, 1, 1, $2, 'd', 'd', $3)`, distID, Type, v1.ID); err != nil {
			t.Fatal(err)
		}
		check("an old version", 1)
		pub := pdPublished(t, e, v1)
		set := func(col, val string) {
			t.Helper()
			sets := []string{col + " = $2"}
			for _, c := range []string{"repository_version_id", "publication_id", "repository_id"} {
				if c != col {
					sets = append(sets, c+" = NULL")
				}
			}
			if _, err := e.Store.Exec(ctx, `UPDATE distributions SET `+strings.Join(sets, ", ")+` WHERE id = $1`, distID, val); err != nil {
				t.Fatal(err)
			}
		}
		set("publication_id", pub)
		check("a publication of it", 1)
		// Following the repository: its latest version (v2, unpublished)
		// and the version of its latest publication (v1).
		set("repository_id", repo.ID)
		check("the repository", 2)
		pdPublished(t, e, v2)
		check("the repository, latest version published", 1)
		// A stored unit never counts.
		if _, err := e.Store.Exec(ctx, `UPDATE content_artifacts SET artifact_id = (SELECT artifact_id FROM content_artifacts WHERE relative_path = 'kept.iso')
			WHERE relative_path = 'new.iso'`); err != nil {
			t.Fatal(err)
		}
		check("stored", 0)
	})
}

func TestReclaimSpace(t *testing.T) {
	t.Parallel()
	pdEach(t, func(t *testing.T, e *testEnv) {
		ctx := t.Context()
		up := newRSUpstream(t, map[string]string{"a.txt": "alpha", "b.txt": "bravo"})
		repo, remote := rsRepo(t, e, "r", up, "immediate")
		v1 := rsLatest(t, e, repo)
		up.set(map[string]string{"a.txt": "alpha", "b.txt": "bravo", "c.txt": "charlie", "d.txt": "delta"})
		rsSync(t, e, repo, remote)
		e.async("POST", repo.PulpHref+"modify/", map[string]any{"remove_content_units": []string{rsContentHref(t, e, "b.txt")}})
		// An uploaded unit: no remote knows it.
		uploaded := pdUnits(t, e, pdFile{path: "e.txt", data: "echo"})
		e.async("POST", repo.PulpHref+"modify/", map[string]any{"add_content_units": []string{ContentHref(uploaded[0])}})
		// d.txt is in a repository outside the reclaim too.
		other := rsNewRepo(t, e, "other")
		e.async("POST", other.PulpHref+"modify/", map[string]any{"add_content_units": []string{rsContentHref(t, e, "d.txt")}})
		before := rsStored(t, e)
		cArtifact := rsArtifact(t, e, "c.txt")
		if len(before) != 5 || cArtifact == "" {
			t.Fatalf("stored before: %v", before)
		}

		task := e.async("POST", api.Root+"repositories/reclaim_space/", map[string]any{"repo_hrefs": []string{repo.PulpHref}, "repo_versions_keeplist": []string{v1}})
		if task.Name != coreapi.ReclaimSpaceTask || !slices.ContainsFunc(task.Reserved, func(r string) bool { return strings.HasSuffix(r, RepoPRN(rsID(repo.PulpHref))) }) ||
			!slices.ContainsFunc(task.Reserved, func(r string) bool { return strings.HasSuffix(r, RemotePRN(rsID(remote.PulpHref))) }) {
			t.Fatalf("reclaim task %s reserved %v", task.Name, task.Reserved)
		}
		var rep coreapi.ProgressReportResponse
		if len(task.ProgressReports) != 1 || json.Unmarshal(task.ProgressReports[0], &rep) != nil ||
			rep.Code != "reclaim-space.artifact" || rep.Total == nil || *rep.Total != 1 || rep.Done != 1 || rep.State != "completed" {
			t.Fatalf("progress %s", task.ProgressReports)
		}
		// Only c.txt: in no kept version, in no other repository, known
		// to a remote. Its artifact row and file are gone; the unit stays.
		for p, stored := range map[string]bool{"a.txt": true, "b.txt": true, "c.txt": false, "d.txt": true, "e.txt": true} {
			if got := rsArtifact(t, e, p) != ""; got != stored {
				t.Errorf("%s stored = %v, want %v", p, got, stored)
			}
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM artifacts WHERE id = $1`, cArtifact); n != 0 {
			t.Fatal("the released artifact row is still there")
		}
		if after := rsStored(t, e); len(after) != 4 || slices.Contains(after, rsName(pdSHA("charlie"))) {
			t.Fatalf("stored after: %v", after)
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM content_artifacts WHERE relative_path = 'c.txt'`); n != 1 {
			t.Fatal("the unit went away")
		}

		// The version download brings it back with one request.
		requests := up.count("c.txt")
		e.async("POST", rsLatest(t, e, repo)+"download/", nil)
		if rsArtifact(t, e, "c.txt") == "" || up.count("c.txt") != requests+1 {
			t.Fatalf("c.txt after download: artifact %q, %d requests", rsArtifact(t, e, "c.txt"), up.count("c.txt")-requests)
		}

		// ["*"]: every repository is in scope. d.txt stays, as 'other'
		// could not fetch it again; e.txt stays, no remote knows it.
		e.async("POST", api.Root+"repositories/reclaim_space/", map[string]any{"repo_hrefs": []string{"*"}})
		for p, stored := range map[string]bool{"a.txt": false, "b.txt": false, "c.txt": false, "d.txt": true, "e.txt": true} {
			if got := rsArtifact(t, e, p) != ""; got != stored {
				t.Errorf("after *: %s stored = %v, want %v", p, got, stored)
			}
		}
		if after := rsStored(t, e); !slices.Equal(after, []string{rsName(pdSHA("delta")), rsName(pdSHA("echo"))}) &&
			!slices.Equal(after, []string{rsName(pdSHA("echo")), rsName(pdSHA("delta"))}) {
			t.Fatalf("stored after *: %v", after)
		}
		if n, err := e.Store.Count(ctx, "artifacts"); err != nil || n != 2 {
			t.Fatalf("artifacts after *: %d %v", n, err)
		}
	})
}

func TestReclaimSpaceValidation(t *testing.T) {
	t.Parallel()
	pdEach(t, func(t *testing.T, e *testEnv) {
		path := api.Root + "repositories/reclaim_space/"
		// No repository at all: ["*"] takes the global lock.
		task := e.async("POST", path, map[string]any{"repo_hrefs": []string{"*"}})
		if !slices.ContainsFunc(task.Reserved, func(r string) bool { return strings.HasSuffix(r, coreapi.ReclaimSpaceLock) }) {
			t.Fatalf("reserved %v", task.Reserved)
		}
		repo := rsNewRepo(t, e, "r")
		missing := store.NewID()
		for _, tc := range []struct {
			body        map[string]any
			field, want string
		}{
			{map[string]any{}, "repo_hrefs", "This field is required."},
			{map[string]any{"repo_hrefs": []string{}}, "repo_hrefs", "Must not be []."},
			{map[string]any{"repo_hrefs": []string{"*", repo.PulpHref}}, "repo_hrefs", "Can not specify other HREFs when using '*'"},
			{map[string]any{"repo_hrefs": []string{"/pulp/api/v3/tasks/" + missing + "/"}}, "repo_hrefs", "URI not valid: /pulp/api/v3/tasks/" + missing + "/"},
			{map[string]any{"repo_hrefs": []string{RepoHref(missing)}}, "repo_hrefs", "URI " + RepoHref(missing) + " not found for repository."},
			{map[string]any{"repo_hrefs": []string{repo.PulpHref}, "repo_versions_keeplist": []string{repo.PulpHref}}, "repo_versions_keeplist", "Invalid hyperlink - No URL match."},
			{map[string]any{"repo_hrefs": []string{repo.PulpHref}, "repo_versions_keeplist": []string{VersionHref(rsID(repo.PulpHref), 7)}}, "repo_versions_keeplist", "Invalid hyperlink - Object does not exist."},
		} {
			var errs map[string][]string
			e.call("POST", path, tc.body, http.StatusBadRequest, &errs)
			if !slices.Equal(errs[tc.field], []string{tc.want}) {
				t.Errorf("%v: %v, want %s: %q", tc.body, errs, tc.field, tc.want)
			}
		}
	})
}

func TestDownloadVersion(t *testing.T) {
	t.Parallel()
	pdEach(t, func(t *testing.T, e *testEnv) {
		files := map[string]string{"a.txt": strings.Repeat("a", 100<<10), "b.txt": "bravo", "c/d.txt": "delta",
			"same1.txt": "twin", "same2.txt": "twin"}
		up := newRSUpstream(t, files)
		repo, _ := rsRepo(t, e, "od", up, "on_demand")
		if up.fileRequests() != 0 {
			t.Fatal("on_demand sync downloaded files")
		}
		latest := rsLatest(t, e, repo)
		task := e.async("POST", latest+"download/", nil)
		if task.Name != DownloadVersionTask {
			t.Fatalf("task %s", task.Name)
		}
		// Every distinct file once; the twins share one download.
		for _, p := range []string{"a.txt", "b.txt", "c/d.txt"} {
			if up.count(p) != 1 {
				t.Errorf("%s requested %d times", p, up.count(p))
			}
		}
		if n := up.count("same1.txt") + up.count("same2.txt"); n != 1 {
			t.Errorf("twins requested %d times", n)
		}
		for p := range files {
			if rsArtifact(t, e, p) == "" {
				t.Errorf("%s not stored", p)
			}
		}
		if got := rsStored(t, e); len(got) != 4 {
			t.Fatalf("stored %v", got)
		}
		var rep coreapi.ProgressReportResponse
		if len(task.ProgressReports) != 1 || json.Unmarshal(task.ProgressReports[0], &rep) != nil ||
			rep.Code != "download.artifacts" || rep.Total == nil || *rep.Total != 5 || rep.Done != 5 || rep.State != "completed" {
			t.Fatalf("progress %s", task.ProgressReports)
		}
		// Nothing left to do.
		requests := up.fileRequests()
		e.async("POST", latest+"download/", nil)
		if up.fileRequests() != requests {
			t.Fatal("a second download fetched again")
		}
		if code, _ := e.do("POST", VersionHref(rsID(repo.PulpHref), 9)+"download/", nil); code != http.StatusNotFound {
			t.Fatalf("unknown version: %d", code)
		}
	})
}

func TestDownloadVersionCorruptUpstream(t *testing.T) {
	t.Parallel()
	pdEach(t, func(t *testing.T, e *testEnv) {
		ctx := t.Context()
		up := newRSUpstream(t, map[string]string{"good1.txt": "first", "good2.txt": "second", "bad.txt": "expected bytes"})
		// One retry: the corrupt file is fetched twice, then given up.
		repo, _ := rsRepo(t, e, "od", up, "on_demand", map[string]any{"max_retries": 1})
		up.breakFile("bad.txt")
		var ar api.AsyncResponse
		e.call("POST", rsLatest(t, e, repo)+"download/", nil, http.StatusAccepted, &ar)
		task := e.waitTask(ar.Task)
		desc, _ := task.Error["description"].(string)
		if task.State != "failed" || !strings.Contains(desc, "1 of 3 missing files could not be downloaded") || !strings.Contains(desc, "bad.txt") {
			t.Fatalf("task %s: %v", task.State, task.Error)
		}
		if up.count("bad.txt") != 2 {
			t.Fatalf("bad.txt requested %d times", up.count("bad.txt"))
		}
		// The good files are stored and attached; of the bad one there is
		// no row, no file and no temporary file.
		if rsArtifact(t, e, "good1.txt") == "" || rsArtifact(t, e, "good2.txt") == "" || rsArtifact(t, e, "bad.txt") != "" {
			t.Fatal("wrong units stored")
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM artifacts WHERE sha256 = $1`, pdSHA("expected bytes")); n != 0 {
			t.Fatal("an artifact row for the corrupt file")
		}
		if got := rsStored(t, e); !slices.Equal(got, sortedStrings(rsName(pdSHA("first")), rsName(pdSHA("second")))) {
			t.Fatalf("stored %v", got)
		}
		if n, err := e.Deps.Storage.(*fs.Backend).CleanTemp(ctx, 0); err != nil || n != 0 {
			t.Fatalf("temporary files left: %d %v", n, err)
		}
		var rep coreapi.ProgressReportResponse
		if len(task.ProgressReports) != 1 || json.Unmarshal(task.ProgressReports[0], &rep) != nil || rep.State != "failed" || rep.Done != 2 {
			t.Fatalf("progress %s", task.ProgressReports)
		}
	})
}

func sortedStrings(s ...string) []string {
	slices.Sort(s)
	return s
}
