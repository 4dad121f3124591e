package file

// Behaviour pulp-cli relies on, found by driving pulp-cli against pith:
// each test here failed before the fix it names.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/storage"
)

// taskPage is a page of tasks as pulp-cli reads it.
type taskPage struct {
	Count   int `json:"count"`
	Results []struct {
		PulpHref            string   `json:"pulp_href"`
		Worker              *string  `json:"worker"`
		CreatedResources    []string `json:"created_resources"`
		CreatedResourcePRNs []string `json:"created_resource_prns"`
	} `json:"results"`
}

func (e *contentEnv) tasks(query string) taskPage {
	e.t.Helper()
	var p taskPage
	e.call("GET", coreapi.TasksPath+"?"+query, nil, http.StatusOK, &p)
	return p
}

func taskHrefs(p taskPage) []string {
	var out []string
	for _, r := range p.Results {
		out = append(out, r.PulpHref)
	}
	return out
}

// `pulp file repository task list --repository NAME` asks for
// tasks?reserved_resources=<repository href>; the locks are PRNs, so the
// href must map to prn:file.filerepository:<id> (not "…filerepositorie…").
func TestCLITasksByRepositoryHref(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		repo := e.repo("tasks-by-repo")
		other := e.repo("other")
		unit := e.createFromArtifact("a.txt", e.artifact([]byte("a")), "")[0]
		r := e.postJSON(repo+"modify/", map[string]any{"add_content_units": []string{unit}})
		e.completed(r)
		task := r.obj(t)["task"].(string)
		e.completed(e.postJSON(other+"modify/", map[string]any{"add_content_units": []string{unit}}))

		prn := "prn:" + PRNRepository + ":" + strings.TrimSuffix(strings.TrimPrefix(repo, RepositoriesPath), "/")
		for _, q := range []string{
			"reserved_resources=" + url.QueryEscape(repo),
			"exclusive_resources=" + url.QueryEscape(repo),
			"reserved_resources__in=" + url.QueryEscape(repo),
			"reserved_resources=" + url.QueryEscape(prn),
		} {
			if got := taskHrefs(e.tasks(q)); !slices.Equal(got, []string{task}) {
				t.Errorf("%s: %v, want [%s]", q, got, task)
			}
		}
		if got := e.tasks("shared_resources=" + url.QueryEscape(repo)); got.Count != 0 {
			t.Errorf("shared_resources=<repo>: %d tasks, want 0", got.Count)
		}
	})
}

// created_resource_prns names a repository version by its own id, as
// Pulp's PRNs do, never by its number.
func TestCLICreatedResourcePRNs(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		repo := e.repo("prns")
		unit := e.createFromArtifact("a.txt", e.artifact([]byte("a")), "")[0]
		r := e.postJSON(repo+"modify/", map[string]any{"add_content_units": []string{unit}})
		created := e.completed(r)
		if len(created) != 1 || created[0] != repo+"versions/1/" {
			t.Fatalf("created_resources = %v", created)
		}
		var version struct {
			PRN string `json:"prn"`
		}
		e.call("GET", created[0], nil, http.StatusOK, &version)
		p := e.tasks("pulp_href__in=" + url.QueryEscape(r.obj(t)["task"].(string)))
		if len(p.Results) != 1 {
			t.Fatalf("task not listed: %+v", p)
		}
		if got := p.Results[0].CreatedResourcePRNs; !slices.Equal(got, []string{version.PRN}) {
			t.Errorf("created_resource_prns = %v, want [%s]", got, version.PRN)
		}
		if !strings.HasPrefix(version.PRN, "prn:core.repositoryversion:") || strings.HasSuffix(version.PRN, ":1") {
			t.Errorf("version prn = %q", version.PRN)
		}
	})
}

