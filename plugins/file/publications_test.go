package file

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/repository"
)

// pdPublish publishes over the API and returns the publication as shown.
func pdPublish(t *testing.T, e *testEnv, body map[string]any) (FilePublicationResponse, testTask) {
	t.Helper()
	task := e.async("POST", PublicationsPath, body)
	if len(task.CreatedResources) != 1 || !strings.HasPrefix(task.CreatedResources[0], PublicationsPath) {
		t.Fatalf("publish created %q", task.CreatedResources)
	}
	var p FilePublicationResponse
	e.call("GET", task.CreatedResources[0], nil, http.StatusOK, &p)
	return p, task
}

type pdPage[T any] struct {
	Count   int64   `json:"count"`
	Next    *string `json:"next"`
	Results []T     `json:"results"`
}

func pdList[T any](t *testing.T, e *testEnv, path string, q url.Values) pdPage[T] {
	t.Helper()
	var p pdPage[T]
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	e.call("GET", path, nil, http.StatusOK, &p)
	return p
}

func pdHrefs[T any](items []T, href func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = href(it)
	}
	return out
}

func pubHref(p FilePublicationResponse) string { return p.PulpHref }

func TestPublicationCreateAndRead(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repo := pdRepo(t, e)

		// A fresh repository publishes its empty version 0.
		p0, task := pdPublish(t, e, map[string]any{"repository": RepoHref(repo.ID)})
		if *p0.RepositoryVersion != VersionHref(repo.ID, 0) || *p0.Repository != RepoHref(repo.ID) ||
			p0.Manifest == nil || *p0.Manifest != DefaultManifest || p0.Checkpoint || len(p0.Distributions) != 0 {
			t.Fatalf("publication of a fresh repository: %+v", p0)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(p0.PulpHref, PublicationsPath), "/")
		if p0.PRN != "prn:file.filepublication:"+id || p0.PulpCreated.IsZero() || p0.PulpLastUpdated.Before(p0.PulpCreated) {
			t.Fatalf("base fields %+v", p0.Base)
		}
		if task.Name != PublishTask || !slices.Equal(task.Reserved, []string{"shared:" + RepoPRN(repo.ID)}) {
			t.Fatalf("publish task %s reserved %q", task.Name, task.Reserved)
		}
		var result FilePublicationResponse
		var full struct {
			Result json.RawMessage `json:"result"`
		}
		e.call("GET", task.PulpHref, nil, http.StatusOK, &full)
		if err := json.Unmarshal(full.Result, &result); err != nil || result.PulpHref != p0.PulpHref {
			t.Fatalf("task result %s", full.Result)
		}

		// With content: the repository means its latest version; a version
		// href means that version; the manifest name is the client's.
		pdVersion(t, e, repo, pdUnits(t, e, pdFile{path: "1.iso", data: "1"})...)
		p1, _ := pdPublish(t, e, map[string]any{"repository": RepoHref(repo.ID), "manifest": "TEST_MANIFEST"})
		if *p1.RepositoryVersion != VersionHref(repo.ID, 1) || *p1.Manifest != "TEST_MANIFEST" {
			t.Fatalf("publication of the repository: %+v", p1)
		}
		pv, _ := pdPublish(t, e, map[string]any{"repository_version": VersionHref(repo.ID, 0)})
		if *pv.RepositoryVersion != VersionHref(repo.ID, 0) {
			t.Fatalf("publication of version 0: %+v", pv)
		}
		// A PRN names a version too; a null manifest writes none.
		var v1 *repository.VersionRow
		v1, err := repository.GetVersion(t.Context(), e.Store, repo.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		pn, _ := pdPublish(t, e, map[string]any{"repository_version": "prn:core.repositoryversion:" + v1.ID, "manifest": nil})
		if *pn.RepositoryVersion != VersionHref(repo.ID, 1) || pn.Manifest != nil {
			t.Fatalf("publication by PRN without manifest: %+v", pn)
		}

		// Absolute URLs work as hrefs, as in Pulp.
		pa, _ := pdPublish(t, e, map[string]any{"repository": "http://pulp.example" + RepoHref(repo.ID), "checkpoint": true})
		if !pa.Checkpoint {
			t.Fatalf("checkpoint publication: %+v", pa)
		}
	})
}

