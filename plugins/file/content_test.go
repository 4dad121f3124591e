package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// contentEnv is the package's test environment (testEnv: core and file
// plugin on loopback, two workers, a real store) plus the generic content
// list and the request shapes pulp-glue uses for content.
type contentEnv struct {
	*testEnv
	t *testing.T
}

func newContentEnv(t *testing.T, s *store.Store) *contentEnv {
	t.Helper()
	te := newTestEnv(t, s)
	if !hasRoute(te.API, "content_list") {
		te.API.Register(coreapi.GenericContentRoutes(te.Core)...)
	}
	return &contentEnv{testEnv: te, t: t}
}

// eachContentEnv runs fn on SQLite and, when configured, PostgreSQL.
func eachContentEnv(t *testing.T, fn func(t *testing.T, e *contentEnv)) {
	storetest.Each(t, func(t *testing.T, s *store.Store) { fn(t, newContentEnv(t, s)) })
}

type contentReply struct {
	status int
	body   []byte
}

func (r contentReply) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

func (e *contentEnv) send(method, path, ctype string, body io.Reader) contentReply {
	e.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = e.URL + path
	}
	req, err := http.NewRequest(method, path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPassword)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return contentReply{resp.StatusCode, b}
}

func (e *contentEnv) get(path string) contentReply { return e.send("GET", path, "", nil) }

func (e *contentEnv) postJSON(path string, v any) contentReply {
	b, _ := json.Marshal(v)
	return e.send("POST", path, "application/json", bytes.NewReader(b))
}

func (e *contentEnv) postForm(path string, vals url.Values) contentReply {
	return e.send("POST", path, "application/x-www-form-urlencoded", strings.NewReader(vals.Encode()))
}

// postMultipart sends fields and, if data is non-nil, a file part as
// pulp-glue does.
func (e *contentEnv) postMultipart(path string, fields map[string]string, data []byte) contentReply {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if data != nil {
		w, _ := mw.CreateFormFile("file", "upload.bin")
		w.Write(data)
	}
	mw.Close()
	return e.send("POST", path, mw.FormDataContentType(), &buf)
}

