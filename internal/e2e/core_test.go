package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestStatusIsOpenAndComplete(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		res, err := http.Get(p.base + "/pulp/api/v3/status/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("status without auth: %d", res.StatusCode)
		}
		st := p.get("/pulp/api/v3/status/").json(t)
		vers := map[string]string{}
		for _, v := range st["versions"].([]any) {
			m := v.(map[string]any)
			vers[m["component"].(string)] = m["version"].(string)
		}
		if vers["core"] == "" || vers["file"] == "" {
			t.Fatalf("versions: %v", st["versions"])
		}
		if st["database_connection"].(map[string]any)["connected"] != true {
			t.Fatal("database not connected")
		}
		if n := len(st["online_workers"].([]any)); n != 2 {
			t.Fatalf("online workers = %d, want 2", n)
		}
		if len(st["online_api_apps"].([]any)) != 1 || len(st["online_content_apps"].([]any)) != 1 {
			t.Fatalf("apps: %v %v", st["online_api_apps"], st["online_content_apps"])
		}
		storage := st["storage"].(map[string]any)
		if storage["total"].(float64) <= 0 || storage["free"].(float64) <= 0 {
			t.Fatalf("storage: %v", storage)
		}
		cs := st["content_settings"].(map[string]any)
		if cs["content_origin"] != p.base || cs["content_path_prefix"] != "/pulp/content/" {
			t.Fatalf("content settings: %v", cs)
		}
		// Auth is required elsewhere; a bad password is a 401 with a challenge.
		req, _ := http.NewRequest("GET", p.base+"/pulp/api/v3/tasks/", nil)
		req.SetBasicAuth("admin", "wrong")
		res, _ = http.DefaultClient.Do(req)
		res.Body.Close()
		if res.StatusCode != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("bad password: %d %v", res.StatusCode, res.Header)
		}
		// The OpenAPI document is public and names Pulp's versions.
		doc := p.get("/pulp/api/v3/docs/api.json").json(t)
		info := doc["info"].(map[string]any)
		if info["x-pulp-app-versions"].(map[string]any)["core"] != vers["core"] {
			t.Fatalf("doc versions %v differ from status %v", info["x-pulp-app-versions"], vers)
		}
		// So is its YAML form, with the same operations.
		yres, err := http.Get(p.base + "/pulp/api/v3/docs/api.yaml")
		if err != nil {
			t.Fatal(err)
		}
		yb, _ := io.ReadAll(yres.Body)
		yres.Body.Close()
		var ydoc map[string]any
		if yres.StatusCode != 200 || yaml.Unmarshal(yb, &ydoc) != nil || len(ydoc["paths"].(map[string]any)) != len(doc["paths"].(map[string]any)) {
			t.Fatalf("api.yaml: %d, %d paths", yres.StatusCode, len(ydoc))
		}
		if r := p.get("/metrics"); r.code != 200 || !bytes.Contains(r.body, []byte("pith_api_requests_total")) {
			t.Fatalf("metrics: %d", r.code)
		}
	})
}

func TestArtifactUploadVerifiesDigests(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(3000)
		body, ct := multipartBody("file", data, "sha256", sum(data), "size", "3000")
		r := p.do("POST", "/pulp/api/v3/artifacts/", body, ct)
		if r.code != 201 {
			t.Fatalf("upload: %d %s", r.code, r.body)
		}
		a := r.json(t)
		if a["sha256"] != sum(data) || a["size"].(float64) != 3000 {
			t.Fatalf("artifact: %v", a)
		}
		stored := filepath.Join(p.dataDir, "media", a["file"].(string))
		if got, err := os.ReadFile(stored); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("stored file %s: %v", stored, err)
		}
		// The same bytes again: 400, nothing new.
		body, ct = multipartBody("file", data)
		if r := p.do("POST", "/pulp/api/v3/artifacts/", body, ct); r.code != 400 || !strings.Contains(string(r.body), "already exists") {
			t.Fatalf("duplicate: %d %s", r.code, r.body)
		}
		before := filesUnder(t, filepath.Join(p.dataDir, "media", "artifact"))
		other := randBytes(100)
		for _, tc := range []struct {
			fields []string
			field  string
		}{
			{[]string{"sha256", sum(data)}, "sha256"},         // wrong digest
			{[]string{"size", "99"}, "size"},                  // wrong size
			{[]string{"md5", strings.Repeat("a", 32)}, "md5"}, // forbidden checksum
			{[]string{"sha256", "xyz"}, "sha256"},             // not hex
		} {
			body, ct := multipartBody("file", other, tc.fields...)
			r := p.do("POST", "/pulp/api/v3/artifacts/", body, ct)
			if r.code != 400 || r.json(t)[tc.field] == nil {
				t.Errorf("%v: %d %s", tc.fields, r.code, r.body)
			}
		}
		body, ct = multipartBody("", nil, "sha256", sum(other))
		if r := p.do("POST", "/pulp/api/v3/artifacts/", body, ct); r.code != 400 || r.json(t)["file"] == nil {
			t.Errorf("missing file: %d %s", r.code, r.body)
		}
		if r := p.do("POST", "/pulp/api/v3/artifacts/", strings.NewReader("--x\r\ngarbage"), "multipart/form-data; boundary=x"); r.code != 400 {
			t.Errorf("broken multipart: %d %s", r.code, r.body)
		}
		after := filesUnder(t, filepath.Join(p.dataDir, "media", "artifact"))
		if len(after) != len(before) {
			t.Fatalf("rejected uploads left files: %v", after)
		}
		if tmp := filesUnder(t, filepath.Join(p.dataDir, "media", "tmp")); len(tmp) != 0 {
			t.Fatalf("temp files left: %v", tmp)
		}
		list := p.get("/pulp/api/v3/artifacts/?sha256=" + sum(data)).json(t)
		if list["count"].(float64) != 1 {
			t.Fatalf("filter by sha256: %v", list)
		}
		if list := p.get("/pulp/api/v3/artifacts/?sha256=" + sum(other)).json(t); list["count"].(float64) != 0 {
			t.Fatalf("rejected upload is listed: %v", list)
		}
	})
}

