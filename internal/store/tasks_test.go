package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

func insertTask(t *testing.T, s *store.Store, name string, excl, shared []string) *store.Task {
	t.Helper()
	tk := &store.Task{Name: name}
	if err := s.InsertTask(t.Context(), nil, tk, excl, shared); err != nil {
		t.Fatalf("insert %s: %v", name, err)
	}
	return tk
}

// claimName claims the next task and returns its name ("" for none).
func claimName(t *testing.T, s *store.Store) string {
	t.Helper()
	tk, err := s.ClaimTask(t.Context(), "w1")
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if tk == nil {
		return ""
	}
	if tk.State != store.TaskRunning || tk.Worker == nil || *tk.Worker != "w1" || tk.StartedAt == nil || tk.UnblockedAt == nil {
		t.Fatalf("claimed task not marked running by w1: %+v", tk)
	}
	return tk.Name
}

func finish(t *testing.T, s *store.Store, tk *store.Task) {
	t.Helper()
	if _, err := s.FinishTask(t.Context(), tk.ID, store.TaskCompleted, nil, nil); err != nil {
		t.Fatalf("finish %s: %v", tk.Name, err)
	}
}

func expectClaims(t *testing.T, s *store.Store, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := claimName(t, s); got != w {
			t.Fatalf("claim = %q, want %q", got, w)
		}
	}
}

func TestInsertTaskRecordsResources(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		user := "admin"
		tk := &store.Task{Name: "pith.test", LoggingCID: "cid-1", CreatedBy: &user, Args: json.RawMessage(`{"a":1}`)}
		if err := s.InsertTask(ctx, nil, tk, []string{"r1", "r2", "r1"}, []string{"r3", "r1"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetTask(ctx, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"r1", "r2", "shared:r3"}, got.ReservedResources); diff != "" {
			t.Errorf("reserved resources (-want +got):\n%s", diff)
		}
		if got.State != store.TaskWaiting || got.Name != "pith.test" || got.LoggingCID != "cid-1" || *got.CreatedBy != "admin" ||
			string(got.Args) != `{"a":1}` || got.Error != nil || got.Result != nil || got.StartedAt != nil || got.Created != tk.Created {
			t.Errorf("round trip: %+v", got)
		}
		rows, err := s.Query(ctx, `SELECT resource, exclusive FROM task_resources WHERE task_id = $1 ORDER BY resource`, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var res []string
		for rows.Next() {
			var r string
			var ex bool
			if err := rows.Scan(&r, &ex); err != nil {
				t.Fatal(err)
			}
			res = append(res, fmt.Sprintf("%s:%v", r, ex))
		}
		if diff := cmp.Diff([]string{"r1:true", "r2:true", "r3:false"}, res); diff != "" {
			t.Errorf("task_resources (-want +got):\n%s", diff)
		}
		if _, err := s.GetTask(ctx, store.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing task: err = %v, want ErrNotFound", err)
		}
	})
}

// Pulp's test_multi_resource_locking: T3 must not overtake T2, which waits
// for T1.
func TestClaimMultiResourceOrdering(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		t1 := insertTask(t, s, "t1", []string{"a"}, nil)
		t2 := insertTask(t, s, "t2", []string{"a", "b"}, nil)
		t3 := insertTask(t, s, "t3", []string{"b"}, nil)
		expectClaims(t, s, "t1", "")
		finish(t, s, t1)
		expectClaims(t, s, "t2", "")
		finish(t, s, t2)
		expectClaims(t, s, "t3", "")
		finish(t, s, t3)
		expectClaims(t, s, "")
	})
}

func TestClaimSharedAndExclusive(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		s1 := insertTask(t, s, "s1", nil, []string{"a"})
		s2 := insertTask(t, s, "s2", nil, []string{"a"})
		e3 := insertTask(t, s, "e3", []string{"a"}, nil)
		insertTask(t, s, "s4", nil, []string{"a"})
		insertTask(t, s, "other", []string{"z"}, nil)
		// Shared locks run together; the exclusive one waits behind them,
		// and the later shared one waits behind the exclusive one.
		expectClaims(t, s, "s1", "s2", "other", "")
		finish(t, s, s1)
		expectClaims(t, s, "")
		finish(t, s, s2)
		expectClaims(t, s, "e3", "")
		finish(t, s, e3)
		expectClaims(t, s, "s4", "")
	})
}

