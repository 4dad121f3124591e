package tasking_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
	"github.com/pith-project/pith/internal/tasking"
)

var nameSeq atomic.Int64

// newManager returns a manager with fast polling, shut down (canceling
// running tasks) when the test ends.
func newManager(t testing.TB, s *store.Store, opts tasking.Options) *tasking.Manager {
	t.Helper()
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("test-%d", nameSeq.Add(1))
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := tasking.New(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx, true); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return m
}

func dispatch(t testing.TB, m *tasking.Manager, req tasking.DispatchRequest) *store.Task {
	t.Helper()
	tk, err := m.Dispatch(context.Background(), req)
	if err != nil {
		t.Fatalf("dispatch %s: %v", req.Name, err)
	}
	return tk
}

func wait(t testing.TB, m *tasking.Manager, id string) *store.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tk, err := m.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for task %s: %v", id, err)
	}
	return tk
}

func shutdown(t testing.TB, m *tasking.Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx, false); err != nil {
		t.Fatal(err)
	}
}

func runWorkers(t testing.TB, m *tasking.Manager, n int) {
	t.Helper()
	if err := m.RunWorkers(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func taskError(t testing.TB, tk *store.Task) map[string]string {
	t.Helper()
	var e map[string]string
	if err := json.Unmarshal(tk.Error, &e); err != nil {
		t.Fatalf("task error %q: %v", tk.Error, err)
	}
	return e
}

func TestTaskArgsProgressCreatedResourcesResult(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		type args struct{ N int64 }
		m.Register("t.count", func(ctx context.Context, tk *tasking.Task) error {
			var a args
			if err := tk.Args(&a); err != nil {
				return err
			}
			p := tk.Progress("Counting", "count.items", &a.N)
			for range a.N {
				p.Increment(1)
			}
			p.Done()
			left := tk.Progress("Left running", "count.left", nil)
			left.SetSuffix("sfx")
			left.SetTotal(7)
			tk.AddCreatedResource("/pulp/api/v3/things/1/")
			tk.AddCreatedResource("/pulp/api/v3/things/2/")
			return tk.SetResult(map[string]int64{"counted": a.N})
		})
		runWorkers(t, m, 1)
		tk := wait(t, m, dispatch(t, m, tasking.DispatchRequest{Name: "t.count", Args: args{N: 5}, LoggingCID: "cid"}).ID)
		if tk.State != store.TaskCompleted || tk.Error != nil || string(tk.Result) != `{"counted":5}` || tk.FinishedAt == nil || tk.LoggingCID != "cid" {
			t.Fatalf("task: %+v (error %s)", tk, tk.Error)
		}
		prog, err := s.TaskProgress(t.Context(), tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		ps := prog[tk.ID]
		if len(ps) != 2 {
			t.Fatalf("progress reports: %+v", ps)
		}
		if p := ps[0]; p.Code != "count.items" || p.Message != "Counting" || p.Done != 5 || p.Total == nil || *p.Total != 5 || p.State != store.TaskCompleted {
			t.Errorf("first report: %+v", p)
		}
		// The report left running is saved and forced to the task's state.
		if p := ps[1]; p.Code != "count.left" || p.State != store.TaskCompleted || *p.Total != 7 || *p.Suffix != "sfx" {
			t.Errorf("second report: %+v", p)
		}
		cr, err := s.TaskCreatedResources(t.Context(), tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"/pulp/api/v3/things/1/", "/pulp/api/v3/things/2/"}, cr[tk.ID]); diff != "" {
			t.Errorf("created resources (-want +got):\n%s", diff)
		}
	})
}

