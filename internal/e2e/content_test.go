package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// head sends a HEAD request with optional header pairs.
func head(t *testing.T, url string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("HEAD", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 0 {
		t.Fatalf("HEAD %s sent a body of %d bytes", url, len(b))
	}
	return resp
}

// TestContentConditionalsAndRanges checks the HTTP semantics of stored
// artifacts on both serving paths: a small file (served from a kept
// descriptor with pread) and a 2 MiB one (opened per request, sendfile).
func TestContentConditionalsAndRanges(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{"small.txt": randBytes(5000), "dir/big.bin": randBytes(2 << 20)}
		up := newUpstream(t, files)
		lazyRepo(t, p, "http", up, "immediate", "http")
		base := p.base + "/pulp/content/http/"
		for name, data := range files {
			url := base + name
			size := len(data)
			full, body := rawGet(t, url)
			if full.StatusCode != 200 || !bytes.Equal(body, data) {
				t.Fatalf("%s: %d, %d bytes", name, full.StatusCode, len(body))
			}
			etag, lm := full.Header.Get("ETag"), full.Header.Get("Last-Modified")
			if etag != `"`+sum(data)+`"` || lm == "" || full.Header.Get("Cache-Control") != "public, max-age=86400" ||
				full.Header.Get("X-Pulp-Artifact-Size") != fmt.Sprint(size) || full.ContentLength != int64(size) {
				t.Fatalf("%s headers: %v", name, full.Header)
			}
			// HEAD: the same headers, no body.
			h := head(t, url)
			for _, k := range []string{"Content-Type", "Content-Length", "ETag", "Last-Modified", "Accept-Ranges", "Cache-Control", "X-Pulp-Artifact-Size"} {
				if h.Header.Get(k) != full.Header.Get(k) {
					t.Errorf("%s: HEAD %s = %q, GET %q", name, k, h.Header.Get(k), full.Header.Get(k))
				}
			}
			if h = head(t, url, "Range", "bytes=0-99"); h.StatusCode != 206 || h.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-99/%d", size) {
				t.Errorf("%s: HEAD with Range: %d %v", name, h.StatusCode, h.Header)
			}
			// Suffix range.
			if r, b := rawGet(t, url, "Range", "bytes=-10"); r.StatusCode != 206 || !bytes.Equal(b, data[size-10:]) {
				t.Errorf("%s: suffix range: %d", name, r.StatusCode)
			}
			// If-Range: a matching validator gives the range, a stale one
			// the whole file.
			for _, v := range []string{etag, lm} {
				if r, b := rawGet(t, url, "Range", "bytes=100-199", "If-Range", v); r.StatusCode != 206 || !bytes.Equal(b, data[100:200]) {
					t.Errorf("%s: If-Range %s: %d", name, v, r.StatusCode)
				}
			}
			for _, v := range []string{`"0000"`, "Mon, 02 Jan 2006 15:04:05 GMT"} {
				if r, b := rawGet(t, url, "Range", "bytes=100-199", "If-Range", v); r.StatusCode != 200 || !bytes.Equal(b, data) {
					t.Errorf("%s: stale If-Range %s: %d, %d bytes", name, v, r.StatusCode, len(b))
				}
			}
			// If-None-Match and If-Modified-Since.
			if r, b := rawGet(t, url, "If-None-Match", etag); r.StatusCode != 304 || len(b) != 0 || r.Header.Get("ETag") != etag {
				t.Errorf("%s: If-None-Match: %d", name, r.StatusCode)
			}
			if r, _ := rawGet(t, url, "If-None-Match", `"other"`); r.StatusCode != 200 {
				t.Errorf("%s: If-None-Match other: %d", name, r.StatusCode)
			}
			if r, _ := rawGet(t, url, "If-Modified-Since", lm); r.StatusCode != 304 {
				t.Errorf("%s: If-Modified-Since: %d", name, r.StatusCode)
			}
			if r, _ := rawGet(t, url, "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"); r.StatusCode != 200 {
				t.Errorf("%s: If-Modified-Since long ago: %d", name, r.StatusCode)
			}
			// Several ranges: multipart/byteranges with each part's bytes.
			r, b := rawGet(t, url, "Range", "bytes=0-9,1000-1099,4990-")
			mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if r.StatusCode != 206 || mt != "multipart/byteranges" {
				t.Fatalf("%s: multiple ranges: %d %s", name, r.StatusCode, r.Header.Get("Content-Type"))
			}
			mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
			for _, want := range [][2]int{{0, 10}, {1000, 1100}, {4990, size}} {
				part, err := mr.NextPart()
				if err != nil {
					t.Fatalf("%s: part %v: %v", name, want, err)
				}
				pb, _ := io.ReadAll(part)
				if cr := part.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", want[0], want[1]-1, size) || !bytes.Equal(pb, data[want[0]:want[1]]) {
					t.Fatalf("%s: part %v: %s, %d bytes", name, want, cr, len(pb))
				}
			}
			if _, err := mr.NextPart(); err != io.EOF {
				t.Fatalf("%s: more parts than ranges: %v", name, err)
			}
			// Unsatisfiable.
			if r, _ := rawGet(t, url, "Range", fmt.Sprintf("bytes=%d-", size)); r.StatusCode != 416 || r.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
				t.Errorf("%s: unsatisfiable: %d %v", name, r.StatusCode, r.Header.Get("Content-Range"))
			}
		}
	})
}