// A task run by a worker names the worker by href (pulp-cli's
// `task list --worker NAME` looks the name up and filters by that href),
// and the worker shows the task it is running as current_task.
func TestCLITaskWorker(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		// An upstream that accepts and never answers keeps a sync running.
		release := make(chan struct{})
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(up.Close)
		t.Cleanup(func() { close(release) })
		remote := e.createRemote(map[string]any{"name": "hang", "url": up.URL + "/PULP_MANIFEST"})
		repo := e.repo("worker")
		r := e.want(e.postJSON(repo+"sync/", map[string]any{"remote": remote.PulpHref}), http.StatusAccepted)
		task := r.obj(t)["task"].(string)

		var running struct {
			State  string  `json:"state"`
			Worker *string `json:"worker"`
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			e.call("GET", task, nil, http.StatusOK, &running)
			if running.State == "running" || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if running.State != "running" || running.Worker == nil || !strings.HasPrefix(*running.Worker, coreapi.WorkersPath) {
			t.Fatalf("running task: state %s, worker %v; want a worker href", running.State, running.Worker)
		}
		var worker struct {
			PulpHref    string  `json:"pulp_href"`
			Name        string  `json:"name"`
			CurrentTask *string `json:"current_task"`
		}
		e.call("GET", *running.Worker, nil, http.StatusOK, &worker)
		if worker.CurrentTask == nil || *worker.CurrentTask != task {
			t.Errorf("worker current_task = %v, want %s", worker.CurrentTask, task)
		}
		var workers struct {
			Results []struct {
				PulpHref    string  `json:"pulp_href"`
				CurrentTask *string `json:"current_task"`
			} `json:"results"`
		}
		e.call("GET", coreapi.WorkersPath+"?name="+url.QueryEscape(worker.Name), nil, http.StatusOK, &workers)
		if len(workers.Results) != 1 || workers.Results[0].CurrentTask == nil || *workers.Results[0].CurrentTask != task {
			t.Errorf("workers list: %+v", workers.Results)
		}

		for q, want := range map[string][]string{
			"worker=" + url.QueryEscape(worker.PulpHref):                                             {task},
			"worker__in=" + url.QueryEscape(worker.PulpHref):                                         {task},
			"worker=" + url.QueryEscape(worker.Name):                                                 {task},
			"worker__isnull=false&state=running":                                                     {task},
			"worker__isnull=true&state=running":                                                      nil,
			"worker=" + url.QueryEscape(coreapi.WorkersPath+"01a237ab-dec6-7378-8b8f-380eb47b1884/"): nil,
		} {
			if got := taskHrefs(e.tasks(q)); !slices.Equal(got, want) {
				t.Errorf("%s: %v, want %v", q, got, want)
			}
		}
		if code, body := e.do("GET", coreapi.TasksPath+"?worker="+url.QueryEscape("/pulp/api/v3/nothing/"), nil); code != http.StatusBadRequest || !strings.Contains(string(body), "worker") {
			t.Errorf("worker=<bad href>: %d %s", code, body)
		}
		e.call("PATCH", task, map[string]any{"state": "canceled"}, http.StatusOK, nil)
		e.waitTask(task)
	})
}

