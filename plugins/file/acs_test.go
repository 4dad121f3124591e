package file

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// acsUpstream serves files on loopback and counts requests per path.
type acsUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string]string
	hits  map[string]int
}

// newACSUpstream serves files (path → body) and, for each directory in
// dirs, a PULP_MANIFEST listing that directory's files.
func newACSUpstream(t *testing.T, files map[string]string) *acsUpstream {
	t.Helper()
	up := &acsUpstream{files: map[string]string{}, hits: map[string]int{}}
	manifests := map[string][]string{}
	for p, body := range files {
		up.files[p] = body
		dir, name, _ := strings.Cut(p, "/")
		manifests[dir] = append(manifests[dir], fmt.Sprintf("%s,%s,%d", name, pdSHA(body), len(body)))
	}
	for dir, lines := range manifests {
		slices.Sort(lines)
		up.files[dir+"/PULP_MANIFEST"] = strings.Join(lines, "\n") + "\n"
	}
	up.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		up.mu.Lock()
		up.hits[p]++
		body, ok := up.files[p]
		up.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(up.Close)
	return up
}

// requests returns the request counts by path and resets them.
func (up *acsUpstream) requests() map[string]int {
	up.mu.Lock()
	defer up.mu.Unlock()
	h := up.hits
	up.hits = map[string]int{}
	return h
}

func (e *testEnv) createACS(body map[string]any) FileACSResponse {
	e.t.Helper()
	var a FileACSResponse
	e.call("POST", ACSPath, body, http.StatusCreated, &a)
	return a
}

func (e *testEnv) readACS(href string) FileACSResponse {
	e.t.Helper()
	var a FileACSResponse
	e.call("GET", href, nil, http.StatusOK, &a)
	return a
}

// refreshACS refreshes an ACS, waits for every task of its group and
// returns the group as the API then shows it.
func (e *testEnv) refreshACS(href string) coreapi.TaskGroupResponse {
	e.t.Helper()
	var r api.TaskGroupResponse
	e.call("POST", href+"refresh/", nil, http.StatusAccepted, &r)
	var g coreapi.TaskGroupResponse
	e.call("GET", r.TaskGroup, nil, http.StatusOK, &g)
	for _, t := range g.Tasks {
		e.waitTask(t.PulpHref)
	}
	e.call("GET", r.TaskGroup, nil, http.StatusOK, &g)
	return g
}

