package tasking

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pith-project/pith/internal/store"
)

// Causes of a task context's cancellation.
var (
	errCanceled = errors.New("task canceled")
	errAborted  = errors.New("aborted during worker shutdown")
	errLost     = errors.New("task was finished by another process")
)

// abortedDescription is Pulp's error description for a task stopped by a
// worker shutdown.
const abortedDescription = "Aborted during worker shutdown."

// abortGrace is how long Shutdown waits for aborted tasks to record their
// failure once its own deadline passed.
const abortGrace = 5 * time.Second

// RunWorkers starts n workers claiming and running tasks until ctx is
// canceled or Shutdown is called. A worker finishes its current task
// before stopping; Shutdown decides whether that task is canceled.
func (m *Manager) RunWorkers(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	if err := m.startBackground(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		return errors.New("tasking: run workers: shutting down")
	}
	names := make([]string, n)
	for i := range names {
		m.nworkers++
		names[i] = fmt.Sprintf("%s/%d", m.opts.Name, m.nworkers)
	}
	m.reaping = true
	m.mu.Unlock()
	// Heartbeat before claiming, so no reaper mistakes our tasks for
	// orphans.
	for _, name := range names {
		if err := m.addLease(ctx, name, "worker"); err != nil {
			return fmt.Errorf("tasking: run workers: %w", err)
		}
	}
	m.reap(ctx)
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		return errors.New("tasking: run workers: shutting down")
	}
	m.workers += n
	m.mu.Unlock()
	for _, name := range names {
		go m.worker(ctx, name)
	}
	m.log.Info("task workers started", "count", n, "name", m.opts.Name)
	return nil
}

func (m *Manager) worker(ctx context.Context, name string) {
	defer func() {
		m.mu.Lock()
		m.workers--
		m.mu.Unlock()
		m.idle.notify()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.stopCh:
			return
		default:
		}
		// Take the wake-up channel before looking, so a dispatch between
		// the look and the wait is not missed.
		wake := m.wake.wait()
		t, err := m.st.ClaimTask(ctx, name)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("tasking: claim", "worker", name, "err", err)
		}
		if t != nil {
			m.execute(t, name)
			continue
		}
		timer := time.NewTimer(m.opts.PollInterval)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		case <-m.stopCh:
		}
		timer.Stop()
	}
}

// startBackground starts, once, the heartbeat/housekeeping loop and the
// database listeners.
func (m *Manager) startBackground() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return errors.New("tasking: shutting down")
	}
	if m.bgCancel != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.bgCancel = cancel
	m.bgDone = make(chan struct{})
	wake, err := m.st.Listen(ctx, store.TaskWakeupChannel)
	if err != nil {
		m.log.Warn("tasking: listen for wake-ups; polling only", "err", err)
	}
	cancels, err := m.st.Listen(ctx, store.TaskCancelChannel)
	if err != nil {
		m.log.Warn("tasking: listen for cancellations; polling only", "err", err)
	}
	go func() {
		defer close(m.bgDone)
		m.housekeep(ctx, wake, cancels)
	}()
	return nil
}

// housekeep heartbeats, reaps tasks of vanished workers, propagates
// cancellation and flushes progress, and relays notifications.
func (m *Manager) housekeep(ctx context.Context, wake, cancels <-chan string) {
	every := max(m.opts.WorkerTTL/3, time.Millisecond)
	tick := time.NewTicker(min(m.opts.PollInterval, every))
	defer tick.Stop()
	lastBeat, lastReap, lastCheck := time.Now(), time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-wake:
			if !ok {
				wake = nil
			}
			m.wake.notify()
			continue
		case id, ok := <-cancels:
			if !ok {
				cancels = nil
				continue
			}
			m.cancelLocal(id, errCanceled)
			continue
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(lastBeat) >= every {
			lastBeat = now
			m.beat(ctx)
		}
		m.mu.Lock()
		reaping := m.reaping
		m.mu.Unlock()
		if reaping && now.Sub(lastReap) >= every {
			lastReap = now
			m.reap(ctx)
		}
		if now.Sub(lastCheck) >= m.opts.PollInterval {
			lastCheck = now
			m.checkRunning(ctx)
		}
	}
}