func (e *contentEnv) want(r contentReply, status int) contentReply {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// task waits for the task of a 202 reply and returns it as JSON.
func (e *contentEnv) task(r contentReply) map[string]any {
	e.t.Helper()
	e.want(r, http.StatusAccepted)
	href, _ := r.obj(e.t)["task"].(string)
	id := strings.TrimSuffix(strings.TrimPrefix(href, api.Root+"tasks/"), "/")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.Tasks.Wait(ctx, id); err != nil {
		e.t.Fatalf("wait for %s: %v", href, err)
	}
	return e.want(e.get(href), http.StatusOK).obj(e.t)
}

// completed waits for the task and fails unless it completed; it returns
// the created resources.
func (e *contentEnv) completed(r contentReply) []string {
	e.t.Helper()
	task := e.task(r)
	if task["state"] != "completed" {
		e.t.Fatalf("task %v: %v", task["state"], task["error"])
	}
	var out []string
	for _, h := range task["created_resources"].([]any) {
		out = append(out, h.(string))
	}
	return out
}

// failed waits for the task, fails unless it failed, and returns its
// error description.
func (e *contentEnv) failed(r contentReply) string {
	e.t.Helper()
	task := e.task(r)
	if task["state"] != "failed" {
		e.t.Fatalf("task state %v, want failed (created %v)", task["state"], task["created_resources"])
	}
	desc, _ := task["error"].(map[string]any)["description"].(string)
	return desc
}

func contentIDOf(href string) string {
	return strings.TrimSuffix(strings.TrimPrefix(href, ContentPath), "/")
}

func contentSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// artifact uploads bytes as an artifact and returns its href.
func (e *contentEnv) artifact(data []byte) string {
	e.t.Helper()
	r := e.postMultipart(coreapi.ArtifactsPath, nil, data)
	if r.status == http.StatusBadRequest && strings.Contains(string(r.body), "already exists") {
		page := e.want(e.get(coreapi.ArtifactsPath+"?sha256="+contentSHA256(data)), http.StatusOK).obj(e.t)
		return page["results"].([]any)[0].(map[string]any)["pulp_href"].(string)
	}
	return e.want(r, http.StatusCreated).obj(e.t)["pulp_href"].(string)
}

func (e *contentEnv) repo(name string) string {
	e.t.Helper()
	return e.want(e.postJSON(RepositoriesPath, map[string]any{"name": name}), http.StatusCreated).obj(e.t)["pulp_href"].(string)
}

// createFromArtifact creates content the way `pulp file content create`
// does (form-encoded) and returns the created resources.
func (e *contentEnv) createFromArtifact(path, artifact, repo string, extra ...string) []string {
	e.t.Helper()
	v := url.Values{"relative_path": {path}, "artifact": {artifact}}
	if repo != "" {
		v.Set("repository", repo)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return e.completed(e.postForm(ContentPath, v))
}

func (e *contentEnv) content(href string) map[string]any {
	e.t.Helper()
	return e.want(e.get(href), http.StatusOK).obj(e.t)
}

// list returns the count and result hrefs of a list request.
func (e *contentEnv) list(path string) (int, []string) {
	e.t.Helper()
	page := e.want(e.get(path), http.StatusOK).obj(e.t)
	var hrefs []string
	for _, r := range page["results"].([]any) {
		hrefs = append(hrefs, r.(map[string]any)["pulp_href"].(string))
	}
	return int(page["count"].(float64)), hrefs
}

// summary returns a version's content_summary counts of file.file.
func (e *contentEnv) summary(versionHref string) (added, removed, present int) {
	e.t.Helper()
	v := e.want(e.get(versionHref), http.StatusOK).obj(e.t)
	cs := v["content_summary"].(map[string]any)
	n := func(kind string) int {
		m, _ := cs[kind].(map[string]any)["file.file"].(map[string]any)
		if m == nil {
			return 0
		}
		return int(m["count"].(float64))
	}
	return n("added"), n("removed"), n("present")
}

func (e *contentEnv) latest(repoHref string) string {
	e.t.Helper()
	return e.want(e.get(repoHref), http.StatusOK).obj(e.t)["latest_version_href"].(string)
}

func (e *contentEnv) rowCount(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.Store.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestContentCreateFromArtifact(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		data := []byte("hello content\n")
		art := e.artifact(data)
		created := e.createFromArtifact("dir/hello.txt", art, "")
		if len(created) != 1 || !strings.HasPrefix(created[0], ContentPath) {
			t.Fatalf("created_resources %v, want one content href", created)
		}
		c := e.content(created[0])
		id := strings.TrimSuffix(strings.TrimPrefix(created[0], ContentPath), "/")
		if c["pulp_href"] != created[0] || c["prn"] != "prn:file.filecontent:"+id {
			t.Errorf("href/prn = %v %v", c["pulp_href"], c["prn"])
		}
		if c["artifact"] != art || c["relative_path"] != "dir/hello.txt" || c["sha256"] != contentSHA256(data) {
			t.Errorf("content = %v", c)
		}
		for _, k := range []string{"sha224", "sha384", "sha512"} {
			if s, _ := c[k].(string); s == "" {
				t.Errorf("%s missing: %v", k, c)
			}
		}
		for _, k := range []string{"md5", "sha1", "vuln_report"} {
			if v, ok := c[k]; !ok || v != nil {
				t.Errorf("%s = %v, want present and null", k, v)
			}
		}
		if labels, ok := c["pulp_labels"].(map[string]any); !ok || len(labels) != 0 {
			t.Errorf("pulp_labels = %v", c["pulp_labels"])
		}
		for _, k := range []string{"pulp_created", "pulp_last_updated"} {
			if _, err := time.Parse(time.RFC3339Nano, c[k].(string)); err != nil {
				t.Errorf("%s: %v", k, err)
			}
		}
		if n, hrefs := e.list(ContentPath); n != 1 || hrefs[0] != created[0] {
			t.Errorf("list = %d %v", n, hrefs)
		}
		// Content cannot be updated or deleted.
		for _, m := range []string{"PUT", "PATCH", "DELETE"} {
			if r := e.send(m, created[0], "application/json", strings.NewReader(`{"relative_path":"x"}`)); r.status != http.StatusMethodNotAllowed {
				t.Errorf("%s content: %d %s", m, r.status, r.body)
			}
		}
		e.want(e.get(ContentPath+store.NewID()+"/"), http.StatusNotFound)
		e.want(e.get(ContentPath+"not-an-id/"), http.StatusNotFound)
	})
}

func TestContentSameBytesSamePathSameHref(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		data := []byte("same bytes")
		art := e.artifact(data)
		first := e.createFromArtifact("a.txt", art, "")
		toi := func() int {
			return e.rowCount(`SELECT timestamp_of_interest FROM content WHERE id = $1`, contentIDOf(first[0]))
		}
		before := toi()
		task := e.task(e.postForm(ContentPath, url.Values{"relative_path": {"a.txt"}, "artifact": {art}}))
		if task["name"] != ContentCreateTask || task["created_resources"].([]any)[0] != first[0] {
			t.Fatalf("second create: %v %v", task["name"], task["created_resources"])
		}
		// Reuse is interest: orphan cleanup must wait again.
		if after := toi(); after <= before {
			t.Errorf("timestamp_of_interest %d, was %d", after, before)
		}
		// The same bytes uploaded as a file land on the same unit too.
		task = e.task(e.postMultipart(ContentPath, map[string]string{"relative_path": "a.txt"}, data))
		if task["name"] != ContentFromFileTask || task["created_resources"].([]any)[0] != first[0] {
			t.Fatalf("upload: %v %v", task["name"], task["created_resources"])
		}
		if n := e.rowCount(`SELECT COUNT(*) FROM content`); n != 1 {
			t.Errorf("%d content rows, want 1", n)
		}
	})
}

func TestContentSameBytesSamePathRepositories(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		art := e.artifact([]byte("repo bytes"))
		var hrefs []string
		for _, name := range []string{"r1", "r2"} {
			repo := e.repo(name)
			created := e.createFromArtifact("f.iso", art, repo)
			wantVersion := repo + "versions/1/"
			if len(created) != 2 || created[1] != wantVersion {
				t.Fatalf("created_resources %v, want [content, %s]", created, wantVersion)
			}
			if got := e.latest(repo); got != wantVersion {
				t.Errorf("latest %s, want %s", got, wantVersion)
			}
			if a, r, p := e.summary(wantVersion); a != 1 || r != 0 || p != 1 {
				t.Errorf("summary added %d removed %d present %d", a, r, p)
			}
			hrefs = append(hrefs, created[0])
		}
		if hrefs[0] != hrefs[1] {
			t.Errorf("hrefs differ: %v", hrefs)
		}
	})
}

