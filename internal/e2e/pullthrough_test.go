package e2e

import (
	"bytes"
	"testing"
	"time"
)

func TestPullThroughDistribution(t *testing.T) {
	t.Setenv("PITH_PULL_THROUGH_DELAY", "200ms")
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{"a.iso": randBytes(200 << 10), "dir/b.iso": randBytes(1000)}
		up := newUpstream(t, files)
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "pt", "url": up.URL + "/repo/PULP_MANIFEST", "policy": "on_demand"})
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "pt", "autopublish": true})
		p.mustTask(p.postJSON("/pulp/api/v3/distributions/file/file/", map[string]any{"name": "pt", "base_path": "pt",
			"repository": repo["pulp_href"], "remote": remote["pulp_href"]}), "completed")

		// Nothing synced: the path is fetched from the remote, streamed
		// and stored.
		for range 2 {
			if r := p.get("/pulp/content/pt/a.iso"); r.code != 200 || !bytes.Equal(r.body, files["a.iso"]) {
				t.Fatalf("pull-through GET: %d %s", r.code, r.body[:min(len(r.body), 200)])
			}
		}
		if up.count("a.iso") != 1 {
			t.Fatalf("upstream requests for a.iso = %d, want 1", up.count("a.iso"))
		}
		if r := p.get("/pulp/content/pt/dir/b.iso"); r.code != 200 || !bytes.Equal(r.body, files["dir/b.iso"]) {
			t.Fatalf("nested path: %d", r.code)
		}

		// An upstream 404 is remembered briefly.
		for range 3 {
			if r := p.get("/pulp/content/pt/missing.iso"); r.code != 404 {
				t.Fatalf("missing: %d", r.code)
			}
		}
		if up.count("missing.iso") != 1 {
			t.Fatalf("upstream asked %d times for a missing file, want 1 (negative cache)", up.count("missing.iso"))
		}
		// An outage is not: the next request tries again.
		up.mu.Lock()
		files["c.iso"] = randBytes(500)
		up.script["c.iso"] = []string{"500", "500", "500", "500"}
		up.mu.Unlock()
		if r := p.get("/pulp/content/pt/c.iso"); r.code != 404 {
			t.Fatalf("during the outage: %d", r.code)
		}
		if r := p.get("/pulp/content/pt/c.iso"); r.code != 200 || !bytes.Equal(r.body, files["c.iso"]) {
			t.Fatalf("after the outage: %d", r.code)
		}

		// What was served lands in the distribution's repository, batched.
		deadline := time.Now().Add(15 * time.Second)
		for {
			v := p.get(repo["pulp_href"].(string)).json(t)["latest_version_href"].(string)
			cs := p.get(v).json(t)["content_summary"].(map[string]any)["present"].(map[string]any)
			if f, ok := cs["file.file"].(map[string]any); ok && f["count"].(float64) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("repository content after pull-through: %v", cs)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Now the publication has it: served without the remote.
		if r := p.get("/pulp/content/pt/a.iso"); r.code != 200 || up.count("a.iso") != 1 {
			t.Fatalf("after recording: %d, %d upstream requests", r.code, up.count("a.iso"))
		}
	})
}
