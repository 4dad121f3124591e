package coreapi

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// Task names of Pulp's generic create, update and delete.
const (
	GeneralCreateTask = "pulpcore.app.tasks.base.general_create"
	GeneralUpdateTask = "pulpcore.app.tasks.base.general_update"
	GeneralDeleteTask = "pulpcore.app.tasks.base.general_delete"
)

// Mutator applies validated changes to one kind of resource inside a task.
// Handlers validate requests fully before dispatching, so a task only fails
// on a conflict that arose in between (e.g. a name taken meanwhile).
type Mutator struct {
	// Create stores a new resource from body and returns its href.
	Create func(ctx context.Context, body json.RawMessage) (href string, err error)
	// Update applies body to the resource with id.
	Update func(ctx context.Context, id string, body json.RawMessage) error
	// Delete removes the resource with id.
	Delete func(ctx context.Context, id string) error
}

type mutators struct {
	mu sync.RWMutex
	m  map[string]Mutator
}

func (ms *mutators) get(kind string) (Mutator, bool) {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	m, ok := ms.m[kind]
	return m, ok
}

// RegisterMutator makes kind's changes runnable as general tasks.
func (d *Deps) RegisterMutator(kind string, m Mutator) {
	d.mutators.mu.Lock()
	defer d.mutators.mu.Unlock()
	if d.mutators.m == nil {
		d.mutators.m = map[string]Mutator{}
	}
	d.mutators.m[kind] = m
}

type generalArgs struct {
	Kind string          `json:"kind"`
	ID   string          `json:"id,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
}

// DispatchUpdate runs an update of kind/id as an immediate task holding
// the resource exclusively (Pulp answers updates with 202 and a task).
func (d *Deps) DispatchUpdate(c *api.Ctx, kind, id string, body any, exclusive ...string) (*store.Task, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return d.Tasks.Dispatch(c, tasking.DispatchRequest{
		Name: GeneralUpdateTask, Args: generalArgs{Kind: kind, ID: id, Body: b},
		Exclusive: exclusive, LoggingCID: c.CID, CreatedBy: c.User, Immediate: true,
	})
}

// DispatchDelete deletes kind/id in a task holding the resource exclusively.
func (d *Deps) DispatchDelete(c *api.Ctx, kind, id string, immediate bool, exclusive ...string) (*store.Task, error) {
	return d.Tasks.Dispatch(c, tasking.DispatchRequest{
		Name: GeneralDeleteTask, Args: generalArgs{Kind: kind, ID: id},
		Exclusive: exclusive, LoggingCID: c.CID, CreatedBy: c.User, Immediate: immediate,
	})
}

// DispatchCreate creates a kind in a task (Pulp's asynchronous creates).
func (d *Deps) DispatchCreate(c *api.Ctx, kind string, body any, exclusive ...string) (*store.Task, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return d.Tasks.Dispatch(c, tasking.DispatchRequest{
		Name: GeneralCreateTask, Args: generalArgs{Kind: kind, Body: b},
		Exclusive: exclusive, LoggingCID: c.CID, CreatedBy: c.User,
	})
}

func registerGeneralTasks(d *Deps) {
	run := func(op string) tasking.TaskFunc {
		return func(ctx context.Context, t *tasking.Task) error {
			var a generalArgs
			if err := t.Args(&a); err != nil {
				return err
			}
			m, ok := d.mutators.get(a.Kind)
			if !ok {
				return fmt.Errorf("%s: unknown resource kind %q", op, a.Kind)
			}
			switch op {
			case "create":
				href, err := m.Create(ctx, a.Body)
				if err != nil {
					return err
				}
				return t.AddCreatedResource(href)
			case "update":
				return m.Update(ctx, a.ID, a.Body)
			default:
				return m.Delete(ctx, a.ID)
			}
		}
	}
	d.Tasks.Register(GeneralCreateTask, run("create"))
	d.Tasks.Register(GeneralUpdateTask, run("update"))
	d.Tasks.Register(GeneralDeleteTask, run("delete"))
}
