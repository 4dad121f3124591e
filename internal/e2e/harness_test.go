// Package e2e drives a real `pith serve` process over HTTP, as users and
// pulp-cli do: the binary is built once, started on a free loopback port
// with its own data directory, and killed or signalled where a test needs.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/store/storetest"
)

var pithBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pith-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pithBin = filepath.Join(dir, "pith")
	build := exec.Command("go", "build", "-o", pithBin, "github.com/pith-project/pith/cmd/pith")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build pith:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const password = "e2e-secret"

// instance is one pith process plus what is needed to restart it on the
// same data.
type instance struct {
	t       *testing.T
	dataDir string
	dbURL   string
	addr    string
	base    string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	exited  chan struct{}
	// env is appended to the process environment (later entries win);
	// args, when set, replace the default serve command line.
	env  []string
	args func(p *instance) []string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// backends runs fn against a pith on SQLite, and on PostgreSQL when the
// test database is configured.
func backends(t *testing.T, fn func(t *testing.T, p *instance)) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			p := &instance{t: t, dataDir: t.TempDir(), dbURL: b.URL(t)}
			p.start()
			t.Cleanup(p.stop)
			fn(t, p)
		})
	}
}

func (p *instance) start() {
	p.t.Helper()
	p.addr = freeAddr(p.t)
	p.base = "http://" + p.addr
	p.log = &bytes.Buffer{}
	args := []string{"serve", "--addr", p.addr, "--data-dir", p.dataDir, "--workers", "2", "--worker-ttl", "3s"}
	if p.args != nil {
		args = p.args(p)
	}
	p.cmd = exec.Command(pithBin, args...)
	p.cmd.Env = append(os.Environ(), "PITH_ADMIN_PASSWORD="+password, "PITH_ENABLE_TEST_TASKS=true", "PITH_DATABASE_URL="+p.dbURL)
	p.cmd.Env = append(p.cmd.Env, p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.base + "/pulp/api/v3/status/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("pith exited during start:\n%s", p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("pith did not come up:\n%s", p.log.String())
}

func (p *instance) signal(sig syscall.Signal) {
	p.cmd.Process.Signal(sig)
}

func (p *instance) waitExit(d time.Duration) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("pith did not exit within %s:\n%s", d, p.log.String())
	}
}

func (p *instance) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

func (p *instance) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.kill()
	}
	if p.t.Failed() {
		p.t.Logf("pith log:\n%s", p.log.String())
	}
}

type resp struct {
	code int
	hdr  http.Header
	body []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.code, err, r.body)
	}
	return m
}

func (p *instance) do(method, path string, body io.Reader, ctype string, hdr ...string) resp {
	p.t.Helper()
	url := path
	if strings.HasPrefix(path, "/") {
		url = p.base + path
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		p.t.Fatal(err)
	}
	req.SetBasicAuth("admin", password)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{code: res.StatusCode, hdr: res.Header, body: b}
}

func (p *instance) get(path string) resp { return p.do("GET", path, nil, "") }

func (p *instance) postJSON(path string, v any) resp {
	b, _ := json.Marshal(v)
	return p.do("POST", path, bytes.NewReader(b), "application/json")
}

func (p *instance) patchJSON(path string, v any) resp {
	b, _ := json.Marshal(v)
	return p.do("PATCH", path, bytes.NewReader(b), "application/json")
}

// multipartBody builds a form with one file part and string fields.
func multipartBody(file string, data []byte, fields ...string) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		mw.WriteField(fields[i], fields[i+1])
	}
	if file != "" {
		fw, _ := mw.CreateFormFile(file, "blob")
		fw.Write(data)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// waitTask polls a task until it reaches a final state.
func (p *instance) waitTask(href string) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := p.get(href)
		if r.code != 200 {
			p.t.Fatalf("GET %s: %d %s", href, r.code, r.body)
		}
		task := r.json(p.t)
		switch task["state"] {
		case "completed", "failed", "canceled":
			return task
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("task %s did not finish", href)
	return nil
}

// waitState polls a task until it is in state.
func (p *instance) waitState(href, state string) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		task := p.get(href).json(p.t)
		if task["state"] == state {
			return task
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("task %s never reached %s", href, state)
	return nil
}

// filesUnder lists regular files below dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	return out
}
