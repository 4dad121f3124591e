package coreapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// Collections of the task endpoints.
const (
	TasksPath      = api.Root + "tasks/"
	TaskGroupsPath = api.Root + "task-groups/"
	WorkersPath    = api.Root + "workers/"
)

// PurgeTask is the task name of tasks/purge/.
const PurgeTask = "pulpcore.app.tasks.purge.purge"

// TaskHref is the href of a task.
func TaskHref(id string) string { return api.Href(TasksPath, id) }

// TaskGroupHref is the href of a task group.
func TaskGroupHref(id string) string { return api.Href(TaskGroupsPath, id) }

var taskStates = "waiting,running,canceling,completed,failed,canceled"

// ProgressReportResponse is one progress report.
type ProgressReportResponse struct {
	Message string  `json:"message" api:"readonly"`
	Code    string  `json:"code" api:"readonly"`
	State   string  `json:"state" api:"readonly"`
	Total   *int64  `json:"total" api:"readonly,nullable"`
	Done    int64   `json:"done" api:"readonly"`
	Suffix  *string `json:"suffix" api:"readonly,nullable"`
}

// TaskResponse is a task.
type TaskResponse struct {
	api.Base
	State                   string                   `json:"state" api:"readonly" enum:"waiting,running,canceling,completed,failed,canceled" doc:"The current state of the task."`
	Name                    string                   `json:"name" api:"required" doc:"The name of task."`
	LoggingCID              string                   `json:"logging_cid" api:"required" doc:"The logging correlation id associated with this task"`
	CreatedBy               *string                  `json:"created_by" api:"readonly,nullable" doc:"User who dispatched this task."`
	UnblockedAt             *time.Time               `json:"unblocked_at" api:"readonly,nullable"`
	StartedAt               *time.Time               `json:"started_at" api:"readonly,nullable"`
	FinishedAt              *time.Time               `json:"finished_at" api:"readonly,nullable"`
	Error                   map[string]any           `json:"error" api:"readonly,nullable" doc:"A JSON Object of a fatal error encountered during the execution of this task."`
	Worker                  *string                  `json:"worker" api:"readonly,nullable" doc:"The worker associated with this task. This field is empty if a worker is not yet assigned."`
	ParentTask              *string                  `json:"parent_task" api:"readonly,nullable"`
	ChildTasks              []string                 `json:"child_tasks" api:"readonly"`
	TaskGroup               *string                  `json:"task_group" api:"readonly,nullable"`
	ProgressReports         []ProgressReportResponse `json:"progress_reports" api:"readonly"`
	CreatedResources        []string                 `json:"created_resources" api:"readonly"`
	CreatedResourcePRNs     []string                 `json:"created_resource_prns" api:"readonly"`
	ReservedResourcesRecord []string                 `json:"reserved_resources_record" api:"readonly"`
	Result                  json.RawMessage          `json:"result" api:"readonly,nullable"`
}

// TaskCancel is the body of tasks_cancel.
type TaskCancel struct {
	State string `json:"state" api:"required" enum:"canceled" doc:"The desired state of the task. Only 'canceled' is accepted."`
}

// SchemaName names the component as Pulp does.
func (TaskCancel) SchemaName() string { return "PatchedTaskCancel" }

// ProfileArtifactResponse lists a task's profiling artifacts.
type ProfileArtifactResponse struct {
	URLs map[string]string `json:"urls" api:"required"`
}

// Purge is the body of tasks_purge.
type Purge struct {
	FinishedBefore *time.Time `json:"finished_before" doc:"Purge tasks completed earlier than this timestamp. Format '%Y-%m-%d[T%H:%M:%S]'"`
	States         *[]string  `json:"states" doc:"List of task-states to be purged. Only 'final' states are allowed."`
}

func timePtr(us *int64) *time.Time {
	if us == nil {
		return nil
	}
	t := store.Time(*us)
	return &t
}