// addLease registers an app_status row this process keeps alive, writing
// its first heartbeat now.
func (m *Manager) addLease(ctx context.Context, name, appType string) error {
	m.mu.Lock()
	_, ok := m.leases[name]
	m.mu.Unlock()
	if ok {
		return nil
	}
	// Nothing runs under this name yet: whatever does is left from a
	// previous process that had the same name.
	ids, err := m.st.FailTasksOfWorker(ctx, name)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m.log.Warn("task failed: left running by a previous process", "task_id", id, "worker", name)
	}
	if len(ids) > 0 {
		m.wake.notify()
	}
	if err := m.st.Heartbeat(ctx, name, appType); err != nil {
		return err
	}
	m.mu.Lock()
	m.leases[name] = appType
	m.mu.Unlock()
	return nil
}

func (m *Manager) beat(ctx context.Context) {
	m.mu.Lock()
	leases := make(map[string]string, len(m.leases))
	for k, v := range m.leases {
		leases[k] = v
	}
	m.mu.Unlock()
	for name, typ := range leases {
		if err := m.st.Heartbeat(ctx, name, typ); err != nil && ctx.Err() == nil {
			m.log.Warn("tasking: heartbeat", "name", name, "err", err)
		}
	}
}

// reap fails the tasks of processes that stopped heartbeating.
func (m *Manager) reap(ctx context.Context) {
	ids, err := m.st.FailTasksOfMissingWorkers(ctx, m.opts.WorkerTTL)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("tasking: fail tasks of missing workers", "err", err)
		}
		return
	}
	for _, id := range ids {
		m.log.Warn("task failed: its worker has gone missing", "task_id", id)
		// Should it still run here (a stalled heartbeat), stop it.
		m.cancelLocal(id, errLost)
	}
	if len(ids) > 0 {
		m.wake.notify()
	}
}

// checkRunning stops local tasks that were canceled or finished through
// another process, and saves progress changed since the last save.
func (m *Manager) checkRunning(ctx context.Context) {
	m.mu.Lock()
	tasks := make([]*Task, 0, len(m.running))
	ids := make([]string, 0, len(m.running))
	for id, t := range m.running {
		tasks = append(tasks, t)
		ids = append(ids, id)
	}
	m.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	states, err := m.st.TaskStates(ctx, ids...)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("tasking: check running tasks", "err", err)
		}
	} else {
		for _, id := range ids {
			switch st, ok := states[id]; {
			case st == store.TaskCanceling:
				m.cancelLocal(id, errCanceled)
			case !ok || store.TaskFinal(st):
				m.cancelLocal(id, errLost)
			}
		}
	}
	for _, t := range tasks {
		t.flushProgress()
	}
}

// Shutdown stops claiming and waits for running tasks (SIGTERM). With
// cancelRunning (SIGINT), or once ctx expires, running tasks are aborted and
// end failed with "Aborted during worker shutdown.". Heartbeat rows are
// removed at the end. It returns ctx's error if tasks had to be aborted
// because of it.
func (m *Manager) Shutdown(ctx context.Context, cancelRunning bool) error {
	m.mu.Lock()
	if !m.stopping {
		m.stopping = true
		close(m.stopCh)
	}
	m.mu.Unlock()
	m.wake.notify()
	if cancelRunning {
		m.abortAll()
	}
	var err error
	if !m.waitIdle(ctx.Done()) {
		err = fmt.Errorf("tasking: shutdown: %w", ctx.Err())
		m.abortAll()
		gctx, cancel := context.WithTimeout(context.Background(), abortGrace)
		if !m.waitIdle(gctx.Done()) {
			m.log.Error("tasking: tasks still running after abort", "count", m.runningCount())
		}
		cancel()
	}
	m.mu.Lock()
	stopBg, bgDone := m.bgCancel, m.bgDone
	leases := make([]string, 0, len(m.leases))
	for name := range m.leases {
		leases = append(leases, name)
	}
	m.leases = map[string]string{}
	m.mu.Unlock()
	if stopBg != nil {
		stopBg()
		<-bgDone
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, name := range leases {
		if derr := m.st.DeleteAppStatus(dctx, name); derr != nil {
			m.log.Warn("tasking: remove heartbeat row", "name", name, "err", derr)
		}
	}
	return err
}

// waitIdle waits until no worker and no inline run is left, or stop
// closes.
func (m *Manager) waitIdle(stop <-chan struct{}) bool {
	for {
		ch := m.idle.wait()
		m.mu.Lock()
		idle := m.workers == 0 && m.inflight == 0
		m.mu.Unlock()
		if idle {
			return true
		}
		select {
		case <-ch:
		case <-stop:
			return false
		}
	}
}

func (m *Manager) abortAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.aborting = true
	for _, t := range m.running {
		t.cancel(errAborted)
	}
}

func (m *Manager) runningCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.running)
}
