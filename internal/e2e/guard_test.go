package e2e

import (
	"encoding/base64"
	"testing"
)

// TestContentGuardOverServer checks the wiring of content guards in a real
// pith: the API creates a guard, a distribution uses it, the content app
// enforces it.
func TestContentGuardOverServer(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		up := newUpstream(t, map[string][]byte{"f.iso": randBytes(100)})
		lazyRepo(t, p, "g", up, "immediate", "g")
		guard := p.create("/pulp/api/v3/contentguards/core/header/", map[string]any{"name": "hg", "header_name": "X-Key", "header_value": "open-sesame"})
		dists := p.get("/pulp/api/v3/distributions/file/file/?name=g").json(t)["results"].([]any)
		href := dists[0].(map[string]any)["pulp_href"].(string)
		p.mustTask(p.patchJSON(href, map[string]any{"content_guard": guard["pulp_href"]}), "completed")
		if r := p.get("/pulp/content/g/f.iso"); r.code != 403 {
			t.Fatalf("without the header: %d %s", r.code, r.body)
		}
		key := base64.StdEncoding.EncodeToString([]byte("open-sesame"))
		if r := p.do("GET", "/pulp/content/g/f.iso", nil, "", "X-Key", key); r.code != 200 || len(r.body) != 100 {
			t.Fatalf("with the header: %d", r.code)
		}
	})
}