func TestClaimImmediateFirstButNeverOvertakes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		n1 := insertTask(t, s, "n1", []string{"x"}, nil)
		if err := s.InsertTask(ctx, nil, &store.Task{Name: "i2", Immediate: true}, []string{"x"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertTask(ctx, nil, &store.Task{Name: "i3", Immediate: true}, []string{"y"}, nil); err != nil {
			t.Fatal(err)
		}
		// i3 is free and immediate: first. i2 is immediate but behind n1.
		expectClaims(t, s, "i3", "n1", "")
		finish(t, s, n1)
		expectClaims(t, s, "i2")
	})
}

// A dispatch that commits after a later-created conflicting task was
// claimed must wait for it, even though it sorts earlier.
func TestClaimStartedTaskBlocksEarlierCreated(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		late := insertTask(t, s, "late", []string{"a"}, nil)
		expectClaims(t, s, "late")
		early := &store.Task{Name: "early", Created: late.Created - 1000}
		if err := s.InsertTask(t.Context(), nil, early, nil, []string{"a"}); err != nil {
			t.Fatal(err)
		}
		expectClaims(t, s, "")
		finish(t, s, late)
		expectClaims(t, s, "early")
	})
}

func TestClaimTaskByID(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		first := insertTask(t, s, "first", []string{"a"}, nil)
		blocked := insertTask(t, s, "blocked", []string{"a"}, nil)
		free := insertTask(t, s, "free", []string{"b"}, nil)
		if got, err := s.ClaimTaskByID(ctx, nil, blocked.ID, "api"); err != nil || got != nil {
			t.Fatalf("claim blocked = %v, %v; want nil", got, err)
		}
		got, err := s.ClaimTaskByID(ctx, nil, free.ID, "api")
		if err != nil || got == nil || got.ID != free.ID || *got.Worker != "api" {
			t.Fatalf("claim free = %+v, %v", got, err)
		}
		if got, err := s.ClaimTaskByID(ctx, nil, free.ID, "api"); err != nil || got != nil {
			t.Fatalf("claiming twice = %v, %v; want nil", got, err)
		}
		finish(t, s, first)
		if got, err := s.ClaimTaskByID(ctx, nil, blocked.ID, "api"); err != nil || got == nil {
			t.Fatalf("claim unblocked = %v, %v", got, err)
		}
		// Insert and claim in one transaction: the task is never visible
		// as waiting, and a conflicting one behind it is left alone.
		var inline *store.Task
		err = s.InTx(ctx, func(tx *store.Tx) error {
			tk := &store.Task{Name: "inline", Immediate: true}
			if err := s.InsertTask(ctx, tx, tk, []string{"c"}, nil); err != nil {
				return err
			}
			var err error
			inline, err = s.ClaimTaskByID(ctx, tx, tk.ID, "api")
			return err
		})
		if err != nil || inline == nil || inline.State != store.TaskRunning {
			t.Fatalf("insert and claim = %+v, %v", inline, err)
		}
		behind := insertTask(t, s, "behind", []string{"c"}, nil)
		if got, err := s.ClaimTaskByID(ctx, nil, behind.ID, "api"); err != nil || got != nil {
			t.Fatalf("claim behind running inline task = %v, %v", got, err)
		}
	})
}