func TestChunkedUploadAndCommit(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(2500)
		up := p.postJSON("/pulp/api/v3/uploads/", map[string]any{"size": len(data)})
		if up.code != 201 {
			t.Fatalf("create upload: %d %s", up.code, up.body)
		}
		href := up.json(t)["pulp_href"].(string)
		put := func(start, end int, chunk []byte, sha string) resp {
			fields := []string{}
			if sha != "" {
				fields = append(fields, "sha256", sha)
			}
			body, ct := multipartBody("file", chunk, fields...)
			return p.do("PUT", href, body, ct, "Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)))
		}
		// Out of order, with per-chunk digests.
		if r := put(1000, 2499, data[1000:], sum(data[1000:])); r.code != 200 {
			t.Fatalf("chunk 2: %d %s", r.code, r.body)
		}
		// A chunk whose digest does not match is refused and changes nothing.
		if r := put(0, 999, randBytes(1000), sum(data[:1000])); r.code != 400 {
			t.Fatalf("bad chunk digest: %d %s", r.code, r.body)
		}
		// A chunk beyond the declared size is refused.
		if r := put(2000, 3000, randBytes(1001), ""); r.code != 400 {
			t.Fatalf("chunk beyond size: %d %s", r.code, r.body)
		}
		// Committing before all bytes arrived is refused.
		if r := p.postJSON(href+"commit/", map[string]any{"sha256": sum(data)}); r.code != 400 {
			t.Fatalf("incomplete commit: %d %s", r.code, r.body)
		}
		if r := put(0, 999, data[:1000], ""); r.code != 200 {
			t.Fatalf("chunk 1: %d %s", r.code, r.body)
		}
		detail := p.get(href).json(t)
		if len(detail["chunks"].([]any)) != 2 {
			t.Fatalf("chunks: %v", detail["chunks"])
		}
		// Wrong whole-file digest: 400, and the upload is still there.
		if r := p.postJSON(href+"commit/", map[string]any{"sha256": sum([]byte("x"))}); r.code != 400 {
			t.Fatalf("wrong commit digest: %d %s", r.code, r.body)
		}
		if r := p.get(href); r.code != 200 {
			t.Fatalf("upload gone after failed commit: %d", r.code)
		}
		if n := len(filesUnder(t, filepath.Join(p.dataDir, "media", "artifact"))); n != 0 {
			t.Fatalf("failed commit left %d artifact files", n)
		}
		r := p.postJSON(href+"commit/", map[string]any{"sha256": sum(data)})
		if r.code != 202 {
			t.Fatalf("commit: %d %s", r.code, r.body)
		}
		task := p.waitTask(r.json(t)["task"].(string))
		if task["state"] != "completed" {
			t.Fatalf("commit task: %v", task)
		}
		created := task["created_resources"].([]any)
		if len(created) != 1 || !strings.HasPrefix(created[0].(string), "/pulp/api/v3/artifacts/") {
			t.Fatalf("created_resources: %v", created)
		}
		a := p.get(created[0].(string)).json(t)
		if a["sha256"] != sum(data) || a["size"].(float64) != 2500 {
			t.Fatalf("artifact: %v", a)
		}
		if l := p.get("/pulp/api/v3/tasks/?created_resources=" + created[0].(string)).json(t); l["count"].(float64) != 1 {
			t.Fatalf("tasks by created resource: %v", l)
		}
		if got, _ := os.ReadFile(filepath.Join(p.dataDir, "media", a["file"].(string))); !bytes.Equal(got, data) {
			t.Fatal("committed bytes differ")
		}
		if r := p.get(href); r.code != 404 {
			t.Fatalf("upload still exists after commit: %d", r.code)
		}
	})
}

func sleepTask(t *testing.T, p *instance, seconds float64, exclusive ...string) string {
	t.Helper()
	body := map[string]any{"seconds": seconds}
	if len(exclusive) > 0 {
		body["exclusive_resources"] = exclusive
	}
	r := p.postJSON("/pulp/api/v3/testing/sleep/", body)
	if r.code != 202 {
		t.Fatalf("dispatch sleep: %d %s", r.code, r.body)
	}
	return r.json(t)["task"].(string)
}