func TestContentSameArtifactTwoPaths(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		art := e.artifact([]byte("shared"))
		a := e.createFromArtifact("one", art, "")
		b := e.createFromArtifact("two", art, "")
		if a[0] == b[0] {
			t.Fatal("two paths gave one unit")
		}
		if e.content(a[0])["artifact"] != art || e.content(b[0])["artifact"] != art {
			t.Error("units do not share the artifact")
		}
	})
}

func TestContentSamePathReplaces(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		repo := e.repo("replace")
		first := e.createFromArtifact("same/path", e.artifact([]byte("v1")), repo)
		second := e.createFromArtifact("same/path", e.artifact([]byte("v2")), repo)
		if len(second) != 2 || second[1] != repo+"versions/2/" {
			t.Fatalf("created %v", second)
		}
		if a, r, p := e.summary(second[1]); a != 1 || r != 1 || p != 1 {
			t.Errorf("version 2: added %d removed %d present %d, want 1 1 1", a, r, p)
		}
		if n, hrefs := e.list(ContentPath + "?repository_version=" + url.QueryEscape(second[1])); n != 1 || hrefs[0] != second[0] {
			t.Errorf("version 2 holds %v, want %s", hrefs, second[0])
		}
		if n, hrefs := e.list(ContentPath + "?repository_version_removed=" + url.QueryEscape(second[1])); n != 1 || hrefs[0] != first[0] {
			t.Errorf("version 2 removed %v, want %s", hrefs, first[0])
		}
	})
}

func TestContentModifyTwoUnitsOnePathFails(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		repo := e.repo("dups")
		a := e.createFromArtifact("dup", e.artifact([]byte("A")), "")
		b := e.createFromArtifact("dup", e.artifact([]byte("B")), "")
		desc := e.failed(e.postJSON(repo+"modify/", map[string]any{"add_content_units": []string{a[0], b[0]}}))
		if !strings.Contains(desc, "relative_path") {
			t.Errorf("error %q does not name relative_path", desc)
		}
		if got := e.latest(repo); got != repo+"versions/0/" {
			t.Errorf("latest %s after a failed modify", got)
		}
	})
}

func TestContentOverwrite(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		repo := e.repo("ow")
		first := e.createFromArtifact("p", e.artifact([]byte("first")), repo)
		contentBefore := e.rowCount(`SELECT COUNT(*) FROM content`)

		// A different unit at the same path with overwrite=false fails,
		// leaving neither a version nor the new unit behind.
		other := e.artifact([]byte("other"))
		desc := e.failed(e.postForm(ContentPath, url.Values{"relative_path": {"p"}, "artifact": {other}, "repository": {repo}, "overwrite": {"false"}}))
		if !strings.Contains(desc, "relative_path") || !strings.Contains(desc, "PLP0023") {
			t.Errorf("error %q", desc)
		}
		if got := e.latest(repo); got != repo+"versions/1/" {
			t.Errorf("latest %s, want version 1", got)
		}
		if n := e.rowCount(`SELECT COUNT(*) FROM content`); n != contentBefore {
			t.Errorf("%d content rows after the failure, want %d", n, contentBefore)
		}
		if n := e.rowCount(`SELECT COUNT(*) FROM repository_versions WHERE NOT complete`); n != 0 {
			t.Errorf("%d incomplete versions left", n)
		}

		// A unit that existed before the failing task survives it.
		kept := e.createFromArtifact("p", e.artifact([]byte("kept")), "")
		e.failed(e.postForm(ContentPath, url.Values{"relative_path": {"p"}, "artifact": {e.artifact([]byte("kept"))}, "repository": {repo}, "overwrite": {"false"}}))
		e.content(kept[0])

		// No conflict: fine.
		ok := e.createFromArtifact("q", e.artifact([]byte("q")), repo, "overwrite", "false")
		if len(ok) != 2 || ok[1] != repo+"versions/2/" {
			t.Fatalf("created %v", ok)
		}
		// Re-adding the unit already there: fine, and no new version.
		again := e.createFromArtifact("p", e.artifact([]byte("first")), repo, "overwrite", "false")
		if len(again) != 1 || again[0] != first[0] {
			t.Errorf("re-add created %v, want only %s", again, first[0])
		}
		// The default overwrites.
		over := e.createFromArtifact("p", other, repo)
		if len(over) != 2 || over[1] != repo+"versions/3/" {
			t.Fatalf("created %v", over)
		}
		if _, r, p := e.summary(over[1]); r != 1 || p != 2 {
			t.Errorf("version 3 removed %d present %d", r, p)
		}
	})
}

func TestContentFailedVersionValidationLeavesNothing(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		repo := e.repo("overlap")
		e.createFromArtifact("a/b", e.artifact([]byte("below")), repo)
		before := e.rowCount(`SELECT COUNT(*) FROM content`)
		// "a" would be a file where "a/b" needs a directory.
		e.failed(e.postForm(ContentPath, url.Values{"relative_path": {"a"}, "artifact": {e.artifact([]byte("above"))}, "repository": {repo}}))
		if got := e.latest(repo); got != repo+"versions/1/" {
			t.Errorf("latest %s", got)
		}
		if n := e.rowCount(`SELECT COUNT(*) FROM content`); n != before {
			t.Errorf("content rows %d, want %d", n, before)
		}
		for _, q := range []string{
			`SELECT COUNT(*) FROM file_content WHERE content_id NOT IN (SELECT id FROM content)`,
			`SELECT COUNT(*) FROM content_artifacts WHERE content_id NOT IN (SELECT id FROM content)`,
			`SELECT COUNT(*) FROM repository_content WHERE version_added > 1 OR version_removed IS NOT NULL`,
			`SELECT COUNT(*) FROM repository_versions WHERE number > 1`,
		} {
			if n := e.rowCount(q); n != 0 {
				t.Errorf("%s: %d", q, n)
			}
		}
	})
}

