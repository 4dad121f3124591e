package e2e

import (
	"bytes"
	"testing"
	"time"
)

// TestSupersededPublicationStaysServable: after auto-distribute moves a
// distribution to a new publication, files only the previous one had are
// still served for the retention period, then not.
func TestSupersededPublicationStaysServable(t *testing.T) {
	t.Setenv("PITH_DISTRIBUTED_PUBLICATION_RETENTION", "3s")
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{"old.iso": randBytes(1000), "keep.iso": randBytes(1000)}
		up := newUpstream(t, files)
		repo, _ := lazyRepo(t, p, "ret", up, "immediate", "ret")
		if r := p.get("/pulp/content/ret/old.iso"); r.code != 200 {
			t.Fatalf("before: %d", r.code)
		}
		up.mu.Lock()
		delete(files, "old.iso")
		files["new.iso"] = randBytes(1000)
		up.mu.Unlock()
		old := p.get("/pulp/api/v3/content/file/files/?relative_path=old.iso").json(t)["results"].([]any)[0].(map[string]any)["pulp_href"]
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"modify/", map[string]any{"remove_content_units": []any{old}}), "completed")
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		switched := time.Now()
		if r := p.get("/pulp/content/ret/new.iso"); r.code != 200 {
			t.Fatalf("new publication not served: %d", r.code)
		}
		// The manifest is the new publication's; the old file still answers.
		if r := p.get("/pulp/content/ret/PULP_MANIFEST"); r.code != 200 || bytes.Contains(r.body, []byte("old.iso")) {
			t.Fatalf("manifest: %d %s", r.code, r.body)
		}
		if r := p.get("/pulp/content/ret/old.iso"); r.code != 200 {
			t.Fatalf("file of the superseded publication within the retention period: %d", r.code)
		}
		time.Sleep(time.Until(switched.Add(3500 * time.Millisecond)))
		if r := p.get("/pulp/content/ret/old.iso"); r.code != 404 {
			t.Fatalf("after the retention period: %d", r.code)
		}
	})
}