func TestTaskListFilterCancelDelete(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		done := sleepTask(t, p, 0, "res-a")
		p.waitState(done, "completed")
		long := sleepTask(t, p, 60, "res-b")
		p.waitState(long, "running")
		blocked := sleepTask(t, p, 60, "res-b") // waits behind long: same resource
		time.Sleep(200 * time.Millisecond)
		if st := p.get(blocked).json(t)["state"]; st != "waiting" {
			t.Fatalf("conflicting task must wait, is %v", st)
		}
		count := func(q string) float64 {
			t.Helper()
			r := p.get("/pulp/api/v3/tasks/?" + q)
			if r.code != 200 {
				t.Fatalf("list %s: %d %s", q, r.code, r.body)
			}
			return r.json(t)["count"].(float64)
		}
		if n := count("state=completed"); n != 1 {
			t.Errorf("state=completed: %v", n)
		}
		if n := count("state__in=running,waiting"); n != 2 {
			t.Errorf("state__in: %v", n)
		}
		if n := count("name__contains=test.sleep"); n != 3 {
			t.Errorf("name__contains: %v", n)
		}
		if n := count("reserved_resources=res-b"); n != 2 {
			t.Errorf("reserved_resources: %v", n)
		}
		if n := count("exclusive_resources=res-a"); n != 1 {
			t.Errorf("exclusive_resources: %v", n)
		}
		if n := count("shared_resources=res-a"); n != 0 {
			t.Errorf("shared_resources: %v", n)
		}
		if n := count("started_at__gte=2000-01-01T00:00:00Z&ordering=-started_at"); n != 2 {
			t.Errorf("started_at__gte: %v", n)
		}
		if r := p.get("/pulp/api/v3/tasks/?started_at__gte=yesterday"); r.code != 400 {
			t.Errorf("bad datetime filter: %d", r.code)
		}
		// Cancel the running task: it stops promptly and the waiting one runs.
		start := time.Now()
		r := p.patchJSON(long, map[string]any{"state": "canceled"})
		if r.code != 200 {
			t.Fatalf("cancel: %d %s", r.code, r.body)
		}
		p.waitState(long, "canceled")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cancel took %s", d)
		}
		p.waitState(blocked, "running")
		if r := p.patchJSON(blocked, map[string]any{"state": "running"}); r.code != 400 {
			t.Fatalf("cancel with another state: %d %s", r.code, r.body)
		}
		if r := p.patchJSON(blocked, map[string]any{"state": "canceled"}); r.code != 200 {
			t.Fatalf("cancel 2: %d", r.code)
		}
		p.waitState(blocked, "canceled")
		// Canceling a finished task is a conflict; deleting it works.
		if r := p.patchJSON(done, map[string]any{"state": "canceled"}); r.code != 409 {
			t.Fatalf("cancel finished: %d %s", r.code, r.body)
		}
		waiting := sleepTask(t, p, 60, "res-c")
		p.waitState(waiting, "running")
		if r := p.do("DELETE", waiting, nil, ""); r.code != 409 {
			t.Fatalf("delete running task: %d", r.code)
		}
		p.patchJSON(waiting, map[string]any{"state": "canceled"})
		p.waitState(waiting, "canceled")
		if r := p.do("DELETE", done, nil, ""); r.code != 204 {
			t.Fatalf("delete: %d", r.code)
		}
		if r := p.get(done); r.code != 404 {
			t.Fatalf("deleted task still readable: %d", r.code)
		}
	})
}

func TestOrphanCleanupDeletesFiles(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		data := randBytes(500)
		body, ct := multipartBody("file", data)
		a := p.do("POST", "/pulp/api/v3/artifacts/", body, ct).json(t)
		path := filepath.Join(p.dataDir, "media", a["file"].(string))
		// A protection time keeps the new orphan.
		r := p.postJSON("/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 10})
		if task := p.waitTask(r.json(t)["task"].(string)); task["state"] != "completed" {
			t.Fatalf("cleanup: %v", task)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatal("protected artifact was deleted")
		}
		if r := p.postJSON("/pulp/api/v3/orphans/cleanup/", map[string]any{"content_hrefs": []string{}}); r.code != 400 {
			t.Fatalf("empty content_hrefs: %d", r.code)
		}
		r = p.postJSON("/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0})
		task := p.waitTask(r.json(t)["task"].(string))
		if task["state"] != "completed" {
			t.Fatalf("cleanup: %v", task)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("artifact file survives cleanup: %v", err)
		}
		if r := p.get(a["pulp_href"].(string)); r.code != 404 {
			t.Fatalf("artifact row survives cleanup: %d", r.code)
		}
	})
}