// upload makes a chunked upload of data as pulp-glue does.
func (e *contentEnv) upload(data []byte, chunk int, skip int) string {
	e.t.Helper()
	href := e.want(e.postJSON(coreapi.UploadsPath, map[string]any{"size": len(data)}), http.StatusCreated).obj(e.t)["pulp_href"].(string)
	for i, start := 0, 0; start < len(data); i, start = i+1, start+chunk {
		end := min(start+chunk, len(data))
		if i == skip {
			continue
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("sha256", contentSHA256(data[start:end]))
		w, _ := mw.CreateFormFile("file", "file")
		w.Write(data[start:end])
		mw.Close()
		req, _ := http.NewRequest("PUT", e.URL+href, &buf)
		req.SetBasicAuth(testUser, testPassword)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, len(data)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			e.t.Fatalf("chunk %d: %d", i, resp.StatusCode)
		}
	}
	return href
}

func TestContentFromChunkedUpload(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		data := bytes.Repeat([]byte("0123456789"), 1000)
		up := e.upload(data, 3000, -1)
		repo := e.repo("chunked")
		r := e.postForm(ContentPath, url.Values{"relative_path": {"big.bin"}, "upload": {up}, "repository": {repo}})
		task := e.task(r)
		if task["state"] != "completed" {
			t.Fatalf("task: %v", task["error"])
		}
		upID := strings.TrimSuffix(strings.TrimPrefix(up, coreapi.UploadsPath), "/")
		reserved := fmt.Sprint(task["reserved_resources_record"])
		if !strings.Contains(reserved, "prn:core.upload:"+upID) || !strings.Contains(reserved, RepoPRN(strings.TrimSuffix(strings.TrimPrefix(repo, RepositoriesPath), "/"))) {
			t.Errorf("reserved %s, want the upload and the repository", reserved)
		}
		href := task["created_resources"].([]any)[0].(string)
		if c := e.content(href); c["sha256"] != contentSHA256(data) {
			t.Errorf("sha256 %v", c["sha256"])
		}
		e.want(e.get(up), http.StatusNotFound)
		if _, err := os.Stat(filepath.Join(e.Core.DataDir, "upload", upID)); !os.IsNotExist(err) {
			t.Errorf("upload file still there: %v", err)
		}

		// An incomplete upload is refused at once and kept.
		partial := e.upload(data, 3000, 1)
		r = e.want(e.postForm(ContentPath, url.Values{"relative_path": {"part.bin"}, "upload": {partial}}), http.StatusBadRequest)
		if _, ok := r.obj(t)["upload"]; !ok {
			t.Errorf("400 body %s does not name upload", r.body)
		}
		e.want(e.get(partial), http.StatusOK)
	})
}

func TestContentFromURL(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		data := []byte("served over http")
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/files/x.bin" {
				http.NotFound(w, r)
				return
			}
			w.Write(data)
		}))
		defer upstream.Close()
		first := e.completed(e.postForm(ContentPath, url.Values{"relative_path": {"x.bin"}, "file_url": {upstream.URL + "/files/x.bin"}}))
		if c := e.content(first[0]); c["sha256"] != contentSHA256(data) || c["artifact"] == nil {
			t.Errorf("content %v", c)
		}
		again := e.completed(e.postForm(ContentPath, url.Values{"relative_path": {"x.bin"}, "file_url": {upstream.URL + "/files/x.bin"}}))
		if again[0] != first[0] {
			t.Errorf("re-create gave %s, want %s", again[0], first[0])
		}

		// An upstream error fails the task and creates nothing.
		before := e.rowCount(`SELECT COUNT(*) FROM content`)
		desc := e.failed(e.postForm(ContentPath, url.Values{"relative_path": {"y.bin"}, "file_url": {upstream.URL + "/missing"}}))
		if !strings.Contains(desc, "404") {
			t.Errorf("error %q does not say 404", desc)
		}
		if n := e.rowCount(`SELECT COUNT(*) FROM content`); n != before {
			t.Errorf("content rows %d, want %d", n, before)
		}

		// file:// below an allowed import path works; elsewhere is a 400.
		local := []byte("local file")
		p := filepath.Join(e.ImportDir, "sub", "local.txt")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, local, 0o644)
		viaFile := e.completed(e.postForm(ContentPath, url.Values{"relative_path": {"local.txt"}, "file_url": {"file://" + p}}))
		if c := e.content(viaFile[0]); c["sha256"] != contentSHA256(local) {
			t.Errorf("content %v", c)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("source file touched: %v", err)
		}
		outside := filepath.Join(t.TempDir(), "secret")
		os.WriteFile(outside, []byte("secret"), 0o644)
		for _, u := range []string{"file://" + outside, "file://" + e.ImportDir + "/../" + filepath.Base(outside), "ftp://example.com/x"} {
			r := e.want(e.postForm(ContentPath, url.Values{"relative_path": {"s"}, "file_url": {u}}), http.StatusBadRequest)
			if _, ok := r.obj(t)["file_url"]; !ok {
				t.Errorf("%s: 400 body %s does not name file_url", u, r.body)
			}
		}
	})
}