// hrefPRN derives a PRN from a detail href: the collection path names the
// app and model as Pulp's PRNs do (…/repositories/file/file/<id>/ →
// prn:file.filerepository:<id>).
func hrefPRN(href string) string {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(href, api.Root), "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	id := parts[len(parts)-1]
	switch len(parts) {
	case 2: // core: tasks/<id>
		model, ok := coreModels[parts[0]]
		if !ok {
			model = strings.TrimSuffix(strings.ReplaceAll(parts[0], "-", ""), "s")
		}
		return "prn:core." + model + ":" + id
	case 4: // typed detail: repositories/file/file/<id>
		pulpType := parts[1] + "." + parts[2]
		var label string
		switch parts[0] {
		case "repositories":
			label = pdModelLabel(pulpType, "repository")
		case "remotes":
			label = RemotePRNType(pulpType)
		case "publications":
			label = PublicationPRNType(pulpType)
		case "distributions":
			label = DistributionPRNType(pulpType)
		case "contentguards":
			label = ContentGuardPRNType(pulpType)
		case "acs":
			label = pdModelLabel(pulpType, "alternatecontentsource")
		case "content":
			// Content collections are plural ("files"); the file plugin's
			// model is FileContent: content/file/files → file.filecontent.
			app, typ := parts[1], strings.TrimSuffix(parts[2], "s")
			if typ == app {
				label = app + "." + app + "content"
			} else {
				label = app + "." + typ
			}
		default:
			return ""
		}
		return "prn:" + label + ":" + id
	}
	// Repository versions are named by number in hrefs but by their own
	// id in PRNs: see versionPRNs.
	return ""
}