// Many concurrent claimers: every task is claimed exactly once and no two
// conflicting tasks are ever running together.
func TestClaimConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		const tasks = 60
		for i := range tasks {
			excl := []string{fmt.Sprintf("r%d", i%4)}
			var shared []string
			if i%3 == 0 {
				excl, shared = nil, excl
			}
			insertTask(t, s, fmt.Sprint(i), excl, shared)
		}
		var (
			mu      sync.Mutex
			claimed = map[string]int{}
			excl    = map[string]int{}
			shared  = map[string]int{}
			bad     []string
			wg      sync.WaitGroup
		)
		for w := range 6 {
			wg.Go(func() {
				idle := 0
				for idle < 50 {
					tk, err := s.ClaimTask(ctx, fmt.Sprint("w", w))
					if err != nil {
						t.Error(err)
						return
					}
					if tk == nil {
						idle++
						time.Sleep(time.Millisecond)
						continue
					}
					idle = 0
					r := tk.ReservedResources[0]
					isShared := len(r) > 7 && r[:7] == "shared:"
					if isShared {
						r = r[7:]
					}
					mu.Lock()
					claimed[tk.ID]++
					if excl[r] > 0 || (!isShared && shared[r] > 0) {
						bad = append(bad, tk.Name)
					}
					if isShared {
						shared[r]++
					} else {
						excl[r]++
					}
					mu.Unlock()
					time.Sleep(200 * time.Microsecond)
					mu.Lock()
					if isShared {
						shared[r]--
					} else {
						excl[r]--
					}
					mu.Unlock()
					if _, err := s.FinishTask(ctx, tk.ID, store.TaskCompleted, nil, nil); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if len(bad) > 0 {
			t.Errorf("tasks claimed while a conflicting one ran: %v", bad)
		}
		if len(claimed) != tasks {
			t.Errorf("claimed %d distinct tasks, want %d", len(claimed), tasks)
		}
		for id, n := range claimed {
			if n != 1 {
				t.Errorf("task %s claimed %d times", id, n)
			}
		}
	})
}

func TestFinishTask(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		tk := insertTask(t, s, "t", []string{"a"}, nil)
		next := insertTask(t, s, "next", []string{"a"}, nil)
		expectClaims(t, s, "t")
		running := &store.ProgressReport{TaskID: tk.ID, Seq: 1, Message: "m1", Code: "c1", State: store.TaskRunning, Done: 3}
		done := &store.ProgressReport{TaskID: tk.ID, Seq: 2, Message: "m2", Code: "c2", State: store.TaskCompleted, Done: 1}
		for _, p := range []*store.ProgressReport{running, done} {
			if err := s.SaveProgress(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		errJSON := store.TaskError("boom", "")
		final, err := s.FinishTask(ctx, tk.ID, store.TaskFailed, errJSON, json.RawMessage(`{"n":2}`))
		if err != nil || final != store.TaskFailed {
			t.Fatalf("finish = %q, %v", final, err)
		}
		got, err := s.GetTask(ctx, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.TaskFailed || got.FinishedAt == nil || string(got.Result) != `{"n":2}` {
			t.Errorf("finished task: %+v", got)
		}
		var e map[string]string
		if err := json.Unmarshal(got.Error, &e); err != nil || e["description"] != "boom" {
			t.Errorf("error = %s (%v)", got.Error, err)
		}
		prog, err := s.TaskProgress(ctx, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ps := prog[tk.ID]; len(ps) != 2 || ps[0].State != store.TaskFailed || ps[1].State != store.TaskCompleted {
			t.Errorf("progress after finish: %+v", ps)
		}
		// Locks freed: the next conflicting task is claimable.
		expectClaims(t, s, "next")
		if _, err := s.FinishTask(ctx, tk.ID, store.TaskCompleted, nil, nil); !errors.Is(err, store.ErrTaskFinished) {
			t.Errorf("finishing twice: err = %v, want ErrTaskFinished", err)
		}
		if _, err := s.FinishTask(ctx, store.NewID(), store.TaskCompleted, nil, nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("finishing unknown: err = %v, want ErrNotFound", err)
		}
		if _, err := s.FinishTask(ctx, next.ID, store.TaskRunning, nil, nil); err == nil {
			t.Error("finishing with a non-final state succeeded")
		}
		// A canceling task ends canceled whatever its function returned.
		if st, err := s.SetTaskCanceling(ctx, next.ID); err != nil || st != store.TaskCanceling {
			t.Fatalf("cancel running = %q, %v", st, err)
		}
		if final, err := s.FinishTask(ctx, next.ID, store.TaskCompleted, nil, nil); err != nil || final != store.TaskCanceled {
			t.Errorf("finish canceling = %q, %v; want canceled", final, err)
		}
	})
}

func TestSetTaskCanceling(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		run := insertTask(t, s, "run", []string{"a"}, nil)
		wait := insertTask(t, s, "wait", []string{"b"}, nil)
		expectClaims(t, s, "run")
		behind := insertTask(t, s, "behind", []string{"b"}, nil)
		// Waiting: canceled at once, its lock freed for the task behind it.
		if st, err := s.SetTaskCanceling(ctx, wait.ID); err != nil || st != store.TaskCanceled {
			t.Fatalf("cancel waiting = %q, %v", st, err)
		}
		if got, _ := s.GetTask(ctx, wait.ID); got.State != store.TaskCanceled || got.FinishedAt == nil {
			t.Errorf("canceled waiting task: %+v", got)
		}
		expectClaims(t, s, "behind")
		if st, err := s.SetTaskCanceling(ctx, run.ID); err != nil || st != store.TaskCanceling {
			t.Fatalf("cancel running = %q, %v", st, err)
		}
		if st, err := s.SetTaskCanceling(ctx, run.ID); err != nil || st != store.TaskCanceling {
			t.Fatalf("cancel canceling = %q, %v", st, err)
		}
		if _, err := s.SetTaskCanceling(ctx, wait.ID); !errors.Is(err, store.ErrTaskFinished) {
			t.Errorf("cancel finished: err = %v, want ErrTaskFinished", err)
		}
		if _, err := s.SetTaskCanceling(ctx, store.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("cancel unknown: err = %v, want ErrNotFound", err)
		}
		_ = behind
	})
}

func TestTaskNotifications(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		wake, err := s.Listen(ctx, store.TaskWakeupChannel)
		if err != nil {
			t.Fatal(err)
		}
		cancel, err := s.Listen(ctx, store.TaskCancelChannel)
		if err != nil {
			t.Fatal(err)
		}
		if s.Dialect() == "sqlite" {
			if wake != nil || cancel != nil {
				t.Fatal("sqlite has no notifications but Listen returned channels")
			}
			return
		}
		recv := func(ch <-chan string, want string) {
			t.Helper()
			for {
				select {
				case got := <-ch:
					if got == want {
						return
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("no notification %q", want)
				}
			}
		}
		tk := insertTask(t, s, "t", []string{"a"}, nil)
		recv(wake, tk.ID)
		expectClaims(t, s, "t")
		if _, err := s.SetTaskCanceling(ctx, tk.ID); err != nil {
			t.Fatal(err)
		}
		recv(cancel, tk.ID)
		if _, err := s.FinishTask(ctx, tk.ID, store.TaskCanceled, nil, nil); err != nil {
			t.Fatal(err)
		}
		recv(wake, tk.ID)
	})
}