func TestContentBadInputCreatesNothing(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		art := e.artifact([]byte("valid"))
		repo := e.repo("bad")
		cases := []struct {
			name  string
			vals  url.Values
			field string
		}{
			{"no relative_path", url.Values{"artifact": {art}}, "relative_path"},
			{"blank relative_path", url.Values{"relative_path": {""}, "artifact": {art}}, "relative_path"},
			{"no source", url.Values{"relative_path": {"x"}}, "non_field_errors"},
			{"two sources", url.Values{"relative_path": {"x"}, "artifact": {art}, "file_url": {"http://127.0.0.1:1/x"}}, "non_field_errors"},
			{"parent", url.Values{"relative_path": {"../x"}, "artifact": {art}}, "relative_path"},
			{"inner parent", url.Values{"relative_path": {"a/../../x"}, "artifact": {art}}, "relative_path"},
			{"absolute", url.Values{"relative_path": {"/abs"}, "artifact": {art}}, "relative_path"},
			{"empty segment", url.Values{"relative_path": {"a//b"}, "artifact": {art}}, "relative_path"},
			{"NUL", url.Values{"relative_path": {"a\x00b"}, "artifact": {art}}, "relative_path"},
			{"backslash", url.Values{"relative_path": {`a\..\b`}, "artifact": {art}}, "relative_path"},
			{"unknown artifact", url.Values{"relative_path": {"x"}, "artifact": {coreapi.ArtifactsPath + store.NewID() + "/"}}, "artifact"},
			{"not an artifact", url.Values{"relative_path": {"x"}, "artifact": {repo}}, "artifact"},
			{"unknown upload", url.Values{"relative_path": {"x"}, "upload": {coreapi.UploadsPath + store.NewID() + "/"}}, "upload"},
			{"unknown repository", url.Values{"relative_path": {"x"}, "artifact": {art}, "repository": {RepositoriesPath + store.NewID() + "/"}}, "repository"},
			{"bad repository", url.Values{"relative_path": {"x"}, "artifact": {art}, "repository": {"nope"}}, "repository"},
			{"bad label", url.Values{"relative_path": {"x"}, "artifact": {art}, "pulp_labels": {`{"bad/key":"v"}`}}, "pulp_labels"},
			{"unknown field", url.Values{"relative_path": {"x"}, "artifact": {art}, "sha256": {"abc"}}, "sha256"},
		}
		for _, c := range cases {
			r := e.postForm(ContentPath, c.vals)
			if r.status != http.StatusBadRequest {
				t.Errorf("%s: %d %s", c.name, r.status, r.body)
				continue
			}
			if _, ok := r.obj(t)[c.field]; !ok {
				t.Errorf("%s: body %s does not name %s", c.name, r.body, c.field)
			}
		}
		// A file with a bad path is refused before its bytes are stored.
		arts := e.rowCount(`SELECT COUNT(*) FROM artifacts`)
		e.want(e.postMultipart(ContentPath, map[string]string{"relative_path": "../escape"}, []byte("never stored")), http.StatusBadRequest)
		e.want(e.postMultipart(ContentPath+"upload/", map[string]string{"relative_path": "/abs"}, []byte("never stored")), http.StatusBadRequest)
		if n := e.rowCount(`SELECT COUNT(*) FROM artifacts`); n != arts {
			t.Errorf("artifacts %d, want %d", n, arts)
		}
		if n := e.rowCount(`SELECT COUNT(*) FROM content`); n != 0 {
			t.Errorf("%d content rows", n)
		}
		if n := e.rowCount(`SELECT COUNT(*) FROM tasks`); n != 0 {
			t.Errorf("%d tasks dispatched", n)
		}
	})
}

func TestContentUploadSynchronous(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		data := []byte("sync upload")
		r := e.want(e.postMultipart(ContentPath+"upload/", map[string]string{"relative_path": "s/u.txt", "pulp_labels": `{"env":"test"}`}, data), http.StatusCreated)
		c := r.obj(t)
		if c["sha256"] != contentSHA256(data) || c["relative_path"] != "s/u.txt" || !strings.HasPrefix(c["pulp_href"].(string), ContentPath) {
			t.Fatalf("body %s", r.body)
		}
		if c["pulp_labels"].(map[string]any)["env"] != "test" {
			t.Errorf("labels %v", c["pulp_labels"])
		}
		again := e.want(e.postMultipart(ContentPath+"upload/", map[string]string{"relative_path": "s/u.txt"}, data), http.StatusCreated).obj(t)
		if again["pulp_href"] != c["pulp_href"] {
			t.Errorf("second upload %v, want %v", again["pulp_href"], c["pulp_href"])
		}
		// From a chunked upload, which is deleted afterwards.
		up := e.upload(data, 4, -1)
		fromUp := e.want(e.postForm(ContentPath+"upload/", url.Values{"relative_path": {"other.txt"}, "upload": {up}}), http.StatusCreated).obj(t)
		if fromUp["sha256"] != contentSHA256(data) {
			t.Errorf("from upload %v", fromUp)
		}
		e.want(e.get(up), http.StatusNotFound)
		// From a URL; a failed download is the request's 400.
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/ok" {
				http.NotFound(w, r)
				return
			}
			w.Write(data)
		}))
		defer upstream.Close()
		fromURL := e.want(e.postForm(ContentPath+"upload/", url.Values{"relative_path": {"url.txt"}, "file_url": {upstream.URL + "/ok"}}), http.StatusCreated).obj(t)
		if fromURL["sha256"] != contentSHA256(data) || fromURL["artifact"] != c["artifact"] {
			t.Errorf("from url %v", fromURL)
		}
		bad := e.want(e.postForm(ContentPath+"upload/", url.Values{"relative_path": {"gone.txt"}, "file_url": {upstream.URL + "/gone"}}), http.StatusBadRequest)
		if msg := fmt.Sprint(bad.obj(t)["file_url"]); !strings.Contains(msg, "404") {
			t.Errorf("400 body %s", bad.body)
		}
		// No repository on this endpoint.
		e.want(e.postForm(ContentPath+"upload/", url.Values{"relative_path": {"x"}, "artifact": {c["artifact"].(string)}, "repository": {e.repo("r")}}), http.StatusBadRequest)
		if n := e.rowCount(`SELECT COUNT(*) FROM tasks`); n != 0 {
			t.Errorf("%d tasks for synchronous uploads", n)
		}
	})
}