// versionPRNs maps the repository version hrefs among hrefs to their PRNs;
// versions that no longer exist have none.
func (d *Deps) versionPRNs(ctx context.Context, hrefs []string) (map[string]string, error) {
	type ref struct {
		repo string
		n    int
	}
	refs := map[ref]string{}
	var conds []string
	var args []any
	for _, h := range hrefs {
		repo, n, ok := ParseVersionRef(h)
		if !ok {
			continue
		}
		if _, dup := refs[ref{repo, n}]; dup {
			continue
		}
		refs[ref{repo, n}] = h
		conds = append(conds, fmt.Sprintf("(repository_id = $%d AND number = $%d)", len(args)+1, len(args)+2))
		args = append(args, repo, n)
	}
	out := map[string]string{}
	if len(conds) == 0 {
		return out, nil
	}
	rows, err := d.Store.Query(ctx, `SELECT id, repository_id, number FROM repository_versions WHERE `+strings.Join(conds, " OR "), args...)
	if err != nil {
		return nil, fmt.Errorf("task created resources: version ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, repo string
		var n int
		if err := rows.Scan(&id, &repo, &n); err != nil {
			return nil, err
		}
		out[refs[ref{repo, n}]] = "prn:core.repositoryversion:" + id
	}
	return out, rows.Err()
}

// workerHrefs maps worker names, as tasks record them, to the workers'
// hrefs; tasks run inline by an API process have no worker.
func (d *Deps) workerHrefs(ctx context.Context, tasks []*store.Task) (map[string]string, error) {
	var names []string
	for _, t := range tasks {
		if t.Worker != nil && !slices.Contains(names, *t.Worker) {
			names = append(names, *t.Worker)
		}
	}
	ids, err := d.Store.WorkerIDs(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("task workers: %w", err)
	}
	out := make(map[string]string, len(ids))
	for name, id := range ids {
		out[name] = api.Href(WorkersPath, id)
	}
	return out, nil
}

// coreModels names pulpcore's models by collection where the name is not
// simply the singular.
var coreModels = map[string]string{"workers": "appstatus", "task-groups": "taskgroup"}

func (d *Deps) taskResponses(ctx context.Context, tasks []*store.Task) ([]TaskResponse, error) {
	ids := make([]string, len(tasks))
	for i, t := range tasks {
		ids[i] = t.ID
	}
	progress, err := d.Store.TaskProgress(ctx, ids...)
	if err != nil {
		return nil, err
	}
	created, err := d.Store.TaskCreatedResources(ctx, ids...)
	if err != nil {
		return nil, err
	}
	children, err := d.Store.TaskChildren(ctx, ids...)
	if err != nil {
		return nil, err
	}
	var createdHrefs []string
	for _, hs := range created {
		createdHrefs = append(createdHrefs, hs...)
	}
	versionPRNs, err := d.versionPRNs(ctx, createdHrefs)
	if err != nil {
		return nil, err
	}
	workers, err := d.workerHrefs(ctx, tasks)
	if err != nil {
		return nil, err
	}
	out := make([]TaskResponse, len(tasks))
	for i, t := range tasks {
		r := TaskResponse{
			Base:                    api.NewBase(TaskHref(t.ID), "core.task", t.ID, t.Created, t.LastUpdated),
			State:                   t.State,
			Name:                    t.Name,
			LoggingCID:              t.LoggingCID,
			UnblockedAt:             timePtr(t.UnblockedAt),
			StartedAt:               timePtr(t.StartedAt),
			FinishedAt:              timePtr(t.FinishedAt),
			ChildTasks:              []string{},
			ProgressReports:         []ProgressReportResponse{},
			CreatedResources:        []string{},
			CreatedResourcePRNs:     []string{},
			ReservedResourcesRecord: t.ReservedResources,
			Result:                  t.Result,
		}
		if t.CreatedBy != nil && *t.CreatedBy != "" {
			u := api.Root + "users/" + *t.CreatedBy + "/"
			r.CreatedBy = &u
		}
		if len(t.Error) > 0 {
			_ = json.Unmarshal(t.Error, &r.Error)
		}
		if t.Worker != nil {
			if h, ok := workers[*t.Worker]; ok {
				r.Worker = &h
			}
		}
		if t.ParentTaskID != nil {
			h := TaskHref(*t.ParentTaskID)
			r.ParentTask = &h
		}
		if t.TaskGroupID != nil {
			h := TaskGroupHref(*t.TaskGroupID)
			r.TaskGroup = &h
		}
		for _, c := range children[t.ID] {
			r.ChildTasks = append(r.ChildTasks, TaskHref(c))
		}
		for _, p := range progress[t.ID] {
			r.ProgressReports = append(r.ProgressReports, ProgressReportResponse{
				Message: p.Message, Code: p.Code, State: p.State, Total: p.Total, Done: p.Done, Suffix: p.Suffix,
			})
		}
		for _, h := range created[t.ID] {
			r.CreatedResources = append(r.CreatedResources, h)
			if prn := hrefPRN(h); prn != "" {
				r.CreatedResourcePRNs = append(r.CreatedResourcePRNs, prn)
			} else if prn := versionPRNs[h]; prn != "" {
				r.CreatedResourcePRNs = append(r.CreatedResourcePRNs, prn)
			}
		}
		out[i] = r
	}
	return out, nil
}

// resourceFilter matches tasks by the resources they reserved; values are
// hrefs or PRNs, as records may hold either. With the "in" lookup a task
// must hold every listed resource, as in Pulp (its __in filters narrow the
// result once per value).
func resourceFilter(mode string) func(q *api.Query, lookup, v string) error {
	return func(q *api.Query, lookup, v string) error {
		vals := []string{v}
		if lookup == "in" {
			vals = strings.Split(v, ",")
		}
		found := false
		for _, x := range vals {
			x = strings.TrimSpace(x)
			if x == "" {
				continue
			}
			found = true
			ph := []string{q.Arg(x)}
			if prn := hrefPRN(x); prn != "" && strings.HasPrefix(x, "/") {
				ph = append(ph, q.Arg(prn))
			}
			cond := "r.resource IN (" + strings.Join(ph, ", ") + ")"
			switch mode {
			case "exclusive":
				cond += " AND r.exclusive"
			case "shared":
				cond += " AND NOT r.exclusive"
			}
			// IN, not a correlated EXISTS: SQLite would walk every task for
			// EXISTS, while the subquery reads the (resource, …, task_id) index.
			q.Where("tasks.id IN (SELECT r.task_id FROM task_resources r WHERE " + cond + ")")
		}
		if !found {
			q.Where("1 = 0")
		}
		return nil
	}
}

// workerFilter matches tasks by the worker that ran them. Tasks record the
// worker's name; clients name workers by href, as the task's worker field
// does. Tasks run inline by an API process have no worker, as in Pulp.
func workerFilter(q *api.Query, lookup, v string) error {
	const workers = "SELECT name FROM app_status WHERE app_type = 'worker'"
	if lookup == "isnull" {
		switch strings.ToLower(v) {
		case "true", "1":
			q.Where("(tasks.worker IS NULL OR tasks.worker NOT IN (" + workers + "))")
		case "false", "0":
			q.Where("tasks.worker IN (" + workers + ")")
		default:
			return api.FieldErrors{"worker__isnull": {"Must be a valid boolean."}}
		}
		return nil
	}
	vals := []string{v}
	if lookup == "in" {
		vals = strings.Split(v, ",")
	}
	var ids, names []string
	for _, x := range vals {
		x = strings.TrimSpace(x)
		if x == "" {
			continue
		}
		if id := api.IDFromHref(x, WorkersPath, "core.appstatus"); id != "" {
			ids = append(ids, q.Arg(id))
		} else if strings.HasPrefix(x, "/") || strings.HasPrefix(x, "prn:") || strings.Contains(x, "://") {
			return api.FieldErrors{"worker": {"Invalid hyperlink - No URL match."}}
		} else {
			names = append(names, q.Arg(x))
		}
	}
	var conds []string
	if len(ids) > 0 {
		conds = append(conds, "tasks.worker IN ("+workers+" AND id IN ("+strings.Join(ids, ", ")+"))")
	}
	if len(names) > 0 {
		conds = append(conds, "tasks.worker IN ("+strings.Join(names, ", ")+")")
	}
	if len(conds) == 0 {
		q.Where("1 = 0")
		return nil
	}
	q.Where("(" + strings.Join(conds, " OR ") + ")")
	return nil
}

func refFilter(collection, column string) func(q *api.Query, lookup, v string) error {
	return func(q *api.Query, _, v string) error {
		id := api.IDFromHref(v, collection, "core."+strings.TrimSuffix(strings.Trim(strings.TrimPrefix(collection, api.Root), "/"), "s"))
		if id == "" {
			return api.NonFieldError("Select a valid choice. That choice is not one of the available choices.")
		}
		q.Where(column+" = ?", id)
		return nil
	}
}

func taskFilters() *api.FilterSet {
	return &api.FilterSet{
		DefaultOrder: "created DESC",
		Tiebreak:     "id DESC",
		Ordering: map[string]string{"pulp_created": "created", "started_at": "started_at", "finished_at": "finished_at",
			"name": "name", "state": "state", "pulp_id": "id", "pulp_last_updated": "last_updated"},
		Filters: []api.Filter{
			{Name: "state", Column: "state", Kind: api.Exact, Lookups: []string{"", "in", "ne"}, Doc: "Filter results by state (" + taskStates + ")",
				Choices: strings.Split(taskStates, ",")},
			{Name: "name", Column: "name", Kind: api.Exact, Lookups: []string{"", "contains", "in", "ne"}},
			{Name: "logging_cid", Column: "logging_cid", Kind: api.Exact, Lookups: []string{"", "contains"}},
			{Name: "pulp_id", Column: "id", Kind: api.Exact, Lookups: []string{"in"}},
			{Name: "pulp_href", Kind: api.Custom, Lookups: []string{"in"}, Apply: hrefIn(TasksPath, "core.task")},
			{Name: "prn", Kind: api.Custom, Lookups: []string{"in"}, Apply: hrefIn(TasksPath, "core.task")},
			{Name: "pulp_created", Column: "created", Kind: api.Time},
			{Name: "started_at", Column: "started_at", Kind: api.Time},
			{Name: "finished_at", Column: "finished_at", Kind: api.Time},
			{Name: "unblocked_at", Column: "unblocked_at", Kind: api.Time},
			{Name: "worker", Kind: api.Custom, Lookups: []string{"", "in", "isnull"}, Apply: workerFilter,
				Doc: "Tasks run by this worker, by href (pulp-cli sends hrefs) or by name."},
			{Name: "parent_task", Kind: api.Custom, Lookups: []string{""}, Apply: refFilter(TasksPath, "parent_task_id")},
			{Name: "task_group", Kind: api.Custom, Lookups: []string{""}, Apply: refFilter(TaskGroupsPath, "task_group_id")},
			{Name: "created_resources", Kind: api.Custom, Lookups: []string{""}, Apply: func(q *api.Query, _, v string) error {
				q.Where("EXISTS (SELECT 1 FROM created_resources c WHERE c.task_id = tasks.id AND c.href = ?)", v)
				return nil
			}},
			{Name: "reserved_resources", Kind: api.Custom, Lookups: []string{"", "in"}, Apply: resourceFilter("any")},
			{Name: "exclusive_resources", Kind: api.Custom, Lookups: []string{"", "in"}, Apply: resourceFilter("exclusive")},
			{Name: "shared_resources", Kind: api.Custom, Lookups: []string{"", "in"}, Apply: resourceFilter("shared")},
		},
	}
}

func (d *Deps) getTask(c *api.Ctx) (*store.Task, error) {
	id := c.PathValue("pulp_id")
	if !store.ValidID(id) {
		return nil, api.NotFound()
	}
	return d.Store.GetTask(c, id)
}

func (d *Deps) taskDetail(ctx context.Context, t *store.Task) (*TaskResponse, error) {
	rs, err := d.taskResponses(ctx, []*store.Task{t})
	if err != nil {
		return nil, err
	}
	return &rs[0], nil
}

func taskRoutes(d *Deps) []*api.Route {
	fs := taskFilters()
	detail := TasksPath + "{pulp_id}/"
	gdetail := TaskGroupsPath + "{pulp_id}/"
	return []*api.Route{
		{OperationID: "tasks_list", Method: "GET", Path: TasksPath, Tag: "Tasks", Summary: "List tasks",
			Query: fs.Params(), List: true, Response: TaskResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				return listTable(c, d, fs, "tasks", d.Store.ListTasks, d.taskResponses)
			}},
		{OperationID: "tasks_read", Method: "GET", Path: detail, Href: "task_href", Tag: "Tasks", Summary: "Inspect a task",
			Response: TaskResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				t, err := d.getTask(c)
				if err != nil {
					return nil, err
				}
				return d.taskDetail(c, t)
			}},
		{OperationID: "tasks_cancel", Method: "PATCH", Path: detail, Href: "task_href", Tag: "Tasks", Summary: "Cancel a task",
			Body: &TaskCancel{}, Response: TaskResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				t, err := d.getTask(c)
				if err != nil {
					return nil, err
				}
				_, cerr := d.Tasks.Cancel(c, t.ID)
				t, err = d.Store.GetTask(c, t.ID)
				if err != nil {
					return nil, err
				}
				resp, err := d.taskDetail(c, t)
				if err != nil {
					return nil, err
				}
				if errors.Is(cerr, store.ErrTaskFinished) {
					return nil, &api.Error{Status: http.StatusConflict, Body: resp}
				}
				if cerr != nil {
					return nil, cerr
				}
				return resp, nil
			}},
		{OperationID: "tasks_delete", Method: "DELETE", Path: detail, Href: "task_href", Tag: "Tasks", Summary: "Delete a task",
			Status: http.StatusNoContent,
			Handle: func(c *api.Ctx) (any, error) {
				t, err := d.getTask(c)
				if err != nil {
					return nil, err
				}
				if err := d.Store.DeleteTask(c, t.ID); errors.Is(err, store.ErrTaskIncomplete) {
					return nil, api.Detail(http.StatusConflict, "Cannot delete a task that is not finished. Cancel it first.")
				} else if err != nil {
					return nil, err
				}
				return nil, nil
			}},
		{OperationID: "tasks_profile_artifacts", Method: "GET", Path: detail + "profile_artifacts/", Href: "task_href", Tag: "Tasks",
			Summary: "Fetch download links for a task's profile artifacts", Response: ProfileArtifactResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				if _, err := d.getTask(c); err != nil {
					return nil, err
				}
				// pith records no profiling artifacts.
				return ProfileArtifactResponse{URLs: map[string]string{}}, nil
			}},
		{OperationID: "tasks_purge", Method: "POST", Path: TasksPath + "purge/", Tag: "Tasks",
			Summary: "Purge Completed Tasks", Body: &Purge{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: d.purgeTasks},
		{OperationID: "task_groups_list", Method: "GET", Path: TaskGroupsPath, Tag: "Task-Groups", Summary: "List task groups",
			Query: (&api.FilterSet{}).Params(), List: true, Response: TaskGroupResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				limit, offset, err := c.Paging()
				if err != nil {
					return nil, err
				}
				n, err := d.Store.Count(c, "task_groups")
				if err != nil {
					return nil, err
				}
				groups, err := d.Store.ListTaskGroups(c, limit, offset)
				if err != nil {
					return nil, err
				}
				out := make([]TaskGroupResponse, 0, len(groups))
				for _, g := range groups {
					r, err := d.taskGroupResponse(c, g.ID)
					if err != nil {
						return nil, err
					}
					out = append(out, *r)
				}
				return c.Page(n, limit, offset, out), nil
			}},
		{OperationID: "task_groups_read", Method: "GET", Path: gdetail, Href: "task_group_href", Tag: "Task-Groups",
			Summary: "Inspect a task group", Response: TaskGroupResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				if !store.ValidID(c.PathValue("pulp_id")) {
					return nil, api.NotFound()
				}
				return d.taskGroupResponse(c, c.PathValue("pulp_id"))
			}},
		{OperationID: "task_groups_cancel", Method: "PATCH", Path: gdetail, Href: "task_group_href", Tag: "Task-Groups",
			Summary: "Cancel a task group", Body: &TaskCancel{}, Response: TaskGroupResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				id := c.PathValue("pulp_id")
				if !store.ValidID(id) {
					return nil, api.NotFound()
				}
				if _, err := d.Store.GetTaskGroup(c, id); err != nil {
					return nil, err
				}
				if err := d.Tasks.CancelGroup(c, id); err != nil {
					return nil, err
				}
				return d.taskGroupResponse(c, id)
			}},
	}
}