// TestContentCacheControl: artifacts get the long default, metadata and
// listings a short one, and a distribution's own cache_control replaces
// both; a value that cannot be a header is a 400.
func TestContentCacheControl(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		up := newUpstream(t, map[string][]byte{"d/f.iso": randBytes(100)})
		lazyRepo(t, p, "cc", up, "immediate", "cc")
		base := p.base + "/pulp/content/cc/"
		want := map[string]string{"d/f.iso": "public, max-age=86400", "PULP_MANIFEST": "public, max-age=60", "": "public, max-age=60", "d/": "public, max-age=60"}
		check := func(override string) {
			t.Helper()
			for path, cc := range want {
				if override != "" {
					cc = override
				}
				if r, _ := rawGet(t, base+path); r.StatusCode != 200 || r.Header.Get("Cache-Control") != cc {
					t.Errorf("%q: %d, Cache-Control %q, want %q", path, r.StatusCode, r.Header.Get("Cache-Control"), cc)
				}
			}
		}
		check("")
		href := p.get("/pulp/api/v3/distributions/file/file/?name=cc").json(t)["results"].([]any)[0].(map[string]any)["pulp_href"].(string)
		for _, bad := range []string{"no-store\r\nX-Injected: 1", strings.Repeat("a", 2000), "caf\u00e9"} {
			if r := p.patchJSON(href, map[string]any{"cache_control": bad}); r.code != 400 || !strings.Contains(string(r.body), "cache_control") {
				t.Fatalf("cache_control %.20q: %d %s", bad, r.code, r.body)
			}
		}
		p.mustTask(p.patchJSON(href, map[string]any{"cache_control": "private, no-store"}), "completed")
		if got := p.get(href).json(t)["cache_control"]; got != "private, no-store" {
			t.Fatalf("cache_control reads back as %v", got)
		}
		check("private, no-store")
		p.mustTask(p.patchJSON(href, map[string]any{"cache_control": nil}), "completed")
		if got := p.get(href).json(t)["cache_control"]; got != nil {
			t.Fatalf("cache_control after null: %v", got)
		}
		check("")
		// Content fetched on demand (served by the lazy path) too.
		lazyRepo(t, p, "cclazy", newUpstream(t, map[string][]byte{"l.iso": randBytes(100)}), "on_demand", "cclazy")
		lhref := p.get("/pulp/api/v3/distributions/file/file/?name=cclazy").json(t)["results"].([]any)[0].(map[string]any)["pulp_href"].(string)
		p.mustTask(p.patchJSON(lhref, map[string]any{"cache_control": "max-age=5"}), "completed")
		for range 2 { // fetched, then stored
			if r, _ := rawGet(t, p.base+"/pulp/content/cclazy/l.iso"); r.StatusCode != 200 || r.Header.Get("Cache-Control") != "max-age=5" {
				t.Fatalf("lazy content: %d, Cache-Control %q", r.StatusCode, r.Header.Get("Cache-Control"))
			}
		}
	})
}