func TestFailureAndPanic(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		var cleaned []string
		var mu sync.Mutex
		m.Register("t.fail", func(ctx context.Context, tk *tasking.Task) error {
			for _, n := range []string{"first", "second"} {
				tk.OnCleanup(func(context.Context) error {
					mu.Lock()
					cleaned = append(cleaned, n)
					mu.Unlock()
					return nil
				})
			}
			tk.Progress("Working", "work", nil)
			return tasking.WithCode(errors.New("the remote said no"), "PLP0001")
		})
		m.Register("t.panic", func(ctx context.Context, tk *tasking.Task) error {
			panic("kaboom")
		})
		runWorkers(t, m, 1)
		failed := wait(t, m, dispatch(t, m, tasking.DispatchRequest{Name: "t.fail"}).ID)
		e := taskError(t, failed)
		if failed.State != store.TaskFailed || e["description"] != "the remote said no" || e["error_code"] != "PLP0001" {
			t.Errorf("failed task: state %s error %s", failed.State, failed.Error)
		}
		if _, ok := e["traceback"]; !ok {
			t.Errorf("error lacks traceback: %s", failed.Error)
		}
		mu.Lock()
		if diff := cmp.Diff([]string{"second", "first"}, cleaned); diff != "" {
			t.Errorf("cleanups (-want +got):\n%s", diff)
		}
		mu.Unlock()
		prog, _ := s.TaskProgress(t.Context(), failed.ID)
		if ps := prog[failed.ID]; len(ps) != 1 || ps[0].State != store.TaskFailed {
			t.Errorf("progress of failed task: %+v", ps)
		}

		panicked := wait(t, m, dispatch(t, m, tasking.DispatchRequest{Name: "t.panic"}).ID)
		e = taskError(t, panicked)
		if panicked.State != store.TaskFailed || e["description"] != "panic: kaboom" || !strings.Contains(e["traceback"], "tasking_test.go") {
			t.Errorf("panicked task: state %s error %s", panicked.State, panicked.Error)
		}
		// The worker survived the panic.
		if tk := wait(t, m, dispatch(t, m, tasking.DispatchRequest{Name: "t.fail"}).ID); tk.State != store.TaskFailed {
			t.Errorf("task after panic: %s", tk.State)
		}
		if _, err := m.Dispatch(t.Context(), tasking.DispatchRequest{Name: "t.unknown"}); err == nil {
			t.Error("dispatching an unregistered task succeeded")
		}
	})
}

// resourceTracker checks, inside task functions, that no two conflicting
// tasks run at once, and records start/finish order.
type resourceTracker struct {
	mu          sync.Mutex
	excl, share map[string]int
	clock       int
	start, end  map[string]int
	violations  []string
	maxRunning  int
	running     int
}

func newTracker() *resourceTracker {
	return &resourceTracker{excl: map[string]int{}, share: map[string]int{}, start: map[string]int{}, end: map[string]int{}}
}

type lockArgs struct {
	ID        string
	Exclusive []string
	Shared    []string
}

func (r *resourceTracker) enter(a lockArgs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range a.Exclusive {
		if r.excl[x] > 0 || r.share[x] > 0 {
			r.violations = append(r.violations, a.ID+" exclusive "+x)
		}
		r.excl[x]++
	}
	for _, x := range a.Shared {
		if r.excl[x] > 0 {
			r.violations = append(r.violations, a.ID+" shared "+x)
		}
		r.share[x]++
	}
	r.clock++
	r.start[a.ID] = r.clock
	r.running++
	r.maxRunning = max(r.maxRunning, r.running)
}

func (r *resourceTracker) leave(a lockArgs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range a.Exclusive {
		r.excl[x]--
	}
	for _, x := range a.Shared {
		r.share[x]--
	}
	r.clock++
	r.end[a.ID] = r.clock
	r.running--
}

func (r *resourceTracker) taskFunc() tasking.TaskFunc {
	return func(ctx context.Context, tk *tasking.Task) error {
		var a lockArgs
		if err := tk.Args(&a); err != nil {
			return err
		}
		r.enter(a)
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
		r.leave(a)
		return nil
	}
}

func conflicts(a, b lockArgs) bool {
	has := func(list []string, x string) bool {
		for _, y := range list {
			if y == x {
				return true
			}
		}
		return false
	}
	for _, x := range a.Exclusive {
		if has(b.Exclusive, x) || has(b.Shared, x) {
			return true
		}
	}
	for _, x := range a.Shared {
		if has(b.Exclusive, x) {
			return true
		}
	}
	return false
}

// randomLocks picks one or two resources among four, each exclusive or
// shared.
func randomLocks(id string) lockArgs {
	a := lockArgs{ID: id}
	res := []string{"a", "b", "c", "d"}
	rand.Shuffle(len(res), func(i, j int) { res[i], res[j] = res[j], res[i] })
	for _, r := range res[:1+rand.IntN(2)] {
		if rand.IntN(3) == 0 {
			a.Shared = append(a.Shared, r)
		} else {
			a.Exclusive = append(a.Exclusive, r)
		}
	}
	return a
}