func (d *Deps) purgeTasks(c *api.Ctx) (any, error) {
	b := api.Body[Purge](c)
	before := time.Now().Add(-30 * 24 * time.Hour)
	if b.FinishedBefore != nil {
		before = *b.FinishedBefore
	}
	states := []string{store.TaskCompleted}
	if b.States != nil {
		states = *b.States
		for _, s := range states {
			if !store.TaskFinal(s) {
				return nil, api.FieldError("states", fmt.Sprintf("%q is not a valid choice.", s))
			}
		}
	}
	t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{
		Name: PurgeTask, Args: purgeArgs{FinishedBefore: store.Micros(before), States: states},
		LoggingCID: c.CID, CreatedBy: c.User,
	})
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
}

type purgeArgs struct {
	FinishedBefore int64    `json:"finished_before"`
	States         []string `json:"states"`
}

func registerTaskTasks(d *Deps) {
	d.Tasks.Register(PurgeTask, func(ctx context.Context, t *tasking.Task) error {
		var a purgeArgs
		if err := t.Args(&a); err != nil {
			return err
		}
		p := t.Progress("Purged tasks", "purge.tasks.total", nil)
		n, err := d.Store.PurgeTasks(ctx, a.FinishedBefore, a.States)
		p.Increment(n)
		if err != nil {
			p.Fail()
			return err
		}
		p.Done()
		return nil
	})
}