func (e *testEnv) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.Store.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestACSCRUD(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		od := e.createRemote(map[string]any{"name": "od", "url": "http://upstream.example/", "policy": "on_demand"})
		imm := e.createRemote(map[string]any{"name": "imm"})

		a := e.createACS(map[string]any{"name": "acs", "remote": od.PulpHref, "paths": []string{"b/PULP_MANIFEST", "a/PULP_MANIFEST"}})
		id := api.IDFromHref(a.PulpHref, ACSPath, ACSPRNType)
		if id == "" || a.PRN != "prn:file.filealternatecontentsource:"+id || a.Name != "acs" || a.Remote != od.PulpHref ||
			a.LastRefreshed != nil || !slices.Equal(a.Paths, []string{"a/PULP_MANIFEST", "b/PULP_MANIFEST"}) {
			t.Fatalf("created %+v", a)
		}
		if got := e.readACS(a.PulpHref); !slices.Equal(got.Paths, a.Paths) || got.Name != "acs" {
			t.Fatalf("read %+v", got)
		}

		// Refused: each with the field Pulp names.
		for _, c := range []struct {
			body  map[string]any
			field string
			msg   string
		}{
			{map[string]any{"name": "x", "remote": imm.PulpHref}, "remote", "Remote used with alternate content source must have the 'on_demand' policy."},
			{map[string]any{"name": "x", "remote": od.PulpHref, "paths": []string{"good/path", "/bad/path"}}, "paths", "Path cannot start with a slash."},
			{map[string]any{"name": "x", "remote": od.PulpHref, "paths": []string{""}}, "paths", "This field may not be blank."},
			{map[string]any{"name": "x", "remote": od.PulpHref, "paths": []string{"a\x00b"}}, "paths", "Path cannot contain control characters."},
			{map[string]any{"name": "x", "remote": od.PulpHref, "paths": "a"}, "paths", ""}, // any message: the decoder's own
			{map[string]any{"name": "acs", "remote": od.PulpHref}, "name", "This field must be unique."},
			{map[string]any{"remote": od.PulpHref}, "name", "This field is required."},
			{map[string]any{"name": "x"}, "remote", "This field is required."},
			{map[string]any{"name": "x", "remote": "/pulp/api/v3/tasks/" + store.NewID() + "/"}, "remote", "Invalid hyperlink - No URL match."},
			{map[string]any{"name": "x", "remote": RemoteHref(store.NewID())}, "remote", "Invalid hyperlink - Object does not exist."},
			{map[string]any{"name": "x", "remote": od.PulpHref, "last_refreshed": "yesterday"}, "last_refreshed", "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."},
		} {
			var fe map[string][]string
			e.call("POST", ACSPath, c.body, http.StatusBadRequest, &fe)
			if len(fe[c.field]) == 0 || c.msg != "" && !slices.Contains(fe[c.field], c.msg) {
				t.Errorf("POST %v: %v, want %s: %q", c.body, fe, c.field, c.msg)
			}
		}

		// No paths: the remote's own URL, shown as Pulp shows it.
		whole := e.createACS(map[string]any{"name": "whole", "remote": od.PulpHref, "last_refreshed": "2024-05-06T07:08:09Z"})
		if !slices.Equal(whole.Paths, []string{""}) || whole.LastRefreshed == nil || whole.LastRefreshed.Unix() != 1714979289 {
			t.Fatalf("ACS without paths: %+v", whole)
		}

		var list api.PageResponse
		e.call("GET", ACSPath, nil, http.StatusOK, &list)
		if list.Count != 2 {
			t.Fatalf("list count %d, want 2 (a refused create made something?)", list.Count)
		}
		var page struct {
			Count   int64             `json:"count"`
			Results []FileACSResponse `json:"results"`
		}
		e.call("GET", ACSPath+"?name__startswith=wh", nil, http.StatusOK, &page)
		if page.Count != 1 || page.Results[0].PulpHref != whole.PulpHref {
			t.Fatalf("name filter: %+v", page)
		}
		e.call("GET", ACSPath+"?ordering=name&pulp_href__in="+url.QueryEscape(a.PulpHref+","+whole.PulpHref), nil, http.StatusOK, &page)
		if page.Count != 2 || page.Results[0].Name != "acs" || !slices.Equal(page.Results[0].Paths, a.Paths) {
			t.Fatalf("href filter: %+v", page)
		}

		// PUT without paths keeps them (Pulp's test: the name changes without
		// clobbering the paths).
		task := e.async("PUT", a.PulpHref, map[string]any{"name": "renamed", "remote": od.PulpHref})
		if task.Name != coreapi.GeneralUpdateTask || !slices.Contains(task.Reserved, ACSPRN(id)) {
			t.Fatalf("update task %s reserved %v", task.Name, task.Reserved)
		}
		if got := e.readACS(a.PulpHref); got.Name != "renamed" || !slices.Equal(got.Paths, a.Paths) {
			t.Fatalf("after PUT: %+v", got)
		}
		e.async("PATCH", a.PulpHref, map[string]any{"paths": []string{"c/PULP_MANIFEST", "a/PULP_MANIFEST"}})
		if got := e.readACS(a.PulpHref); got.Name != "renamed" || !slices.Equal(got.Paths, []string{"a/PULP_MANIFEST", "c/PULP_MANIFEST"}) {
			t.Fatalf("after PATCH paths: %+v", got)
		}
		e.async("PATCH", a.PulpHref, map[string]any{"paths": []string{}})
		if got := e.readACS(a.PulpHref); !slices.Equal(got.Paths, []string{""}) {
			t.Fatalf("after PATCH to no paths: %+v", got)
		}
		// A change of nothing answers 200 with the ACS, no task.
		var same FileACSResponse
		e.call("PATCH", a.PulpHref, map[string]any{"name": "renamed", "paths": []string{}}, http.StatusOK, &same)
		if same.PulpHref != a.PulpHref || same.Name != "renamed" {
			t.Fatalf("no-op PATCH answered %+v", same)
		}
		var fe map[string][]string
		e.call("PATCH", a.PulpHref, map[string]any{"remote": imm.PulpHref}, http.StatusBadRequest, &fe)
		e.call("PATCH", a.PulpHref, map[string]any{"name": "whole"}, http.StatusBadRequest, &fe)
		if fe["name"] == nil {
			t.Fatalf("rename onto a taken name: %v", fe)
		}

		// The remote of an ACS is protected (Pulp's PROTECT): its delete
		// task fails and the remote stays.
		var ar api.AsyncResponse
		e.call("DELETE", od.PulpHref, nil, http.StatusAccepted, &ar)
		if done := e.waitTask(ar.Task); done.State != "failed" {
			t.Fatalf("deleting the ACS's remote: task %s", done.State)
		}
		e.readRemote(od.PulpHref)

		task = e.async("DELETE", a.PulpHref, nil)
		if task.Name != coreapi.GeneralDeleteTask || !slices.Contains(task.Reserved, ACSPRN(id)) {
			t.Fatalf("delete task %s reserved %v", task.Name, task.Reserved)
		}
		if code, _ := e.do("GET", a.PulpHref, nil); code != http.StatusNotFound {
			t.Fatalf("GET after delete: %d", code)
		}
		e.async("DELETE", whole.PulpHref, nil)
		e.async("DELETE", od.PulpHref, nil)
		e.call("GET", ACSPath, nil, http.StatusOK, &list)
		if list.Count != 0 {
			t.Fatalf("count after delete %d", list.Count)
		}
	})
}