// checkOrder verifies that of any two conflicting tasks the earlier
// dispatched one finished before the later one started.
func (r *resourceTracker) checkOrder(t *testing.T, dispatched []lockArgs) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.violations) > 0 {
		t.Errorf("conflicting tasks ran together: %v", r.violations)
	}
	for i, a := range dispatched {
		for _, b := range dispatched[i+1:] {
			if conflicts(a, b) && r.end[a.ID] > r.start[b.ID] {
				t.Errorf("task %v started before the earlier conflicting %v finished", b, a)
			}
		}
	}
}

func TestConflictingTasksNeverOverlapAndKeepOrder(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		tr := newTracker()
		m.Register("t.lock", tr.taskFunc())
		runWorkers(t, m, 4)
		var dispatched []lockArgs
		var ids []string
		for i := range 60 {
			a := randomLocks(fmt.Sprint(i))
			dispatched = append(dispatched, a)
			ids = append(ids, dispatch(t, m, tasking.DispatchRequest{Name: "t.lock", Args: a, Exclusive: a.Exclusive, Shared: a.Shared}).ID)
		}
		for _, id := range ids {
			if tk := wait(t, m, id); tk.State != store.TaskCompleted {
				t.Fatalf("task %s: %s %s", id, tk.State, tk.Error)
			}
		}
		tr.checkOrder(t, dispatched)
	})
}

// twoStores opens two handles on one fresh database, as two processes
// would; SQLite is single-process, so there both managers share one store.
func twoStores(t *testing.T, b storetest.Backend) (*store.Store, *store.Store) {
	t.Helper()
	url := b.URL(t)
	open := func() *store.Store {
		s, err := store.Open(context.Background(), url, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s1 := open()
	if b.Name == "sqlite" {
		return s1, s1
	}
	return s1, open()
}

func TestTwoProcessesRunEachTaskOnce(t *testing.T) {
	t.Parallel()
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s1, s2 := twoStores(t, b)
			tr := newTracker()
			var mu sync.Mutex
			runs := map[string]int{}
			fn := tr.taskFunc()
			count := func(ctx context.Context, tk *tasking.Task) error {
				mu.Lock()
				runs[tk.ID]++
				mu.Unlock()
				return fn(ctx, tk)
			}
			m1 := newManager(t, s1, tasking.Options{})
			m2 := newManager(t, s2, tasking.Options{})
			m1.Register("t.lock", count)
			m2.Register("t.lock", count)
			runWorkers(t, m1, 3)
			runWorkers(t, m2, 3)
			var dispatched []lockArgs
			var ids []string
			for i := range 80 {
				a := randomLocks(fmt.Sprint(i))
				m := m1
				if i%2 == 1 {
					m = m2
				}
				dispatched = append(dispatched, a)
				ids = append(ids, dispatch(t, m, tasking.DispatchRequest{Name: "t.lock", Args: a, Exclusive: a.Exclusive, Shared: a.Shared}).ID)
			}
			workers := map[string]bool{}
			for _, id := range ids {
				tk := wait(t, m1, id)
				if tk.State != store.TaskCompleted {
					t.Fatalf("task %s: %s %s", id, tk.State, tk.Error)
				}
				workers[strings.SplitN(*tk.Worker, "/", 2)[0]] = true
			}
			mu.Lock()
			for _, id := range ids {
				if runs[id] != 1 {
					t.Errorf("task %s ran %d times", id, runs[id])
				}
			}
			mu.Unlock()
			tr.checkOrder(t, dispatched)
			if len(workers) != 2 {
				t.Logf("tasks ran in %d of 2 managers", len(workers))
			}
		})
	}
}