// MinimalTaskResponse is a task inside a task group.
type MinimalTaskResponse struct {
	PulpHref    string     `json:"pulp_href" api:"readonly"`
	PRN         string     `json:"prn" api:"readonly"`
	PulpCreated time.Time  `json:"pulp_created" api:"readonly"`
	Name        string     `json:"name" api:"required"`
	State       string     `json:"state" api:"readonly"`
	UnblockedAt *time.Time `json:"unblocked_at" api:"readonly,nullable"`
	StartedAt   *time.Time `json:"started_at" api:"readonly,nullable"`
	FinishedAt  *time.Time `json:"finished_at" api:"readonly,nullable"`
	Worker      *string    `json:"worker" api:"readonly,nullable"`
}

// TaskGroupResponse is a task group with per-state counts.
type TaskGroupResponse struct {
	PulpHref             string                `json:"pulp_href" api:"readonly"`
	PRN                  string                `json:"prn" api:"readonly"`
	Description          string                `json:"description" api:"required"`
	AllTasksDispatched   bool                  `json:"all_tasks_dispatched" api:"required"`
	Waiting              int64                 `json:"waiting" api:"readonly"`
	Skipped              int64                 `json:"skipped" api:"readonly"`
	Running              int64                 `json:"running" api:"readonly"`
	Completed            int64                 `json:"completed" api:"readonly"`
	Canceled             int64                 `json:"canceled" api:"readonly"`
	Failed               int64                 `json:"failed" api:"readonly"`
	Canceling            int64                 `json:"canceling" api:"readonly"`
	GroupProgressReports []any                 `json:"group_progress_reports" api:"readonly"`
	Tasks                []MinimalTaskResponse `json:"tasks" api:"readonly"`
}

