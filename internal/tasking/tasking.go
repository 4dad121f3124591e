// Package tasking runs pith's background work with Pulp's task semantics:
// tasks reserve exclusive and shared resources, run in dispatch order per
// resource, report progress and created resources, and can be canceled.
//
// The tasks table is the queue. Workers are goroutines of any pith process
// sharing the database; they claim tasks through the store, wake on an
// in-process signal, PostgreSQL LISTEN/NOTIFY and a fallback poll, and keep
// heartbeat rows so that the tasks of a vanished process can be failed and
// their resources freed.
package tasking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pith-project/pith/internal/store"
)

// TaskFunc is the body of a task. It must return promptly once ctx is
// canceled; what it half-created is removed by the cleanups it registered
// with Task.OnCleanup.
type TaskFunc func(ctx context.Context, t *Task) error

// Options configure a Manager. Zero values take the defaults noted.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the task metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// WorkerTTL is how long a process may miss heartbeats before its tasks
	// are failed (30 s). Heartbeats are sent every WorkerTTL/3.
	WorkerTTL time.Duration
	// Name identifies this process in app_status ("pid@hostname"). Workers
	// are named Name/1, Name/2, …
	Name string
	// InlineName is the app_status row holding immediate tasks run inline
	// ("api:"+Name, the API app's own row).
	InlineName string
	// PollInterval bounds how late a missed wake-up or a cancellation from
	// another process is noticed (1 s).
	PollInterval time.Duration
	// ImmediateTimeout is how long Dispatch waits for an inline immediate
	// task before returning while it goes on in the background (5 s).
	ImmediateTimeout time.Duration
	// CleanupTimeout bounds the cleanups of a failed or canceled task (1 min).
	CleanupTimeout time.Duration
	// ProgressInterval is the minimum time between saves of one progress
	// report while it changes (500 ms).
	ProgressInterval time.Duration
	// PreferDefer disables inline execution of immediate tasks.
	PreferDefer bool
}

// DispatchRequest describes a task to create.
type DispatchRequest struct {
	// Name is a registered task function.
	Name string
	// Args is passed to the task as JSON (Task.Args).
	Args any
	// Exclusive and Shared are the resources the task reserves.
	Exclusive, Shared []string
	TaskGroupID       string
	ParentTaskID      string
	LoggingCID        string
	CreatedBy         string
	// Immediate tasks run inline in the dispatching process when their
	// resources are free, and are picked first by workers otherwise.
	Immediate bool
}

// Manager dispatches, runs and cancels tasks.
type Manager struct {
	st      *store.Store
	opts    Options
	log     *slog.Logger
	metrics *metrics

	funcsMu sync.RWMutex
	funcs   map[string]TaskFunc

	wake     broadcast // a task may have become claimable
	finished broadcast // a task of this process finished
	idle     broadcast // a worker exited or an inline run ended

	mu       sync.Mutex
	running  map[string]*Task
	stopping bool
	aborting bool // running tasks are being aborted (shutdown)
	stopCh   chan struct{}
	workers  int // live worker goroutines
	inflight int // inline runs not yet ended
	nworkers int // worker names handed out
	leases   map[string]string
	reaping  bool
	bgCancel context.CancelFunc
	bgDone   chan struct{}
}

// New returns a Manager on st. Nothing runs until RunWorkers or an inline
// immediate task.
func New(st *store.Store, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.WorkerTTL <= 0 {
		opts.WorkerTTL = 30 * time.Second
	}
	if opts.Name == "" {
		host, _ := os.Hostname()
		opts.Name = fmt.Sprintf("%d@%s", os.Getpid(), host)
	}
	if opts.InlineName == "" {
		opts.InlineName = "api:" + opts.Name
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.ImmediateTimeout <= 0 {
		opts.ImmediateTimeout = 5 * time.Second
	}
	if opts.CleanupTimeout <= 0 {
		opts.CleanupTimeout = time.Minute
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 500 * time.Millisecond
	}
	m := &Manager{
		st:      st,
		opts:    opts,
		log:     opts.Logger,
		funcs:   map[string]TaskFunc{},
		running: map[string]*Task{},
		stopCh:  make(chan struct{}),
		leases:  map[string]string{},
	}
	m.metrics = newMetrics(st)
	if opts.Registerer != nil {
		if err := m.metrics.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("tasking: register metrics: %w", err)
		}
	}
	return m, nil
}

// TTL is the heartbeat timeout after which a process counts as gone.
func (m *Manager) TTL() time.Duration { return m.opts.WorkerTTL }

// Register makes fn runnable under name. Every process that runs tasks must
// register the same functions; registering a name twice panics.
func (m *Manager) Register(name string, fn TaskFunc) {
	m.funcsMu.Lock()
	defer m.funcsMu.Unlock()
	if _, dup := m.funcs[name]; dup {
		panic("tasking: task function registered twice: " + name)
	}
	m.funcs[name] = fn
}