func TestSharedLocksRunConcurrently(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		var arrived sync.WaitGroup
		arrived.Add(2)
		both := make(chan struct{})
		go func() { arrived.Wait(); close(both) }()
		m.Register("t.meet", func(ctx context.Context, tk *tasking.Task) error {
			arrived.Done()
			select {
			case <-both:
				return nil
			case <-time.After(10 * time.Second):
				return errors.New("the other shared task never ran alongside")
			}
		})
		runWorkers(t, m, 2)
		a := dispatch(t, m, tasking.DispatchRequest{Name: "t.meet", Shared: []string{"repo"}})
		b := dispatch(t, m, tasking.DispatchRequest{Name: "t.meet", Shared: []string{"repo"}})
		for _, id := range []string{a.ID, b.ID} {
			if tk := wait(t, m, id); tk.State != store.TaskCompleted {
				t.Errorf("task %s: %s %s", id, tk.State, tk.Error)
			}
		}
	})
}

// blocker registers a task that signals when it starts and runs until
// released or canceled, recording cleanups.
type blocker struct {
	started  chan string
	release  chan struct{}
	cleaned  chan string
	ignoreCx bool
}

func newBlocker(m *tasking.Manager, name string) *blocker {
	b := &blocker{started: make(chan string, 10), release: make(chan struct{}), cleaned: make(chan string, 10)}
	m.Register(name, func(ctx context.Context, tk *tasking.Task) error {
		tk.OnCleanup(func(context.Context) error {
			b.cleaned <- tk.ID
			return nil
		})
		b.started <- tk.ID
		if b.ignoreCx {
			<-b.release
			return nil
		}
		select {
		case <-b.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return b
}

func TestCancelWaitingTaskNeverRuns(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		b := newBlocker(m, "t.block")
		var victimRan atomic.Bool
		m.Register("t.victim", func(context.Context, *tasking.Task) error { victimRan.Store(true); return nil })
		m.Register("t.after", func(context.Context, *tasking.Task) error { return nil })
		runWorkers(t, m, 2)
		first := dispatch(t, m, tasking.DispatchRequest{Name: "t.block", Exclusive: []string{"r"}})
		recv(t, b.started, "blocker start")
		victim := dispatch(t, m, tasking.DispatchRequest{Name: "t.victim", Exclusive: []string{"r"}})
		got, err := m.Cancel(t.Context(), victim.ID)
		if err != nil || got.State != store.TaskCanceled {
			t.Fatalf("cancel waiting = %+v, %v", got, err)
		}
		close(b.release)
		if tk := wait(t, m, first.ID); tk.State != store.TaskCompleted {
			t.Fatalf("blocker: %s", tk.State)
		}
		after := dispatch(t, m, tasking.DispatchRequest{Name: "t.after", Exclusive: []string{"r"}})
		if tk := wait(t, m, after.ID); tk.State != store.TaskCompleted {
			t.Fatalf("task after: %s", tk.State)
		}
		if victimRan.Load() {
			t.Error("the canceled waiting task ran")
		}
		if tk, _ := s.GetTask(t.Context(), victim.ID); tk.State != store.TaskCanceled || tk.StartedAt != nil || tk.FinishedAt == nil {
			t.Errorf("canceled waiting task: %+v", tk)
		}
	})
}

func TestCancelRunningTask(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{PollInterval: time.Hour}) // no poll: cancellation must be direct
		b := newBlocker(m, "t.block")
		m.Register("t.next", func(context.Context, *tasking.Task) error { return nil })
		runWorkers(t, m, 2)
		victim := dispatch(t, m, tasking.DispatchRequest{Name: "t.block", Exclusive: []string{"r"}})
		recv(t, b.started, "task start")
		next := dispatch(t, m, tasking.DispatchRequest{Name: "t.next", Exclusive: []string{"r"}})
		start := time.Now()
		got, err := m.Cancel(t.Context(), victim.ID)
		if err != nil || (got.State != store.TaskCanceling && got.State != store.TaskCanceled) {
			t.Fatalf("cancel running = %+v, %v", got, err)
		}
		if id := recv(t, b.cleaned, "cleanup"); id != victim.ID {
			t.Errorf("cleanup of %s, want %s", id, victim.ID)
		}
		tk := wait(t, m, victim.ID)
		if tk.State != store.TaskCanceled || !strings.Contains(string(tk.Error), `"reason"`) {
			t.Errorf("canceled task: state %s error %s (want a reason, pulp-glue reads it)", tk.State, tk.Error)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("cancellation took %v", d)
		}
		if tk := wait(t, m, next.ID); tk.State != store.TaskCompleted {
			t.Errorf("task behind the canceled one: %s", tk.State)
		}
		if _, err := m.Cancel(t.Context(), victim.ID); !errors.Is(err, store.ErrTaskFinished) {
			t.Errorf("cancel finished: err = %v, want ErrTaskFinished", err)
		}
		if _, err := m.Cancel(t.Context(), store.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("cancel unknown: err = %v, want ErrNotFound", err)
		}
	})
}