func TestKillDuringTaskAndUpload(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		task := sleepTask(t, p, 60, "res-kill")
		p.waitState(task, "running")
		// An upload whose body is still streaming when the process dies.
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"))
			pw.Write(randBytes(1 << 20))
		}()
		go func() {
			req, _ := http.NewRequest("POST", p.base+"/pulp/api/v3/artifacts/", pr)
			req.SetBasicAuth("admin", password)
			req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}()
		time.Sleep(300 * time.Millisecond)
		p.kill()
		pw.Close()
		p.start()
		got := p.get(task).json(t)
		if p.dbURL != "" {
			// On PostgreSQL another process would notice the silent worker
			// after the TTL; the restarted one does.
			got = p.waitState(task, "failed")
		}
		if got["state"] != "failed" || !strings.Contains(fmt.Sprint(got["error"]), "gone missing") {
			t.Fatalf("interrupted task: %v", got)
		}
		// Its lock is free: a task on the same resource runs.
		next := sleepTask(t, p, 0, "res-kill")
		if st := p.waitTask(next)["state"]; st != "completed" {
			t.Fatalf("next task: %v", st)
		}
		if n := p.get("/pulp/api/v3/artifacts/").json(t)["count"].(float64); n != 0 {
			t.Fatalf("half-uploaded artifact visible: %v", n)
		}
		if files := filesUnder(t, filepath.Join(p.dataDir, "media")); len(files) != 0 {
			t.Fatalf("files left after crash and restart: %v", files)
		}
	})
}

func TestSignals(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		// SIGTERM lets the running task finish.
		task := sleepTask(t, p, 1.5)
		p.waitState(task, "running")
		p.signal(syscall.SIGTERM)
		p.waitExit(20 * time.Second)
		p.start()
		if st := p.get(task).json(t); st["state"] != "completed" {
			t.Fatalf("after SIGTERM: %v", st)
		}
		// SIGINT cancels it.
		task = sleepTask(t, p, 60)
		p.waitState(task, "running")
		p.signal(syscall.SIGINT)
		p.waitExit(20 * time.Second)
		p.start()
		st := p.get(task).json(t)
		if st["state"] != "failed" || !strings.Contains(fmt.Sprint(st["error"]), "Aborted during worker shutdown") {
			t.Fatalf("after SIGINT: %v", st)
		}
	})
}