// TestContentStorageFaults: a stored file that went missing, shrank or
// was replaced by a symbolic link (to a file outside the storage, of the
// right size) is never served with 200, also after it has been served
// (the content app keeps small files open), and repair restores it.
func TestContentStorageFaults(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{"small.iso": randBytes(3000), "big.iso": randBytes(3 << 20)}
		up := newUpstream(t, files)
		lazyRepo(t, p, "faults", up, "immediate", "faults")
		outside := t.TempDir()
		for name, data := range files {
			url := p.base + "/pulp/content/faults/" + name
			a := p.get("/pulp/api/v3/artifacts/?sha256=" + sum(data)).json(t)["results"].([]any)[0].(map[string]any)
			file := filepath.Join(p.dataDir, "media", a["file"].(string))
			repair := func(what string) {
				t.Helper()
				p.mustTask(p.postJSON("/pulp/api/v3/repair/", map[string]any{"verify_checksums": true}), "completed")
				if r, b := rawGet(t, url); r.StatusCode != 200 || !bytes.Equal(b, data) {
					t.Fatalf("%s: after repair of %s: %d, %d bytes", name, what, r.StatusCode, len(b))
				}
			}
			if r, _ := rawGet(t, url); r.StatusCode != 200 {
				t.Fatalf("%s: %d", name, r.StatusCode)
			}
			// Missing.
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if r, b := rawGet(t, url); r.StatusCode != 404 || bytes.Contains(b, data[:100]) {
				t.Fatalf("%s: missing file: %d", name, r.StatusCode)
			}
			// The process's output reaches the buffer through a pipe.
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.log.String(), "artifact file missing"); {
				if time.Now().After(deadline) {
					t.Fatalf("%s: the missing file was not logged", name)
				}
				time.Sleep(20 * time.Millisecond)
			}
			repair("a missing file")
			// Truncated in place.
			if err := os.Truncate(file, int64(len(data)/2)); err != nil {
				t.Fatal(err)
			}
			if r, _ := rawGet(t, url); r.StatusCode != 500 {
				t.Fatalf("%s: truncated file: %d", name, r.StatusCode)
			}
			repair("a truncated file")
			// A symbolic link out of the storage, to bytes of the right size.
			secret := bytes.Repeat([]byte("S"), len(data))
			target := filepath.Join(outside, name)
			if err := os.WriteFile(target, secret, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, file); err != nil {
				t.Fatal(err)
			}
			if r, b := rawGet(t, url); r.StatusCode == 200 || bytes.Contains(b, secret[:64]) {
				t.Fatalf("%s: served through a symbolic link out of the storage: %d", name, r.StatusCode)
			}
			if r, b := rawGet(t, url, "Range", "bytes=0-63"); r.StatusCode/100 == 2 || bytes.Contains(b, secret[:64]) {
				t.Fatalf("%s: range through a symbolic link out of the storage: %d", name, r.StatusCode)
			}
			os.Remove(file)
			repair("a symbolic link")
		}
	})
}

// TestContentMetricsPerDistribution: requests, status classes, bytes and
// latency are counted per distribution base path.
func TestContentMetricsPerDistribution(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		a, b := randBytes(1000), randBytes(3000)
		lazyRepo(t, p, "ma", newUpstream(t, map[string][]byte{"a.iso": a}), "immediate", "m/a")
		lazyRepo(t, p, "mb", newUpstream(t, map[string][]byte{"b.iso": b}), "immediate", "m/b")
		for range 3 {
			rawGet(t, p.base+"/pulp/content/m/a/a.iso")
		}
		rawGet(t, p.base+"/pulp/content/m/a/nothing-here")
		rawGet(t, p.base+"/pulp/content/m/b/b.iso")
		metrics := string(p.get("/metrics").body)
		value := func(series string) float64 {
			t.Helper()
			for _, line := range strings.Split(metrics, "\n") {
				if rest, ok := strings.CutPrefix(line, series+" "); ok {
					var v float64
					fmt.Sscan(rest, &v)
					return v
				}
			}
			t.Fatalf("no series %s in /metrics", series)
			return 0
		}
		for series, want := range map[string]float64{
			`pith_content_requests_total{distribution="m/a",status="2xx"}`:    3,
			`pith_content_requests_total{distribution="m/a",status="4xx"}`:    1,
			`pith_content_requests_total{distribution="m/b",status="2xx"}`:    1,
			`pith_content_request_duration_seconds_count{distribution="m/a"}`: 4,
			`pith_content_request_duration_seconds_count{distribution="m/b"}`: 1,
		} {
			if got := value(series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		// Bytes: the three bodies, plus the 404's short message.
		if got := value(`pith_content_response_bytes_total{distribution="m/a"}`); got < 3000 || got > 3100 {
			t.Errorf("bytes of m/a: %v", got)
		}
		if got := value(`pith_content_response_bytes_total{distribution="m/b"}`); got != 3000 {
			t.Errorf("bytes of m/b: %v", got)
		}
	})
}

