package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lazyRepo syncs a repository with autopublish from up with the given
// policy and distributes it at base; it returns the repository and the
// remote as the API shows them.
func lazyRepo(t *testing.T, p *instance, name string, up *upstream, policy, base string) (repo, remote map[string]any) {
	t.Helper()
	remote = p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": name, "url": up.URL + "/repo/PULP_MANIFEST", "policy": policy})
	repo = p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": name, "remote": remote["pulp_href"], "autopublish": true})
	p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
	p.mustTask(p.postJSON("/pulp/api/v3/distributions/file/file/", map[string]any{"name": name, "base_path": base, "repository": repo["pulp_href"]}), "completed")
	return repo, remote
}

// artifactOf returns the artifact href of the file unit at relPath, or "".
func artifactOf(t *testing.T, p *instance, relPath string) string {
	t.Helper()
	list := p.get("/pulp/api/v3/content/file/files/?relative_path=" + relPath).json(t)
	for _, c := range list["results"].([]any) {
		if a, ok := c.(map[string]any)["artifact"].(string); ok {
			return a
		}
	}
	return ""
}

func TestLazyContentEndToEnd(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{"a.iso": randBytes(300 << 10), "b.iso": randBytes(4096)}
		up := newUpstream(t, files)
		lazyRepo(t, p, "od", up, "on_demand", "od")
		if up.total() != 1 {
			t.Fatalf("on_demand sync made %d upstream requests, want the manifest only", up.total())
		}

		// HEAD is answered from metadata alone.
		h := p.do("HEAD", "/pulp/content/od/b.iso", nil, "")
		if h.code != 200 || h.hdr.Get("Content-Length") != "4096" || h.hdr.Get("ETag") != `"`+sum(files["b.iso"])+`"` {
			t.Fatalf("HEAD: %d %v", h.code, h.hdr)
		}
		if up.count("b.iso") != 0 {
			t.Fatal("HEAD downloaded the file")
		}

		// The first GET streams from the upstream, verifies and commits.
		r := p.get("/pulp/content/od/a.iso")
		if r.code != 200 || !bytes.Equal(r.body, files["a.iso"]) || r.hdr.Get("Repr-Digest") == "" {
			t.Fatalf("first GET: %d, %d bytes, %v", r.code, len(r.body), r.hdr)
		}
		deadline := time.Now().Add(10 * time.Second)
		for artifactOf(t, p, "a.iso") == "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if artifactOf(t, p, "a.iso") == "" {
			t.Fatal("on_demand content has no artifact after it was served")
		}
		// The second is a local hit.
		if r := p.get("/pulp/content/od/a.iso"); r.code != 200 || !bytes.Equal(r.body, files["a.iso"]) {
			t.Fatalf("second GET: %d", r.code)
		}
		if up.count("a.iso") != 1 {
			t.Fatalf("upstream saw %d requests for a.iso, want 1", up.count("a.iso"))
		}
		// A range of uncached content.
		r = p.do("GET", "/pulp/content/od/b.iso", nil, "", "Range", "bytes=10-19")
		if r.code != 206 || !bytes.Equal(r.body, files["b.iso"][10:20]) {
			t.Fatalf("range: %d %q", r.code, r.body)
		}

		// streamed: fetched on every request, never stored.
		sfiles := map[string][]byte{"s.iso": randBytes(100 << 10)}
		sup := newUpstream(t, sfiles)
		lazyRepo(t, p, "st", sup, "streamed", "st")
		for range 2 {
			if r := p.get("/pulp/content/st/s.iso"); r.code != 200 || !bytes.Equal(r.body, sfiles["s.iso"]) {
				t.Fatalf("streamed GET: %d", r.code)
			}
		}
		if sup.count("s.iso") != 2 {
			t.Fatalf("streamed upstream requests = %d, want 2", sup.count("s.iso"))
		}
		if artifactOf(t, p, "s.iso") != "" {
			t.Fatal("streamed content was stored")
		}

		// A corrupt upstream: the transfer is aborted, nothing stored, and
		// within the cooldown the next request is a 404 that says why.
		cfiles := map[string][]byte{"c.iso": randBytes(64 << 10)}
		cup := newUpstream(t, cfiles)
		lazyRepo(t, p, "co", cup, "on_demand", "co")
		cup.mu.Lock()
		cup.script["c.iso"] = []string{"corrupt"}
		cup.mu.Unlock()
		if r, err := getToEnd(p.base + "/pulp/content/co/c.iso"); err == nil && r == 200 {
			t.Fatal("corrupt transfer ended cleanly")
		}
		r = p.get("/pulp/content/co/c.iso")
		if r.code != 404 || !strings.Contains(string(r.body), "cooling down") {
			t.Fatalf("during cooldown: %d %s", r.code, r.body)
		}
		if artifactOf(t, p, "c.iso") != "" || cup.count("c.iso") != 1 {
			t.Fatalf("after corrupt transfer: artifact %q, %d upstream requests", artifactOf(t, p, "c.iso"), cup.count("c.iso"))
		}

		// Per-distribution and lazy metrics.
		m := string(p.get("/metrics").body)
		for _, want := range []string{
			`pith_content_requests_total{distribution="od",status="2xx"} 4`,
			// The aborted transfer may be retried by the client's transport
			// (nothing reached it yet) and answered 404 in the cooldown.
			`pith_content_requests_total{distribution="co",status="4xx"}`,
			`pith_content_requests_total{distribution="co",status="aborted"} 1`,
			`pith_lazy_requests_total{result="miss"}`,
			`pith_lazy_digest_failures_total 1`,
			`pith_content_request_duration_seconds_bucket{distribution="st"`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s in:\n%s", want, grepLines(m, "pith_content_requests_total"))
			}
		}
	})
}