// TestKillDuringUploadCommit kills the process while an upload commit is
// copying the upload into artifact storage. The upload's file is swapped
// for a FIFO so the test, not timing, decides when the commit is mid-way:
// the kill lands after the commit task read part of the bytes.
func TestKillDuringUploadCommit(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		// A try can race (see below); three in a row cannot plausibly.
		var href string
		var commitTask func(string) map[string]any
		tries := 0
		attempt := func() (string, *os.File, bool) {
			tries++
			data := randBytes(4 << 20)
			up := p.postJSON("/pulp/api/v3/uploads/", map[string]any{"size": len(data)})
			if up.code != 201 {
				t.Fatalf("create upload: %d %s", up.code, up.body)
			}
			href := up.json(t)["pulp_href"].(string)
			body, ct := multipartBody("file", data)
			if r := p.do("PUT", href, body, ct, "Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data))); r.code != 200 {
				t.Fatalf("chunk: %d %s", r.code, r.body)
			}
			id := strings.TrimSuffix(href[strings.LastIndex(strings.TrimSuffix(href, "/"), "/")+1:], "/")
			file := filepath.Join(p.dataDir, "upload", id)
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(file, 0o600); err != nil {
				t.Fatal(err)
			}
			go func() {
				// The process dies under this request; its answer does not matter.
				req, _ := http.NewRequest("POST", p.base+href+"commit/", strings.NewReader(`{"sha256": "`+sum(data)+`"}`))
				req.SetBasicAuth("admin", password)
				req.Header.Set("Content-Type", "application/json")
				if res, err := http.DefaultClient.Do(req); err == nil {
					res.Body.Close()
				}
			}()
			// Opening the FIFO for writing blocks until a reader opens it.
			openW := func() *os.File {
				t.Helper()
				w, err := os.OpenFile(file, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				return w
			}
			// openReader opens the FIFO for writing once a reader has it open,
			// or returns nil after d.
			openReader := func(d time.Duration) *os.File {
				t.Helper()
				deadline := time.Now().Add(d)
				for {
					fd, err := syscall.Open(file, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
					if err == nil {
						if err := syscall.SetNonblock(fd, false); err != nil {
							t.Fatal(err)
						}
						return os.NewFile(uintptr(fd), file)
					}
					if err != syscall.ENXIO {
						t.Fatal(err)
					}
					if time.Now().After(deadline) {
						return nil
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			// This try's commit task is the newest one, the one after
			// those of earlier tries.
			commitTask = func(state string) map[string]any {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					l := p.get("/pulp/api/v3/tasks/?name=pulpcore.app.tasks.upload.commit").json(t)
					if res := l["results"].([]any); len(res) == tries {
						if task := res[0].(map[string]any); state == "" || task["state"] == state {
							return task
						}
					}
					if time.Now().After(deadline) {
						t.Fatalf("no commit task in state %q", state)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			// The API checks the whole file's digest, closes it, then
			// dispatches the commit task.
			w := openW()
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			w.Close()
			commitTask("")
			// The commit task reads half and waits for the rest, which never
			// comes: the writer stays open until the process is gone.
			w = openReader(10 * time.Second)
			if w == nil {
				// The commit task opened the FIFO while the writer above was
				// still open and read its end: it failed on the short read and
				// nothing will read again. Start over with a new upload.
				t.Logf("commit task %v paired with the first writer; retrying", commitTask("")["state"])
				return "", nil, false
			}
			if _, err := w.Write(data[:len(data)/2]); err != nil {
				t.Fatal(err)
			}
			return href, w, true
		}
		var w *os.File
		for try := 1; ; try++ {
			var ok bool
			if href, w, ok = attempt(); ok {
				break
			}
			if try == 3 {
				t.Fatal("the commit task never read the upload in three tries")
			}
		}
		defer w.Close()
		task := commitTask("running")
		p.kill()
		p.start()
		taskHref := task["pulp_href"].(string)
		got := p.get(taskHref).json(t)
		if p.dbURL != "" {
			got = p.waitState(taskHref, "failed")
		}
		if got["state"] != "failed" {
			t.Fatalf("interrupted commit: %v", got)
		}
		if n := p.get("/pulp/api/v3/artifacts/").json(t)["count"].(float64); n != 0 {
			t.Fatalf("half-committed artifact visible: %v", n)
		}
		if files := filesUnder(t, filepath.Join(p.dataDir, "media")); len(files) != 0 {
			t.Fatalf("files left after crash and restart: %v", files)
		}
		// The upload is intact and can be deleted (or committed again).
		if r := p.get(href); r.code != 200 {
			t.Fatalf("upload after crash: %d %s", r.code, r.body)
		}
		if r := p.do("DELETE", href, nil, ""); r.code != 204 {
			t.Fatalf("delete upload: %d %s", r.code, r.body)
		}
	})
}

// statusAs is the status code of GET path with the given password.
func (p *instance) statusAs(pw, path string) int {
	p.t.Helper()
	req, _ := http.NewRequest("GET", p.base+path, nil)
	req.SetBasicAuth("admin", pw)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// pith runs a one-shot pith command on the instance's data and database.
func (p *instance) pith(stdin string, args ...string) (string, error) {
	p.t.Helper()
	cmd := exec.Command(pithBin, append(args, "--data-dir", p.dataDir)...)
	cmd.Env = append(os.Environ(), "PITH_DATABASE_URL="+p.dbURL, "PITH_ADMIN_PASSWORD=")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var generatedRE = regexp.MustCompile(`Generated password for user admin: (\S+)`)

// TestFirstStartPasswordAndAdminCommands: without PITH_ADMIN_PASSWORD the
// first start generates the admin password and prints it once; pith
// migrate prepares a database; pith admin reset-password changes the
// password, from a flag, stdin or generated.
func TestFirstStartPasswordAndAdminCommands(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			p := &instance{t: t, dataDir: t.TempDir(), dbURL: b.URL(t), env: []string{"PITH_ADMIN_PASSWORD="}}
			out, err := p.pith("", "migrate")
			if err != nil || !regexp.MustCompile(`database \((sqlite|postgres)\) is at migration \d{4}_`).MatchString(out) {
				t.Fatalf("pith migrate: %v: %s", err, out)
			}
			if out2, err := p.pith("", "migrate"); err != nil || out2 != out {
				t.Fatalf("second pith migrate: %v: %s (first: %s)", err, out2, out)
			}
			p.start()
			t.Cleanup(p.stop)
			m := generatedRE.FindAllStringSubmatch(p.log.String(), -1)
			if len(m) != 1 {
				t.Fatalf("generated password printed %d times:\n%s", len(m), p.log.String())
			}
			generated := m[0][1]
			if c := p.statusAs(generated, "/pulp/api/v3/tasks/"); c != 200 {
				t.Fatalf("generated password: %d", c)
			}
			if c := p.statusAs(password, "/pulp/api/v3/tasks/"); c != 401 {
				t.Fatalf("some other password works: %d", c)
			}
			// A restart neither prints nor changes it.
			p.stop()
			p.start()
			if generatedRE.MatchString(p.log.String()) {
				t.Fatalf("password printed again:\n%s", p.log.String())
			}
			if c := p.statusAs(generated, "/pulp/api/v3/tasks/"); c != 200 {
				t.Fatalf("generated password after restart: %d", c)
			}
			// reset-password while the server runs: by flag, by stdin, random.
			if out, err := p.pith("", "admin", "reset-password", "--password", "flag-pw"); err != nil {
				t.Fatalf("reset-password --password: %v: %s", err, out)
			}
			if p.statusAs("flag-pw", "/pulp/api/v3/tasks/") != 200 || p.statusAs(generated, "/pulp/api/v3/tasks/") != 401 {
				t.Fatal("reset-password --password did not take effect")
			}
			if out, err := p.pith("stdin-pw\n", "admin", "reset-password"); err != nil {
				t.Fatalf("reset-password from stdin: %v: %s", err, out)
			}
			if p.statusAs("stdin-pw", "/pulp/api/v3/tasks/") != 200 || p.statusAs("flag-pw", "/pulp/api/v3/tasks/") != 401 {
				t.Fatal("reset-password from stdin did not take effect")
			}
			out, err = p.pith("", "admin", "reset-password", "--random")
			rm := regexp.MustCompile(`New password for user admin: (\S+)`).FindStringSubmatch(out)
			if err != nil || rm == nil {
				t.Fatalf("reset-password --random: %v: %s", err, out)
			}
			if p.statusAs(rm[1], "/pulp/api/v3/tasks/") != 200 {
				t.Fatal("random password does not work")
			}
			if out, err := p.pith("", "admin", "reset-password"); err == nil {
				t.Fatalf("empty password accepted: %s", out)
			}
			// PITH_ADMIN_PASSWORD only seeds the first start: a restart
			// with another one keeps the reset password and says so.
			p.stop()
			p.env = []string{"PITH_ADMIN_PASSWORD=other-env"}
			p.start()
			if p.statusAs(rm[1], "/pulp/api/v3/tasks/") != 200 || p.statusAs("other-env", "/pulp/api/v3/tasks/") != 401 {
				t.Fatal("a restart with PITH_ADMIN_PASSWORD changed the password")
			}
			if !strings.Contains(p.log.String(), "applies only on first start") {
				t.Fatalf("no warning about the ignored PITH_ADMIN_PASSWORD:\n%s", p.log.String())
			}
		})
	}
}

// TestSettingsFromFileAndEnvironment starts the real binary with its
// settings in a config file and PITH_* variables instead of flags.
func TestSettingsFromFileAndEnvironment(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dir := t.TempDir()
			p := &instance{t: t, dataDir: filepath.Join(dir, "data-from-file"), dbURL: b.URL(t)}
			cfg := filepath.Join(dir, "pith.yaml")
			p.args = func(p *instance) []string {
				// Flags are absent: addr and data-dir come from the file,
				// workers and the content origin from the environment
				// (which wins over the file's workers: 5).
				y := fmt.Sprintf("addr: %s\ndata-dir: %s\nworkers: 5\nworker-ttl: 3s\n", p.addr, p.dataDir)
				if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
					t.Fatal(err)
				}
				return []string{"serve", "--config", cfg}
			}
			p.env = []string{"PITH_WORKERS=1", "PITH_CONTENT_ORIGIN=https://content.example.test"}
			p.start()
			t.Cleanup(p.stop)
			st := p.get("/pulp/api/v3/status/").json(t)
			if n := len(st["online_workers"].([]any)); n != 1 {
				t.Errorf("online workers = %d, want 1 from PITH_WORKERS", n)
			}
			if o := st["content_settings"].(map[string]any)["content_origin"]; o != "https://content.example.test" {
				t.Errorf("content origin = %v", o)
			}
			if _, err := os.Stat(filepath.Join(p.dataDir, "media")); err != nil {
				t.Errorf("data dir from the config file not used: %v", err)
			}
			// A bad setting stops the process with a clear message.
			out, err := exec.Command(pithBin, "serve", "--config", cfg, "--workers", "-1").CombinedOutput()
			if err == nil || !strings.Contains(string(out), "workers must be >= 0") {
				t.Errorf("bad setting: %v: %s", err, out)
			}
		})
	}
}