func TestContentOnDemandUnitGetsArtifact(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		data := []byte("downloaded later")
		u := Unit{RelativePath: "lazy.iso", Digest: contentSHA256(data)}
		ids, err := e.Store.SaveContent(context.Background(), Type, []store.NewContent{{
			NaturalKey: u.NaturalKey(), RepoKey: u.RepoKey(),
			Artifacts: []store.NewContentArtifact{{RelativePath: u.RelativePath}},
		}}, func(tx *store.Tx, _ []int, newIDs []string) error {
			return SaveDetail(context.Background(), tx, []Unit{u}, newIDs)
		})
		if err != nil {
			t.Fatal(err)
		}
		href := ContentHref(ids[0])
		c := e.content(href)
		for _, k := range []string{"artifact", "md5", "sha1", "sha224", "sha256", "sha384", "sha512"} {
			if c[k] != nil {
				t.Errorf("on-demand %s = %v, want null", k, c[k])
			}
		}
		// sha256 still finds it: the digest is known.
		if n, _ := e.list(ContentPath + "?sha256=" + u.Digest); n != 1 {
			t.Errorf("sha256 filter found %d", n)
		}
		page := e.want(e.get(coreapi.ContentPath), http.StatusOK).obj(t)
		if arts := page["results"].([]any)[0].(map[string]any)["artifacts"].(map[string]any); len(arts) != 1 || arts["lazy.iso"] != nil {
			t.Errorf("generic artifacts %v, want lazy.iso: null", arts)
		}
		got := e.completed(e.postMultipart(ContentPath, map[string]string{"relative_path": "lazy.iso"}, data))
		if got[0] != href {
			t.Fatalf("upload made %s, want the on-demand unit %s", got[0], href)
		}
		if c := e.content(href); c["artifact"] == nil || c["sha256"] != u.Digest {
			t.Errorf("after upload %v", c)
		}
	})
}

func TestContentFilters(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		mk := func(path, body string, extra ...string) string {
			return e.createFromArtifact(path, e.artifact([]byte(body)), "", extra...)[0]
		}
		aOne := mk("a/one.txt", "1")
		aTwo := mk("a/two.txt", "2", "pulp_labels", `{"env":"prod","tier":"gold"}`)
		bThree := mk("b/three.bin", "3", "pulp_labels", `{"env":"dev"}`)
		repo := e.repo("filters")
		e.completed(e.postJSON(repo+"modify/", map[string]any{"add_content_units": []string{aOne, aTwo}}))
		e.completed(e.postJSON(repo+"modify/", map[string]any{"add_content_units": []string{bThree}, "remove_content_units": []string{aOne}}))
		v1, v2 := url.QueryEscape(repo+"versions/1/"), url.QueryEscape(repo+"versions/2/")

		cases := []struct {
			query string
			want  []string
		}{
			{"", []string{bThree, aTwo, aOne}},
			{"relative_path=a/one.txt", []string{aOne}},
			{"relative_path__contains=two", []string{aTwo}},
			{"relative_path__icontains=TWO", []string{aTwo}},
			{"relative_path__startswith=a/", []string{aTwo, aOne}},
			{"relative_path__regex=%5Eb/.*%5C.bin%24", []string{bThree}},
			{"relative_path__in=a/one.txt,b/three.bin", []string{bThree, aOne}},
			{"sha256=" + contentSHA256([]byte("2")), []string{aTwo}},
			{"digest=" + contentSHA256([]byte("3")), []string{bThree}},
			{"digest__in=" + contentSHA256([]byte("1")) + "," + contentSHA256([]byte("3")), []string{bThree, aOne}},
			{"repository_version=" + v1, []string{aTwo, aOne}},
			{"repository_version=" + v2, []string{bThree, aTwo}},
			// Counted by query rather than from the version's summary.
			{"repository_version=" + v2 + "&relative_path__startswith=", []string{bThree, aTwo}},
			{"repository_version_added=" + v2 + "&pulp_label_select=env=dev", []string{bThree}},
			{"repository_version_added=" + v2, []string{bThree}},
			{"repository_version_removed=" + v2, []string{aOne}},
			{"repository_version=" + url.QueryEscape(repo+"versions/0/"), nil},
			{"pulp_href__in=" + aOne + "," + bThree, []string{bThree, aOne}},
			{"prn__in=prn:file.filecontent:" + contentIDOf(aTwo), []string{aTwo}},
			{"pulp_label_select=env=prod", []string{aTwo}},
			{"pulp_label_select=env", []string{bThree, aTwo}},
			{"pulp_label_select=!env", []string{aOne}},
			{"ordering=relative_path", []string{aOne, aTwo, bThree}},
			{"ordering=-relative_path&limit=1", []string{bThree}},
		}
		for _, c := range cases {
			n, got := e.list(ContentPath + "?" + c.query)
			wantN := len(c.want)
			if strings.Contains(c.query, "limit=1") {
				wantN = 3
			}
			if n != wantN || !slices.Equal(got, c.want) {
				t.Errorf("?%s: count %d %v, want %v", c.query, n, got, c.want)
			}
		}
		// orphaned_for: aOne left the repository but stays a member of
		// version 1, so nothing is orphaned; a fresh unit is, at once.
		orphan := mk("orphan", "4")
		if n, got := e.list(ContentPath + "?orphaned_for=0"); n != 1 || got[0] != orphan {
			t.Errorf("orphaned_for=0: %d %v", n, got)
		}
		if n, _ := e.list(ContentPath + "?orphaned_for=60"); n != 0 {
			t.Errorf("orphaned_for=60 found %d", n)
		}
		for _, q := range []string{
			"repository_version=" + url.QueryEscape(repo+"versions/9/"),
			"repository_version_added=" + url.QueryEscape(RepositoriesPath+store.NewID()+"/versions/1/"),
			"repository_version=garbage",
			"relative_path__regex=(",
			"orphaned_for=soon",
			"pulp_href__in=/nope/",
			"pulp_label_select=%21a%3Db",
			"ordering=size",
		} {
			e.want(e.get(ContentPath+"?"+q), http.StatusBadRequest)
		}
		// Paging links.
		page := e.want(e.get(ContentPath+"?limit=2&offset=2"), http.StatusOK).obj(t)
		if page["count"].(float64) != 4 || page["next"] != nil || page["previous"] == nil || len(page["results"].([]any)) != 2 {
			t.Errorf("page %v", page)
		}
	})
}