func (d *Deps) taskGroupResponse(ctx context.Context, id string) (*TaskGroupResponse, error) {
	g, err := d.Store.GetTaskGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	r := &TaskGroupResponse{
		PulpHref: TaskGroupHref(g.ID), PRN: "prn:core.taskgroup:" + g.ID, Description: g.Description,
		AllTasksDispatched: g.AllTasksDispatched, GroupProgressReports: []any{}, Tasks: []MinimalTaskResponse{},
		Waiting: g.Counts[store.TaskWaiting], Running: g.Counts[store.TaskRunning], Completed: g.Counts[store.TaskCompleted],
		Canceled: g.Counts[store.TaskCanceled], Failed: g.Counts[store.TaskFailed], Canceling: g.Counts[store.TaskCanceling],
	}
	ids, err := d.Store.TaskGroupTaskIDs(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	for _, tid := range ids {
		t, err := d.Store.GetTask(ctx, tid)
		if err != nil {
			continue
		}
		r.Tasks = append(r.Tasks, MinimalTaskResponse{
			PulpHref: TaskHref(t.ID), PRN: "prn:core.task:" + t.ID, PulpCreated: store.Time(t.Created), Name: t.Name, State: t.State,
			UnblockedAt: timePtr(t.UnblockedAt), StartedAt: timePtr(t.StartedAt), FinishedAt: timePtr(t.FinishedAt),
		})
	}
	return r, nil
}

// WorkerResponse is a worker.
type WorkerResponse struct {
	api.Base
	Name          string    `json:"name" api:"readonly"`
	LastHeartbeat time.Time `json:"last_heartbeat" api:"readonly" doc:"Timestamp of the last time the worker talked to the service."`
	CurrentTask   *string   `json:"current_task" api:"readonly,nullable" doc:"The task this worker is currently executing, or empty if the worker is not currently assigned to a task."`
}

func storeTime(us int64) time.Time { return store.Time(us) }

func workerResponse(a store.AppStatus) WorkerResponse {
	return WorkerResponse{
		Base: api.NewBase(api.Href(WorkersPath, a.ID), "core.appstatus", a.ID, a.Created, a.LastUpdated),
		Name: a.Name, LastHeartbeat: store.Time(a.LastHeartbeat),
	}
}

func workerRoutes(d *Deps) []*api.Route {
	return []*api.Route{
		{OperationID: "workers_list", Method: "GET", Path: WorkersPath, Tag: "Workers", Summary: "List workers",
			Query: workerParams(), List: true, Response: WorkerResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				limit, offset, err := c.Paging()
				if err != nil {
					return nil, err
				}
				all, err := d.Store.ListAppStatuses(c, "worker")
				if err != nil {
					return nil, err
				}
				apps, err := filterWorkers(c, all, d.Tasks.TTL())
				if err != nil {
					return nil, err
				}
				out := []WorkerResponse{}
				for i, a := range apps {
					if i >= offset && len(out) < limit {
						out = append(out, workerResponse(a))
					}
				}
				if err := d.setCurrentTasks(c, out); err != nil {
					return nil, err
				}
				return c.Page(int64(len(apps)), limit, offset, out), nil
			}},
		{OperationID: "workers_read", Method: "GET", Path: WorkersPath + "{pulp_id}/", Href: "worker_href", Tag: "Workers",
			Summary: "Inspect a worker", Response: WorkerResponse{},
			Handle: func(c *api.Ctx) (any, error) {
				if !store.ValidID(c.PathValue("pulp_id")) {
					return nil, api.NotFound()
				}
				a, err := d.Store.GetAppStatus(c, c.PathValue("pulp_id"))
				if err != nil {
					return nil, err
				}
				if a.AppType != "worker" {
					return nil, api.NotFound()
				}
				out := []WorkerResponse{workerResponse(*a)}
				if err := d.setCurrentTasks(c, out); err != nil {
					return nil, err
				}
				return out[0], nil
			}},
	}
}

