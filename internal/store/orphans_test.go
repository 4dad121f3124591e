package store_test

import (
	"fmt"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// TestDeleteOrphanContent: only content in no repository version (not
// even a removed one), placed by no publication and untouched since the
// cutoff goes; its content artifacts go with it, the artifacts stay for
// the artifact cleanup; a list of ids limits the cleanup.
func TestDeleteOrphanContent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := s.Exec(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		old, recent := int64(1000), store.Now()
		var artifacts []string
		unit := func(name string, toi int64) string {
			id := store.NewID()
			exec(`INSERT INTO content (id, created, last_updated, pulp_type, timestamp_of_interest, natural_key, repo_key) VALUES ($1, 1, 1, 'file.file', $2, $3, $3)`, id, toi, name)
			art := store.NewID()
			exec(`INSERT INTO artifacts (id, created, last_updated, file, size, sha256, timestamp_of_interest) VALUES ($1, 1, 1, $2, 1, $3, 1)`, art, "artifact/"+name, fmt.Sprintf("%064x", len(artifacts)))
			artifacts = append(artifacts, art)
			exec(`INSERT INTO content_artifacts (id, created, last_updated, content_id, artifact_id, relative_path) VALUES ($1, 1, 1, $2, $3, $4)`, store.NewID(), id, art, name)
			return id
		}
		repo, ver := store.NewID(), store.NewID()
		exec(`INSERT INTO repositories (id, created, last_updated, pulp_type, name, next_version) VALUES ($1, 1, 1, 'file.file', 'r', 3)`, repo)
		exec(`INSERT INTO repository_versions (id, created, last_updated, repository_id, number, complete) VALUES ($1, 1, 1, $2, 1, TRUE)`, ver, repo)
		orphan := unit("orphan", old)
		orphan2 := unit("orphan2", old)
		young := unit("young", recent+60e6)
		current := unit("current", old)
		removed := unit("removed", old)
		published := unit("published", old)
		exec(`INSERT INTO repository_content (id, created, repository_id, content_id, version_added) VALUES ($1, 1, $2, $3, 1)`, store.NewID(), repo, current)
		exec(`INSERT INTO repository_content (id, created, repository_id, content_id, version_added, version_removed) VALUES ($1, 1, $2, $3, 1, 2)`, store.NewID(), repo, removed)
		pub := store.NewID()
		exec(`INSERT INTO publications (id, created, last_updated, pulp_type, repository_version_id, complete) VALUES ($1, 1, 1, 'file.file', $2, TRUE)`, pub, ver)
		exec(`INSERT INTO published_artifacts (id, created, publication_id, relative_path, content_artifact_id)
			SELECT $1, 1, $2, 'p', ca.id FROM content_artifacts ca WHERE ca.content_id = $3`, store.NewID(), pub, published)

		exist, err := s.ExistingContent(ctx, []string{orphan, young, store.NewID()})
		if err != nil || len(exist) != 2 || !exist[orphan] || !exist[young] {
			t.Fatalf("existing content: %v %v", exist, err)
		}
		// Limited to ids: only orphan2 of the listed ones qualifies.
		n, err := s.DeleteOrphanContent(ctx, recent, []string{orphan2, current, young}, 2)
		if err != nil || n != 1 {
			t.Fatalf("limited cleanup: %d %v", n, err)
		}
		n, err = s.DeleteOrphanContent(ctx, recent, nil, 1)
		if err != nil || n != 1 {
			t.Fatalf("cleanup: %d %v", n, err)
		}
		left, err := s.ExistingContent(ctx, []string{orphan, orphan2, young, current, removed, published})
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]bool{orphan: false, orphan2: false, young: true, current: true, removed: true, published: true} {
			if left[id] != want {
				t.Errorf("unit %s present = %v, want %v", id, left[id], want)
			}
		}
		var cas, arts int
		if err := s.QueryRow(ctx, `SELECT COUNT(*) FROM content_artifacts`).Scan(&cas); err != nil {
			t.Fatal(err)
		}
		if err := s.QueryRow(ctx, `SELECT COUNT(*) FROM artifacts`).Scan(&arts); err != nil {
			t.Fatal(err)
		}
		if cas != 4 || arts != 6 {
			t.Errorf("content artifacts %d (want 4, cascaded), artifacts %d (want 6, left for artifact cleanup)", cas, arts)
		}
		if c, _ := s.Count(ctx, "content"); c != 4 {
			t.Errorf("row count of content: %d", c)
		}
	})
}
