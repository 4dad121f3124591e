package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestACSServesFirst: content an alternate content source holds is fetched
// from the ACS first, by the content app and by an immediate sync.
func TestACSServesFirst(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{"a.iso": randBytes(20 << 10), "b.iso": randBytes(30 << 10),
			"c.iso": randBytes(10 << 10), "d.iso": randBytes(12 << 10)}
		origin := newUpstream(t, files)
		near := newUpstream(t, files) // the nearby mirror the ACS points at
		acsRemote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "near", "url": near.URL + "/", "policy": "on_demand"})
		acs := p.create("/pulp/api/v3/acs/file/file/", map[string]any{"name": "near", "remote": acsRemote["pulp_href"], "paths": []string{"repo/PULP_MANIFEST"}})
		r := p.postJSON(acs["pulp_href"].(string)+"refresh/", map[string]any{})
		if r.code != 202 {
			t.Fatalf("refresh: %d %s", r.code, r.body)
		}
		group := r.json(t)["task_group"].(string)
		deadline := time.Now().Add(20 * time.Second)
		for {
			g := p.get(group).json(t)
			if g["completed"].(float64) == 1 {
				break
			}
			if time.Now().After(deadline) || g["failed"].(float64) > 0 {
				t.Fatalf("refresh group: %v", g)
			}
			time.Sleep(50 * time.Millisecond)
		}

		lazyRepo(t, p, "od", origin, "on_demand", "od")
		if r := p.get("/pulp/content/od/a.iso"); r.code != 200 || !bytes.Equal(r.body, files["a.iso"]) {
			t.Fatalf("GET: %d %s", r.code, r.body[:min(200, len(r.body))])
		}
		if near.count("a.iso") != 1 || origin.count("a.iso") != 0 {
			t.Fatalf("content app fetched a.iso %d times from the ACS and %d from the origin; want 1 and 0", near.count("a.iso"), origin.count("a.iso"))
		}
		// The ACS failing before a response: the origin delivers.
		near.mu.Lock()
		near.script["b.iso"] = []string{"404"}
		near.mu.Unlock()
		if r := p.get("/pulp/content/od/b.iso"); r.code != 200 || !bytes.Equal(r.body, files["b.iso"]) {
			t.Fatalf("fallback to the origin: %d %s", r.code, strings.TrimSpace(string(r.body)))
		}
		if origin.count("b.iso") != 1 {
			t.Fatalf("origin requests for b.iso = %d, want 1", origin.count("b.iso"))
		}

		// An immediate sync from the origin downloads from the ACS what it
		// has, falls back to the origin where the ACS fails, and records
		// the origin's URLs.
		near.mu.Lock()
		near.script["d.iso"] = []string{"500", "500", "500", "500", "500"}
		near.mu.Unlock()
		im := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "im", "url": origin.URL + "/repo/PULP_MANIFEST"})
		imRepo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "im", "remote": im["pulp_href"]})
		p.mustTask(p.postJSON(imRepo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		if near.count("c.iso") != 1 || origin.count("c.iso") != 0 {
			t.Fatalf("sync fetched c.iso %d times from the ACS and %d from the origin; want 1 and 0", near.count("c.iso"), origin.count("c.iso"))
		}
		if origin.count("d.iso") != 1 {
			t.Fatalf("sync fetched d.iso %d times from the origin after the ACS failed; want 1", origin.count("d.iso"))
		}
		for _, name := range []string{"a.iso", "b.iso", "c.iso", "d.iso"} {
			if artifactOf(t, p, name) == "" {
				t.Fatalf("%s has no artifact after the immediate sync", name)
			}
		}
		if n := origin.count("a.iso") + near.count("a.iso"); n != 1 {
			t.Fatalf("a.iso was stored already, yet fetched again (%d requests in all)", n)
		}
		// Served through the immediate repository: stored bytes.
		p.mustTask(p.postJSON("/pulp/api/v3/publications/file/file/", map[string]any{"repository": imRepo["pulp_href"]}), "completed")
		p.mustTask(p.postJSON("/pulp/api/v3/distributions/file/file/", map[string]any{"name": "im", "base_path": "im", "repository": imRepo["pulp_href"]}), "completed")
		if r := p.get("/pulp/content/im/c.iso"); r.code != 200 || !bytes.Equal(r.body, files["c.iso"]) {
			t.Fatalf("c.iso from the ACS: %d", r.code)
		}
	})
}
