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
