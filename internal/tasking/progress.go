package tasking

import (
	"context"
	"sync"
	"time"

	"github.com/pith-project/pith/internal/store"
)

// Progress is one progress report of a running task. Its methods are safe
// for concurrent use. Changes are saved at most once per
// Options.ProgressInterval while they happen, and always when the report
// ends, when the task ends, and on the manager's next poll.
type Progress struct {
	t *Task

	mu       sync.Mutex
	rep      store.ProgressReport
	version  uint64 // bumped by every change
	saved    uint64 // version last written
	lastSave time.Time

	saveMu sync.Mutex // one write at a time, in order
}

// Increment adds n to the done count.
func (p *Progress) Increment(n int64) {
	p.change(false, func(r *store.ProgressReport) { r.Done += n })
}

// SetTotal sets the expected total.
func (p *Progress) SetTotal(n int64) {
	p.change(false, func(r *store.ProgressReport) { r.Total = &n })
}

// SetSuffix sets the report's suffix.
func (p *Progress) SetSuffix(s string) {
	p.change(false, func(r *store.ProgressReport) { r.Suffix = &s })
}

// Done marks the report completed and saves it.
func (p *Progress) Done() {
	p.change(true, func(r *store.ProgressReport) { r.State = store.TaskCompleted })
}

// Fail marks the report failed and saves it.
func (p *Progress) Fail() {
	p.change(true, func(r *store.ProgressReport) { r.State = store.TaskFailed })
}

// Report returns a copy of the report's current values.
func (p *Progress) Report() store.ProgressReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rep
}

func (p *Progress) change(force bool, f func(*store.ProgressReport)) {
	p.mu.Lock()
	f(&p.rep)
	p.version++
	due := force || time.Since(p.lastSave) >= p.t.m.opts.ProgressInterval
	p.mu.Unlock()
	if due {
		p.flush()
	}
}

// flush writes the report if it changed since the last write.
func (p *Progress) flush() {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.mu.Lock()
	if p.version == p.saved {
		p.mu.Unlock()
		return
	}
	snap, v := p.rep, p.version
	p.lastSave = time.Now()
	p.mu.Unlock()
	// The task's own context may be canceled already; the report must still
	// reach the database.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.t.m.st.SaveProgress(ctx, &snap); err != nil {
		p.t.log.Warn("save progress report", "code", snap.Code, "err", err)
		return
	}
	p.mu.Lock()
	p.saved = v
	p.mu.Unlock()
}
