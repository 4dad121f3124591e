package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// pdDistribute creates a distribution over the API and returns it as
// shown, with the create task.
func pdDistribute(t *testing.T, e *testEnv, body map[string]any) (FileDistributionResponse, testTask) {
	t.Helper()
	task := e.async("POST", DistributionsPath, body)
	if len(task.CreatedResources) != 1 || !strings.HasPrefix(task.CreatedResources[0], DistributionsPath) {
		t.Fatalf("create created %q", task.CreatedResources)
	}
	var d FileDistributionResponse
	e.call("GET", task.CreatedResources[0], nil, http.StatusOK, &d)
	return d, task
}

// pdPublished publishes a version directly and returns the publication id.
func pdPublished(t testing.TB, e *testEnv, v *repository.VersionRow) string {
	t.Helper()
	id, err := Publish(context.Background(), e.Deps, nil, v.ID, pdStr(DefaultManifest))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pdGetDist reads a distribution into a fresh value (decoding into a used
// one would merge maps).
func pdGetDist(t *testing.T, e *testEnv, href string) FileDistributionResponse {
	t.Helper()
	var d FileDistributionResponse
	e.call("GET", href, nil, http.StatusOK, &d)
	return d
}

func distHref(d FileDistributionResponse) string { return d.PulpHref }

func pdDistID(href string) string {
	return strings.TrimSuffix(strings.TrimPrefix(href, DistributionsPath), "/")
}

func TestDistributionCRUD(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repo := pdRepo(t, e)
		v := pdVersion(t, e, repo, pdUnits(t, e, pdFile{path: "1.iso", data: "1"})...)
		pub := PublicationHref(pdPublished(t, e, v))

		d, task := pdDistribute(t, e, map[string]any{"name": "dist", "base_path": "a/b", "publication": pub,
			"repository": nil, "repository_version": nil, "pulp_labels": map[string]string{"env": "test"}})
		id := pdDistID(d.PulpHref)
		if d.Name != "dist" || d.BasePath != "a/b" || d.BaseURL != "https://content.example:24816/pulp/content/a/b/" ||
			d.Publication == nil || *d.Publication != pub || d.Repository != nil || d.RepositoryVersion != nil ||
			d.ContentGuard != nil || d.ContentGuardPRN != nil || d.Hidden || d.Checkpoint || d.Remote != nil ||
			d.PulpLabels["env"] != "test" || d.PRN != "prn:file.filedistribution:"+id || d.NoContentChangeSince == nil {
			t.Fatalf("created %+v", d)
		}
		// Pulp's locks: the base path lock, and the legacy distributions
		// lock shared; not the new distribution itself.
		if task.Name != coreapi.GeneralCreateTask || !slices.Equal(task.Reserved, []string{coreapi.DistributionBasePathLock, "shared:" + coreapi.DistributionsLock}) {
			t.Fatalf("create task %s reserved %q", task.Name, task.Reserved)
		}
		var p FilePublicationResponse
		e.call("GET", pub, nil, http.StatusOK, &p)
		if !slices.Equal(p.Distributions, []string{d.PulpHref}) {
			t.Fatalf("publication served by %q", p.Distributions)
		}

		// A change that changes nothing answers 200 with the distribution.
		var same FileDistributionResponse
		e.call("PATCH", d.PulpHref, map[string]any{"name": "dist", "base_path": "a/b"}, http.StatusOK, &same)
		if same.PulpHref != d.PulpHref || same.Name != "dist" {
			t.Fatalf("unchanged update answered %+v", same)
		}

		// Renaming locks the distribution only; moving it takes the base
		// path lock too.
		task = e.async("PATCH", d.PulpHref, map[string]any{"name": "renamed"})
		prn := coreapi.DistributionPRN(Type, id)
		if task.Name != coreapi.GeneralUpdateTask || !slices.Equal(task.Reserved, []string{prn, "shared:" + coreapi.DistributionsLock}) {
			t.Fatalf("rename task %s reserved %q", task.Name, task.Reserved)
		}
		task = e.async("PATCH", d.PulpHref, map[string]any{"base_path": "c"})
		if !slices.Equal(task.Reserved, []string{prn, coreapi.DistributionBasePathLock, "shared:" + coreapi.DistributionsLock}) {
			t.Fatalf("move task reserved %q", task.Reserved)
		}
		got := pdGetDist(t, e, d.PulpHref)
		if got.Name != "renamed" || got.BasePath != "c" || got.BaseURL != pdOrigin+pdPrefix+"c/" || *got.Publication != pub ||
			!got.PulpLastUpdated.After(d.PulpLastUpdated) || got.PulpLabels["env"] != "test" {
			t.Fatalf("after updates %+v", got)
		}

		// PUT sends the whole distribution back (read-only fields are
		// ignored); what it omits takes its default.
		full := map[string]any{}
		e.call("GET", d.PulpHref, nil, http.StatusOK, &full)
		full["name"], full["hidden"] = "put", true
		e.async("PUT", d.PulpHref, full)
		got = pdGetDist(t, e, d.PulpHref)
		if got.Name != "put" || !got.Hidden || got.Publication == nil || got.PulpLabels["env"] != "test" {
			t.Fatalf("after PUT %+v", got)
		}
		e.async("PUT", d.PulpHref, map[string]any{"name": "put", "base_path": "c", "repository": RepoHref(repo.ID)})
		got = pdGetDist(t, e, d.PulpHref)
		if got.Publication != nil || got.Repository == nil || *got.Repository != RepoHref(repo.ID) || got.Hidden ||
			len(got.PulpLabels) != 0 || got.NoContentChangeSince != nil {
			t.Fatalf("after a PUT replacing the source %+v", got)
		}

		// Delete is a task too.
		task = e.async("DELETE", d.PulpHref, nil)
		if task.Name != coreapi.GeneralDeleteTask || !slices.Equal(task.Reserved, []string{prn, "shared:" + coreapi.DistributionsLock}) {
			t.Fatalf("delete task %s reserved %q", task.Name, task.Reserved)
		}
		e.call("GET", d.PulpHref, nil, http.StatusNotFound, nil)
		e.call("DELETE", d.PulpHref, nil, http.StatusNotFound, nil)
		e.call("PATCH", d.PulpHref, map[string]any{"name": "x"}, http.StatusNotFound, nil)
		e.call("GET", DistributionsPath+"nope/", nil, http.StatusNotFound, nil)
	})
}