// `pulp orphan cleanup` removes content in no repository version (and then
// its artifacts and their files), sparing content a version holds and
// content younger than the protection time.
func TestCLIOrphanCleanupRemovesContent(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		repo := e.repo("kept")
		kept := e.createFromArtifact("kept.txt", e.artifact([]byte("kept")), repo)
		var keptUnit string
		for _, h := range kept {
			if strings.HasPrefix(h, ContentPath) {
				keptUnit = h
			}
		}
		orphan := e.createFromArtifact("orphan.txt", e.artifact([]byte("orphan")), "")[0]
		other := e.createFromArtifact("other.txt", e.artifact([]byte("other")), "")[0]
		var orphanArtifact struct {
			Artifact string `json:"artifact"`
		}
		e.call("GET", orphan, nil, http.StatusOK, &orphanArtifact)
		var art struct {
			File string `json:"file"`
		}
		e.call("GET", orphanArtifact.Artifact, nil, http.StatusOK, &art)
		name := art.File
		if _, err := e.Core.Storage.Stat(context.Background(), name); err != nil {
			t.Fatalf("stat %s before cleanup: %v", name, err)
		}

		// Protected by the default protection time: nothing goes.
		e.completed(e.postJSON(orphansCleanupPath, map[string]any{"orphan_protection_time": 60}))
		if n, _ := e.list(ContentPath); n != 3 {
			t.Fatalf("after protected cleanup: %d units, want 3", n)
		}

		// content_hrefs limits the cleanup to the units named.
		e.completed(e.postJSON(orphansCleanupPath, map[string]any{"orphan_protection_time": 0, "content_hrefs": []string{orphan, keptUnit}}))
		if code, _ := e.do("GET", orphan, nil); code != http.StatusNotFound {
			t.Errorf("named orphan still there: %d", code)
		}
		if code, _ := e.do("GET", other, nil); code != http.StatusOK {
			t.Errorf("unnamed orphan removed: %d", code)
		}
		if code, _ := e.do("GET", keptUnit, nil); code != http.StatusOK {
			t.Errorf("unit in a version removed: %d", code)
		}
		if code, _ := e.do("GET", orphanArtifact.Artifact, nil); code != http.StatusNotFound {
			t.Errorf("orphan's artifact still there: %d", code)
		}
		if _, err := e.Core.Storage.Stat(context.Background(), name); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("orphan's artifact file: stat = %v, want not exist", err)
		}
		if n := e.rowCount(`SELECT COUNT(*) FROM content_artifacts WHERE content_id = $1`, contentIDOf(orphan)); n != 0 {
			t.Errorf("%d content artifacts of the deleted unit left", n)
		}

		// Without content_hrefs every orphan goes.
		task := e.task(e.postJSON(orphansCleanupPath, map[string]any{"orphan_protection_time": 0}))
		if task["state"] != "completed" {
			t.Fatalf("cleanup: %v", task["error"])
		}
		if n, hrefs := e.list(ContentPath); n != 1 || hrefs[0] != keptUnit {
			t.Errorf("after cleanup: %v, want only %s", hrefs, keptUnit)
		}
		reports, _ := task["progress_reports"].([]any)
		if len(reports) == 0 || reports[0].(map[string]any)["code"] != "clean-up.content" || reports[0].(map[string]any)["done"].(float64) != 1 {
			t.Errorf("content progress report: %v", reports)
		}

		// Unknown content hrefs are refused before anything is dispatched.
		r := e.postJSON(orphansCleanupPath, map[string]any{"content_hrefs": []string{ContentPath + "01a237ab-dec6-7378-8b8f-380eb47b1884/"}})
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "content_hrefs") {
			t.Errorf("unknown content href: %d %s", r.status, r.body)
		}
	})
}

const orphansCleanupPath = "/pulp/api/v3/orphans/cleanup/"

// `--field`/`--exclude-field` keep the serializer's field order (pulp-cli
// prints what it gets), on details and on every result of a page.
func TestCLIFieldSelectionKeepsOrder(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		r := e.createRemote(map[string]any{"name": "ordered", "url": "http://127.0.0.1:1/PULP_MANIFEST"})
		order := func(body []byte, keys ...string) {
			t.Helper()
			last := -1
			for _, k := range keys {
				i := strings.Index(string(body), `"`+k+`":`)
				if i < 0 || i < last {
					t.Fatalf("%s: %q out of order (want %v)", body, k, keys)
				}
				last = i
			}
		}
		_, body := e.do("GET", r.PulpHref+"?exclude_fields=url,hidden_fields", nil)
		order(body, "pulp_href", "prn", "pulp_created", "name", "pulp_labels", "policy", "tls_validation", "rate_limit")
		if strings.Contains(string(body), `"url"`) {
			t.Errorf("excluded field present: %s", body)
		}
		_, body = e.do("GET", RemotesPath+"?fields=policy,name,pulp_href", nil)
		order(body, "count", "results", "pulp_href", "name", "policy")
	})
}

// `pulp repository version list` reads the generic list; its versions
// carry content_summary like the typed ones (Pulp's
// RepositoryVersionResponse), with hrefs to the typed content list.
func TestCLIGenericVersionsContentSummary(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		if !hasRoute(e.API, "repository_versions_list") {
			e.API.Register(coreapi.GenericRepositoryRoutes(e.Core)...)
		}
		repo := e.repo("summary")
		e.createFromArtifact("a.txt", e.artifact([]byte("a")), repo)
		e.createFromArtifact("b.txt", e.artifact([]byte("b")), repo)
		v2 := repo + "versions/2/"
		var page struct {
			Results []struct {
				PulpHref       string                 `json:"pulp_href"`
				ContentSummary coreapi.ContentSummary `json:"content_summary"`
			} `json:"results"`
		}
		e.call("GET", "/pulp/api/v3/repository_versions/?number=2", nil, http.StatusOK, &page)
		if len(page.Results) != 1 || page.Results[0].PulpHref != v2 {
			t.Fatalf("results: %+v", page.Results)
		}
		var typed struct {
			ContentSummary coreapi.ContentSummary `json:"content_summary"`
		}
		e.call("GET", v2, nil, http.StatusOK, &typed)
		got := page.Results[0].ContentSummary
		want := coreapi.ContentSummary{
			Added:   map[string]coreapi.ContentSummaryEntry{"file.file": {Count: 1, Href: ContentPath + "?repository_version_added=" + v2}},
			Removed: map[string]coreapi.ContentSummaryEntry{},
			Present: map[string]coreapi.ContentSummaryEntry{"file.file": {Count: 2, Href: ContentPath + "?repository_version=" + v2}},
		}
		for name, cs := range map[string]coreapi.ContentSummary{"generic": got, "typed": typed.ContentSummary} {
			if !reflect.DeepEqual(cs, want) {
				t.Errorf("%s content_summary = %+v, want %+v", name, cs, want)
			}
		}
	})
}

