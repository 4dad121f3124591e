package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

func acsRemote(t *testing.T, s *store.Store, name string) string {
	t.Helper()
	r := &store.Remote{PulpType: "file.file", Name: name, URL: "http://" + name + "/PULP_MANIFEST", Policy: "on_demand"}
	if err := s.InsertRemote(t.Context(), nil, r); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

func acsPaths(a *store.ACS) []string {
	var out []string
	for _, p := range a.Paths {
		out = append(out, p.Path)
	}
	return out
}

// acsRepo inserts a repository with complete versions 0..latest.
func acsRepo(t *testing.T, s *store.Store, name string, hidden bool, latest int) string {
	t.Helper()
	ctx := t.Context()
	id := store.NewID()
	if _, err := s.Exec(ctx, `INSERT INTO repositories (id, created, last_updated, pulp_type, name, next_version, user_hidden) VALUES ($1, 1, 1, 'file.file', $2, $3, $4)`,
		id, name, latest+1, hidden); err != nil {
		t.Fatal(err)
	}
	for n := 0; n <= latest; n++ {
		if _, err := s.Exec(ctx, `INSERT INTO repository_versions (id, created, last_updated, repository_id, number, complete) VALUES ($1, 1, 1, $2, $3, TRUE)`,
			store.NewID(), id, n); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// acsUnit inserts a file unit with no artifact, known through remoteID
// at url, and returns its content id and remote artifact id.
func acsUnit(t *testing.T, s *store.Store, data, remoteID, url string, created int64) (contentID, raID string) {
	t.Helper()
	ctx := t.Context()
	contentID, caID, raID := store.NewID(), store.NewID(), store.NewID()
	key := url + "|" + sha(data)
	if _, err := s.Exec(ctx, `INSERT INTO content (id, created, last_updated, pulp_type, timestamp_of_interest, natural_key, repo_key) VALUES ($1, 1, 1, 'file.file', 1, $2, $2)`,
		contentID, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exec(ctx, `INSERT INTO content_artifacts (id, created, last_updated, content_id, relative_path) VALUES ($1, 1, 1, $2, 'f')`, caID, contentID); err != nil {
		t.Fatal(err)
	}
	acsRemoteArtifact(t, s, raID, caID, remoteID, url, data, created)
	return contentID, raID
}

func acsRemoteArtifact(t *testing.T, s *store.Store, raID, caID, remoteID, url, data string, created int64) {
	t.Helper()
	if _, err := s.Exec(t.Context(), `INSERT INTO remote_artifacts (id, created, last_updated, content_artifact_id, remote_id, url, size, sha256) VALUES ($1, $2, $2, $3, $4, $5, $6, $7)`,
		raID, created, caID, remoteID, url, len(data), sha(data)); err != nil {
		t.Fatal(err)
	}
}

func acsMember(t *testing.T, s *store.Store, repoID, contentID string, added int, removed *int) {
	t.Helper()
	if _, err := s.Exec(t.Context(), `INSERT INTO repository_content (id, created, repository_id, content_id, version_added, version_removed) VALUES ($1, 1, $2, $3, $4, $5)`,
		store.NewID(), repoID, contentID, added, removed); err != nil {
		t.Fatal(err)
	}
}

func TestACSRows(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		remote := acsRemote(t, s, "r1")
		a := &store.ACS{PulpType: "file.file", Name: "acs", RemoteID: remote}
		if err := s.InsertACS(ctx, a, []string{"b/PULP_MANIFEST", "a/PULP_MANIFEST", "b/PULP_MANIFEST"}); err != nil {
			t.Fatal(err)
		}
		if got := acsPaths(a); !slices.Equal(got, []string{"a/PULP_MANIFEST", "b/PULP_MANIFEST"}) {
			t.Fatalf("inserted paths %v", got)
		}
		if err := s.InsertACS(ctx, &store.ACS{PulpType: "file.file", Name: "acs", RemoteID: remote}, []string{""}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name: %v, want ErrConflict", err)
		}
		got, err := s.GetACS(ctx, a.ID)
		if err != nil || got.Name != "acs" || got.RemoteID != remote || got.LastRefreshed != nil || !slices.Equal(acsPaths(got), acsPaths(a)) {
			t.Fatalf("get: %+v %v", got, err)
		}
		if _, err := s.GetACS(ctx, store.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}

		// Link path a to a hidden repository; a second link loses.
		repo := acsRepo(t, s, "hidden-a", true, 0)
		pa := got.Paths[0]
		if ok, err := s.SetACSPathRepository(ctx, pa.ID, repo); err != nil || !ok {
			t.Fatalf("link: %v %v", ok, err)
		}
		if ok, err := s.SetACSPathRepository(ctx, pa.ID, acsRepo(t, s, "other", true, 0)); err != nil || ok {
			t.Fatalf("second link: %v %v, want false", ok, err)
		}

		// Paths: a is kept with its repository, b goes, c comes.
		other := acsRemote(t, s, "r2")
		got.Name, got.RemoteID = "renamed", other
		at := int64(1234567)
		got.LastRefreshed = &at
		orphaned, err := s.UpdateACS(ctx, got, []string{"c/PULP_MANIFEST", "a/PULP_MANIFEST"})
		if err != nil || len(orphaned) != 0 {
			t.Fatalf("update: %v %v", orphaned, err)
		}
		got, _ = s.GetACS(ctx, a.ID)
		if got.Name != "renamed" || got.RemoteID != other || got.LastRefreshed == nil || *got.LastRefreshed != at ||
			!slices.Equal(acsPaths(got), []string{"a/PULP_MANIFEST", "c/PULP_MANIFEST"}) || got.Paths[0].ID != pa.ID ||
			got.Paths[0].RepositoryID == nil || *got.Paths[0].RepositoryID != repo || got.Paths[1].RepositoryID != nil {
			t.Fatalf("after update: %+v", got)
		}
		// nil paths leave them; removing a linked path reports its repository.
		if _, err := s.UpdateACS(ctx, got, nil); err != nil || len(got.Paths) != 2 {
			t.Fatalf("update without paths: %v %+v", err, got.Paths)
		}
		orphaned, err = s.UpdateACS(ctx, got, []string{"c/PULP_MANIFEST"})
		if err != nil || !slices.Equal(orphaned, []string{repo}) {
			t.Fatalf("removing a linked path: orphaned %v, %v; want [%s]", orphaned, err, repo)
		}

		b := &store.ACS{PulpType: "file.file", Name: "second", RemoteID: remote}
		if err := s.InsertACS(ctx, b, []string{""}); err != nil {
			t.Fatal(err)
		}
		got.Name = "second"
		if _, err := s.UpdateACS(ctx, got, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("rename onto a taken name: %v", err)
		}
		list, err := s.ListACS(ctx, " WHERE name LIKE $1", []any{"%e%"}, "name", 10, 0)
		if err != nil || len(list) != 2 || list[0].Name != "renamed" || list[1].Name != "second" || !slices.Equal(acsPaths(list[1]), []string{""}) {
			t.Fatalf("list: %+v %v", list, err)
		}
		if n, err := s.CountACS(ctx, "", nil); err != nil || n != 2 {
			t.Fatalf("count: %d %v", n, err)
		}

		// The ACS protects its remote; deleting the ACS frees it.
		if err := s.DeleteRemote(ctx, nil, remote); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("delete the ACS's remote: %v, want ErrConflict", err)
		}
		repoB := acsRepo(t, s, "hidden-b", true, 0)
		if _, err := s.SetACSPathRepository(ctx, b.Paths[0].ID, repoB); err != nil {
			t.Fatal(err)
		}
		orphaned, err = s.DeleteACS(ctx, b.ID)
		if err != nil || !slices.Equal(orphaned, []string{repoB}) {
			t.Fatalf("delete: orphaned %v, %v", orphaned, err)
		}
		if _, err := s.DeleteACS(ctx, b.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM alternate_content_source_paths WHERE acs_id = $1`, b.ID); n != 0 {
			t.Fatalf("%d paths left after delete", n)
		}
		if err := s.DeleteRemote(ctx, nil, remote); err != nil {
			t.Fatalf("delete the freed remote: %v", err)
		}
	})
}

func TestACSSources(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		acsR := acsRemote(t, s, "acs-remote")
		otherR := acsRemote(t, s, "other-remote")
		a := &store.ACS{PulpType: "file.file", Name: "acs", RemoteID: acsR}
		if err := s.InsertACS(ctx, a, []string{"x/PULP_MANIFEST", "y/PULP_MANIFEST"}); err != nil {
			t.Fatal(err)
		}
		hx := acsRepo(t, s, "hx", true, 2)
		hy := acsRepo(t, s, "hy", true, 1)
		for i, r := range []string{hx, hy} {
			if _, err := s.SetACSPathRepository(ctx, a.Paths[i].ID, r); err != nil {
				t.Fatal(err)
			}
		}
		plain := acsRepo(t, s, "plain", false, 1)
		two := 2

		// present: in hx's latest version, known by the ACS remote.
		present, raPresent := acsUnit(t, s, "present", acsR, "http://acs/x/present", 10)
		acsMember(t, s, hx, present, 1, nil)
		// The same bytes through another remote: not an ACS source.
		acsRemoteArtifact(t, s, store.NewID(), caOf(t, s, present), otherR, "http://other/present", "present", 5)
		// In both hidden repositories: listed once.
		acsMember(t, s, hy, present, 1, nil)
		// removed from hx in version 2 (its latest): gone.
		removed, _ := acsUnit(t, s, "removed", acsR, "http://acs/x/removed", 10)
		acsMember(t, s, hx, removed, 1, &two)
		// Added by version 3 of hx, still being made: not yet.
		pending, _ := acsUnit(t, s, "pending", acsR, "http://acs/x/pending", 10)
		if _, err := s.Exec(ctx, `INSERT INTO repository_versions (id, created, last_updated, repository_id, number, complete) VALUES ($1, 1, 1, $2, 3, FALSE)`, store.NewID(), hx); err != nil {
			t.Fatal(err)
		}
		acsMember(t, s, hx, pending, 3, nil)
		// The ACS remote's artifact of content only a plain repository holds.
		plainOnly, _ := acsUnit(t, s, "plain", acsR, "http://acs/plain", 10)
		acsMember(t, s, plain, plainOnly, 1, nil)
		// Two ACS sources of one sha256 (two units, same bytes): the one
		// that never failed comes first, then the older.
		dupA, raDupA := acsUnit(t, s, "dup", acsR, "http://acs/y/dup-a", 30)
		dupB, raDupB := acsUnit(t, s, "dup", acsR, "http://acs/y/dup-b", 20)
		acsMember(t, s, hy, dupA, 1, nil)
		acsMember(t, s, hy, dupB, 1, nil)

		got, err := s.ACSSources(ctx, strings.ToUpper(sha("present")))
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.GetRemote(ctx, acsR)
		if err != nil {
			t.Fatal(err)
		}
		// The remote's stamp comes along, so the fetcher need not read it.
		want := store.LazySource{RemoteArtifactID: raPresent, RemoteID: acsR, Policy: "on_demand", URL: "http://acs/x/present", Size: 7, SHA256: sha("present"),
			RemoteStamp: r.LastUpdated}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("sources of present: %+v, want [%+v]", got, want)
		}
		for _, name := range []string{"removed", "pending", "plain", "absent"} {
			if got, err := s.ACSSources(ctx, sha(name)); err != nil || len(got) != 0 {
				t.Fatalf("sources of %s: %+v %v, want none", name, got, err)
			}
		}
		got, _ = s.ACSSources(ctx, sha("dup"))
		if len(got) != 2 || got[0].RemoteArtifactID != raDupB || got[1].RemoteArtifactID != raDupA {
			t.Fatalf("dup sources %+v, want the older (%s) first", got, raDupB)
		}
		if err := s.MarkRemoteArtifactFailed(ctx, raDupB, 99); err != nil {
			t.Fatal(err)
		}
		got, _ = s.ACSSources(ctx, sha("dup"))
		if len(got) != 2 || got[0].RemoteArtifactID != raDupA || got[1].RemoteArtifactID != raDupB || got[1].FailedAt != 99 {
			t.Fatalf("dup sources after a failure %+v, want the failed one last", got)
		}

		urls, err := s.ACSURLs(ctx, []string{sha("present"), strings.ToUpper(sha("dup")), sha("removed"), sha("absent"), sha("present")})
		if err != nil {
			t.Fatal(err)
		}
		if len(urls) != 2 || urls[sha("present")] != want || urls[sha("dup")].RemoteArtifactID != raDupA {
			t.Fatalf("urls: %+v", urls)
		}
		// Batches beyond one statement's IN list.
		many := make([]string, 0, 1200)
		for i := range 1200 {
			many = append(many, sha(strings.Repeat("n", i)))
		}
		many = append(many, sha("dup"))
		if urls, err := s.ACSURLs(ctx, many); err != nil || len(urls) != 1 || urls[sha("dup")].RemoteArtifactID != raDupA {
			t.Fatalf("batched urls: %+v %v", urls, err)
		}

		// LazyPlan reads LazySources and ACSSources in one query.
		for _, c := range []struct{ unit, sum string }{{present, "present"}, {dupA, "dup"}, {removed, "removed"}, {plainOnly, "plain"}} {
			ca := caOf(t, s, c.unit)
			for _, repo := range []string{"", plain} {
				plan, err := s.LazyPlan(ctx, ca, repo)
				if err != nil {
					t.Fatal(err)
				}
				own, _ := s.LazySources(ctx, ca, repo)
				all, _ := s.LazySources(ctx, ca, "")
				acs, _ := s.ACSSources(ctx, sha(c.sum))
				if !slices.Equal(plan.Sources, own) || !slices.Equal(plan.ACS, acs) || len(plan.Sources)+len(plan.Others) != len(all) {
					t.Fatalf("plan of %s (repository %q): %+v\nwant sources %+v, acs %+v, %d in all", c.sum, repo, plan, own, acs, len(all))
				}
			}
		}

		// The ACS's remote changed: the old remote's artifacts no longer count.
		a.RemoteID = otherR
		if _, err := s.UpdateACS(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ACSSources(ctx, sha("present")); len(got) != 1 || got[0].RemoteID != otherR {
			t.Fatalf("after the remote changed: %+v, want the other remote's artifact", got)
		}

		if s.Dialect() == "sqlite" {
			// The lookup starts at the sha256 index and scans no table.
			plan := queryPlan(t, s, store.ACSSourcesQueryForTest())
			if !strings.Contains(plan, "remote_artifacts_sha256") || strings.Contains(plan, "SCAN ra") ||
				strings.Contains(plan, "SCAN rc") || strings.Contains(plan, "SCAN p") || strings.Contains(plan, "SCAN a") {
				t.Fatalf("ACSSources plan scans a table:\n%s", plan)
			}
		}
	})
}

func caOf(t *testing.T, s *store.Store, contentID string) string {
	t.Helper()
	var id string
	if err := s.QueryRow(t.Context(), `SELECT id FROM content_artifacts WHERE content_id = $1`, contentID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func queryPlan(t *testing.T, s *store.Store, q string) string {
	t.Helper()
	rows, err := s.Query(t.Context(), q, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	return b.String()
}

// LazyPlan leaves the ACS part out while no ACS exists, and notices an ACS
// created or deleted at once: the content generation follows them
// (migration 0074), and the presence is cached per generation.
func TestLazyPlanFollowsACSPresence(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		acsR := acsRemote(t, s, "acs-remote")
		plainR := acsRemote(t, s, "plain-remote")
		hidden := acsRepo(t, s, "hidden", true, 1)
		plain := acsRepo(t, s, "plain", false, 1)
		// The same bytes: a unit of the plain repository, and the ACS
		// remote's unit in what will be the ACS path's repository.
		unit, raPlain := acsUnit(t, s, "bytes", plainR, "http://plain/bytes", 10)
		acsMember(t, s, plain, unit, 1, nil)
		acsUnitID, raACS := acsUnit(t, s, "bytes", acsR, "http://acs/bytes", 20)
		acsMember(t, s, hidden, acsUnitID, 1, nil)
		ca := caOf(t, s, unit)

		plan := func() store.LazyPlan {
			t.Helper()
			p, err := s.LazyPlan(ctx, ca, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Sources) == 0 || p.Sources[0].RemoteArtifactID != raPlain {
				t.Fatalf("own sources %+v, want %s", p.Sources, raPlain)
			}
			return p
		}
		if p := plan(); len(p.ACS) != 0 {
			t.Fatalf("ACS sources %+v without any ACS", p.ACS)
		}

		a := &store.ACS{PulpType: "file.file", Name: "acs", RemoteID: acsR}
		if err := s.InsertACS(ctx, a, []string{""}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetACSPathRepository(ctx, a.Paths[0].ID, hidden); err != nil {
			t.Fatal(err)
		}
		if p := plan(); len(p.ACS) != 1 || p.ACS[0].RemoteArtifactID != raACS {
			t.Fatalf("ACS sources %+v after the ACS was created, want %s", p.ACS, raACS)
		}

		if _, err := s.DeleteACS(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if p := plan(); len(p.ACS) != 0 {
			t.Fatalf("ACS sources %+v after the ACS was deleted", p.ACS)
		}
	})
}