func TestPublicationCreateRejects(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repo := pdRepo(t, e)
		other := api.Href(RepositoriesPath, "0190c5a1-0000-7000-8000-000000000000")
		cases := []struct {
			body  map[string]any
			field string
			msg   string
		}{
			{map[string]any{}, "non_field_errors", "Either the 'repository' or 'repository_version' need to be specified"},
			{map[string]any{"manifest": "X"}, "non_field_errors", "Either the 'repository' or 'repository_version' need to be specified"},
			{map[string]any{"repository": RepoHref(repo.ID), "repository_version": VersionHref(repo.ID, 0)}, "non_field_errors", "but not both"},
			{map[string]any{"repository_version": VersionHref(repo.ID, 0), "checkpoint": true}, "non_field_errors", "'checkpoint' may only be used with 'repository'"},
			{map[string]any{"repository": other}, "repository", "Object does not exist"},
			{map[string]any{"repository": "/pulp/api/v3/remotes/file/file/"}, "repository", "No URL match"},
			{map[string]any{"repository_version": VersionHref(repo.ID, 7)}, "repository_version", "Object does not exist"},
			{map[string]any{"repository_version": RepoHref(repo.ID)}, "repository_version", "No URL match"},
			{map[string]any{"repository": RepoHref(repo.ID), "manifest": "../escape"}, "manifest", "Not a valid file name"},
			{map[string]any{"repository": RepoHref(repo.ID), "manifest": "/abs"}, "manifest", "Not a valid file name"},
			{map[string]any{"repository": RepoHref(repo.ID), "bogus": 1}, "bogus", "Unexpected field"},
		}
		for _, tc := range cases {
			var errs map[string][]string
			e.call("POST", PublicationsPath, tc.body, http.StatusBadRequest, &errs)
			if len(errs[tc.field]) == 0 || !strings.Contains(errs[tc.field][0], tc.msg) {
				t.Errorf("%v: errors %v, want %s: %q", tc.body, errs, tc.field, tc.msg)
			}
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM tasks`); n != 0 {
			t.Fatalf("rejected requests dispatched %d tasks", n)
		}
	})
}

func TestPublicationListFiltersAndDelete(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repoA, repoB := pdRepo(t, e), pdRepo(t, e)
		units := pdUnits(t, e, pdFile{path: "a.txt", data: "a"}, pdFile{path: "b.txt", data: "b"})
		pdVersion(t, e, repoA, units[0])
		pdVersion(t, e, repoB, units[1])
		var pubs []FilePublicationResponse
		for _, body := range []map[string]any{
			{"repository_version": VersionHref(repoA.ID, 0)},
			{"repository": RepoHref(repoA.ID)},
			{"repository": RepoHref(repoB.ID)},
			{"repository_version": VersionHref(repoA.ID, 1), "manifest": "OTHER"},
		} {
			p, _ := pdPublish(t, e, body)
			pubs = append(pubs, p)
			time.Sleep(time.Millisecond) // distinct pulp_created
		}
		newestFirst := pdHrefs([]FilePublicationResponse{pubs[3], pubs[2], pubs[1], pubs[0]}, pubHref)

		all := pdList[FilePublicationResponse](t, e, PublicationsPath, nil)
		if all.Count != 4 || !slices.Equal(pdHrefs(all.Results, pubHref), newestFirst) {
			t.Fatalf("list %q, want newest first %q", pdHrefs(all.Results, pubHref), newestFirst)
		}
		oldestFirst := pdList[FilePublicationResponse](t, e, PublicationsPath, url.Values{"ordering": {"pulp_created"}})
		if got := pdHrefs(oldestFirst.Results, pubHref); got[0] != pubs[0].PulpHref || got[3] != pubs[3].PulpHref {
			t.Fatalf("ordering=pulp_created: %q", got)
		}
		page := pdList[FilePublicationResponse](t, e, PublicationsPath, url.Values{"limit": {"1"}, "offset": {"1"}})
		if page.Count != 4 || len(page.Results) != 1 || page.Results[0].PulpHref != newestFirst[1] || page.Next == nil {
			t.Fatalf("page %+v", page)
		}

		filters := []struct {
			q    url.Values
			want []FilePublicationResponse
		}{
			{url.Values{"repository_version": {VersionHref(repoA.ID, 1)}}, []FilePublicationResponse{pubs[3], pubs[1]}},
			{url.Values{"repository_version": {VersionHref(repoA.ID, 0)}}, []FilePublicationResponse{pubs[0]}},
			{url.Values{"repository": {RepoHref(repoA.ID)}}, []FilePublicationResponse{pubs[3], pubs[1], pubs[0]}},
			{url.Values{"repository": {RepoHref(repoB.ID)}}, []FilePublicationResponse{pubs[2]}},
			{url.Values{"content": {ContentHref(units[0])}}, []FilePublicationResponse{pubs[3], pubs[1]}},
			{url.Values{"content__in": {ContentHref(units[0]) + "," + ContentHref(units[1])}}, []FilePublicationResponse{pubs[3], pubs[2], pubs[1]}},
			{url.Values{"pulp_created__gte": {pubs[2].PulpCreated.Format(time.RFC3339Nano)}}, []FilePublicationResponse{pubs[3], pubs[2]}},
			{url.Values{"pulp_created__lt": {pubs[1].PulpCreated.Format(time.RFC3339Nano)}}, []FilePublicationResponse{pubs[0]}},
			{url.Values{"checkpoint": {"true"}}, nil},
			{url.Values{"pulp_href__in": {pubs[0].PulpHref + "," + pubs[2].PulpHref}}, []FilePublicationResponse{pubs[2], pubs[0]}},
		}
		for _, f := range filters {
			got := pdList[FilePublicationResponse](t, e, PublicationsPath, f.q)
			if want := pdHrefs(f.want, pubHref); !slices.Equal(pdHrefs(got.Results, pubHref), want) || got.Count != int64(len(want)) {
				t.Errorf("?%s: got %q (count %d), want %q", f.q.Encode(), pdHrefs(got.Results, pubHref), got.Count, want)
			}
		}
		for _, bad := range []url.Values{
			{"repository_version": {VersionHref(repoA.ID, 9)}},
			{"repository_version": {"/pulp/api/v3/nonsense/"}},
			{"repository": {api.Href(RepositoriesPath, "0190c5a1-0000-7000-8000-000000000000")}},
			{"content": {api.Href(ContentPath, "0190c5a1-0000-7000-8000-000000000000")}},
			{"pulp_created__gte": {"yesterday"}},
		} {
			if code, body := e.do("GET", PublicationsPath+"?"+bad.Encode(), nil); code != http.StatusBadRequest {
				t.Errorf("?%s: %d %s, want 400", bad.Encode(), code, body)
			}
		}

		// fields and exclude_fields shape each result.
		var only pdPage[map[string]any]
		e.call("GET", PublicationsPath+"?fields=pulp_href,manifest&limit=1", nil, http.StatusOK, &only)
		if len(only.Results) != 1 || len(only.Results[0]) != 2 || only.Results[0]["manifest"] != "OTHER" {
			t.Fatalf("fields: %v", only.Results)
		}
		var without map[string]any
		e.call("GET", pubs[0].PulpHref+"?exclude_fields=distributions,repository", nil, http.StatusOK, &without)
		if _, ok := without["distributions"]; ok || without["manifest"] != DefaultManifest || without["repository_version"] == nil {
			t.Fatalf("exclude_fields: %v", without)
		}

		// The generic list shows every type with typed hrefs.
		generic := pdList[coreapi.PublicationResponse](t, e, coreapi.PublicationsPath, url.Values{"pulp_type": {"file.file"}})
		if generic.Count != 4 || generic.Results[0].PulpHref != pubs[3].PulpHref || *generic.Results[0].RepositoryVersion != VersionHref(repoA.ID, 1) {
			t.Fatalf("generic list %+v", generic)
		}
		generic = pdList[coreapi.PublicationResponse](t, e, coreapi.PublicationsPath, url.Values{"repository": {RepoHref(repoB.ID)}})
		if generic.Count != 1 || generic.Results[0].PulpHref != pubs[2].PulpHref {
			t.Fatalf("generic list by repository %+v", generic)
		}

		// Delete is synchronous; the publication and its manifest record go.
		e.call("DELETE", pubs[1].PulpHref, nil, http.StatusNoContent, nil)
		e.call("GET", pubs[1].PulpHref, nil, http.StatusNotFound, nil)
		e.call("DELETE", pubs[1].PulpHref, nil, http.StatusNotFound, nil)
		if n := pdCount(t, e, `SELECT COUNT(*) FROM published_artifacts WHERE publication_id = $1`, strings.Split(pubs[1].PulpHref, "/")[7]); n != 0 {
			t.Fatalf("%d published artifacts outlived their publication", n)
		}
		if got := pdList[FilePublicationResponse](t, e, PublicationsPath, nil); got.Count != 3 {
			t.Fatalf("after delete: %d publications", got.Count)
		}
		e.call("GET", PublicationsPath+"not-a-uuid/", nil, http.StatusNotFound, nil)
	})
}

func TestPublicationsHideIncomplete(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repo := pdRepo(t, e)
		v, err := repository.Latest(t.Context(), e.Store, repo.ID)
		if err != nil {
			t.Fatal(err)
		}
		id := "0190c5a1-0000-7000-8000-0000000000aa"
		if _, err := e.Store.Exec(t.Context(), `INSERT INTO publications (id, created, last_updated, pulp_type, repository_version_id, complete, pass_through)
			VALUES ($1, 1, 1, $2, $3, FALSE, TRUE)`, id, Type, v.ID); err != nil {
			t.Fatal(err)
		}
		e.call("GET", PublicationHref(id), nil, http.StatusNotFound, nil)
		e.call("DELETE", PublicationHref(id), nil, http.StatusNotFound, nil)
		if got := pdList[FilePublicationResponse](t, e, PublicationsPath, nil); got.Count != 0 {
			t.Fatalf("an incomplete publication is listed: %+v", got)
		}
		if got := pdList[coreapi.PublicationResponse](t, e, coreapi.PublicationsPath, nil); got.Count != 0 {
			t.Fatalf("an incomplete publication is listed generically: %+v", got)
		}
	})
}