// A cancel handled by another process reaches the running task through
// NOTIFY (PostgreSQL) or the state poll (both).
func TestCancelFromAnotherProcess(t *testing.T) {
	t.Parallel()
	for _, bk := range storetest.Backends() {
		t.Run(bk.Name, func(t *testing.T) {
			s1, s2 := twoStores(t, bk)
			runner := newManager(t, s1, tasking.Options{})
			api := newManager(t, s2, tasking.Options{})
			b := newBlocker(runner, "t.block")
			newBlocker(api, "t.block")
			runWorkers(t, runner, 1)
			victim := dispatch(t, api, tasking.DispatchRequest{Name: "t.block"})
			recv(t, b.started, "task start")
			if _, err := api.Cancel(t.Context(), victim.ID); err != nil {
				t.Fatal(err)
			}
			recv(t, b.cleaned, "cleanup")
			if tk := wait(t, api, victim.ID); tk.State != store.TaskCanceled {
				t.Errorf("state %s", tk.State)
			}
		})
	}
}

func TestCancelGroup(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		b := newBlocker(m, "t.block")
		runWorkers(t, m, 1)
		g := &store.TaskGroup{Description: "g"}
		if err := s.InsertTaskGroup(t.Context(), nil, g); err != nil {
			t.Fatal(err)
		}
		run := dispatch(t, m, tasking.DispatchRequest{Name: "t.block", TaskGroupID: g.ID, Exclusive: []string{"r"}})
		recv(t, b.started, "task start")
		waiting := dispatch(t, m, tasking.DispatchRequest{Name: "t.block", TaskGroupID: g.ID, Exclusive: []string{"r"}})
		if err := m.CancelGroup(t.Context(), g.ID); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{run.ID, waiting.ID} {
			if tk := wait(t, m, id); tk.State != store.TaskCanceled {
				t.Errorf("task %s: %s", id, tk.State)
			}
		}
		got, err := s.GetTaskGroup(t.Context(), g.ID)
		if err != nil || got.Counts[store.TaskCanceled] != 2 {
			t.Errorf("group counts %v, %v", got, err)
		}
		if err := m.CancelGroup(t.Context(), store.NewID()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown group: %v", err)
		}
	})
}

func TestImmediateTasks(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{Name: "proc", ImmediateTimeout: 200 * time.Millisecond})
		var ranInline atomic.Int64
		m.Register("t.update", func(context.Context, *tasking.Task) error { ranInline.Add(1); return nil })
		b := newBlocker(m, "t.block")

		// Free resources: runs inline before Dispatch returns.
		tk := dispatch(t, m, tasking.DispatchRequest{Name: "t.update", Exclusive: []string{"remote"}, Immediate: true})
		if tk.State != store.TaskCompleted || ranInline.Load() != 1 || tk.Worker == nil || *tk.Worker != "api:proc" {
			t.Fatalf("inline immediate task: %+v (ran %d)", tk, ranInline.Load())
		}

		// Busy resources (an earlier task is waiting on them): deferred.
		first := dispatch(t, m, tasking.DispatchRequest{Name: "t.update", Exclusive: []string{"remote"}})
		deferred := dispatch(t, m, tasking.DispatchRequest{Name: "t.update", Exclusive: []string{"remote"}, Immediate: true})
		if deferred.State != store.TaskWaiting {
			t.Fatalf("immediate task behind a busy resource: %s", deferred.State)
		}
		runWorkers(t, m, 1)
		for _, id := range []string{first.ID, deferred.ID} {
			if tk := wait(t, m, id); tk.State != store.TaskCompleted || !strings.HasPrefix(*tk.Worker, "proc/") {
				t.Errorf("deferred task %s: %s on %v", id, tk.State, *tk.Worker)
			}
		}

		// Slow: Dispatch returns after the timeout; the task goes on.
		slow := dispatch(t, m, tasking.DispatchRequest{Name: "t.block", Immediate: true})
		if slow.State != store.TaskRunning || *slow.Worker != "api:proc" {
			t.Fatalf("slow immediate task: %s", slow.State)
		}
		recv(t, b.started, "slow start")
		close(b.release)
		if tk := wait(t, m, slow.ID); tk.State != store.TaskCompleted {
			t.Errorf("slow immediate task: %s", tk.State)
		}

		// PreferDefer leaves everything to the workers.
		d := newManager(t, s, tasking.Options{PreferDefer: true})
		d.Register("t.update", func(context.Context, *tasking.Task) error { return nil })
		if tk := dispatch(t, d, tasking.DispatchRequest{Name: "t.update", Immediate: true}); tk.State != store.TaskWaiting {
			t.Errorf("PreferDefer: %s", tk.State)
		}
	})
}