// pulp-cli passes repository versions by PRN where users give PRNs
// (`pulp file content list --repository-version prn:…`): the version
// filters of the content lists accept them as they accept hrefs.
func TestCLIContentListByVersionPRN(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		repo := e.repo("by-prn")
		e.createFromArtifact("a.txt", e.artifact([]byte("a")), repo)
		e.createFromArtifact("b.txt", e.artifact([]byte("b")), repo)
		e.createFromArtifact("loose.txt", e.artifact([]byte("loose")), "")
		var v struct {
			PRN string `json:"prn"`
		}
		e.call("GET", repo+"versions/2/", nil, http.StatusOK, &v)
		for _, list := range []string{ContentPath, coreapi.ContentPath} {
			for q, want := range map[string]int{
				"repository_version=" + url.QueryEscape(v.PRN):                          2,
				"repository_version_added=" + url.QueryEscape(v.PRN):                    1,
				"repository_version=" + url.QueryEscape(v.PRN) + "&pulp_type=file.file": 2,
			} {
				if n, hrefs := e.list(list + "?" + q); n != want || len(hrefs) != want {
					t.Errorf("%s?%s: count %d, %d results; want %d", list, q, n, len(hrefs), want)
				}
			}
			r := e.get(list + "?repository_version=" + url.QueryEscape("prn:core.repositoryversion:01a237ab-dec6-7378-8b8f-380eb47b1884"))
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "repository_version") {
				t.Errorf("%s unknown version prn: %d %s", list, r.status, r.body)
			}
		}
	})
}

// reserved_resources__in (and the exclusive/shared variants) match tasks
// holding every listed resource, as Pulp's do: `pulp task list
// --reserved-resource-in REPO --reserved-resource-in REMOTE` finds the one
// sync of that repository from that remote.
func TestCLITaskResourceInMeansAll(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		t.Cleanup(up.Close)
		a := e.createRemote(map[string]any{"name": "a", "url": up.URL + "/PULP_MANIFEST"}).PulpHref
		b := e.createRemote(map[string]any{"name": "b", "url": up.URL + "/PULP_MANIFEST"}).PulpHref
		repo := e.repo("in-means-all")
		syncFrom := func(remote string) string {
			r := e.postJSON(repo+"sync/", map[string]any{"remote": remote})
			if task := e.task(r); task["state"] != "completed" {
				t.Fatalf("sync: %v", task["error"])
			}
			return r.obj(t)["task"].(string)
		}
		fromA, fromB := syncFrom(a), syncFrom(b)
		in := func(name string, refs ...string) string {
			return name + "__in=" + url.QueryEscape(strings.Join(refs, ","))
		}
		for q, want := range map[string][]string{
			in("reserved_resources", repo, a):  {fromA},
			in("reserved_resources", repo, b):  {fromB},
			in("reserved_resources", a, b):     nil,
			in("reserved_resources", repo):     {fromB, fromA},
			in("exclusive_resources", repo):    {fromB, fromA},
			in("exclusive_resources", repo, a): nil,
			in("shared_resources", a):          {fromA},
			in("shared_resources", a, b):       nil,
		} {
			if got := taskHrefs(e.tasks(q + "&name=" + url.QueryEscape(SyncTask))); !slices.Equal(got, want) {
				t.Errorf("%s: %v, want %v", q, got, want)
			}
		}
	})
}
