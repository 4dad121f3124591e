package coreapi

import (
	"context"
	"net/http"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/tasking"
)

// SleepTask is a task that only waits; it exists for end-to-end tests of
// cancellation, crashes and shutdown, and is registered only when the
// process runs with PITH_ENABLE_TEST_TASKS=true.
const SleepTask = "pulpcore.app.tasks.test.sleep"

// TestingSleep is the body of the test-only sleep endpoint.
type TestingSleep struct {
	Seconds   float64  `json:"seconds" api:"required" min:"0"`
	Exclusive []string `json:"exclusive_resources"`
	Shared    []string `json:"shared_resources"`
}

// RegisterTesting adds the test-only endpoint and task.
func RegisterTesting(s *api.Server, d *Deps) {
	s.Register(&api.Route{
		OperationID: "testing_sleep", Method: "POST", Path: api.Root + "testing/sleep/", Tag: "Testing",
		Summary: "Dispatch a task that sleeps (test deployments only).", Body: &TestingSleep{},
		Response: api.AsyncResponse{}, Status: http.StatusAccepted,
		Handle: func(c *api.Ctx) (any, error) {
			b := api.Body[TestingSleep](c)
			t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{Name: SleepTask, Args: b, Exclusive: b.Exclusive, Shared: b.Shared, LoggingCID: c.CID, CreatedBy: c.User})
			if err != nil {
				return nil, err
			}
			return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
		},
	})
	RegisterTestingTasks(d)
}

// RegisterTestingTasks registers the sleep task function.
func RegisterTestingTasks(d *Deps) {
	d.Tasks.Register(SleepTask, func(ctx context.Context, t *tasking.Task) error {
		var b TestingSleep
		if err := t.Args(&b); err != nil {
			return err
		}
		p := t.Progress("Sleeping", "test.sleep", nil)
		select {
		case <-ctx.Done():
			p.Fail()
			return ctx.Err()
		case <-time.After(time.Duration(b.Seconds * float64(time.Second))):
		}
		p.Done()
		return nil
	})
}