func TestDeleteAndPurgeTasks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		old := insertTask(t, s, "old", nil, nil)
		failed := insertTask(t, s, "failed", nil, nil)
		expectClaims(t, s, "old", "failed")
		finish(t, s, old)
		if _, err := s.FinishTask(ctx, failed.ID, store.TaskFailed, store.TaskError("x", ""), nil); err != nil {
			t.Fatal(err)
		}
		cut := store.Now() + 1
		recent := insertTask(t, s, "recent", nil, nil)
		incomplete := insertTask(t, s, "incomplete", nil, nil)
		if err := s.DeleteTask(ctx, incomplete.ID); !errors.Is(err, store.ErrTaskIncomplete) {
			t.Errorf("delete incomplete: err = %v, want ErrTaskIncomplete", err)
		}
		if err := s.DeleteTask(ctx, store.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("delete unknown: err = %v, want ErrNotFound", err)
		}
		if _, err := s.PurgeTasks(ctx, cut, []string{"running"}); err == nil {
			t.Error("purging a non-final state succeeded")
		}
		n, err := s.PurgeTasks(ctx, cut, []string{store.TaskCompleted})
		if err != nil || n != 1 {
			t.Fatalf("purge = %d, %v; want 1", n, err)
		}
		if _, err := s.GetTask(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
			t.Error("purged task still there")
		}
		if _, err := s.GetTask(ctx, failed.ID); err != nil {
			t.Error("failed task purged though only completed ones were asked for")
		}
		if err := s.DeleteTask(ctx, failed.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTask(ctx, failed.ID); !errors.Is(err, store.ErrNotFound) {
			t.Error("deleted task still there")
		}
		for _, tk := range []*store.Task{recent, incomplete} {
			if _, err := s.GetTask(ctx, tk.ID); err != nil {
				t.Errorf("%s: %v", tk.Name, err)
			}
		}
		if c, err := s.Count(ctx, "tasks"); err != nil || c != 2 {
			t.Errorf("row count = %d, %v; want 2", c, err)
		}
	})
}