func TestMissingWorkerTasksFailAndFreeLocks(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		// A worker of a dead process holds a task; its heartbeat is old.
		ghost := func(name string) *store.Task {
			now := store.Now()
			tk := &store.Task{Name: "t.next", State: store.TaskRunning, Worker: &name, StartedAt: &now}
			if err := s.InsertTask(ctx, nil, tk, []string{"r-" + name}, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Heartbeat(ctx, name, "worker"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Exec(ctx, `UPDATE app_status SET last_heartbeat = $1 WHERE name = $2`, now-time.Hour.Microseconds(), name); err != nil {
				t.Fatal(err)
			}
			return tk
		}
		atStart := ghost("ghost-1")
		m := newManager(t, s, tasking.Options{WorkerTTL: 900 * time.Millisecond, PollInterval: 20 * time.Millisecond})
		m.Register("t.next", func(context.Context, *tasking.Task) error { return nil })
		next := dispatch(t, m, tasking.DispatchRequest{Name: "t.next", Exclusive: []string{"r-ghost-1"}})
		runWorkers(t, m, 1)
		for _, tc := range []struct {
			ghost, next *store.Task
		}{{atStart, next}} {
			if tk := wait(t, m, tc.ghost.ID); tk.State != store.TaskFailed || taskError(t, tk)["description"] != "Worker has gone missing." {
				t.Errorf("ghost task: %s %s", tk.State, tk.Error)
			}
			if tk := wait(t, m, tc.next.ID); tk.State != store.TaskCompleted {
				t.Errorf("task behind the ghost's: %s", tk.State)
			}
		}
		// A worker that vanishes while this manager runs is noticed by the
		// periodic check.
		later := ghost("ghost-2")
		next2 := dispatch(t, m, tasking.DispatchRequest{Name: "t.next", Exclusive: []string{"r-ghost-2"}})
		if tk := wait(t, m, later.ID); tk.State != store.TaskFailed {
			t.Errorf("later ghost task: %s", tk.State)
		}
		if tk := wait(t, m, next2.ID); tk.State != store.TaskCompleted {
			t.Errorf("task behind the later ghost's: %s", tk.State)
		}
		// A process restarted under the same name fails what its previous
		// incarnation left running, though the name's heartbeat is fresh.
		restarted := ghost("proc/1")
		if err := s.Heartbeat(ctx, "proc/1", "worker"); err != nil {
			t.Fatal(err)
		}
		again := newManager(t, s, tasking.Options{Name: "proc"})
		again.Register("t.next", func(context.Context, *tasking.Task) error { return nil })
		runWorkers(t, again, 1)
		if tk := wait(t, m, restarted.ID); tk.State != store.TaskFailed || taskError(t, tk)["description"] != "Worker has gone missing." {
			t.Errorf("task of the previous incarnation: %s %s", tk.State, tk.Error)
		}
		shutdown(t, again)
		// Our own workers are online.
		apps, err := s.OnlineApps(ctx, m.TTL())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range apps {
			names = append(names, a.Name)
		}
		if len(names) != 1 || !strings.HasSuffix(names[0], "/1") {
			t.Errorf("online apps: %v", names)
		}
	})
}

