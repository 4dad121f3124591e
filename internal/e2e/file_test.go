package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream serves a file repository: PULP_MANIFEST plus the files, counting
// requests per path, with per-path misbehaviour scripts.
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	hits   map[string]int
	script map[string][]string // per path, one action per request: ok, truncate, corrupt, 429, 500, 404, slow
	extra  string              // appended to the manifest (bad lines)
}

func newUpstream(t *testing.T, files map[string][]byte) *upstream {
	u := &upstream{files: files, hits: map[string]int{}, script: map[string][]string{}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) manifest() string {
	var b strings.Builder
	for name, data := range u.files {
		fmt.Fprintf(&b, "%s,%s,%d\n", name, sum(data), len(data))
	}
	return b.String() + u.extra
}

func (u *upstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[path]
}

func (u *upstream) total() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, c := range u.hits {
		n += c
	}
	return n
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/repo/")
	u.mu.Lock()
	u.hits[name]++
	action := "ok"
	if s := u.script[name]; len(s) > 0 {
		action, u.script[name] = s[0], s[1:]
	}
	data, ok := u.files[name]
	if name == "PULP_MANIFEST" {
		data, ok = []byte(u.manifest()), true
	}
	u.mu.Unlock()
	switch action {
	case "429":
		w.WriteHeader(429)
		return
	case "500":
		w.WriteHeader(500)
		return
	case "404":
		ok = false
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	switch action {
	case "truncate":
		w.Write(data[:len(data)/2])
		if hj, ok := w.(http.Hijacker); ok {
			c, _, _ := hj.Hijack()
			c.Close()
		}
		return
	case "corrupt":
		bad := append([]byte(nil), data...)
		bad[0] ^= 0xff
		w.Write(bad)
		return
	}
	w.Write(data)
}

func (p *instance) mustTask(r resp, want string) map[string]any {
	p.t.Helper()
	if r.code != 202 {
		p.t.Fatalf("want 202, got %d %s", r.code, r.body)
	}
	task := p.waitTask(r.json(p.t)["task"].(string))
	if task["state"] != want {
		p.t.Fatalf("task %v ended %v, want %s: %v", task["name"], task["state"], want, task["error"])
	}
	return task
}

func (p *instance) create(path string, body map[string]any) map[string]any {
	p.t.Helper()
	r := p.postJSON(path, body)
	if r.code != 201 {
		p.t.Fatalf("create %s: %d %s", path, r.code, r.body)
	}
	return r.json(p.t)
}

func basicFiles() map[string][]byte {
	return map[string][]byte{"1.iso": randBytes(1024), "2.iso": randBytes(1024), "dir/3,with,commas.iso": randBytes(1024)}
}

func TestFileSyncPublishWorkflow(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		up := newUpstream(t, basicFiles())
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "r", "url": up.URL + "/repo/PULP_MANIFEST"})
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "repo", "remote": remote["pulp_href"]})
		if repo["latest_version_href"] != repo["pulp_href"].(string)+"versions/0/" {
			t.Fatalf("version 0: %v", repo["latest_version_href"])
		}
		task := p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		created := task["created_resources"].([]any)
		if len(created) != 1 || !strings.HasSuffix(created[0].(string), "/versions/1/") {
			t.Fatalf("created_resources: %v", created)
		}
		codes := map[string]bool{}
		for _, pr := range task["progress_reports"].([]any) {
			codes[pr.(map[string]any)["code"].(string)] = true
		}
		for _, c := range []string{"sync.downloading.metadata", "sync.parsing.metadata", "sync.downloading.artifacts", "associating.content"} {
			if !codes[c] {
				t.Errorf("progress report %s missing: %v", c, codes)
			}
		}
		v1 := p.get(created[0].(string)).json(t)
		present := v1["content_summary"].(map[string]any)["present"].(map[string]any)["file.file"].(map[string]any)
		if present["count"].(float64) != 3 {
			t.Fatalf("content_summary: %v", v1["content_summary"])
		}
		list := p.get(present["href"].(string)).json(t)
		if list["count"].(float64) != 3 {
			t.Fatalf("content in version: %v", list)
		}
		for _, c := range list["results"].([]any) {
			cm := c.(map[string]any)
			want := sum(up.files[cm["relative_path"].(string)])
			if cm["sha256"] != want || cm["artifact"] == nil {
				t.Errorf("content %v: sha256 %v want %v", cm["relative_path"], cm["sha256"], want)
			}
		}
		// Re-sync of an unchanged manifest: no new version, no artifact fetched.
		before := up.total()
		start := time.Now()
		task = p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		if len(task["created_resources"].([]any)) != 0 {
			t.Fatalf("no-op sync created %v", task["created_resources"])
		}
		if got := up.total() - before; got != 1 {
			t.Fatalf("no-op re-sync made %d upstream requests, want 1 (the manifest)", got)
		}
		t.Logf("no-op re-sync took %s", time.Since(start))
		// Publish and distribute.
		task = p.mustTask(p.postJSON("/pulp/api/v3/publications/file/file/", map[string]any{"repository": repo["pulp_href"]}), "completed")
		pub := p.get(task["created_resources"].([]any)[0].(string)).json(t)
		if pub["manifest"] != "PULP_MANIFEST" || pub["repository_version"] != created[0] {
			t.Fatalf("publication: %v", pub)
		}
		task = p.mustTask(p.postJSON("/pulp/api/v3/distributions/file/file/", map[string]any{"name": "d", "base_path": "files/d", "publication": pub["pulp_href"]}), "completed")
		dist := p.get(task["created_resources"].([]any)[0].(string)).json(t)
		if dist["base_url"] != p.base+"/pulp/content/files/d/" {
			t.Fatalf("base_url: %v", dist["base_url"])
		}
		// A distribution protects the version it serves.
		if r := p.do("DELETE", created[0].(string), nil, ""); r.code != 400 {
			t.Fatalf("delete served version: %d %s", r.code, r.body)
		}
	})
}