func TestProgressCreatedResourcesChildren(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a := insertTask(t, s, "a", nil, nil)
		b := insertTask(t, s, "b", nil, nil)
		total := int64(10)
		p := &store.ProgressReport{TaskID: a.ID, Seq: 1, Message: "Downloading", Code: "sync.downloading", State: store.TaskRunning, Total: &total}
		if err := s.SaveProgress(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Done, p.State = 10, store.TaskCompleted
		if err := s.SaveProgress(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveProgress(ctx, &store.ProgressReport{TaskID: a.ID, Seq: 2, Message: "Parsing", Code: "sync.parsing", State: store.TaskRunning}); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveProgress(ctx, &store.ProgressReport{TaskID: b.ID, Seq: 1, Message: "B", Code: "b", State: store.TaskRunning}); err != nil {
			t.Fatal(err)
		}
		prog, err := s.TaskProgress(ctx, a.ID, b.ID, store.NewID())
		if err != nil {
			t.Fatal(err)
		}
		pa := prog[a.ID]
		if len(pa) != 2 || pa[0].Code != "sync.downloading" || pa[0].Done != 10 || *pa[0].Total != 10 || pa[0].State != store.TaskCompleted ||
			pa[1].Code != "sync.parsing" || pa[1].Total != nil || len(prog[b.ID]) != 1 {
			t.Errorf("progress: %+v", prog)
		}
		for _, h := range []string{"/pulp/api/v3/x/1/", "/pulp/api/v3/x/2/", "/pulp/api/v3/x/3/"} {
			if err := s.AddCreatedResource(ctx, a.ID, h); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddCreatedResource(ctx, b.ID, "/b/"); err != nil {
			t.Fatal(err)
		}
		cr, err := s.TaskCreatedResources(ctx, a.ID, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string][]string{a.ID: {"/pulp/api/v3/x/1/", "/pulp/api/v3/x/2/", "/pulp/api/v3/x/3/"}, b.ID: {"/b/"}}, cr); diff != "" {
			t.Errorf("created resources (-want +got):\n%s", diff)
		}
		c1 := &store.Task{Name: "c1", ParentTaskID: &a.ID}
		c2 := &store.Task{Name: "c2", ParentTaskID: &a.ID}
		for _, c := range []*store.Task{c1, c2} {
			if err := s.InsertTask(ctx, nil, c, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		ch, err := s.TaskChildren(ctx, a.ID, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string][]string{a.ID: {c1.ID, c2.ID}}, ch); diff != "" {
			t.Errorf("children (-want +got):\n%s", diff)
		}
		states, err := s.TaskStates(ctx, a.ID, c1.ID, store.NewID())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{a.ID: "waiting", c1.ID: "waiting"}, states); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
		// Batching: more ids than one batch.
		many := make([]string, 1200)
		for i := range many {
			many[i] = store.NewID()
		}
		many[1100] = a.ID
		if cr, err := s.TaskCreatedResources(ctx, many...); err != nil || len(cr[a.ID]) != 3 {
			t.Errorf("batched created resources = %v, %v", cr, err)
		}
		if n, err := s.CountTasksInState(ctx, store.TaskWaiting); err != nil || n != 4 {
			t.Errorf("waiting count = %d, %v; want 4", n, err)
		}
	})
}

