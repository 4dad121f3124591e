package coreapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
	"github.com/pith-project/pith/internal/tasking"
)

// coreServer is the core API on a real store with one task worker.
type coreServer struct {
	t   *testing.T
	url string
	st  *store.Store
	mgr *tasking.Manager
}

func newCoreServer(t *testing.T, st *store.Store, register func(m *tasking.Manager)) *coreServer {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	mgr, err := tasking.New(st, tasking.Options{Logger: log, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	storage, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Auth: benchAuth{}, Logger: log, SpoolDir: t.TempDir()})
	coreapi.Register(srv, &coreapi.Deps{Store: st, Storage: storage, Tasks: mgr, Log: log, DataDir: t.TempDir()})
	register(mgr)
	if err := mgr.RunWorkers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		mgr.Shutdown(ctx, true)
		storage.Close()
	})
	return &coreServer{t: t, url: ts.URL, st: st, mgr: mgr}
}

func (s *coreServer) do(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, r)
	req.SetBasicAuth("admin", "x")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// TestTaskGroupsAPI: a group shows its tasks' states as counts, lists
// them, filters tasks by group, and PATCH cancels every unfinished task.
func TestTaskGroupsAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		started := make(chan struct{}, 10)
		s := newCoreServer(t, st, func(m *tasking.Manager) {
			m.Register("t.block", func(ctx context.Context, _ *tasking.Task) error {
				started <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			})
			m.Register("t.noop", func(context.Context, *tasking.Task) error { return nil })
		})
		ctx := t.Context()
		g := &store.TaskGroup{Description: "a group"}
		if err := st.InsertTaskGroup(ctx, nil, g); err != nil {
			t.Fatal(err)
		}
		done, err := s.mgr.Dispatch(ctx, tasking.DispatchRequest{Name: "t.noop", TaskGroupID: g.ID, Exclusive: []string{"other"}})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			tk, _ := st.GetTask(ctx, done.ID)
			if tk.State == store.TaskCompleted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("noop task: %s", tk.State)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for range 3 {
			if _, err := s.mgr.Dispatch(ctx, tasking.DispatchRequest{Name: "t.block", TaskGroupID: g.ID, Exclusive: []string{"r"}}); err != nil {
				t.Fatal(err)
			}
		}
		<-started
		if err := st.SetTaskGroupAllDispatched(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		href := coreapi.TaskGroupHref(g.ID)
		code, grp := s.do("GET", href, nil)
		if code != 200 || grp["running"] != 1.0 || grp["waiting"] != 2.0 || grp["completed"] != 1.0 || grp["all_tasks_dispatched"] != true || len(grp["tasks"].([]any)) != 4 {
			t.Fatalf("group: %d %v", code, grp)
		}
		if code, l := s.do("GET", coreapi.TasksPath+"?task_group="+href, nil); code != 200 || l["count"] != 4.0 {
			t.Fatalf("tasks of the group: %d %v", code, l)
		}
		if code, l := s.do("GET", coreapi.TaskGroupsPath, nil); code != 200 || l["count"] != 1.0 {
			t.Fatalf("group list: %d %v", code, l)
		}
		if code, _ := s.do("PATCH", href, map[string]any{"state": "canceled"}); code != 200 {
			t.Fatalf("cancel group: %d", code)
		}
		deadline = time.Now().Add(10 * time.Second)
		for {
			_, grp = s.do("GET", href, nil)
			if grp["canceled"] == 3.0 && grp["completed"] == 1.0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("group after cancel: %v", grp)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if code, _ := s.do("GET", coreapi.TaskGroupsPath+store.NewID()+"/", nil); code != 404 {
			t.Fatalf("unknown group: %d", code)
		}
	})
}
