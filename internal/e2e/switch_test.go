package e2e

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// TestDistributionSwitchIsAtomic: while clients hammer a distribution, it
// is switched back and forth between two publications that hold different
// bytes at the same paths. Every response is complete and belongs to one
// publication, and once the switch's task has finished every new request
// sees the new publication.
func TestDistributionSwitchIsAtomic(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		filesA := map[string][]byte{"f.bin": bytes.Repeat([]byte("A"), 64<<10), "g.bin": []byte("alpha")}
		filesB := map[string][]byte{"f.bin": bytes.Repeat([]byte("B"), 64<<10), "g.bin": []byte("beta")}
		pub := func(name string, files map[string][]byte) string {
			up := newUpstream(t, files)
			remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": name, "url": up.URL + "/repo/PULP_MANIFEST"})
			repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": name, "remote": remote["pulp_href"], "autopublish": true})
			task := p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
			for _, r := range task["created_resources"].([]any) {
				if h := r.(string); bytes.Contains([]byte(h), []byte("/publications/")) {
					return h
				}
			}
			t.Fatalf("no publication in %v", task["created_resources"])
			return ""
		}
		pubA, pubB := pub("a", filesA), pub("b", filesB)
		dist := p.mustTask(p.postJSON("/pulp/api/v3/distributions/file/file/", map[string]any{"name": "sw", "base_path": "sw", "publication": pubA}), "completed")
		distHref := dist["created_resources"].([]any)[0].(string)

		stop := make(chan struct{})
		var bad atomic.Int64
		var served [2]atomic.Int64
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				c := &http.Client{}
				for {
					select {
					case <-stop:
						return
					default:
					}
					for _, name := range []string{"f.bin", "g.bin"} {
						resp, err := c.Get(p.base + "/pulp/content/sw/" + name)
						if err != nil {
							bad.Add(1)
							continue
						}
						b, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						switch {
						case err != nil || resp.StatusCode != 200:
							bad.Add(1)
						case bytes.Equal(b, filesA[name]):
							served[0].Add(1)
						case bytes.Equal(b, filesB[name]):
							served[1].Add(1)
						default:
							bad.Add(1)
						}
					}
				}
			})
		}
		for i := range 10 {
			next, want := pubB, filesB
			if i%2 == 1 {
				next, want = pubA, filesA
			}
			p.mustTask(p.patchJSON(distHref, map[string]any{"publication": next}), "completed")
			// The switch is visible to the very next request.
			for _, name := range []string{"f.bin", "g.bin"} {
				if r := p.get("/pulp/content/sw/" + name); r.code != 200 || !bytes.Equal(r.body, want[name]) {
					t.Fatalf("switch %d: %s is not the new publication's (%d)", i, name, r.code)
				}
			}
		}
		close(stop)
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("%d responses were errors, incomplete or mixed", bad.Load())
		}
		if served[0].Load() == 0 || served[1].Load() == 0 {
			t.Fatalf("load did not span both publications: %d / %d", served[0].Load(), served[1].Load())
		}
	})
}