func TestTaskGroups(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		g := &store.TaskGroup{Description: "refresh"}
		if err := s.InsertTaskGroup(ctx, nil, g); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i := range 3 {
			tk := &store.Task{Name: fmt.Sprint(i), TaskGroupID: &g.ID}
			if err := s.InsertTask(ctx, nil, tk, []string{"r"}, nil); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tk.ID)
		}
		tk, err := s.ClaimTask(ctx, "w")
		if err != nil || tk == nil || tk.ID != ids[0] {
			t.Fatalf("claim = %v, %v", tk, err)
		}
		if err := s.SetTaskGroupAllDispatched(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetTaskGroup(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"waiting": 2, "running": 1, "canceling": 0, "completed": 0, "failed": 0, "canceled": 0}
		if diff := cmp.Diff(want, got.Counts); diff != "" || got.Description != "refresh" || !got.AllTasksDispatched {
			t.Errorf("group %+v; counts (-want +got):\n%s", got, diff)
		}
		waiting, err := s.TaskGroupTaskIDs(ctx, g.ID, store.TaskWaiting)
		if err != nil || !cmp.Equal(waiting, ids[1:]) {
			t.Errorf("waiting ids = %v, %v", waiting, err)
		}
		all, err := s.TaskGroupTaskIDs(ctx, g.ID)
		if err != nil || !cmp.Equal(all, ids) {
			t.Errorf("all ids = %v, %v", all, err)
		}
		if _, err := s.GetTaskGroup(ctx, store.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown group: %v", err)
		}
	})
}

