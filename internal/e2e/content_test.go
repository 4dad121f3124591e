package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func rawGet(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestContentServing(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := basicFiles()
		files["foo/4.txt"] = []byte(strings.Repeat("0123456789", 500))
		up := newUpstream(t, files)
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "r", "url": up.URL + "/repo/PULP_MANIFEST"})
		// autopublish + a distribution on the repository = auto-distribute.
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "repo", "remote": remote["pulp_href"], "autopublish": true})
		p.mustTask(p.postJSON("/pulp/api/v3/distributions/file/file/", map[string]any{"name": "d", "base_path": "mirrors/d", "repository": repo["pulp_href"]}), "completed")
		content := p.base + "/pulp/content/"
		if resp, body := rawGet(t, content+"mirrors/d/"); resp.StatusCode != 404 || !strings.Contains(string(body), "not pointing to a publication") {
			t.Fatalf("unpublished distribution: %d %s", resp.StatusCode, body)
		}
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")

		for name, data := range files {
			resp, body := rawGet(t, content+"mirrors/d/"+name)
			if resp.StatusCode != 200 || !bytes.Equal(body, data) {
				t.Fatalf("GET %s: %d, %d bytes", name, resp.StatusCode, len(body))
			}
			if resp.Header.Get("ETag") != `"`+sum(data)+`"` || resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("Last-Modified") == "" {
				t.Fatalf("headers of %s: %v", name, resp.Header)
			}
		}
		url := content + "mirrors/d/foo/4.txt"
		data := files["foo/4.txt"]
		resp, _ := rawGet(t, url)
		if resp.Header.Get("Content-Type") != "text/plain" || resp.Header.Get("Cache-Control") == "" {
			t.Fatalf("type/cache: %v", resp.Header)
		}
		// Ranges.
		resp, body := rawGet(t, url, "Range", "bytes=10-19")
		if resp.StatusCode != 206 || string(body) != string(data[10:20]) || resp.Header.Get("Content-Range") != "bytes 10-19/5000" {
			t.Fatalf("range: %d %q %v", resp.StatusCode, body, resp.Header.Get("Content-Range"))
		}
		resp, body = rawGet(t, url, "Range", "bytes=4500-9999")
		if resp.StatusCode != 206 || len(body) != 500 {
			t.Fatalf("range past end is clamped: %d %d", resp.StatusCode, len(body))
		}
		resp, _ = rawGet(t, url, "Range", "bytes=6000-")
		if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */5000" {
			t.Fatalf("unsatisfiable: %d %v", resp.StatusCode, resp.Header)
		}
		resp, body = rawGet(t, url, "Range", "bytes=0-1,10-11")
		if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || !bytes.Contains(body, []byte("01")) {
			t.Fatalf("multiple ranges: %d %v", resp.StatusCode, resp.Header)
		}
		// Conditional requests.
		resp, _ = rawGet(t, url, "If-None-Match", `"`+sum(data)+`"`)
		if resp.StatusCode != 304 {
			t.Fatalf("If-None-Match: %d", resp.StatusCode)
		}
		resp, _ = rawGet(t, url, "Range", "bytes=0-9", "If-Range", `"stale"`)
		if resp.StatusCode != 200 {
			t.Fatalf("If-Range mismatch must send everything: %d", resp.StatusCode)
		}
		// HEAD: same headers, no body.
		req, _ := http.NewRequest("HEAD", url, nil)
		hres, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		hb, _ := io.ReadAll(hres.Body)
		hres.Body.Close()
		if hres.StatusCode != 200 || len(hb) != 0 || hres.ContentLength != 5000 {
			t.Fatalf("HEAD: %d %d %d", hres.StatusCode, len(hb), hres.ContentLength)
		}
		// The published manifest is served too.
		resp, body = rawGet(t, content+"mirrors/d/PULP_MANIFEST")
		if resp.StatusCode != 200 || bytes.Count(body, []byte("\n")) != 4 {
			t.Fatalf("manifest: %d %s", resp.StatusCode, body)
		}
		// Listings and redirects.
		resp, body = rawGet(t, content)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>Index of /pulp/content/</title>") || !strings.Contains(string(body), `href="./mirrors/"`) {
			t.Fatalf("root listing: %d %s", resp.StatusCode, body)
		}
		if strings.Contains(string(body), "../") {
			t.Fatal("root listing must not link ../")
		}
		resp, _ = rawGet(t, content+"mirrors")
		if resp.StatusCode != 301 || resp.Header.Get("Location") != "/pulp/content/mirrors/" {
			t.Fatalf("partial base path redirect: %d %v", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, body = rawGet(t, content+"mirrors/")
		if resp.StatusCode != 200 || !strings.Contains(string(body), `href="./d/"`) {
			t.Fatalf("partial base path listing: %d %s", resp.StatusCode, body)
		}
		resp, _ = rawGet(t, content+"mirrors/d/foo")
		if resp.StatusCode != 301 {
			t.Fatalf("directory redirect: %d", resp.StatusCode)
		}
		resp, body = rawGet(t, content+"mirrors/d/foo/")
		if resp.StatusCode != 200 || !strings.Contains(string(body), "4.txt") || !strings.Contains(string(body), "5.0 kB") || !strings.Contains(string(body), `href="../"`) {
			t.Fatalf("directory listing: %d %s", resp.StatusCode, body)
		}
		// Nothing escapes the distribution or storage.
		for _, bad := range []string{"mirrors/d/../d/1.iso", "mirrors/d/%2e%2e/%2e%2e/etc/passwd", "mirrors/d/%252e%252e/x", "mirrors/d//1.iso",
			"mirrors/d/1.iso%00", "mirrors/d/" + strings.Repeat("a/", 5000), "mirrors/d/nonexistent"} {
			req, _ := http.NewRequest("GET", p.base+"/pulp/content/placeholder", nil)
			req.URL.RawPath = "/pulp/content/" + bad
			req.URL.Path = "/pulp/content/" + bad
			noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			res, err := noRedirect.Do(req)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			// A redirect to the cleaned path is fine as long as it stays
			// inside the distribution.
			if (res.StatusCode == 301 || res.StatusCode == 307) && strings.HasPrefix(res.Header.Get("Location"), "/pulp/content/mirrors/d/") && !strings.Contains(res.Header.Get("Location"), "..") {
				continue
			}
			if res.StatusCode != 404 && res.StatusCode != 400 && res.StatusCode != 431 {
				t.Errorf("%s: %d %.80s", bad, res.StatusCode, b)
			}
		}
		// Auto-distribute: a new sync is live at once.
		files2 := up.files
		files2["5.iso"] = randBytes(300)
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		if resp, body := rawGet(t, content+"mirrors/d/5.iso"); resp.StatusCode != 200 || !bytes.Equal(body, files2["5.iso"]) {
			t.Fatalf("new content not live after sync: %d", resp.StatusCode)
		}
		// A damaged file on disk is never served as good bytes.
		a := p.get("/pulp/api/v3/artifacts/?sha256=" + sum(files["1.iso"])).json(t)["results"].([]any)[0].(map[string]any)
		path := filepath.Join(p.dataDir, "media", a["file"].(string))
		os.WriteFile(path, []byte("short"), 0o644)
		if resp, _ := rawGet(t, content+"mirrors/d/1.iso"); resp.StatusCode == 200 {
			t.Fatal("damaged artifact served with 200")
		}
		// Repair restores it from the remote.
		r := p.postJSON("/pulp/api/v3/repair/", map[string]any{"verify_checksums": true})
		p.mustTask(r, "completed")
		if resp, body := rawGet(t, content+"mirrors/d/1.iso"); resp.StatusCode != 200 || !bytes.Equal(body, files["1.iso"]) {
			t.Fatalf("after repair: %d", resp.StatusCode)
		}
	})
}