func (m *Manager) lookup(name string) TaskFunc {
	m.funcsMu.RLock()
	defer m.funcsMu.RUnlock()
	return m.funcs[name]
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Dispatch creates a waiting task. An immediate task whose resources are
// free runs inline right away; Dispatch waits for it up to
// ImmediateTimeout and then leaves it running in the background. The
// returned row reflects the task's state when Dispatch returns.
func (m *Manager) Dispatch(ctx context.Context, req DispatchRequest) (*store.Task, error) {
	if m.lookup(req.Name) == nil {
		return nil, fmt.Errorf("tasking: dispatch %q: no such task function", req.Name)
	}
	args := json.RawMessage(`{}`)
	if req.Args != nil {
		b, err := json.Marshal(req.Args)
		if err != nil {
			return nil, fmt.Errorf("tasking: dispatch %s: encode args: %w", req.Name, err)
		}
		args = b
	}
	rec := &store.Task{
		Name: req.Name, Args: args, LoggingCID: req.LoggingCID, CreatedBy: strPtr(req.CreatedBy),
		ParentTaskID: strPtr(req.ParentTaskID), TaskGroupID: strPtr(req.TaskGroupID), Immediate: req.Immediate,
	}
	if req.Immediate && !m.opts.PreferDefer {
		out, ok, err := m.dispatchInline(ctx, rec, req)
		if err != nil {
			return nil, err
		}
		if ok {
			return out, nil
		}
	} else if err := m.insert(ctx, nil, rec, req); err != nil {
		return nil, err
	}
	m.wake.notify()
	return rec, nil
}

func (m *Manager) insert(ctx context.Context, tx *store.Tx, rec *store.Task, req DispatchRequest) error {
	if err := m.st.InsertTask(ctx, tx, rec, req.Exclusive, req.Shared); err != nil {
		return fmt.Errorf("tasking: dispatch %s: %w", req.Name, err)
	}
	return nil
}

// dispatchInline inserts an immediate task and, in the same transaction,
// claims it for this process if its resources are free, so no worker can
// take it first. It then runs the task and returns its row. ok is false
// when the task was inserted but left to the workers.
func (m *Manager) dispatchInline(ctx context.Context, rec *store.Task, req DispatchRequest) (out *store.Task, ok bool, err error) {
	m.mu.Lock()
	stopping := m.stopping
	if !stopping {
		m.inflight++ // Shutdown waits for inline runs too
	}
	m.mu.Unlock()
	if stopping {
		return nil, false, m.insert(ctx, nil, rec, req)
	}
	started := false
	defer func() {
		if !started {
			m.endInflight()
		}
	}()
	leased := m.startBackground() == nil
	if leased {
		if err := m.addLease(ctx, m.opts.InlineName, "api"); err != nil {
			m.log.Warn("tasking: inline lease; deferring immediate task to a worker", "err", err)
			leased = false
		}
	}
	var claimed *store.Task
	err = m.st.InTx(ctx, func(tx *store.Tx) error {
		if err := m.insert(ctx, tx, rec, req); err != nil || !leased {
			return err
		}
		var err error
		claimed, err = m.st.ClaimTaskByID(ctx, tx, rec.ID, m.opts.InlineName)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if claimed == nil {
		return nil, false, nil
	}
	started = true
	return m.runInline(ctx, claimed), true, nil
}

// runInline runs a task claimed by dispatchInline, waiting for it up to
// ImmediateTimeout, and returns its row as it then is.
func (m *Manager) runInline(ctx context.Context, claimed *store.Task) *store.Task {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer m.endInflight()
		m.execute(claimed, m.opts.InlineName)
	}()
	timer := time.NewTimer(m.opts.ImmediateTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		m.log.Warn("tasking: immediate task still running after timeout; it continues in the background",
			"task_id", claimed.ID, "task_name", claimed.Name, "timeout", m.opts.ImmediateTimeout)
	case <-ctx.Done():
	}
	if got, err := m.st.GetTask(context.WithoutCancel(ctx), claimed.ID); err == nil {
		return got
	}
	return claimed
}

func (m *Manager) endInflight() {
	m.mu.Lock()
	m.inflight--
	m.mu.Unlock()
	m.idle.notify()
}

// Cancel asks a task to stop: a waiting task is canceled at once; a running
// one becomes canceling and its context is canceled, here or (through the
// database) in whichever process runs it. It returns the task as it now
// is. A finished task gives store.ErrTaskFinished, an unknown one
// store.ErrNotFound.
func (m *Manager) Cancel(ctx context.Context, id string) (*store.Task, error) {
	state, err := m.st.SetTaskCanceling(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tasking: cancel: %w", err)
	}
	switch state {
	case store.TaskCanceling:
		m.cancelLocal(id, errCanceled)
	case store.TaskCanceled:
		m.wake.notify() // its locks no longer hold anyone back
	}
	t, err := m.st.GetTask(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tasking: cancel: %w", err)
	}
	return t, nil
}

// CancelGroup cancels every waiting or running task of a task group.
func (m *Manager) CancelGroup(ctx context.Context, groupID string) error {
	if _, err := m.st.GetTaskGroup(ctx, groupID); err != nil {
		return fmt.Errorf("tasking: cancel group: %w", err)
	}
	ids, err := m.st.TaskGroupTaskIDs(ctx, groupID, store.TaskWaiting, store.TaskRunning)
	if err != nil {
		return fmt.Errorf("tasking: cancel group: %w", err)
	}
	for _, id := range ids {
		if _, err := m.Cancel(ctx, id); err != nil && !errors.Is(err, store.ErrTaskFinished) {
			return err
		}
	}
	return nil
}

// Wait blocks until the task reaches a final state and returns it.
func (m *Manager) Wait(ctx context.Context, id string) (*store.Task, error) {
	poll := min(m.opts.PollInterval, 200*time.Millisecond)
	for {
		ch := m.finished.wait()
		t, err := m.st.GetTask(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("tasking: wait: %w", err)
		}
		if store.TaskFinal(t.State) {
			return t, nil
		}
		timer := time.NewTimer(poll)
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
		timer.Stop()
	}
}

func (m *Manager) cancelLocal(id string, cause error) {
	m.mu.Lock()
	t := m.running[id]
	m.mu.Unlock()
	if t != nil {
		t.cancel(cause)
	}
}

// broadcast wakes every current waiter at once.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed by the next notify.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