func TestACSRefresh(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		files := map[string]string{"a/1.txt": "one", "a/2.txt": "two", "b/3.txt": "three", "b/1-copy.txt": "one"}
		up := newACSUpstream(t, files)
		// No trailing slash: paths are joined as Pulp joins them.
		od := e.createRemote(map[string]any{"name": "od", "url": up.URL, "policy": "on_demand"})
		a := e.createACS(map[string]any{"name": "acs", "remote": od.PulpHref, "paths": []string{"a/PULP_MANIFEST", "b/PULP_MANIFEST"}})
		acsID := api.IDFromHref(a.PulpHref, ACSPath, ACSPRNType)

		g := e.refreshACS(a.PulpHref)
		if len(g.Tasks) != 2 || g.Completed != 2 || !g.AllTasksDispatched || g.Description != "Refreshing 2 alternate content source paths." {
			t.Fatalf("task group %+v", g)
		}
		hidden := map[string]bool{}
		for _, gt := range g.Tasks {
			var tk testTask
			e.call("GET", gt.PulpHref, nil, http.StatusOK, &tk)
			if tk.Name != SyncTask || !slices.Contains(tk.Reserved, "shared:"+ACSPRN(acsID)) || !slices.Contains(tk.Reserved, "shared:"+RemotePRN(api.IDFromHref(od.PulpHref, RemotesPath, PRNRemote))) {
				t.Fatalf("refresh task %s reserved %v", tk.Name, tk.Reserved)
			}
			for _, r := range tk.Reserved {
				if strings.HasPrefix(r, "prn:"+PRNRepository+":") {
					hidden[strings.TrimPrefix(r, "prn:"+PRNRepository+":")] = true
				}
			}
		}
		// Only the manifests were read: on_demand records remote artifacts.
		if got := up.requests(); len(got) != 2 || got["a/PULP_MANIFEST"] != 1 || got["b/PULP_MANIFEST"] != 1 {
			t.Fatalf("upstream requests %v, want each manifest once", got)
		}
		if len(hidden) != 2 || e.count(`SELECT COUNT(*) FROM repositories WHERE user_hidden`) != 2 {
			t.Fatalf("hidden repositories %v", hidden)
		}
		for id := range hidden {
			if e.count(`SELECT COUNT(*) FROM repositories WHERE id = $1 AND user_hidden AND retain_repo_versions = 1`, id) != 1 {
				t.Fatalf("task locked %s, not a hidden repository", id)
			}
		}
		var repos api.PageResponse
		e.call("GET", RepositoriesPath, nil, http.StatusOK, &repos)
		if repos.Count != 0 {
			t.Fatalf("hidden repositories listed: %d", repos.Count)
		}
		if got := e.readACS(a.PulpHref); got.LastRefreshed == nil {
			t.Fatalf("last_refreshed not set: %+v", got)
		}

		// The content app's and the sync's queries see what the refresh recorded.
		src, err := e.Store.ACSSources(ctx, pdSHA("one"))
		if err != nil {
			t.Fatal(err)
		}
		var urls []string
		for _, s := range src {
			if s.Policy != "on_demand" || s.Size != 3 || s.SHA256 != pdSHA("one") || s.FailedAt != 0 {
				t.Fatalf("source %+v", s)
			}
			urls = append(urls, s.URL)
		}
		slices.Sort(urls)
		if want := []string{up.URL + "/a/1.txt", up.URL + "/b/1-copy.txt"}; !slices.Equal(urls, want) {
			t.Fatalf("sources of one: %v, want %v", urls, want)
		}
		byHash, err := e.Store.ACSURLs(ctx, []string{pdSHA("one"), pdSHA("two"), pdSHA("three"), pdSHA("four")})
		if err != nil {
			t.Fatal(err)
		}
		if len(byHash) != 3 || byHash[pdSHA("two")].URL != up.URL+"/a/2.txt" || byHash[pdSHA("three")].URL != up.URL+"/b/3.txt" {
			t.Fatalf("ACSURLs %+v", byHash)
		}

		// Refreshing again reuses the hidden repositories; the unchanged
		// manifests are read, nothing else.
		e.refreshACS(a.PulpHref)
		if got := up.requests(); len(got) != 2 || got["a/PULP_MANIFEST"] != 1 || got["b/PULP_MANIFEST"] != 1 {
			t.Fatalf("second refresh requests %v", got)
		}
		if n := e.count(`SELECT COUNT(*) FROM repositories WHERE user_hidden`); n != 2 {
			t.Fatalf("%d hidden repositories after a second refresh, want 2", n)
		}

		// A path that goes takes its hidden repository and its sources along.
		e.async("PATCH", a.PulpHref, map[string]any{"paths": []string{"a/PULP_MANIFEST", "missing/PULP_MANIFEST"}})
		if n := e.count(`SELECT COUNT(*) FROM repositories WHERE user_hidden`); n != 1 {
			t.Fatalf("%d hidden repositories after removing a path, want 1", n)
		}
		if src, _ := e.Store.ACSSources(ctx, pdSHA("three")); len(src) != 0 {
			t.Fatalf("sources of a removed path: %+v", src)
		}
		// A path without a manifest fails its task; the others complete.
		g = e.refreshACS(a.PulpHref)
		if len(g.Tasks) != 2 || g.Completed != 1 || g.Failed != 1 {
			t.Fatalf("refresh with a missing manifest: %+v", g)
		}
		up.requests()

		// No paths: the remote's URL is the manifest.
		whole := e.createRemote(map[string]any{"name": "whole", "url": up.URL + "/b/PULP_MANIFEST", "policy": "on_demand"})
		w := e.createACS(map[string]any{"name": "whole", "remote": whole.PulpHref})
		if g := e.refreshACS(w.PulpHref); len(g.Tasks) != 1 || g.Completed != 1 {
			t.Fatalf("refresh of the remote's own manifest: %+v", g)
		}
		if got := up.requests(); len(got) != 1 || got["b/PULP_MANIFEST"] != 1 {
			t.Fatalf("requests %v", got)
		}
		if src, _ := e.Store.ACSSources(ctx, pdSHA("three")); len(src) != 1 || src[0].URL != up.URL+"/b/3.txt" {
			t.Fatalf("sources through the path-less ACS: %+v", src)
		}

		// Deleting an ACS deletes its hidden repositories.
		e.async("DELETE", a.PulpHref, nil)
		e.async("DELETE", w.PulpHref, nil)
		if n := e.count(`SELECT COUNT(*) FROM repositories`); n != 0 {
			t.Fatalf("%d repositories left after deleting the ACSes", n)
		}
		if got, _ := e.Store.ACSURLs(ctx, []string{pdSHA("one"), pdSHA("two"), pdSHA("three")}); len(got) != 0 {
			t.Fatalf("ACS sources after delete: %+v", got)
		}
		if got := up.requests(); len(got) != 0 {
			t.Fatalf("upstream requests after the refreshes: %v", got)
		}
	})
}