func TestDistributionBasePaths(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		d, _ := pdDistribute(t, e, map[string]any{"name": "ab", "base_path": "a/b"})
		pdDistribute(t, e, map[string]any{"name": "pct", "base_path": "50%_off"})
		for _, tc := range []struct{ path, msg string }{
			{"a", "Overlaps with existing distribution 'ab'"},
			{"a/b/c", "Overlaps with existing distribution 'ab'"},
			{"a/b/c/d", "Overlaps with existing distribution 'ab'"},
			{"a/b", "This field must be unique."},
			{"50%_off/x", "Overlaps with existing distribution 'pct'"},
			{"a b", "Relative path is not in canonical form. a b"},
			{"/x", "not in canonical form"},
			{"x/", "not in canonical form"},
			{"x//y", "not in canonical form"},
			{"x/../y", "not in canonical form"},
			{"x/./y", "not in canonical form"},
			{"x?y", "not in canonical form"},
			{"x#y", "not in canonical form"},
			{"x\ty", "not in canonical form"},
			{"", "This field may not be blank."},
		} {
			var errs map[string][]string
			e.call("POST", DistributionsPath, map[string]any{"name": "new-" + tc.path, "base_path": tc.path}, http.StatusBadRequest, &errs)
			if len(errs["base_path"]) != 1 || !strings.Contains(errs["base_path"][0], tc.msg) {
				t.Errorf("base_path %q: %v, want %q", tc.path, errs, tc.msg)
			}
		}
		// Neighbours that only share a prefix of characters do not nest,
		// and LIKE wildcards in a base path are literal.
		for _, p := range []string{"a/bc", "a/b-c", "ab", "50", "xzy/q", "x_y", "x%"} {
			pdDistribute(t, e, map[string]any{"name": "ok-" + p, "base_path": p})
		}
		var errs map[string][]string
		e.call("POST", DistributionsPath, map[string]any{"name": "ab", "base_path": "elsewhere"}, http.StatusBadRequest, &errs)
		if !slices.Equal(errs["name"], []string{"This field must be unique."}) {
			t.Fatalf("duplicate name: %v", errs)
		}
		// Updates are checked too, against the others only.
		e.call("PATCH", d.PulpHref, map[string]any{"base_path": "a/bc/d"}, http.StatusBadRequest, &errs)
		if !strings.Contains(errs["base_path"][0], "Overlaps with existing distribution 'ok-a/bc'") {
			t.Fatalf("moving onto another's subtree: %v", errs)
		}
		e.call("PUT", d.PulpHref, map[string]any{"name": "ab", "base_path": "/a/b"}, http.StatusBadRequest, &errs)
		if len(errs["base_path"]) == 0 {
			t.Fatalf("PUT with a leading slash: %v", errs)
		}
		e.async("PATCH", d.PulpHref, map[string]any{"base_path": "a/b/deeper"})
	})
}