// TestLazyCredentialIsolation: content a repository lacks is fetched only
// through remotes linked to that repository, never through another
// repository's remote that happens to know the same digest.
func TestLazyCredentialIsolation(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		shared := randBytes(8192)
		upA := newUpstream(t, map[string][]byte{"x.iso": shared})
		upB := newUpstream(t, map[string][]byte{"x.iso": shared})
		lazyRepo(t, p, "a", upA, "on_demand", "a")
		lazyRepo(t, p, "b", upB, "on_demand", "b")
		// A's upstream loses the file; B's (someone else's remote) has it.
		upA.mu.Lock()
		upA.script["x.iso"] = []string{"404", "404", "404", "404", "404"}
		upA.mu.Unlock()
		r := p.get("/pulp/content/a/x.iso")
		if r.code != 404 {
			t.Fatalf("status %d, want 404", r.code)
		}
		if upB.count("x.iso") != 0 {
			t.Fatal("repository a's content was fetched through repository b's remote")
		}
		// Through its own distribution B fetches it, and then A serves the
		// stored artifact: bytes are content-addressed and verified.
		if r := p.get("/pulp/content/b/x.iso"); r.code != 200 || !bytes.Equal(r.body, shared) {
			t.Fatalf("b: %d", r.code)
		}
		deadline := time.Now().Add(10 * time.Second)
		for artifactOf(t, p, "x.iso") == "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if r := p.get("/pulp/content/a/x.iso"); r.code != 200 || !bytes.Equal(r.body, shared) {
			t.Fatalf("a after b stored it: %d", r.code)
		}
	})
}