func TestSyncRetriesMisbehavingUpstream(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		up := newUpstream(t, basicFiles())
		up.script["1.iso"] = []string{"truncate", "corrupt", "429", "ok"}
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "r", "url": up.URL + "/repo/PULP_MANIFEST"})
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "repo"})
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"remote": remote["pulp_href"]}), "completed")
		if n := up.count("1.iso"); n != 4 {
			t.Fatalf("1.iso requested %d times, want 4", n)
		}
		if n := up.total(); n != 1+4+1+1 {
			t.Fatalf("total requests %d, want 7", n)
		}
	})
}

func TestSyncFailuresLeaveNothing(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := basicFiles()
		up := newUpstream(t, files)
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "repo"})
		sync := func(name, url string) map[string]any {
			remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": name, "url": url, "max_retries": 1})
			return p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"remote": remote["pulp_href"]}), "failed")
		}
		task := sync("unreachable", "http://127.0.0.1:1/PULP_MANIFEST")
		if !strings.Contains(fmt.Sprint(task["error"]), "manifest") {
			t.Errorf("unreachable: %v", task["error"])
		}
		sync("missing", up.URL+"/nothing/PULP_MANIFEST")
		up.script["2.iso"] = []string{"corrupt", "corrupt", "corrupt", "corrupt"}
		task = sync("corrupt", up.URL+"/repo/PULP_MANIFEST")
		if !strings.Contains(strings.ToLower(fmt.Sprint(task["error"])), "checksum") && !strings.Contains(fmt.Sprint(task["error"]), "digest") {
			t.Errorf("corrupt: %v", task["error"])
		}
		up.extra = "bad-line-without-commas\n"
		task = sync("badmanifest", up.URL+"/repo/PULP_MANIFEST")
		if !strings.Contains(fmt.Sprint(task["error"]), "line 4") {
			t.Errorf("bad manifest: %v", task["error"])
		}
		up.extra = ""
		tls := httptest.NewTLSServer(http.NotFoundHandler())
		defer tls.Close()
		task = sync("tls", tls.URL+"/PULP_MANIFEST")
		if !strings.Contains(fmt.Sprint(task["error"]), "certificate") {
			t.Errorf("untrusted TLS: %v", task["error"])
		}
		r := p.get(repo["pulp_href"].(string)).json(t)
		if !strings.HasSuffix(r["latest_version_href"].(string), "/versions/0/") {
			t.Fatalf("a failed sync created a version: %v", r["latest_version_href"])
		}
		if n := p.get("/pulp/api/v3/content/file/files/").json(t)["count"].(float64); n > 3 {
			t.Fatalf("content count %v", n)
		}
		if tmp := filesUnder(t, filepath.Join(p.dataDir, "media", "tmp")); len(tmp) != 0 {
			t.Fatalf("temp files left: %v", tmp)
		}
		// Mirror into an autopublish repository is refused.
		ap := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "ap", "autopublish": true})
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "ok", "url": up.URL + "/repo/PULP_MANIFEST"})
		if r := p.postJSON(ap["pulp_href"].(string)+"sync/", map[string]any{"remote": remote["pulp_href"], "mirror": true}); r.code != 400 || !strings.Contains(string(r.body), "mirror") {
			t.Fatalf("mirror + autopublish: %d %s", r.code, r.body)
		}
		if r := p.postJSON(ap["pulp_href"].(string)+"sync/", map[string]any{}); r.code != 400 {
			t.Fatalf("sync without remote: %d %s", r.code, r.body)
		}
	})
}