func TestACSDocument(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storetest.Open(t, storetest.Backends()[0]))
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required   []string `json:"required"`
				Properties map[string]struct {
					Type     string `json:"type"`
					Format   string `json:"format"`
					Nullable bool   `json:"nullable"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(e.API.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]string{}
	for path, methods := range doc.Paths {
		for m, raw := range methods {
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			json.Unmarshal(raw, &op)
			var codes []string
			for c := range op.Responses {
				codes = append(codes, c)
			}
			slices.Sort(codes)
			ops[op.OperationID] = strings.ToUpper(m) + " " + path + " " + strings.Join(codes, ",")
		}
	}
	for op, want := range map[string]string{
		"acs_file_file_list":           "GET /pulp/api/v3/acs/file/file/ 200",
		"acs_file_file_create":         "POST /pulp/api/v3/acs/file/file/ 201",
		"acs_file_file_read":           "GET {file_file_alternate_content_source_href} 200",
		"acs_file_file_update":         "PUT {file_file_alternate_content_source_href} 200,202",
		"acs_file_file_partial_update": "PATCH {file_file_alternate_content_source_href} 200,202",
		"acs_file_file_delete":         "DELETE {file_file_alternate_content_source_href} 202",
		"acs_file_file_refresh":        "POST {file_file_alternate_content_source_href}refresh/ 202",
	} {
		if ops[op] != want {
			t.Errorf("%s: %q, want %q", op, ops[op], want)
		}
	}
	body := doc.Components.Schemas["file.FileAlternateContentSource"]
	slices.Sort(body.Required)
	if !slices.Equal(body.Required, []string{"name", "remote"}) || body.Properties["paths"].Type != "array" ||
		body.Properties["last_refreshed"].Format != "date-time" || !body.Properties["last_refreshed"].Nullable {
		t.Errorf("request schema %+v", body)
	}
	if p := doc.Components.Schemas["Patchedfile.FileAlternateContentSource"]; len(p.Required) != 0 || len(p.Properties) != 4 {
		t.Errorf("patch schema %+v", p)
	}
	resp := doc.Components.Schemas["file.FileAlternateContentSourceResponse"]
	for _, f := range []string{"pulp_href", "prn", "pulp_created", "pulp_last_updated", "name", "last_refreshed", "paths", "remote"} {
		if _, ok := resp.Properties[f]; !ok {
			t.Errorf("response schema lacks %s", f)
		}
	}
}

// TestACSPathRepositoryRace checks that two refreshes that both found a
// path without its hidden repository end up with one.
func TestACSPathRepositoryRace(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		od := e.createRemote(map[string]any{"name": "od", "policy": "on_demand"})
		created := e.createACS(map[string]any{"name": "acs", "remote": od.PulpHref})
		a, err := e.Store.GetACS(ctx, api.IDFromHref(created.PulpHref, ACSPath, ACSPRNType))
		if err != nil {
			t.Fatal(err)
		}
		stale := a.Paths[0] // as both refreshes read it: no repository yet
		first, err := e.Deps.acsPathRepository(ctx, a, stale)
		if err != nil {
			t.Fatal(err)
		}
		second, err := e.Deps.acsPathRepository(ctx, a, stale)
		if err != nil {
			t.Fatal(err)
		}
		if first != second || e.count(`SELECT COUNT(*) FROM repositories`) != 1 {
			t.Fatalf("repositories %s and %s, %d in all; want one", first, second, e.count(`SELECT COUNT(*) FROM repositories`))
		}
	})
}
