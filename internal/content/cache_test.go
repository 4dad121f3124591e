package content_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// TestCachedPathFollowsReclaim: a path served once is cached; when its
// artifact is reclaimed (row unlinked, file deleted) the next request does
// not answer from the stale cache entry but looks again and finds the unit
// is no longer stored.
func TestCachedPathFollowsReclaim(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		dir := t.TempDir()
		e := newBenchEnvIn(t, s, dir)
		e.publish(t, "r", 1, "rec", 3)
		get := func(p string) (int, string) {
			resp, err := http.Get(e.srv.URL + "/pulp/content/rec/" + p)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		p := benchPath(0)
		if code, _ := get(p); code != 200 {
			t.Fatalf("first GET: %d", code)
		}
		ctx := context.Background()
		if _, err := s.Exec(ctx, `UPDATE content_artifacts SET artifact_id = NULL WHERE relative_path = $1`, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, e.files[0])); err != nil {
			t.Fatal(err)
		}
		code, body := get(p)
		if code != 404 || !strings.Contains(body, "not stored") {
			t.Fatalf("after reclaim: %d %q, want the lazy path's 404", code, body)
		}
	})
}

// TestPathIndexServesFromMemory: once a publication's path index is
// built, its stored files are served without the database (here: with
// the content tables renamed away), published files win over pass-through
// content at the same path, and a file that went missing since the index
// was built is looked up again rather than served from the stale entry.
func TestPathIndexServesFromMemory(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		dir := t.TempDir()
		e := newBenchEnvIn(t, s, dir)
		e.publish(t, "idx", 1, "idx", 50)
		ctx := context.Background()
		// A published file at the path of unit 1 replaces it.
		var pubID, artID string
		if err := s.QueryRow(ctx, `SELECT id FROM publications`).Scan(&pubID); err != nil {
			t.Fatal(err)
		}
		if err := s.QueryRow(ctx, `SELECT artifact_id FROM content_artifacts WHERE relative_path = $1`, benchPath(2)).Scan(&artID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Exec(ctx, `INSERT INTO published_artifacts (id, created, publication_id, relative_path, artifact_id) VALUES ($1, $2, $3, $4, $5)`,
			store.NewID(), store.Now(), pubID, benchPath(1), artID); err != nil {
			t.Fatal(err)
		}
		get := func(p string, hdr ...string) (*http.Response, []byte) {
			req, _ := http.NewRequest("GET", e.srv.URL+"/pulp/content/idx/"+p, nil)
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp, b
		}
		want := func(i int) []byte { b, _ := os.ReadFile(filepath.Join(dir, e.files[i%len(e.files)])); return b }
		before, _ := get(benchPath(0))
		if before.StatusCode != 200 {
			t.Fatalf("first GET: %d", before.StatusCode)
		}
		e.waitIndexed(t, 50)
		if _, err := s.Exec(ctx, `ALTER TABLE content_artifacts RENAME TO content_artifacts_away`); err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			resp, body := get(benchPath(i))
			wantBody := want(i)
			if i == 1 {
				wantBody = want(2) // the published file, not the content
			}
			if resp.StatusCode != 200 || string(body) != string(wantBody) {
				t.Fatalf("%s from the index: %d, %d bytes", benchPath(i), resp.StatusCode, len(body))
			}
		}
		resp, _ := get(benchPath(0))
		for _, k := range []string{"ETag", "Last-Modified", "Content-Length", "Cache-Control"} {
			if resp.Header.Get(k) != before.Header.Get(k) {
				t.Errorf("%s from the index %q, from the database %q", k, resp.Header.Get(k), before.Header.Get(k))
			}
		}
		if resp, body := get(benchPath(7), "Range", "bytes=10-19"); resp.StatusCode != 206 || string(body) != string(want(7)[10:20]) {
			t.Fatalf("range from the index: %d", resp.StatusCode)
		}
		if _, err := s.Exec(ctx, `ALTER TABLE content_artifacts_away RENAME TO content_artifacts`); err != nil {
			t.Fatal(err)
		}
		// Reclaimed after the index was built.
		p := benchPath(3)
		if _, err := s.Exec(ctx, `UPDATE content_artifacts SET artifact_id = NULL WHERE relative_path = $1`, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, e.files[3])); err != nil {
			t.Fatal(err)
		}
		if resp, body := get(p); resp.StatusCode != 404 || !strings.Contains(string(body), "not stored") {
			t.Fatalf("after reclaim: %d %q, want the lazy path's 404", resp.StatusCode, body)
		}
	})
}