func TestHeartbeatsAndMissingWorkers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		for _, n := range []string{"alive", "stale"} {
			if err := s.Heartbeat(ctx, n, "worker"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Heartbeat(ctx, "api-1", "api"); err != nil {
			t.Fatal(err)
		}
		old := store.Now() - time.Hour.Microseconds()
		if _, err := s.Exec(ctx, `UPDATE app_status SET last_heartbeat = $1 WHERE name = 'stale'`, old); err != nil {
			t.Fatal(err)
		}
		online, err := s.OnlineApps(ctx, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range online {
			names = append(names, a.Name+"/"+a.AppType)
		}
		if diff := cmp.Diff([]string{"alive/worker", "api-1/api"}, names); diff != "" {
			t.Errorf("online (-want +got):\n%s", diff)
		}
		workers, err := s.ListAppStatuses(ctx, "worker")
		if err != nil || len(workers) != 2 {
			t.Fatalf("workers = %v, %v", workers, err)
		}
		if a, err := s.GetAppStatus(ctx, workers[0].ID); err != nil || a.Name != "alive" {
			t.Errorf("get app status = %+v, %v", a, err)
		}

		claimAs := func(name, worker string, res string) *store.Task {
			tk := insertTask(t, s, name, []string{res}, nil)
			got, err := s.ClaimTaskByID(ctx, nil, tk.ID, worker)
			if err != nil || got == nil {
				t.Fatalf("claim %s: %v, %v", name, got, err)
			}
			return tk
		}
		onAlive := claimAs("on-alive", "alive", "a")
		onStale := claimAs("on-stale", "stale", "b")
		onGone := claimAs("on-gone", "never-seen", "c")
		if _, err := s.SetTaskCanceling(ctx, onGone.ID); err != nil {
			t.Fatal(err)
		}
		next := insertTask(t, s, "next", []string{"b"}, nil)
		if err := s.SaveProgress(ctx, &store.ProgressReport{TaskID: onStale.ID, Seq: 1, Message: "m", Code: "c", State: store.TaskRunning}); err != nil {
			t.Fatal(err)
		}

		failed, err := s.FailTasksOfMissingWorkers(ctx, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{onStale.ID, onGone.ID}, failed, cmpSorted); diff != "" {
			t.Errorf("failed (-want +got):\n%s", diff)
		}
		for _, tk := range []*store.Task{onStale, onGone} {
			got, _ := s.GetTask(ctx, tk.ID)
			var e map[string]string
			_ = json.Unmarshal(got.Error, &e)
			if got.State != store.TaskFailed || e["description"] != store.MissingWorkerError {
				t.Errorf("%s: state %s error %s", tk.Name, got.State, got.Error)
			}
		}
		if got, _ := s.GetTask(ctx, onAlive.ID); got.State != store.TaskRunning {
			t.Errorf("task of live worker: %s", got.State)
		}
		if prog, _ := s.TaskProgress(ctx, onStale.ID); prog[onStale.ID][0].State != store.TaskFailed {
			t.Errorf("progress of failed task: %+v", prog)
		}
		// The freed lock lets the next task on "b" run.
		if got, err := s.ClaimTaskByID(ctx, nil, next.ID, "alive"); err != nil || got == nil {
			t.Errorf("task behind the missing worker's one: %v, %v", got, err)
		}
		// A restarted process fails what its previous incarnation held,
		// even though the name's heartbeat is fresh.
		mine := claimAs("restarted", "alive", "d")
		if ids, err := s.FailTasksOfWorker(ctx, "alive"); err != nil || !cmp.Equal(ids, []string{onAlive.ID, next.ID, mine.ID}, cmpSorted) {
			t.Errorf("FailTasksOfWorker = %v, %v", ids, err)
		}
		if got, _ := s.GetTask(ctx, mine.ID); got.State != store.TaskFailed {
			t.Errorf("task of restarted worker: %s", got.State)
		}
		if err := s.DeleteAppStatus(ctx, "alive"); err != nil {
			t.Fatal(err)
		}
		if ws, _ := s.ListAppStatuses(ctx, "worker"); len(ws) != 1 {
			t.Errorf("after delete: %v", ws)
		}
	})
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// SQLite is single-process: after a crash, whatever was running at the
// time is failed when the store is opened again.
func TestFailAllRunningAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	tk := insertTask(t, s, "interrupted", []string{"a"}, nil)
	waiting := insertTask(t, s, "waiting", []string{"a"}, nil)
	expectClaims(t, s, "interrupted")
	s.Close() // the process dies; the row stays running

	s, err = store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.FailAllRunning(ctx, store.MissingWorkerError)
	if err != nil || n != 1 {
		t.Fatalf("FailAllRunning = %d, %v; want 1", n, err)
	}
	got, err := s.GetTask(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.TaskFailed || got.FinishedAt == nil {
		t.Errorf("interrupted task: %+v", got)
	}
	if got, _ := s.GetTask(ctx, waiting.ID); got.State != store.TaskWaiting {
		t.Errorf("waiting task touched: %s", got.State)
	}
	expectClaims(t, s, "waiting")
}

// TestOnlyPulpTaskStates: the database itself refuses any state but
// Pulp's six, on insert and on update.
func TestOnlyPulpTaskStates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		tk := &store.Task{Name: "pith.test", Args: json.RawMessage(`{}`)}
		if err := s.InsertTask(ctx, nil, tk, nil, nil); err != nil {
			t.Fatal(err)
		}
		for _, st := range []string{"waiting", "running", "canceling", "completed", "failed", "canceled"} {
			if _, err := s.Exec(ctx, `UPDATE tasks SET state = $1 WHERE id = $2`, st, tk.ID); err != nil {
				t.Errorf("state %s refused: %v", st, err)
			}
		}
		for _, st := range []string{"skipped", "queued", ""} {
			if _, err := s.Exec(ctx, `UPDATE tasks SET state = $1 WHERE id = $2`, st, tk.ID); err == nil {
				t.Errorf("state %q accepted", st)
			}
		}
		if _, err := s.Exec(ctx, `INSERT INTO tasks (id, created, last_updated, name, state) VALUES ($1, 1, 1, 'x', 'done')`, store.NewID()); err == nil {
			t.Error("insert with state done accepted")
		}
		if got, _ := s.GetTask(ctx, tk.ID); got.State != store.TaskCanceled {
			t.Errorf("state after refused updates: %s", got.State)
		}
	})
}