// worker starts a `pith worker` process beside p on p's database and data.
func (p *instance) worker(n int) *exec.Cmd {
	p.t.Helper()
	cmd := exec.Command(pithBin, "worker", "--data-dir", p.dataDir, "--workers", fmt.Sprint(n), "--worker-ttl", "3s")
	cmd.Env = append(os.Environ(), "PITH_ENABLE_TEST_TASKS=true", "PITH_DATABASE_URL="+p.dbURL)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if p.t.Failed() {
			p.t.Logf("worker %d log:\n%s", cmd.Process.Pid, log.String())
		}
	})
	return cmd
}

// TestScaleOutProcesses runs `pith api` and separate `pith worker`
// processes on one PostgreSQL database: workers share the queue in FIFO
// order per resource, and when every worker is killed a new one fails the
// orphaned task and frees its lock. On SQLite the split roles refuse to
// start.
func TestScaleOutProcesses(t *testing.T) {
	for _, role := range []string{"api", "content", "worker"} {
		cmd := exec.Command(pithBin, role, "--data-dir", t.TempDir())
		cmd.Env = append(os.Environ(), "PITH_DATABASE_URL=")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "needs a shared PostgreSQL database") {
			t.Errorf("pith %s on SQLite: %v: %s", role, err, out)
		}
	}
	var pg *storetest.Backend
	for _, b := range storetest.Backends() {
		if b.Name == "postgres" {
			pg = &b
		}
	}
	if pg == nil {
		t.Log("PITH_TEST_DATABASE_URL not set: the PostgreSQL part did not run")
		return
	}
	p := &instance{t: t, dataDir: t.TempDir(), dbURL: pg.URL(t)}
	p.args = func(p *instance) []string {
		return []string{"api", "--addr", p.addr, "--data-dir", p.dataDir, "--worker-ttl", "3s"}
	}
	p.start()
	t.Cleanup(p.stop)
	w1, w2 := p.worker(1), p.worker(1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := p.get("/pulp/api/v3/status/").json(t)
		if len(st["online_workers"].([]any)) == 2 {
			if len(st["online_api_apps"].([]any)) != 1 || len(st["online_content_apps"].([]any)) != 0 {
				t.Fatalf("apps: %v %v", st["online_api_apps"], st["online_content_apps"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers never came online: %v", st["online_workers"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Conflicting tasks run one at a time, in dispatch order, although two
	// workers are free; a task on another resource runs beside them.
	var hrefs []string
	for range 4 {
		hrefs = append(hrefs, sleepTask(t, p, 0.3, "scale-r"))
	}
	other := sleepTask(t, p, 0.3, "scale-other")
	var prevEnd time.Time
	for i, h := range hrefs {
		task := p.waitTask(h)
		if task["state"] != "completed" {
			t.Fatalf("task %d: %v", i, task)
		}
		start, _ := time.Parse(time.RFC3339Nano, task["started_at"].(string))
		end, _ := time.Parse(time.RFC3339Nano, task["finished_at"].(string))
		if start.Before(prevEnd) {
			t.Fatalf("task %d started at %s before its predecessor finished at %s", i, start, prevEnd)
		}
		prevEnd = end
	}
	if st := p.waitTask(other)["state"]; st != "completed" {
		t.Fatalf("independent task: %v", st)
	}
	// Both workers vanish mid-task; a new worker notices after the TTL.
	long := sleepTask(t, p, 60, "scale-r")
	p.waitState(long, "running")
	w1.Process.Kill()
	w2.Process.Kill()
	p.worker(1)
	got := p.waitState(long, "failed")
	if !strings.Contains(fmt.Sprint(got["error"]), "gone missing") {
		t.Fatalf("orphaned task: %v", got)
	}
	if st := p.waitTask(sleepTask(t, p, 0, "scale-r"))["state"]; st != "completed" {
		t.Fatalf("task after the vanished worker: %v", st)
	}
}

// TestTaskPurgeAndFilterValidation: tasks/purge/ takes Pulp's datetime
// forms and final states only; bad filter values are 400s, not empty
// lists; the workers list shows the live workers.
func TestTaskPurgeAndFilterValidation(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		a, b := sleepTask(t, p, 0, "purge-a"), sleepTask(t, p, 0, "purge-b")
		p.waitState(a, "completed")
		p.waitState(b, "completed")
		long := sleepTask(t, p, 60, "purge-c")
		p.waitState(long, "running")
		// Tasks name the worker that ran them, and filter by it.
		worker, _ := p.get(a).json(t)["worker"].(string)
		if !strings.HasPrefix(worker, "/pulp/api/v3/workers/") || p.get(worker).code != 200 {
			t.Fatalf("task worker: %q", worker)
		}
		byWorker := p.get("/pulp/api/v3/tasks/?worker=" + worker).json(t)["results"].([]any)
		found := false
		for _, x := range byWorker {
			if x.(map[string]any)["worker"] != worker {
				t.Fatalf("worker filter returned a task of another worker: %v", x)
			}
			found = found || x.(map[string]any)["pulp_href"] == a
		}
		if !found {
			t.Fatalf("worker filter misses the task: %v", byWorker)
		}
		if n := p.get("/pulp/api/v3/tasks/?worker__isnull=true").json(t)["count"].(float64); n != 0 {
			t.Errorf("tasks without worker: %v", n)
		}
		for q, field := range map[string]string{
			"state=bogus":              "state",
			"state__in=running,bogus":  "state__in",
			"started_at__gte=tomorrow": "started_at__gte",
			"worker__isnull=perhaps":   "worker__isnull",
			"parent_task=/nope/":       "parent_task",
			"worker=/nope/":            "worker",
			"ordering=nonsense":        "ordering",
			"limit=-1":                 "limit",
		} {
			r := p.get("/pulp/api/v3/tasks/?" + q)
			if r.code != 400 || r.json(t)[field] == nil {
				t.Errorf("%s: %d %s", q, r.code, r.body)
			}
		}
		if n := p.get("/pulp/api/v3/tasks/?state__ne=completed").json(t)["count"].(float64); n != 1 {
			t.Errorf("state__ne=completed: %v", n)
		}
		if r := p.postJSON("/pulp/api/v3/tasks/purge/", map[string]any{"states": []string{"running"}}); r.code != 400 || r.json(t)["states"] == nil {
			t.Errorf("purge of running tasks: %d %s", r.code, r.body)
		}
		if r := p.postJSON("/pulp/api/v3/tasks/purge/", map[string]any{"finished_before": "soon"}); r.code != 400 || r.json(t)["finished_before"] == nil {
			t.Errorf("purge with a bad date: %d %s", r.code, r.body)
		}
		// pulp-cli and Pulp's tests send "%Y-%m-%dT%H:%M", without a zone.
		tomorrow := time.Now().UTC().Add(24 * time.Hour).Format("2006-01-02T15:04")
		r := p.postJSON("/pulp/api/v3/tasks/purge/", map[string]any{"finished_before": tomorrow, "states": []string{"completed"}})
		if r.code != 202 {
			t.Fatalf("purge: %d %s", r.code, r.body)
		}
		purge := r.json(t)["task"].(string)
		if st := p.waitTask(purge)["state"]; st != "completed" {
			t.Fatalf("purge task: %v", st)
		}
		for _, h := range []string{a, b} {
			if r := p.get(h); r.code != 404 {
				t.Errorf("purged task %s still there: %d", h, r.code)
			}
		}
		if st := p.get(long).json(t)["state"]; st != "running" {
			t.Errorf("running task touched by purge: %v", st)
		}
		if st := p.get(purge).json(t)["state"]; st != "completed" {
			t.Errorf("purge task itself: %v", st)
		}
		ws := p.get("/pulp/api/v3/workers/?online=true").json(t)
		if ws["count"].(float64) != 2 {
			t.Errorf("online workers: %v", ws)
		}
		p.patchJSON(long, map[string]any{"state": "canceled"})
		p.waitState(long, "canceled")
	})
}

// TestOrphanCleanupContent: cleanup removes content in no repository
// version, then the artifacts only it used, and their files; content in a
// repository version and its artifact stay.
func TestOrphanCleanupContent(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		upload := func() (href, file string) {
			body, ct := multipartBody("file", randBytes(700))
			a := p.do("POST", "/pulp/api/v3/artifacts/", body, ct).json(t)
			return a["pulp_href"].(string), filepath.Join(p.dataDir, "media", a["file"].(string))
		}
		keptArt, keptFile := upload()
		orphanArt, orphanFile := upload()
		repo := p.postJSON("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "orphans-repo"})
		if repo.code != 201 {
			t.Fatalf("repository: %d %s", repo.code, repo.body)
		}
		create := func(art, path string, extra map[string]any) string {
			t.Helper()
			body := map[string]any{"artifact": art, "relative_path": path}
			for k, v := range extra {
				body[k] = v
			}
			r := p.postJSON("/pulp/api/v3/content/file/files/", body)
			if r.code != 202 {
				t.Fatalf("content create: %d %s", r.code, r.body)
			}
			task := p.waitTask(r.json(t)["task"].(string))
			if task["state"] != "completed" {
				t.Fatalf("content create task: %v", task)
			}
			for _, h := range task["created_resources"].([]any) {
				if strings.HasPrefix(h.(string), "/pulp/api/v3/content/file/files/") {
					return h.(string)
				}
			}
			t.Fatalf("no content in %v", task["created_resources"])
			return ""
		}
		kept := create(keptArt, "kept.txt", map[string]any{"repository": repo.json(t)["pulp_href"]})
		orphan := create(orphanArt, "orphan.txt", nil)
		// content_hrefs limits the cleanup to the named units.
		otherArt, _ := upload()
		other := create(otherArt, "other.txt", nil)
		for _, bad := range []string{"/pulp/api/v3/content/file/files/nope/", "/pulp/api/v3/content/file/files/" + store.NewID() + "/"} {
			if r := p.postJSON("/pulp/api/v3/orphans/cleanup/", map[string]any{"content_hrefs": []string{bad}}); r.code != 400 || r.json(t)["content_hrefs"] == nil {
				t.Errorf("content_hrefs %s: %d %s", bad, r.code, r.body)
			}
		}
		r := p.postJSON("/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0, "content_hrefs": []string{other}})
		if task := p.waitTask(r.json(t)["task"].(string)); task["state"] != "completed" {
			t.Fatalf("scoped cleanup: %v", task)
		}
		if p.get(other).code != 404 || p.get(otherArt).code != 404 || p.get(orphan).code != 200 {
			t.Fatalf("scoped cleanup removed the wrong units")
		}
		// Within the protection time nothing goes.
		r = p.postJSON("/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 10})
		if task := p.waitTask(r.json(t)["task"].(string)); task["state"] != "completed" || p.get(orphan).code != 200 {
			t.Fatalf("protected orphan removed: %v", task)
		}
		r = p.postJSON("/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0})
		task := p.waitTask(r.json(t)["task"].(string))
		if task["state"] != "completed" {
			t.Fatalf("cleanup: %v", task)
		}
		for href, want := range map[string]int{kept: 200, keptArt: 200, orphan: 404, orphanArt: 404} {
			if c := p.get(href).code; c != want {
				t.Errorf("%s after cleanup: %d, want %d", href, c, want)
			}
		}
		if _, err := os.Stat(keptFile); err != nil {
			t.Errorf("file of content in a repository removed: %v", err)
		}
		if _, err := os.Stat(orphanFile); !os.IsNotExist(err) {
			t.Errorf("orphan artifact file survives: %v", err)
		}
	})
}
