package file

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
	"github.com/pith-project/pith/internal/tasking"
)

// testEnv is a pith API (core and file plugin) over a real store, with a
// tasking manager running workers, served on loopback.
type testEnv struct {
	t     testing.TB
	Store *store.Store
	Core  *coreapi.Deps
	Deps  *Deps
	Tasks *tasking.Manager
	API   *api.Server
	// URL is the server's base URL (no trailing slash).
	URL string
	// ImportDir is an allowed import path for file:// URLs.
	ImportDir string
}

const (
	testUser     = "admin"
	testPassword = "password"
)

type testAuth struct{}

func (testAuth) Authenticate(_ context.Context, u, p string) (bool, error) {
	return u == testUser && p == testPassword, nil
}

var testEnvSeq atomic.Int64

// eachEnv runs fn once per available database backend, each with a fresh
// environment.
func eachEnv(t *testing.T, fn func(t *testing.T, e *testEnv)) {
	t.Helper()
	storetest.Each(t, func(t *testing.T, s *store.Store) { fn(t, newTestEnv(t, s)) })
}

// newTestEnv builds the environment on s with two workers; everything
// stops when the test ends.
func newTestEnv(t testing.TB, s *store.Store) *testEnv {
	t.Helper()
	return newTestEnvWorkers(t, s, 2)
}

// newTestEnvWorkers is newTestEnv with n workers (0: only immediate tasks
// run, inline; start workers later with e.Tasks.RunWorkers).
func newTestEnvWorkers(t testing.TB, s *store.Store, workers int) *testEnv {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	mgr, err := tasking.New(s, tasking.Options{
		Logger: log, Name: fmt.Sprintf("filetest-%d", testEnvSeq.Add(1)), PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	storage, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { storage.Close() })
	srv := api.New(api.Options{Auth: testAuth{}, Logger: log, SpoolDir: t.TempDir(), Info: map[string]any{"x-pulp-app-versions": coreapi.AppVersions()}})
	core := &coreapi.Deps{Store: s, Storage: storage, Tasks: mgr, Log: log, DataDir: t.TempDir()}
	coreapi.Register(srv, core)
	e := &testEnv{t: t, Store: s, Core: core, Tasks: mgr, API: srv, ImportDir: t.TempDir()}
	e.Deps = &Deps{
		Store: s, Storage: storage, Tasks: mgr, Log: log, Core: core, TempDir: t.TempDir(),
		AllowedImportPaths: []string{e.ImportDir},
	}
	Register(srv, e.Deps)
	if !hasRoute(srv, "remotes_list") {
		srv.Register(coreapi.GenericRemoteRoutes(core)...)
	}
	if err := mgr.RunWorkers(context.Background(), workers); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	e.URL = hs.URL
	// Stop serving before the workers, so no request dispatches into a
	// stopped manager.
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := mgr.Shutdown(ctx, true); err != nil {
			t.Errorf("shutdown tasking: %v", err)
		}
	})
	return e
}

func hasRoute(s *api.Server, op string) bool {
	for _, rt := range s.Routes() {
		if rt.OperationID == op {
			return true
		}
	}
	return false
}

// do sends a request with a JSON body (nil: none; a string or []byte is
// sent as is) and returns the status and body.
func (e *testEnv) do(method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	if !strings.HasPrefix(path, "http") {
		path = e.URL + path
	}
	req, err := http.NewRequest(method, path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPassword)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// call sends a request, fails the test unless the status is want, and
// decodes the answer into out (if not nil).
func (e *testEnv) call(method, path string, body any, want int, out any) []byte {
	e.t.Helper()
	code, b := e.do(method, path, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return b
}

// testTask is the part of a task the tests read.
type testTask struct {
	PulpHref         string            `json:"pulp_href"`
	Name             string            `json:"name"`
	State            string            `json:"state"`
	Error            map[string]any    `json:"error"`
	CreatedResources []string          `json:"created_resources"`
	Reserved         []string          `json:"reserved_resources_record"`
	ProgressReports  []json.RawMessage `json:"progress_reports"`
}

// waitTask waits for the task at href to finish and returns it as the API
// shows it.
func (e *testEnv) waitTask(href string) testTask {
	e.t.Helper()
	id := api.IDFromHref(href, coreapi.TasksPath, "core.task")
	if id == "" {
		e.t.Fatalf("not a task href: %q", href)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := e.Tasks.Wait(ctx, id); err != nil {
		e.t.Fatalf("wait for task %s: %v", href, err)
	}
	var t testTask
	e.call("GET", href, nil, http.StatusOK, &t)
	return t
}

// async sends a request expecting 202 and waits for its task, which must
// complete.
func (e *testEnv) async(method, path string, body any) testTask {
	e.t.Helper()
	var r api.AsyncResponse
	e.call(method, path, body, http.StatusAccepted, &r)
	t := e.waitTask(r.Task)
	if t.State != "completed" {
		e.t.Fatalf("%s %s: task %s ended %s: %v", method, path, t.Name, t.State, t.Error)
	}
	return t
}