// setCurrentTasks fills in the task each worker is running (or canceling).
func (d *Deps) setCurrentTasks(ctx context.Context, ws []WorkerResponse) error {
	if len(ws) == 0 {
		return nil
	}
	ph := make([]string, len(ws))
	args := make([]any, len(ws))
	for i, w := range ws {
		ph[i], args[i] = fmt.Sprintf("$%d", i+1), w.Name
	}
	rows, err := d.Store.Query(ctx, `SELECT worker, id FROM tasks WHERE worker IN (`+strings.Join(ph, ", ")+`) AND state IN ('running', 'canceling')`, args...)
	if err != nil {
		return fmt.Errorf("workers: current tasks: %w", err)
	}
	defer rows.Close()
	current := map[string]string{}
	for rows.Next() {
		var name, id string
		if err := rows.Scan(&name, &id); err != nil {
			return fmt.Errorf("workers: current tasks: %w", err)
		}
		current[name] = TaskHref(id)
	}
	for i := range ws {
		if h, ok := current[ws[i].Name]; ok {
			ws[i].CurrentTask = &h
		}
	}
	return rows.Err()
}

func workerParams() []api.Param {
	ps := (&api.FilterSet{}).Params()
	return append(ps,
		api.Param{Name: "name", Type: "string"}, api.Param{Name: "name__contains", Type: "string"},
		api.Param{Name: "name__icontains", Type: "string"}, api.Param{Name: "name__in", Type: "array"},
		api.Param{Name: "online", Type: "boolean"}, api.Param{Name: "missing", Type: "boolean"})
}