// getToEnd reads url to the end and reports the status and any transfer
// error (an aborted body is an error).
func getToEnd(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return resp.StatusCode, err
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLazyFetchUsesRemoteSettings: the content app's upstream requests use
// the remote's proxy (with credentials), basic auth and headers, and pick
// up changes to the remote.
func TestLazyFetchUsesRemoteSettings(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{"a.iso": randBytes(5000), "b.iso": randBytes(6000)}
		up := newUpstream(t, files)
		var authorized atomic.Int64
		inner := up.Config.Handler
		up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, pw, ok := r.BasicAuth()
			if !ok || u != "mirror" || pw != "pw" || r.Header.Get("X-Mirror-Token") != "s3cret" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			authorized.Add(1)
			inner.ServeHTTP(w, r)
		})
		proxy, forwarded := forwardProxy(t, "pu", "pp")
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{
			"name": "r", "url": up.URL + "/repo/PULP_MANIFEST", "policy": "on_demand",
			"proxy_url": proxy.URL, "proxy_username": "pu", "proxy_password": "pp",
			"username": "mirror", "password": "pw", "headers": []map[string]string{{"X-Mirror-Token": "s3cret"}},
		})
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "r", "remote": remote["pulp_href"], "autopublish": true})
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		p.mustTask(p.postJSON("/pulp/api/v3/distributions/file/file/", map[string]any{"name": "r", "base_path": "r", "repository": repo["pulp_href"]}), "completed")
		if r := p.get("/pulp/content/r/a.iso"); r.code != 200 || !bytes.Equal(r.body, files["a.iso"]) {
			t.Fatalf("lazy GET through proxy with auth: %d %s", r.code, r.body)
		}
		if forwarded.Load() != 2 || authorized.Load() != 2 {
			t.Fatalf("proxy forwarded %d, upstream authorized %d; want 2 each (manifest, a.iso)", forwarded.Load(), authorized.Load())
		}
		// A changed password takes effect for the next fetch.
		p.mustTask(p.patchJSON(remote["pulp_href"].(string), map[string]any{"password": "wrong"}), "completed")
		if r := p.get("/pulp/content/r/b.iso"); r.code != 404 || !strings.Contains(string(r.body), "401") {
			t.Fatalf("with a wrong password: %d %s", r.code, r.body)
		}
	})
}

// TestLazyCachedLookupFollowsCommit: where a lazy path's bytes come from is
// cached briefly (a HEAD, say, has done the lookups a cold GET needs), but
// once this process commits the fetched artifact the next request serves
// the stored file directly, not through the fetcher by the stale entry.
func TestLazyCachedLookupFollowsCommit(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{"a.iso": randBytes(200 << 10)}
		up := newUpstream(t, files)
		lazyRepo(t, p, "lc", up, "on_demand", "lc")
		if h := p.do("HEAD", "/pulp/content/lc/a.iso", nil, ""); h.code != 200 {
			t.Fatalf("HEAD: %d", h.code)
		}
		if r := p.get("/pulp/content/lc/a.iso"); r.code != 200 || !bytes.Equal(r.body, files["a.iso"]) {
			t.Fatalf("first GET: %d", r.code)
		}
		deadline := time.Now().Add(10 * time.Second)
		for artifactOf(t, p, "a.iso") == "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if artifactOf(t, p, "a.iso") == "" {
			t.Fatal("not committed")
		}
		hits := lazyHits(t, p)
		if r := p.get("/pulp/content/lc/a.iso"); r.code != 200 || !bytes.Equal(r.body, files["a.iso"]) {
			t.Fatalf("second GET: %d", r.code)
		}
		if n := lazyHits(t, p); n != hits {
			t.Fatalf("the stored file went through the fetcher (lazy hits %v → %v): the cached lookup outlived the commit", hits, n)
		}
		if up.count("a.iso") != 1 {
			t.Fatalf("upstream saw %d requests, want 1", up.count("a.iso"))
		}
	})
}

// lazyHits reads pith_lazy_requests_total{result="hit"}.
func lazyHits(t *testing.T, p *instance) string {
	t.Helper()
	const name = `pith_lazy_requests_total{result="hit"} `
	for _, l := range strings.Split(string(p.get("/metrics").body), "\n") {
		if v, ok := strings.CutPrefix(l, name); ok {
			return v
		}
	}
	t.Fatal("no lazy hit counter")
	return ""
}
