package tasking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/pith-project/pith/internal/store"
)

// Task is the handle a running task function gets.
type Task struct {
	ID   string
	Name string

	rec    *store.Task
	m      *Manager
	log    *slog.Logger
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	cleanups []func(context.Context) error
	result   json.RawMessage
	reports  []*Progress
	crMu     sync.Mutex // keeps created resources in call order
}

// Record returns the task row as it was when the task was claimed.
func (t *Task) Record() store.Task { return *t.rec }

// Args decodes the task's arguments into v.
func (t *Task) Args(v any) error {
	if err := json.Unmarshal(t.rec.Args, v); err != nil {
		return fmt.Errorf("task %s: decode args: %w", t.Name, err)
	}
	return nil
}

// Logger returns a logger carrying the task's id, name and correlation id.
func (t *Task) Logger() *slog.Logger { return t.log }

// SetResult records v (as JSON) as the task's result.
func (t *Task) SetResult(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("task %s: encode result: %w", t.Name, err)
	}
	t.mu.Lock()
	t.result = b
	t.mu.Unlock()
	return nil
}

// OnCleanup registers fn to run if the task fails or is canceled, so that
// it can remove what it half-created. Cleanups run in reverse order of
// registration, with a fresh context bounded by Options.CleanupTimeout.
func (t *Task) OnCleanup(fn func(ctx context.Context) error) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, fn)
	t.mu.Unlock()
}

// AddCreatedResource records href among the task's created resources. The
// error is also logged, so callers may ignore it.
func (t *Task) AddCreatedResource(href string) error {
	t.crMu.Lock()
	defer t.crMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.m.st.AddCreatedResource(ctx, t.ID, href); err != nil {
		t.log.Error("record created resource", "href", href, "err", err)
		return err
	}
	return nil
}

// Progress starts a progress report (state running) and saves it.
func (t *Task) Progress(message, code string, total *int64) *Progress {
	t.mu.Lock()
	p := &Progress{t: t, version: 1, rep: store.ProgressReport{
		ID: store.NewID(), TaskID: t.ID, Seq: len(t.reports) + 1, Message: message, Code: code, State: store.TaskRunning,
	}}
	if total != nil {
		n := *total
		p.rep.Total = &n
	}
	t.reports = append(t.reports, p)
	t.mu.Unlock()
	p.flush()
	return p
}

func (t *Task) flushProgress() {
	t.mu.Lock()
	reports := append([]*Progress(nil), t.reports...)
	t.mu.Unlock()
	for _, p := range reports {
		p.flush()
	}
}

// codedError carries a Pulp error code (e.g. "PLP0023") to the task's error.
type codedError struct {
	err  error
	code string
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// WithCode attaches Pulp's error_code to err for the task error record.
func WithCode(err error, code string) error { return &codedError{err: err, code: code} }

func errorJSON(err error, traceback string) json.RawMessage {
	rec := map[string]string{"description": err.Error(), "traceback": traceback}
	var ce *codedError
	if errors.As(err, &ce) {
		rec["error_code"] = ce.code
	}
	b, _ := json.Marshal(rec)
	return b
}

// call runs fn, turning a panic into an error with its stack.
func call(ctx context.Context, fn TaskFunc, t *Task) (traceback string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
			traceback = string(debug.Stack())
		}
	}()
	return "", fn(ctx, t)
}

// execute runs a claimed task to its final state.
func (m *Manager) execute(rec *store.Task, worker string) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	t := &Task{ID: rec.ID, Name: rec.Name, rec: rec, m: m, cancel: cancel,
		log: m.log.With("task_id", rec.ID, "task_name", rec.Name, "correlation_id", rec.LoggingCID)}
	m.mu.Lock()
	m.running[rec.ID] = t
	if m.aborting {
		// Claimed while Shutdown aborted the others.
		cancel(errAborted)
	}
	m.mu.Unlock()
	m.metrics.running.Inc()
	start := time.Now()
	t.log.Info("task started", "worker", worker)

	var (
		traceback string
		err       error
	)
	if fn := m.lookup(rec.Name); fn == nil {
		err = fmt.Errorf("task function %q is not registered in this process", rec.Name)
	} else {
		traceback, err = call(ctx, fn, t)
	}
	t.flushProgress()

	state, errRec := store.TaskCompleted, json.RawMessage(nil)
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errCanceled):
		// pulp-glue reads error.reason of canceled tasks in groups.
		state, errRec = store.TaskCanceled, json.RawMessage(`{"reason": "Task was canceled."}`)
	case errors.Is(cause, errAborted):
		state, errRec = store.TaskFailed, store.TaskError(abortedDescription, "")
	case errors.Is(cause, errLost):
		state = ""
	case err != nil:
		state, errRec = store.TaskFailed, errorJSON(err, traceback)
	}
	if state != store.TaskCompleted {
		t.runCleanups()
	}
	final := state
	if state != "" {
		t.mu.Lock()
		result := t.result
		t.mu.Unlock()
		final = m.finish(t, state, errRec, result)
		if state == store.TaskCompleted && final == store.TaskCanceled {
			t.runCleanups() // canceled just as it completed
		}
	}
	if final == "" {
		final = "lost"
	}
	dur := time.Since(start)
	m.metrics.running.Dec()
	m.metrics.duration.WithLabelValues(rec.Name, final).Observe(dur.Seconds())
	attrs := []any{"state", final, "duration", dur.Round(time.Microsecond).String()}
	if err != nil && final != store.TaskCompleted {
		attrs = append(attrs, "err", err)
	}
	t.log.Info("task finished", attrs...)

	m.mu.Lock()
	delete(m.running, rec.ID)
	m.mu.Unlock()
	m.finished.notify()
	m.wake.notify() // its locks are free
}

// finish records the outcome, retrying while the database is unavailable
// so a task is not left running behind a live heartbeat.
func (m *Manager) finish(t *Task, state string, errRec, result json.RawMessage) string {
	backoff := 100 * time.Millisecond
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		final, err := m.st.FinishTask(ctx, t.ID, state, errRec, result)
		cancel()
		switch {
		case err == nil:
			return final
		case errors.Is(err, store.ErrTaskFinished), errors.Is(err, store.ErrNotFound):
			t.log.Warn("task was finished elsewhere before it returned", "err", err)
			return ""
		case time.Now().After(deadline):
			t.log.Error("could not record task outcome", "state", state, "err", err)
			return ""
		}
		t.log.Warn("record task outcome; retrying", "err", err)
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (t *Task) runCleanups() {
	t.mu.Lock()
	fns := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	if len(fns) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.m.opts.CleanupTimeout)
	defer cancel()
	for i := len(fns) - 1; i >= 0; i-- {
		if err := safeCleanup(ctx, fns[i]); err != nil {
			t.log.Error("task cleanup", "err", err)
		}
	}
}

func safeCleanup(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(ctx)
}