// TestDistributionBasePathRace lets two creates whose base paths nest both
// pass the API's check before either runs: the task re-checks under the
// base path lock, so only the first is created.
func TestDistributionBasePathRace(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := pdEnv(t, s, 0) // tasks wait until workers start
		var first, second api.AsyncResponse
		e.call("POST", DistributionsPath, map[string]any{"name": "outer", "base_path": "x"}, http.StatusAccepted, &first)
		e.call("POST", DistributionsPath, map[string]any{"name": "inner", "base_path": "x/y"}, http.StatusAccepted, &second)
		if err := e.Tasks.RunWorkers(context.Background(), 2); err != nil {
			t.Fatal(err)
		}
		if t1 := e.waitTask(first.Task); t1.State != "completed" {
			t.Fatalf("first create %s: %v", t1.State, t1.Error)
		}
		t2 := e.waitTask(second.Task)
		if t2.State != "failed" || !strings.Contains(fmt.Sprint(t2.Error["description"]), "Overlaps with existing distribution 'outer'") {
			t.Fatalf("second create %s: %v", t2.State, t2.Error)
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM distributions`); n != 1 {
			t.Fatalf("%d distributions", n)
		}
	})
}

func TestDistributionSources(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repo := pdRepo(t, e)
		v0, err := repository.Latest(context.Background(), e.Store, repo.ID)
		if err != nil {
			t.Fatal(err)
		}
		pub := PublicationHref(pdPublished(t, e, v0))
		ver := VersionHref(repo.ID, 0)
		rep := RepoHref(repo.ID)
		missing := "0190c5a1-0000-7000-8000-000000000000"
		for _, tc := range []struct {
			body  map[string]any
			field string
			msg   string
		}{
			{map[string]any{"publication": pub, "repository_version": ver}, "non_field_errors", "Only one of the attributes 'publication' and 'repository_version' may be used simultaneously."},
			{map[string]any{"repository": rep, "repository_version": ver}, "non_field_errors", "Only one of the attributes 'repository' and 'repository_version' may be used simultaneously."},
			{map[string]any{"repository": rep, "publication": pub}, "non_field_errors", "Only one of the attributes 'repository' and 'publication' may be used simultaneously."},
			{map[string]any{"publication": pub, "checkpoint": true}, "non_field_errors", "The 'checkpoint' attribute may only be used with the 'repository' attribute."},
			{map[string]any{"publication": PublicationHref(missing)}, "publication", msgDoesNotExist},
			{map[string]any{"publication": "/pulp/api/v3/tasks/" + missing + "/"}, "publication", msgNoURLMatch},
			{map[string]any{"repository": RepoHref(missing)}, "repository", msgDoesNotExist},
			{map[string]any{"repository_version": VersionHref(repo.ID, 3)}, "repository_version", msgDoesNotExist},
			{map[string]any{"repository_version": rep}, "repository_version", msgNoURLMatch},
			{map[string]any{"content_guard": "/pulp/api/v3/contentguards/core/header/" + missing + "/"}, "content_guard", msgDoesNotExist},
			{map[string]any{"remote": RemoteHref(missing)}, "remote", msgDoesNotExist},
			{map[string]any{"pulp_labels": map[string]string{"bad/key": "v"}}, "pulp_labels", "invalid characters"},
		} {
			body := map[string]any{"name": "n", "base_path": "p"}
			for k, v := range tc.body {
				body[k] = v
			}
			var errs map[string][]string
			e.call("POST", DistributionsPath, body, http.StatusBadRequest, &errs)
			if len(errs[tc.field]) == 0 || !strings.Contains(errs[tc.field][0], tc.msg) {
				t.Errorf("%v: %v, want %s %q", tc.body, errs, tc.field, tc.msg)
			}
		}
		if n := pdCount(t, e, `SELECT COUNT(*) FROM tasks`); n != 0 {
			t.Fatalf("rejected creates dispatched %d tasks", n)
		}

		// A PATCH is judged with the fields it leaves as they are: adding a
		// publication to a repository distribution needs repository: null,
		// as pulp-cli sends it.
		d, _ := pdDistribute(t, e, map[string]any{"name": "r", "base_path": "r", "repository": rep, "checkpoint": true})
		if !d.Checkpoint || *d.Repository != rep || d.NoContentChangeSince != nil {
			t.Fatalf("repository distribution %+v", d)
		}
		var errs map[string][]string
		e.call("PATCH", d.PulpHref, map[string]any{"publication": pub}, http.StatusBadRequest, &errs)
		if len(errs["non_field_errors"]) == 0 {
			t.Fatalf("publication added to a repository distribution: %v", errs)
		}
		e.async("PATCH", d.PulpHref, map[string]any{"publication": pub, "repository": nil, "repository_version": nil, "checkpoint": false})
		got := pdGetDist(t, e, d.PulpHref)
		if got.Repository != nil || got.Publication == nil || *got.Publication != pub {
			t.Fatalf("switched to a publication: %+v", got)
		}
		// A version by PRN, a file remote, a content guard.
		remote := pdRemote(t, e)
		guard := "0190c5a1-0000-7000-8000-0000000000bb"
		if _, err := e.Store.Exec(context.Background(), `INSERT INTO content_guards (id, created, last_updated, pulp_type, name) VALUES ($1, 1, 1, 'core.header', 'g')`, guard); err != nil {
			t.Fatal(err)
		}
		e.async("PATCH", d.PulpHref, map[string]any{"publication": nil, "repository_version": "prn:core.repositoryversion:" + v0.ID,
			"remote": RemoteHref(remote), "content_guard": "/pulp/api/v3/contentguards/core/header/" + guard + "/"})
		got = pdGetDist(t, e, d.PulpHref)
		if got.RepositoryVersion == nil || *got.RepositoryVersion != ver || got.Publication != nil || got.Remote == nil || *got.Remote != RemoteHref(remote) ||
			got.ContentGuard == nil || *got.ContentGuard != "/pulp/api/v3/contentguards/core/header/"+guard+"/" ||
			*got.ContentGuardPRN != "prn:core.headercontentguard:"+guard || got.NoContentChangeSince != nil {
			t.Fatalf("version distribution %+v", got)
		}
		// Deleting what a distribution serves lets go of it.
		e.call("DELETE", pub, nil, http.StatusNoContent, nil)
		e.async("PATCH", d.PulpHref, map[string]any{"repository_version": nil, "publication": nil, "repository": rep})
		got = pdGetDist(t, e, d.PulpHref)
		if got.Repository == nil || got.RepositoryVersion != nil {
			t.Fatalf("back to the repository %+v", got)
		}
	})
}

func TestDistributionLabels(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		d, _ := pdDistribute(t, e, map[string]any{"name": "l", "base_path": "l"})
		e.call("POST", d.PulpHref+"set_label/", map[string]any{"key": "env", "value": "prod"}, http.StatusOK, nil)
		e.call("POST", d.PulpHref+"set_label/", map[string]any{"key": "team", "value": "a"}, http.StatusOK, nil)
		var u api.UnsetLabelResponse
		e.call("POST", d.PulpHref+"unset_label/", map[string]any{"key": "team"}, http.StatusOK, &u)
		if u.Key != "team" || u.Value == nil || *u.Value != "a" {
			t.Fatalf("unset %+v", u)
		}
		got := pdGetDist(t, e, d.PulpHref)
		if len(got.PulpLabels) != 1 || got.PulpLabels["env"] != "prod" {
			t.Fatalf("labels %v", got.PulpLabels)
		}
		// A rename after a label change keeps the label.
		e.async("PATCH", d.PulpHref, map[string]any{"name": "l2"})
		got = pdGetDist(t, e, d.PulpHref)
		if got.PulpLabels["env"] != "prod" || got.Name != "l2" {
			t.Fatalf("after rename %+v", got)
		}
		e.call("POST", DistributionsPath+"0190c5a1-0000-7000-8000-000000000000/set_label/", map[string]any{"key": "k", "value": "v"}, http.StatusNotFound, nil)
	})
}

func TestDistributionFilters(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		repoA, repoB, repoC := pdRepo(t, e), pdRepo(t, e), pdRepo(t, e)
		units := pdUnits(t, e, pdFile{path: "a", data: "a"}, pdFile{path: "b", data: "b"})
		va := pdVersion(t, e, repoA, units[0])
		pdPublished(t, e, va)
		vb := pdVersion(t, e, repoB, units[0], units[1])
		pubB := PublicationHref(pdPublished(t, e, vb))
		pdVersion(t, e, repoC, units[0]) // never published

		dA, _ := pdDistribute(t, e, map[string]any{"name": "dist-a", "base_path": "Team/Alpha", "repository": RepoHref(repoA.ID), "pulp_labels": map[string]string{"env": "prod"}})
		dB, _ := pdDistribute(t, e, map[string]any{"name": "dist-b", "base_path": "team/beta", "publication": pubB, "pulp_labels": map[string]string{"env": "dev"}})
		dC, _ := pdDistribute(t, e, map[string]any{"name": "dist-c", "base_path": "other", "repository": RepoHref(repoC.ID)})
		dV, _ := pdDistribute(t, e, map[string]any{"name": "dist-v", "base_path": "version", "repository_version": VersionHref(repoB.ID, 1)})
		dN, _ := pdDistribute(t, e, map[string]any{"name": "dist-none", "base_path": "none"})
		all := []FileDistributionResponse{dN, dV, dC, dB, dA} // newest first

		for _, f := range []struct {
			q    url.Values
			want []FileDistributionResponse
		}{
			{nil, all},
			{url.Values{"repository": {RepoHref(repoA.ID)}}, []FileDistributionResponse{dA}},
			{url.Values{"repository__in": {RepoHref(repoA.ID) + "," + RepoHref(repoC.ID)}}, []FileDistributionResponse{dC, dA}},
			{url.Values{"base_path": {"team/beta"}}, []FileDistributionResponse{dB}},
			{url.Values{"base_path__icontains": {"TEAM"}}, []FileDistributionResponse{dB, dA}},
			{url.Values{"base_path__contains": {"team"}}, []FileDistributionResponse{dB}},
			{url.Values{"base_path__in": {"none,other"}}, []FileDistributionResponse{dN, dC}},
			{url.Values{"name__startswith": {"dist-"}, "name__contains": {"n"}}, []FileDistributionResponse{dN}},
			{url.Values{"name__in": {"dist-a,dist-v"}}, []FileDistributionResponse{dV, dA}},
			{url.Values{"pulp_label_select": {"env=prod"}}, []FileDistributionResponse{dA}},
			{url.Values{"pulp_label_select": {"env"}}, []FileDistributionResponse{dB, dA}},
			// Served content: dA (latest publication of A), dB (its
			// publication), dV (B's version 1 has a publication); not dC
			// (no publication) nor dN.
			{url.Values{"with_content": {ContentHref(units[0])}}, []FileDistributionResponse{dV, dB, dA}},
			{url.Values{"with_content": {ContentHref(units[1])}}, []FileDistributionResponse{dV, dB}},
			{url.Values{"ordering": {"-name"}}, []FileDistributionResponse{dV, dN, dC, dB, dA}},
			{url.Values{"pulp_href__in": {dA.PulpHref + "," + dN.PulpHref}}, []FileDistributionResponse{dN, dA}},
		} {
			got := pdList[FileDistributionResponse](t, e, DistributionsPath, f.q)
			if want := pdHrefs(f.want, distHref); !slices.Equal(pdHrefs(got.Results, distHref), want) || got.Count != int64(len(want)) {
				t.Errorf("?%s: got %q (count %d), want %q", f.q.Encode(), pdHrefs(got.Results, distHref), got.Count, want)
			}
		}
		for _, bad := range []url.Values{
			{"with_content": {ContentHref("0190c5a1-0000-7000-8000-000000000000")}},
			{"with_content": {"/pulp/api/v3/nonsense/"}},
			{"repository": {"/pulp/api/v3/nonsense/"}},
			{"pulp_label_select": {"=x"}},
		} {
			if code, body := e.do("GET", DistributionsPath+"?"+bad.Encode(), nil); code != http.StatusBadRequest {
				t.Errorf("?%s: %d %s, want 400", bad.Encode(), code, body)
			}
		}

		// The generic list: every type, typed hrefs, no publication field.
		var generic pdPage[map[string]any]
		e.call("GET", coreapi.DistributionsPath+"?"+url.Values{"repository": {RepoHref(repoA.ID)}}.Encode(), nil, http.StatusOK, &generic)
		if generic.Count != 1 || generic.Results[0]["pulp_href"] != dA.PulpHref || generic.Results[0]["base_url"] != dA.BaseURL ||
			generic.Results[0]["repository"] != RepoHref(repoA.ID) {
			t.Fatalf("generic list %+v", generic)
		}
		if _, ok := generic.Results[0]["publication"]; ok {
			t.Fatalf("generic list shows publication: %v", generic.Results[0])
		}
		if got := pdList[coreapi.DistributionResponse](t, e, coreapi.DistributionsPath, url.Values{"with_content": {ContentHref(units[1])}}); got.Count != 2 {
			t.Fatalf("generic with_content %+v", got)
		}
	})
}

func TestResolveDistribution(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		repo := pdRepo(t, e)
		v1 := pdVersion(t, e, repo, pdUnits(t, e, pdFile{path: "1", data: "1"})...)
		v2 := pdVersion(t, e, repo, pdUnits(t, e, pdFile{path: "2", data: "2"})...)
		insertDist := func(col string, val any) string {
			id := store.NewID()
			q := `INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path) VALUES ($1, 1, 1, $2, $3, $3)`
			args := []any{id, Type, id}
			if col != "" {
				q = `INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path, ` + col + `) VALUES ($1, 1, 1, $2, $3, $3, $4)`
				args = append(args, val)
			}
			if _, err := e.Store.Exec(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
			return id
		}
		resolve := func(id string) string {
			t.Helper()
			got, err := ResolveDistribution(ctx, e.Store, id)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		byRepo := insertDist("repository_id", repo.ID)
		byV1 := insertDist("repository_version_id", v1.ID)
		none := insertDist("", nil)
		if resolve(byRepo) != "" || resolve(byV1) != "" || resolve(none) != "" {
			t.Fatal("something is served before any publication exists")
		}
		p2 := pdPublished(t, e, v2)
		p1a := pdPublished(t, e, v1)
		p1b := pdPublished(t, e, v1) // newest of version 1
		// An incomplete publication is never served.
		if _, err := e.Store.Exec(ctx, `INSERT INTO publications (id, created, last_updated, pulp_type, repository_version_id, complete, pass_through)
			VALUES ($1, $2, $2, $3, $4, FALSE, TRUE)`, store.NewID(), store.Now()+1e9, Type, v1.ID); err != nil {
			t.Fatal(err)
		}
		byPub := insertDist("publication_id", p1a)
		if got := resolve(byPub); got != p1a {
			t.Fatalf("publication distribution serves %s, want %s", got, p1a)
		}
		if got := resolve(byV1); got != p1b {
			t.Fatalf("version distribution serves %s, want the newest publication of the version %s", got, p1b)
		}
		// The repository's latest version wins over a newer publication of
		// an older version.
		if got := resolve(byRepo); got != p2 {
			t.Fatalf("repository distribution serves %s, want %s (version 2)", got, p2)
		}
		if resolve(none) != "" {
			t.Fatal("a distribution without a source serves something")
		}
		if _, err := ResolveDistribution(ctx, e.Store, store.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown distribution: %v", err)
		}
	})
}

// TestPublicationDistributionDocument checks the operations as pulp-glue
// finds them in the document: ids, paths, status codes, bodies, and the
// list parameters it sends.
func TestPublicationDistributionDocument(t *testing.T) {
	e := pdEnv(t, storetest.Open(t, storetest.Backends()[0]), 0)
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	raw := e.API.Document()
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	// Valid OpenAPI, once the href-style path keys are made routable.
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	paths := generic["paths"].(map[string]any)
	for k, v := range paths {
		if strings.HasPrefix(k, "{") {
			delete(paths, k)
			paths["/"+k[1:strings.IndexByte(k, '}')]+"/"+k] = v
		}
	}
	fixed, _ := json.Marshal(generic)
	loaded, err := openapi3.NewLoader().LoadFromData(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Validate(t.Context()); err != nil {
		t.Fatalf("invalid OpenAPI: %v", err)
	}
	type opInfo struct {
		line   string
		params map[string]string
	}
	ops := map[string]opInfo{}
	for path, methods := range doc.Paths {
		for m, body := range methods {
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
				Parameters  []struct {
					Name   string `json:"name"`
					Schema struct {
						Type string `json:"type"`
					} `json:"schema"`
				} `json:"parameters"`
			}
			if json.Unmarshal(body, &op) != nil {
				continue
			}
			var codes []string
			for c := range op.Responses {
				codes = append(codes, c)
			}
			slices.Sort(codes)
			params := map[string]string{}
			for _, p := range op.Parameters {
				params[p.Name] = p.Schema.Type
			}
			ops[op.OperationID] = opInfo{strings.ToUpper(m) + " " + path + " " + strings.Join(codes, ","), params}
		}
	}
	for op, want := range map[string]string{
		"publications_list":                      "GET /pulp/api/v3/publications/ 200",
		"publications_file_file_list":            "GET /pulp/api/v3/publications/file/file/ 200",
		"publications_file_file_create":          "POST /pulp/api/v3/publications/file/file/ 202",
		"publications_file_file_read":            "GET {file_file_publication_href} 200",
		"publications_file_file_delete":          "DELETE {file_file_publication_href} 204",
		"distributions_list":                     "GET /pulp/api/v3/distributions/ 200",
		"distributions_file_file_list":           "GET /pulp/api/v3/distributions/file/file/ 200",
		"distributions_file_file_create":         "POST /pulp/api/v3/distributions/file/file/ 202",
		"distributions_file_file_read":           "GET {file_file_distribution_href} 200",
		"distributions_file_file_update":         "PUT {file_file_distribution_href} 200,202",
		"distributions_file_file_partial_update": "PATCH {file_file_distribution_href} 200,202",
		"distributions_file_file_delete":         "DELETE {file_file_distribution_href} 202",
		"distributions_file_file_set_label":      "POST {file_file_distribution_href}set_label/ 200",
		"distributions_file_file_unset_label":    "POST {file_file_distribution_href}unset_label/ 200",
	} {
		if got := ops[op].line; got != want {
			t.Errorf("%s: %q, want %q", op, got, want)
		}
	}
	for op, params := range map[string][]string{
		"publications_file_file_list":  {"repository", "repository_version", "content", "content__in", "pulp_created__gte", "pulp_created__lte", "limit", "offset", "ordering", "fields", "exclude_fields"},
		"distributions_file_file_list": {"name", "name__in", "name__icontains", "base_path", "base_path__icontains", "base_path__contains", "base_path__in", "repository", "repository__in", "with_content", "pulp_label_select", "checkpoint"},
		"distributions_list":           {"pulp_type", "base_path", "name"},
		"publications_list":            {"pulp_type", "content__in"},
	} {
		for _, p := range params {
			if _, ok := ops[op].params[p]; !ok {
				t.Errorf("%s lacks parameter %s", op, p)
			}
		}
	}
	if typ := ops["publications_file_file_list"].params["content__in"]; typ != "array" {
		t.Errorf("content__in is %q, pulp-glue needs an array", typ)
	}
	schemas := doc.Components.Schemas
	if r := schemas["file.FileDistribution"].Required; !slices.Contains(r, "name") || !slices.Contains(r, "base_path") || len(r) != 2 {
		t.Errorf("file.FileDistribution requires %q", r)
	}
	if r := schemas["Patchedfile.FileDistribution"].Required; len(r) != 0 {
		t.Errorf("Patchedfile.FileDistribution requires %q", r)
	}
	if r := schemas["file.FilePublication"].Required; len(r) != 0 {
		t.Errorf("file.FilePublication requires %q", r)
	}
	for name, fields := range map[string][]string{
		"file.FilePublicationResponse":  {"pulp_href", "prn", "pulp_created", "pulp_last_updated", "repository_version", "repository", "distributions", "manifest", "checkpoint"},
		"file.FileDistributionResponse": {"pulp_href", "prn", "base_path", "base_url", "content_guard", "content_guard_prn", "no_content_change_since", "hidden", "pulp_labels", "name", "repository", "repository_version", "publication", "checkpoint"},
		"PublicationResponse":           {"pulp_href", "repository_version", "repository"},
		"DistributionResponse":          {"pulp_href", "base_path", "base_url", "name", "repository", "repository_version"},
	} {
		for _, f := range fields {
			if _, ok := schemas[name].Properties[f]; !ok {
				t.Errorf("%s lacks %s", name, f)
			}
		}
	}
}