// TestHiddenDistributionIsServedButNotListed: hidden keeps a distribution
// out of the listings of the content root and of partial base paths, not
// out of service.
func TestHiddenDistributionIsServedButNotListed(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(500)
		lazyRepo(t, p, "vis", newUpstream(t, map[string][]byte{"f.iso": data}), "immediate", "top/visible")
		lazyRepo(t, p, "hid", newUpstream(t, map[string][]byte{"f.iso": data}), "immediate", "top/hidden")
		href := p.get("/pulp/api/v3/distributions/file/file/?name=hid").json(t)["results"].([]any)[0].(map[string]any)["pulp_href"].(string)
		p.mustTask(p.patchJSON(href, map[string]any{"hidden": true}), "completed")
		if r, b := rawGet(t, p.base+"/pulp/content/top/"); r.StatusCode != 200 || !strings.Contains(string(b), `href="./visible/"`) || strings.Contains(string(b), "hidden") {
			t.Fatalf("listing of top/: %d %s", r.StatusCode, b)
		}
		if r, b := rawGet(t, p.base+"/pulp/content/top/hidden/f.iso"); r.StatusCode != 200 || !bytes.Equal(b, data) {
			t.Fatalf("hidden distribution's content: %d", r.StatusCode)
		}
		// Longest match: a request below top/hidden/ is that distribution's.
		if r, _ := rawGet(t, p.base+"/pulp/content/top/hidden/"); r.StatusCode != 200 {
			t.Fatalf("hidden distribution's own listing: %d", r.StatusCode)
		}
	})
}

// rawRequest sends target exactly as given (no client-side cleaning or
// escaping) and returns the status code, Location and body.
func rawRequest(t *testing.T, addr, target string) (int, string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %.60s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// TestContentPathEscapes sends hostile paths byte for byte: encoded and
// double-encoded "..", encoded slashes and backslashes, NUL, empty
// segments, overlong paths. None may reach anything outside the
// distribution: each is a 400 or 404, or a redirect that stays inside.
func TestContentPathEscapes(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(700)
		lazyRepo(t, p, "esc", newUpstream(t, map[string][]byte{"a/f.iso": data}), "immediate", "esc/d")
		// Something a path escaping the distribution or storage could reach.
		secret := "pith-secret-" + sum(data)[:16]
		if err := os.WriteFile(filepath.Join(p.dataDir, "secret.txt"), []byte(secret), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, body := rawRequest(t, p.addr, "/pulp/content/esc/d/a/f.iso"); code != 200 || body != string(data) {
			t.Fatalf("plain path: %d", code)
		}
		for _, target := range []string{
			"/pulp/content/esc/d/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
			"/pulp/content/esc/d/a/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
			"/pulp/content/esc/d/..%2f..%2f..%2fsecret.txt",
			"/pulp/content/esc/d/%252e%252e/%252e%252e/secret.txt",
			"/pulp/content/esc/d/%252e%252e%252f%252e%252e%252fsecret.txt",
			"/pulp/content/esc/d/..%5c..%5csecret.txt",
			"/pulp/content/esc/d/a%5cf.iso",
			"/pulp/content/esc/d/a/f.iso%00",
			"/pulp/content/esc/d/a/f.iso%00.txt",
			"/pulp/content/esc/d/a//f.iso",
			"/pulp/content/esc/d/a/%2ff.iso",
			"/pulp/content/esc/d/a/./f.iso",
			"/pulp/content/esc/d/a/%2e/f.iso",
			"/pulp/content/%2e%2e/api/v3/status/",
			"/pulp/content/esc/d/" + strings.Repeat("x/", 6000) + "f.iso",
			"/pulp/content/esc/d/" + strings.Repeat("%2e%2e/", 2000) + "secret.txt",
		} {
			code, loc, body := rawRequest(t, p.addr, target)
			if strings.Contains(body, secret) || strings.Contains(body, "versions") {
				t.Fatalf("%.70s escaped: %d %.80s", target, code, body)
			}
			switch {
			case code == 400 || code == 404 || code == 431:
			case (code == 301 || code == 307) && strings.HasPrefix(loc, "/pulp/content/esc/d/") && !strings.Contains(loc, ".."):
				// The server's mux cleans "//" and "." segments.
			default:
				t.Errorf("%.70s: %d %q", target, code, loc)
			}
		}
	})
}

// TestDirectoryIndexHTML: a directory with an index.html is answered with
// it; one without gets the listing.
func TestDirectoryIndexHTML(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		page := []byte("<html><body>docs home</body></html>")
		lazyRepo(t, p, "ix", newUpstream(t, map[string][]byte{"docs/index.html": page, "docs/a.txt": randBytes(10), "other/b.txt": randBytes(10)}), "immediate", "ix")
		if r, b := rawGet(t, p.base+"/pulp/content/ix/docs/"); r.StatusCode != 200 || !bytes.Equal(b, page) || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("docs/: %d %q %s", r.StatusCode, r.Header.Get("Content-Type"), b)
		}
		if r, b := rawGet(t, p.base+"/pulp/content/ix/other/"); r.StatusCode != 200 || !strings.Contains(string(b), "Index of /pulp/content/ix/other/") || !strings.Contains(string(b), "b.txt") {
			t.Fatalf("other/: %d %s", r.StatusCode, b)
		}
	})
}