// The digest filters match whole digests only. On SQLite they find units
// by natural key ("<digest>:<path>") ranges, where a value that is a
// digest's prefix, or a digest followed by ":" and the start of a path,
// falls inside or next to a unit's range.
func TestContentDigestFilterExact(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		colon := e.createFromArtifact("c:d.txt", e.artifact([]byte("5")), "")[0]
		plain := e.createFromArtifact("e.txt", e.artifact([]byte("6")), "")[0]
		d5, d6 := contentSHA256([]byte("5")), contentSHA256([]byte("6"))
		cases := []struct {
			query string
			want  []string
		}{
			{"digest=" + d5, []string{colon}},
			{"sha256=" + d6, []string{plain}},
			{"digest__in=" + d5 + ",%20" + d6 + ",", []string{plain, colon}},
			{"digest=" + d5 + ":c", nil},
			{"digest=" + d5[:20], nil},
			{"sha256=" + strings.ToUpper(d6), nil},
			{"digest__in=" + d5 + ":c," + d6[:63], nil},
			{"digest__in=,", nil},
			{"digest=" + d5 + "&relative_path=c:d.txt", []string{colon}},
			{"digest=" + d5 + "&relative_path=e.txt", nil},
		}
		for _, c := range cases {
			n, got := e.list(ContentPath + "?" + c.query)
			if n != len(c.want) || !slices.Equal(got, c.want) {
				t.Errorf("?%s: count %d %v, want %v", c.query, n, got, c.want)
			}
		}
	})
}

func TestContentCountIgnoresOtherTypes(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		e.createFromArtifact("f", e.artifact([]byte("f")), "")
		if n, _ := e.list(ContentPath); n != 1 {
			t.Fatalf("count %d", n)
		}
		other := store.NewID()
		now := store.Now()
		if _, err := e.Store.Exec(context.Background(), `INSERT INTO content (id, created, last_updated, pulp_type, timestamp_of_interest, natural_key, repo_key) VALUES ($1, $2, $2, 'other.thing', $2, 'k', 'k')`, other, now); err != nil {
			t.Fatal(err)
		}
		if n, hrefs := e.list(ContentPath); n != 1 || len(hrefs) != 1 {
			t.Errorf("file list with another type: %d %v", n, hrefs)
		}
		n, hrefs := e.list(coreapi.ContentPath)
		if n != 2 || !slices.Contains(hrefs, coreapi.ContentPath+"other/thing/"+other+"/") {
			t.Errorf("generic list %d %v", n, hrefs)
		}
	})
}

func TestContentLabels(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		href := e.completed(e.postMultipart(ContentPath, map[string]string{"relative_path": "l", "pulp_labels": `{"a":"1"}`}, []byte("labelled")))[0]
		e.want(e.postJSON(href+"set_label/", map[string]any{"key": "b", "value": "2"}), http.StatusCreated)
		if got := e.content(href)["pulp_labels"].(map[string]any); got["a"] != "1" || got["b"] != "2" {
			t.Errorf("labels %v", got)
		}
		r := e.want(e.postJSON(href+"unset_label/", map[string]any{"key": "a"}), http.StatusCreated).obj(t)
		if r["value"] != "1" {
			t.Errorf("unset answered %v", r)
		}
		if n, _ := e.list(ContentPath + "?pulp_label_select=b=2"); n != 1 {
			t.Errorf("select b=2 found %d", n)
		}
		if n, _ := e.list(ContentPath + "?pulp_label_select=a"); n != 0 {
			t.Errorf("select a found %d", n)
		}
		e.want(e.postJSON(href+"unset_label/", map[string]any{"key": "a"}), http.StatusBadRequest)
		// Creating the same unit again with labels leaves its labels alone.
		again := e.completed(e.postMultipart(ContentPath, map[string]string{"relative_path": "l", "pulp_labels": `{"c":"3"}`}, []byte("labelled")))
		if got := e.content(again[0])["pulp_labels"].(map[string]any); again[0] != href || len(got) != 1 || got["b"] != "2" {
			t.Errorf("after re-create %s: labels %v", again[0], got)
		}
		e.want(e.postJSON(href+"set_label/", map[string]any{"key": "bad/key", "value": "x"}), http.StatusBadRequest)
		e.want(e.postJSON(ContentPath+store.NewID()+"/set_label/", map[string]any{"key": "k", "value": "v"}), http.StatusNotFound)
	})
}