// Heartbeats follow WorkerTTL, however long the poll interval.
func TestHeartbeatEveryThirdOfTTL(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{Name: "hb", PollInterval: time.Hour, WorkerTTL: 150 * time.Millisecond})
		runWorkers(t, m, 1)
		first := heartbeatOf(t, s, "hb/1")
		deadline := time.Now().Add(5 * time.Second)
		for heartbeatOf(t, s, "hb/1") == first {
			if time.Now().After(deadline) {
				t.Fatal("no second heartbeat")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func heartbeatOf(t *testing.T, s *store.Store, name string) int64 {
	t.Helper()
	apps, err := s.ListAppStatuses(t.Context(), "worker")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if a.Name == name {
			return a.LastHeartbeat
		}
	}
	t.Fatalf("no app_status row %s", name)
	return 0
}

func TestShutdownWaitsForRunningTasks(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		b := newBlocker(m, "t.block")
		runWorkers(t, m, 2)
		tk := dispatch(t, m, tasking.DispatchRequest{Name: "t.block"})
		recv(t, b.started, "task start")
		done := make(chan error, 1)
		go func() { done <- m.Shutdown(context.Background(), false) }()
		select {
		case err := <-done:
			t.Fatalf("shutdown returned (%v) while a task was running", err)
		default:
		}
		close(b.release)
		if err := recv(t, done, "shutdown"); err != nil {
			t.Fatal(err)
		}
		// Shutdown returned only once the task had finished normally.
		got, _ := s.GetTask(t.Context(), tk.ID)
		if got.State != store.TaskCompleted {
			t.Errorf("running task after graceful shutdown: %s", got.State)
		}
		// Nothing is claimed or run inline any more.
		for _, imm := range []bool{false, true} {
			late := dispatch(t, m, tasking.DispatchRequest{Name: "t.block", Immediate: imm})
			if late.State != store.TaskWaiting {
				t.Errorf("task dispatched after shutdown (immediate %v): %s", imm, late.State)
			}
		}
		if apps, _ := s.ListAppStatuses(t.Context(), ""); len(apps) != 0 {
			t.Errorf("heartbeat rows left: %v", apps)
		}
	})
}

func TestShutdownCancelRunning(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		b := newBlocker(m, "t.block")
		runWorkers(t, m, 1)
		tk := dispatch(t, m, tasking.DispatchRequest{Name: "t.block"})
		recv(t, b.started, "task start")
		if err := m.Shutdown(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		recv(t, b.cleaned, "cleanup")
		got, _ := s.GetTask(t.Context(), tk.ID)
		if got.State != store.TaskFailed || taskError(t, got)["description"] != "Aborted during worker shutdown." {
			t.Errorf("aborted task: %s %s", got.State, got.Error)
		}
		if err := m.RunWorkers(t.Context(), 1); err == nil {
			t.Error("RunWorkers after Shutdown succeeded")
		}
	})
}

func TestShutdownTimeoutAborts(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		m := newManager(t, s, tasking.Options{})
		b := newBlocker(m, "t.block")
		runWorkers(t, m, 1)
		tk := dispatch(t, m, tasking.DispatchRequest{Name: "t.block"})
		recv(t, b.started, "task start")
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := m.Shutdown(ctx, false); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("shutdown err = %v, want deadline exceeded", err)
		}
		if got, _ := s.GetTask(t.Context(), tk.ID); got.State != store.TaskFailed {
			t.Errorf("task after shutdown timeout: %s", got.State)
		}
	})
}