// filterWorkers applies the worker filters; the table holds one row per
// live process role, so filtering in memory is cheap.
func filterWorkers(c *api.Ctx, apps []store.AppStatus, ttl time.Duration) ([]store.AppStatus, error) {
	q := c.Query()
	cutoff := store.Now() - ttl.Microseconds()
	var out []store.AppStatus
	for _, a := range apps {
		if v := q.Get("name"); v != "" && a.Name != v {
			continue
		}
		if v := q.Get("name__contains"); v != "" && !strings.Contains(a.Name, v) {
			continue
		}
		if v := q.Get("name__icontains"); v != "" && !strings.Contains(strings.ToLower(a.Name), strings.ToLower(v)) {
			continue
		}
		if v := q.Get("name__in"); v != "" && !slices.Contains(strings.Split(v, ","), a.Name) {
			continue
		}
		online := a.LastHeartbeat >= cutoff
		for _, k := range []string{"online", "missing"} {
			v := q.Get(k)
			if v == "" {
				continue
			}
			want := v == "true" || v == "True" || v == "1"
			if v != "true" && v != "false" && v != "True" && v != "False" && v != "1" && v != "0" {
				return nil, api.FieldError(k, "Must be a valid boolean.")
			}
			if (k == "online" && online != want) || (k == "missing" && online == want) {
				goto skip
			}
		}
		out = append(out, a)
	skip:
	}
	return out, nil
}