func TestGenericContentList(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		art := e.artifact([]byte("generic"))
		repo := e.repo("generic")
		created := e.createFromArtifact("g.txt", art, repo)
		orphan := e.createFromArtifact("o.txt", e.artifact([]byte("orphan")), "")[0]
		page := e.want(e.get(coreapi.ContentPath+"?repository_version="+url.QueryEscape(created[1])), http.StatusOK).obj(t)
		res := page["results"].([]any)
		if page["count"].(float64) != 1 || len(res) != 1 {
			t.Fatalf("page %v", page)
		}
		item := res[0].(map[string]any)
		id := contentIDOf(created[0])
		if item["pulp_href"] != created[0] || item["prn"] != "prn:file.filecontent:"+id {
			t.Errorf("item %v", item)
		}
		if arts := item["artifacts"].(map[string]any); len(arts) != 1 || arts["g.txt"] != art {
			t.Errorf("artifacts %v", item["artifacts"])
		}
		for q, want := range map[string]int{
			"":                            2,
			"pulp_type=file.file":         2,
			"pulp_type=other.thing":       0,
			"pulp_type__in=a.b,file.file": 2,
			"orphaned_for=0":              1,
			"repository_version_added=" + url.QueryEscape(created[1]): 1,
			"pulp_href__in=" + orphan:                                 1,
		} {
			if n, _ := e.list(coreapi.ContentPath + "?" + q); n != want {
				t.Errorf("?%s: %d, want %d", q, n, want)
			}
		}
		e.want(e.get(coreapi.ContentPath+"?repository_version="+url.QueryEscape(repo+"versions/5/")), http.StatusBadRequest)
	})
}

func TestContentDocument(t *testing.T) {
	s := storetest.Open(t, storetest.Backends()[0])
	e := newContentEnv(t, s)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			RequestBody *struct {
				Content map[string]any `json:"content"`
			} `json:"requestBody"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(e.API.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]string{}
	for p, m := range doc.Paths {
		for method, op := range m {
			ops[op.OperationID] = method + " " + p
			if op.OperationID == "content_file_files_create" || op.OperationID == "content_file_files_upload" {
				var types []string
				for ct := range op.RequestBody.Content {
					types = append(types, ct)
				}
				slices.Sort(types)
				if !slices.Equal(types, []string{"application/x-www-form-urlencoded", "multipart/form-data"}) {
					t.Errorf("%s offers %v", op.OperationID, types)
				}
			}
		}
	}
	for id, want := range map[string]string{
		"content_list":                   "get " + coreapi.ContentPath,
		"content_file_files_list":        "get " + ContentPath,
		"content_file_files_create":      "post " + ContentPath,
		"content_file_files_read":        "get {file_file_content_href}",
		"content_file_files_upload":      "post " + ContentPath + "upload/",
		"content_file_files_set_label":   "post {file_file_content_href}set_label/",
		"content_file_files_unset_label": "post {file_file_content_href}unset_label/",
	} {
		if ops[id] != want {
			t.Errorf("%s at %q, want %q", id, ops[id], want)
		}
	}
}

// Paths are looked up through content's repo keys in a subquery whose
// placeholders are renumbered into the list query's: many values, and
// filters binding arguments after them, find exactly their units.
func TestContentPathFilterMany(t *testing.T) {
	eachContentEnv(t, func(t *testing.T, e *contentEnv) {
		one := e.createFromArtifact("d/one.txt", e.artifact([]byte("7")), "")[0]
		two := e.createFromArtifact("d/two.txt", e.artifact([]byte("8")), "")[0]
		var paths []string
		for i := range 11 {
			paths = append(paths, fmt.Sprintf("d/none-%d.txt", i))
		}
		paths = append(paths, "d/two.txt", "d/one.txt")
		in := "relative_path__in=" + url.QueryEscape(strings.Join(paths, ","))
		cases := []struct {
			query string
			want  []string
		}{
			{in, []string{two, one}},
			{in + "&digest=" + contentSHA256([]byte("7")), []string{one}},
			{in + "&digest__in=" + contentSHA256([]byte("8")) + "," + contentSHA256([]byte("9")), []string{two}},
			{in + "&ordering=-relative_path", []string{two, one}},
			{"relative_path__startswith=d/&ordering=relative_path", []string{one, two}},
			{"relative_path=d/one.txt&sha256=" + contentSHA256([]byte("8")), nil},
		}
		for _, c := range cases {
			n, got := e.list(ContentPath + "?" + c.query)
			if n != len(c.want) || !slices.Equal(got, c.want) {
				t.Errorf("?%s: count %d %v, want %v", c.query, n, got, c.want)
			}
		}
	})
}