func TestProgressThrottledAndFlushed(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		for _, tc := range []struct {
			name string
			poll time.Duration
			// wantMid is what the database shows while the task runs.
			wantMid int64
		}{
			{"throttled", time.Hour, 0},
			{"flushed by poll", 20 * time.Millisecond, 50},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := newManager(t, s, tasking.Options{PollInterval: tc.poll, ProgressInterval: time.Hour})
				mid := make(chan string)
				proceed := make(chan struct{})
				m.Register("t.p", func(ctx context.Context, tk *tasking.Task) error {
					p := tk.Progress("Items", "items", nil)
					for range 50 {
						p.Increment(1)
					}
					mid <- tk.ID
					<-proceed
					p.Done()
					return nil
				})
				runWorkers(t, m, 1)
				dispatch(t, m, tasking.DispatchRequest{Name: "t.p"})
				id := recv(t, mid, "task")
				deadline := time.Now().Add(5 * time.Second)
				var done int64 = -1
				for time.Now().Before(deadline) {
					prog, err := s.TaskProgress(t.Context(), id)
					if err != nil {
						t.Fatal(err)
					}
					if ps := prog[id]; len(ps) == 1 {
						done = ps[0].Done
						if done == tc.wantMid {
							break
						}
					}
					time.Sleep(10 * time.Millisecond)
				}
				close(proceed)
				if done != tc.wantMid {
					t.Errorf("progress done while running = %d, want %d", done, tc.wantMid)
				}
				tk := wait(t, m, id)
				prog, _ := s.TaskProgress(t.Context(), tk.ID)
				if ps := prog[id]; len(ps) != 1 || ps[0].Done != 50 || ps[0].State != store.TaskCompleted {
					t.Errorf("final progress: %+v", ps)
				}
			})
		}
	})
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		reg := prometheus.NewRegistry()
		m := newManager(t, s, tasking.Options{Registerer: reg})
		m.Register("t.ok", func(context.Context, *tasking.Task) error { return nil })
		m.Register("t.bad", func(context.Context, *tasking.Task) error { return errors.New("no") })
		dispatch(t, m, tasking.DispatchRequest{Name: "t.ok"})
		dispatch(t, m, tasking.DispatchRequest{Name: "t.ok"})
		gauges := func() (running, waiting float64) {
			t.Helper()
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			running, waiting = -1, -1
			for _, mf := range mfs {
				switch mf.GetName() {
				case "pith_tasks_running":
					running = mf.GetMetric()[0].GetGauge().GetValue()
				case "pith_tasks_waiting":
					waiting = mf.GetMetric()[0].GetGauge().GetValue()
				}
			}
			return running, waiting
		}
		if r, w := gauges(); r != 0 || w != 2 {
			t.Errorf("running %v waiting %v; want 0, 2", r, w)
		}
		dispatch(t, m, tasking.DispatchRequest{Name: "t.bad"})
		runWorkers(t, m, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		for {
			if n, _ := s.CountTasksInState(ctx, store.TaskWaiting); n == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := m.Shutdown(ctx, false); err != nil {
			t.Fatal(err)
		}
		if r, w := gauges(); r != 0 || w != 0 {
			t.Errorf("running %v waiting %v; want 0, 0", r, w)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]uint64{}
		for _, mf := range mfs {
			if mf.GetName() != "pith_task_duration_seconds" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				var l []string
				for _, lp := range mt.GetLabel() {
					l = append(l, lp.GetName()+"="+lp.GetValue())
				}
				counts[strings.Join(l, ",")] = mt.GetHistogram().GetSampleCount()
			}
		}
		if diff := cmp.Diff(map[string]uint64{"name=t.ok,state=completed": 2, "name=t.bad,state=failed": 1}, counts); diff != "" {
			t.Errorf("duration histogram counts (-want +got):\n%s", diff)
		}
	})
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOneLogLinePerTaskStartAndFinish(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		var buf syncBuffer
		m := newManager(t, s, tasking.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
		m.Register("t.ok", func(ctx context.Context, tk *tasking.Task) error {
			tk.Logger().Info("inside")
			return nil
		})
		runWorkers(t, m, 1)
		tk := wait(t, m, dispatch(t, m, tasking.DispatchRequest{Name: "t.ok", LoggingCID: "c-1"}).ID)
		var starts, finishes int
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if rec["task_id"] != tk.ID {
				continue
			}
			if rec["task_name"] != "t.ok" || rec["correlation_id"] != "c-1" {
				t.Errorf("log line lacks task attributes: %s", line)
			}
			switch rec["msg"] {
			case "task started":
				starts++
			case "task finished":
				finishes++
				if rec["state"] != "completed" || rec["duration"] == nil {
					t.Errorf("finish line: %s", line)
				}
			}
		}
		if starts != 1 || finishes != 1 {
			t.Errorf("start lines %d, finish lines %d; want 1 each\n%s", starts, finishes, buf.String())
		}
	})
}