func TestOnDemandSyncAndMirror(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		up := newUpstream(t, basicFiles())
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "r", "url": up.URL + "/repo/PULP_MANIFEST", "policy": "on_demand"})
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "repo", "remote": remote["pulp_href"]})
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		if n := up.total(); n != 1 {
			t.Fatalf("on_demand sync fetched %d times, want only the manifest", n)
		}
		list := p.get("/pulp/api/v3/content/file/files/").json(t)
		for _, c := range list["results"].([]any) {
			cm := c.(map[string]any)
			if cm["artifact"] != nil || cm["sha256"] != nil {
				t.Fatalf("on-demand unit has artifact/checksums: %v", cm)
			}
		}
		// Switching to immediate downloads what is missing.
		p.mustTask(p.patchJSON(remote["pulp_href"].(string), map[string]any{"policy": "immediate"}), "completed")
		task := p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		if len(task["created_resources"].([]any)) != 0 {
			t.Fatalf("immediate re-sync made a version: %v", task["created_resources"])
		}
		for _, c := range p.get("/pulp/api/v3/content/file/files/").json(t)["results"].([]any) {
			if c.(map[string]any)["artifact"] == nil {
				t.Fatalf("artifact not attached after immediate sync: %v", c)
			}
		}
		// Mirror: upstream drops a file; the version drops it too, and a
		// pass-through publication carries the upstream manifest.
		delete(up.files, "2.iso")
		task = p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"mirror": true}), "completed")
		created := task["created_resources"].([]any)
		if len(created) != 2 {
			t.Fatalf("mirror created %v, want version and publication", created)
		}
		v := p.get(created[0].(string)).json(t)
		cs := v["content_summary"].(map[string]any)
		if cs["present"].(map[string]any)["file.file"].(map[string]any)["count"].(float64) != 2 || cs["removed"].(map[string]any)["file.file"].(map[string]any)["count"].(float64) != 1 {
			t.Fatalf("mirror summary: %v", cs)
		}
	})
}

func TestModifyAndVersions(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		up := newUpstream(t, basicFiles())
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "r", "url": up.URL + "/repo/PULP_MANIFEST"})
		src := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "src", "remote": remote["pulp_href"]})
		p.mustTask(p.postJSON(src["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		units := p.get("/pulp/api/v3/content/file/files/?ordering=relative_path").json(t)["results"].([]any)
		href := func(i int) string { return units[i].(map[string]any)["pulp_href"].(string) }
		dst := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "dst", "autopublish": true, "manifest": "TEST_MANIFEST"})
		task := p.mustTask(p.postJSON(dst["pulp_href"].(string)+"modify/", map[string]any{"add_content_units": []string{href(0), href(1)}}), "completed")
		if c := task["created_resources"].([]any); len(c) != 2 || !strings.Contains(c[1].(string), "/publications/file/file/") {
			t.Fatalf("autopublish: created %v", c)
		}
		p.mustTask(p.postJSON(dst["pulp_href"].(string)+"modify/", map[string]any{"remove_content_units": []string{href(0)}, "add_content_units": []string{href(2)}}), "completed")
		if r := p.postJSON(dst["pulp_href"].(string)+"modify/", map[string]any{"add_content_units": []string{"/pulp/api/v3/content/file/files/nope/"}}); r.code != 400 {
			t.Fatalf("bad href: %d %s", r.code, r.body)
		}
		vs := p.get(dst["pulp_href"].(string) + "versions/").json(t)
		if vs["count"].(float64) != 3 {
			t.Fatalf("versions: %v", vs["count"])
		}
		// Delete version 1 (squash) — content of version 2 unchanged.
		before := p.get("/pulp/api/v3/content/file/files/?repository_version=" + dst["pulp_href"].(string) + "versions/2/").json(t)["count"]
		p.mustTask(p.do("DELETE", dst["pulp_href"].(string)+"versions/1/", nil, ""), "completed")
		after := p.get("/pulp/api/v3/content/file/files/?repository_version=" + dst["pulp_href"].(string) + "versions/2/").json(t)["count"]
		if before != after || after.(float64) != 2 {
			t.Fatalf("squash changed version 2: %v → %v", before, after)
		}
		if r := p.get(dst["pulp_href"].(string) + "versions/1/"); r.code != 404 {
			t.Fatalf("deleted version readable: %d", r.code)
		}
		if _, err := os.Stat(p.dataDir); err != nil {
			t.Fatal(err)
		}
	})
}
