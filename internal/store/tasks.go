package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Task states; these six are all pulp-cli accepts.
const (
	TaskWaiting   = "waiting"
	TaskRunning   = "running"
	TaskCanceling = "canceling"
	TaskCompleted = "completed"
	TaskFailed    = "failed"
	TaskCanceled  = "canceled"
)

// Notification channels of the task system (PostgreSQL only). The store
// sends them inside the transactions that change task state, so listeners
// never hear of a change before it is visible.
const (
	// TaskWakeupChannel is notified when a task may have become claimable.
	TaskWakeupChannel = "pith_tasks"
	// TaskCancelChannel carries the id of a task asked to cancel.
	TaskCancelChannel = "pith_task_cancel"
)

// MissingWorkerError is the error description of a task whose worker
// stopped heartbeating.
const MissingWorkerError = "Worker has gone missing."

// ErrTaskFinished is returned when a change needs an incomplete task but the
// task already reached a final state (the API answers 409).
var ErrTaskFinished = errors.New("task already finished")

// ErrTaskIncomplete is returned when deleting a task that has not finished
// (the API answers 409).
var ErrTaskIncomplete = errors.New("task is not finished")

// claimLockKey serialises claims across processes on PostgreSQL; see claim.
const claimLockKey = 7413202

// TaskFinal reports whether state is a final task state.
func TaskFinal(state string) bool {
	return state == TaskCompleted || state == TaskFailed || state == TaskCanceled
}

// Task is a row of tasks. Times are microseconds since the Unix epoch.
type Task struct {
	ID           string
	Created      int64
	LastUpdated  int64
	Name         string
	State        string
	LoggingCID   string
	CreatedBy    *string
	UnblockedAt  *int64
	StartedAt    *int64
	FinishedAt   *int64
	Error        json.RawMessage // nil when NULL
	Worker       *string         // app_status name of the process holding it
	ParentTaskID *string
	TaskGroupID  *string
	Args         json.RawMessage
	Result       json.RawMessage // nil when NULL
	Immediate    bool
	// ReservedResources is Pulp's reserved_resources_record: exclusive
	// resources, then shared ones prefixed "shared:".
	ReservedResources []string
}

// TaskColumns lists the task columns in ScanTask order.
const TaskColumns = `id, created, last_updated, name, state, logging_cid, created_by, unblocked_at, started_at, finished_at, error, worker, parent_task_id, task_group_id, args, result, immediate, reserved_resources`

// ScanTask reads a row selected with TaskColumns.
func ScanTask(row interface{ Scan(...any) error }) (*Task, error) {
	t := &Task{}
	var errText, result sql.NullString
	var args, reserved string
	if err := row.Scan(&t.ID, &t.Created, &t.LastUpdated, &t.Name, &t.State, &t.LoggingCID, &t.CreatedBy,
		&t.UnblockedAt, &t.StartedAt, &t.FinishedAt, &errText, &t.Worker, &t.ParentTaskID, &t.TaskGroupID,
		&args, &result, &t.Immediate, &reserved); err != nil {
		return nil, err
	}
	if errText.Valid {
		t.Error = json.RawMessage(errText.String)
	}
	if result.Valid {
		t.Result = json.RawMessage(result.String)
	}
	t.Args = json.RawMessage(args)
	if err := json.Unmarshal([]byte(reserved), &t.ReservedResources); err != nil {
		return nil, fmt.Errorf("task %s: reserved_resources: %w", t.ID, err)
	}
	if t.ReservedResources == nil {
		t.ReservedResources = []string{}
	}
	return t, nil
}

// ProgressReport is one progress report of a task.
type ProgressReport struct {
	ID      string
	TaskID  string
	Seq     int
	Message string
	Code    string
	State   string
	Total   *int64
	Done    int64
	Suffix  *string
}

// TaskGroup is a row of task_groups plus, when read with GetTaskGroup, the
// number of its tasks in each state.
type TaskGroup struct {
	ID                 string
	Created            int64
	LastUpdated        int64
	Description        string
	AllTasksDispatched bool
	Counts             map[string]int64
}

// AppStatus is a heartbeating process role (worker, api, content).
type AppStatus struct {
	ID            string
	Created       int64
	LastUpdated   int64
	Name          string
	AppType       string
	LastHeartbeat int64
	Versions      string
}

func (s *Store) isPG() bool { return s.dialect.name() == "postgres" }

// taskStmts caches the prepared statements of the task hot path (dispatch,
// claim, finish) per database handle: re-parsing them for every task was
// the largest cost of a task on SQLite. Keyed by stmtKey.
var taskStmts sync.Map

type stmtKey struct {
	db *sql.DB
	q  string
}

// prepared returns q prepared on db (s.db, or s.wdb for transactions,
// whose statements must belong to the transaction's pool).
func (s *Store) prepared(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	k := stmtKey{db, q}
	if v, ok := taskStmts.Load(k); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if v, loaded := taskStmts.LoadOrStore(k, st); loaded {
		st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

// cachedQueryRow is QueryRow outside a transaction with a cached statement.
func (s *Store) cachedQueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, s.db, q)
	if err != nil {
		return s.db.QueryRowContext(ctx, q, args...) // reports the same error
	}
	return st.QueryRowContext(ctx, args...)
}

// cachedExec is Exec with a statement cached across transactions.
func (t *Tx) cachedExec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st := t.cachedStmt(q)
	if st == nil {
		return t.tx.ExecContext(ctx, q, args...)
	}
	return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// cachedQueryRow is QueryRow with a statement cached across transactions.
func (t *Tx) cachedQueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st := t.cachedStmt(q)
	if st == nil {
		return t.tx.QueryRowContext(ctx, q, args...)
	}
	return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

// cachedStmt returns q's cached statement for use in t, or nil if there is
// none yet; then q runs unprepared this once and is prepared after the
// commit. Preparing it now could need a second connection of the writer
// pool, which on SQLite has only the one t holds.
func (t *Tx) cachedStmt(q string) *sql.Stmt {
	if v, ok := taskStmts.Load(stmtKey{t.s.wdb, q}); ok {
		return v.(*sql.Stmt)
	}
	t.AfterCommit(func() {
		if _, err := t.s.prepared(context.Background(), t.s.wdb, q); err != nil {
			slog.Debug("store: prepare cached statement", "err", err)
		}
	})
	return nil
}

// notifyTx sends a notification that is delivered when tx commits.
func (s *Store) notifyTx(ctx context.Context, tx *Tx, channel, payload string) error {
	return s.dialect.notify(ctx, tx.tx, channel, payload)
}

// InsertTask records a waiting task with its resource reservations. A
// resource named both exclusively and shared is reserved exclusively. When
// tx is nil the insert runs in its own transaction. Unset ID, Created,
// State and Args get defaults.
func (s *Store) InsertTask(ctx context.Context, tx *Tx, t *Task, exclusive, shared []string) error {
	if tx == nil {
		return s.InTx(ctx, func(tx *Tx) error { return s.InsertTask(ctx, tx, t, exclusive, shared) })
	}
	if t.ID == "" {
		t.ID = NewID()
	}
	if t.Created == 0 {
		t.Created = Now()
	}
	t.LastUpdated = t.Created
	if t.State == "" {
		t.State = TaskWaiting
	}
	if len(t.Args) == 0 {
		t.Args = json.RawMessage(`{}`)
	}
	locks := map[string]bool{}
	var order []string
	for _, r := range exclusive {
		if _, ok := locks[r]; !ok {
			order = append(order, r)
		}
		locks[r] = true
	}
	for _, r := range shared {
		if _, ok := locks[r]; !ok {
			order = append(order, r)
			locks[r] = false
		}
	}
	record := []string{}
	for _, r := range order {
		if locks[r] {
			record = append(record, r)
		}
	}
	for _, r := range order {
		if !locks[r] {
			record = append(record, "shared:"+r)
		}
	}
	t.ReservedResources = record
	rec, _ := json.Marshal(record)
	_, err := tx.cachedExec(ctx, `INSERT INTO tasks (`+TaskColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
		t.ID, t.Created, t.LastUpdated, t.Name, t.State, t.LoggingCID, t.CreatedBy, t.UnblockedAt, t.StartedAt, t.FinishedAt,
		rawOrNil(t.Error), t.Worker, t.ParentTaskID, t.TaskGroupID, string(t.Args), rawOrNil(t.Result), t.Immediate, string(rec))
	if err != nil {
		return fmt.Errorf("store: insert task %s: %w", t.Name, err)
	}
	incomplete := !TaskFinal(t.State)
	for _, r := range order {
		if _, err := tx.cachedExec(ctx, `INSERT INTO task_resources (task_id, resource, exclusive) VALUES ($1, $2, $3)`, t.ID, r, locks[r]); err != nil {
			return fmt.Errorf("store: insert task resource %s: %w", r, err)
		}
		if incomplete {
			if _, err := tx.cachedExec(ctx, `INSERT INTO task_locks (task_id, resource, exclusive, created) VALUES ($1, $2, $3, $4)`, t.ID, r, locks[r], t.Created); err != nil {
				return fmt.Errorf("store: insert task lock %s: %w", r, err)
			}
		}
	}
	if t.State == TaskWaiting {
		return s.notifyTx(ctx, tx, TaskWakeupChannel, t.ID)
	}
	return nil
}

func rawOrNil(r json.RawMessage) any {
	if r == nil {
		return nil
	}
	return string(r)
}

// unblocked is the condition, on waiting tasks aliased t, that no lock of t
// conflicts with a lock of a task ahead of it. A task is ahead when it was
// dispatched earlier (created, then id) or has already started: the second
// case covers a dispatch that committed after a later-created one was
// claimed. Locks exist only for incomplete tasks, so history is never
// scanned.
const unblocked = `NOT EXISTS (
	SELECT 1 FROM task_locks mine
	JOIN task_locks other ON other.resource = mine.resource AND other.task_id <> mine.task_id
	JOIN tasks ot ON ot.id = other.task_id
	WHERE mine.task_id = t.id
	  AND (mine.exclusive OR other.exclusive)
	  AND (other.created < mine.created OR (other.created = mine.created AND other.task_id < mine.task_id) OR ot.state <> 'waiting'))`

// ClaimTask atomically picks the first claimable waiting task (immediate
// ones first, then in dispatch order) and marks it running on worker. It
// returns nil when no task is claimable.
func (s *Store) ClaimTask(ctx context.Context, worker string) (*Task, error) {
	return s.claim(ctx, nil, worker, "")
}

// ClaimTaskByID claims the given task if it is waiting and unblocked, for
// running it inline; it returns nil otherwise. Given the transaction that
// inserted the task, no other claimer can see the task before it runs.
func (s *Store) ClaimTaskByID(ctx context.Context, tx *Tx, id, worker string) (*Task, error) {
	return s.claim(ctx, tx, worker, id)
}

func (s *Store) claim(ctx context.Context, tx *Tx, worker, id string) (*Task, error) {
	if tx == nil && id == "" {
		// Idle workers poll; seeing nothing to claim needs no write
		// transaction (nor, on PostgreSQL, the claim lock).
		var one int
		err := s.cachedQueryRow(ctx, `SELECT 1 FROM tasks WHERE state = 'waiting' LIMIT 1`).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("store: claim task: %w", err)
		}
	}
	if tx == nil {
		var out *Task
		err := s.InTx(ctx, func(tx *Tx) error {
			if s.isPG() {
				// Claims are serialised (see claimTx); waiting for the WAL
				// flush while holding the claim lock would cap throughput
				// at one claim per disk flush. A claim lost in a database
				// crash returns the task to waiting; any durable write the
				// task made afterwards would have flushed the claim too.
				if _, err := tx.cachedExec(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
					return fmt.Errorf("store: claim task: %w", err)
				}
			}
			var err error
			out, err = s.claim(ctx, tx, worker, id)
			return err
		})
		return out, err
	}
	out, err := s.claimTx(ctx, tx, worker, id)
	if err != nil {
		return nil, fmt.Errorf("store: claim task: %w", err)
	}
	return out, nil
}

func (s *Store) claimTx(ctx context.Context, tx *Tx, worker, id string) (*Task, error) {
	pg := s.isPG()
	if pg {
		// The conflict check reads other tasks' rows without locking them,
		// so two concurrent claims could each miss the other's pick. Claims
		// are short; serialising them keeps the check exact. (SQLite is
		// serialised by InTx already.)
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, claimLockKey); err != nil {
			return nil, err
		}
	}
	pick := `SELECT t.id FROM tasks t WHERE t.state = 'waiting' AND ` + unblocked
	args := []any{worker, Now()}
	if id != "" {
		pick += ` AND t.id = $3`
		args = append(args, id)
	}
	pick += ` ORDER BY t.immediate DESC, t.created, t.id LIMIT 1`
	if pg {
		pick += ` FOR UPDATE OF t SKIP LOCKED`
	}
	t, err := ScanTask(tx.cachedQueryRow(ctx, `UPDATE tasks SET state = 'running', worker = $1, started_at = $2, unblocked_at = $2, last_updated = $2
		WHERE id = (`+pick+`) AND state = 'waiting' RETURNING `+TaskColumns, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return t, err
}

// FinishTask moves an incomplete task to the final state (completed, failed
// or canceled), records its error and result, frees its locks and forces its
// running progress reports to the same state. A task that is canceling ends
// canceled whatever state is asked for: cancellation, once accepted, wins.
// It returns the state recorded, or ErrTaskFinished if the task had already
// finished.
func (s *Store) FinishTask(ctx context.Context, id, state string, errJSON, resultJSON json.RawMessage) (string, error) {
	if !TaskFinal(state) {
		return "", fmt.Errorf("store: finish task %s: %q is not a final state", id, state)
	}
	var final string
	err := s.InTx(ctx, func(tx *Tx) error {
		now := Now()
		err := tx.cachedQueryRow(ctx, `UPDATE tasks SET
				state = CASE WHEN state = 'canceling' THEN 'canceled' ELSE $2 END,
				error = CASE WHEN state = 'canceling' THEN '`+canceledError+`' ELSE $3 END,
				result = $4, finished_at = $5, last_updated = $5
			WHERE id = $1 AND state IN ('waiting', 'running', 'canceling') RETURNING state`,
			id, state, rawOrNil(errJSON), rawOrNil(resultJSON), now).Scan(&final)
		if errors.Is(err, sql.ErrNoRows) {
			return s.finishedOrMissing(ctx, tx, id)
		}
		if err != nil {
			return err
		}
		return s.releaseTask(ctx, tx, id, final)
	})
	if err != nil {
		return "", fmt.Errorf("store: finish task %s: %w", id, err)
	}
	return final, nil
}

// finishedOrMissing explains why a conditional update of an incomplete task
// matched nothing.
func (s *Store) finishedOrMissing(ctx context.Context, tx *Tx, id string) error {
	var st string
	err := tx.QueryRow(ctx, `SELECT state FROM tasks WHERE id = $1`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return ErrTaskFinished
}

// releaseTask frees the locks of a task that reached final state and wakes
// claimers.
func (s *Store) releaseTask(ctx context.Context, tx *Tx, id, final string) error {
	if _, err := tx.cachedExec(ctx, `DELETE FROM task_locks WHERE task_id = $1`, id); err != nil {
		return err
	}
	if _, err := tx.cachedExec(ctx, `UPDATE progress_reports SET state = $2 WHERE task_id = $1 AND state = 'running'`, id, final); err != nil {
		return err
	}
	return s.notifyTx(ctx, tx, TaskWakeupChannel, id)
}

// canceledError is the error record of a canceled task; pulp-glue reads
// error.reason of canceled group members.
const canceledError = `{"reason": "Task was canceled."}`

// SetTaskCanceling asks a task to cancel. A waiting task is canceled at once
// (its locks freed); a running one becomes canceling and its process is
// notified. It returns the new state; canceling again is not an error.
// Finished tasks give ErrTaskFinished, unknown ones ErrNotFound.
func (s *Store) SetTaskCanceling(ctx context.Context, id string) (string, error) {
	var state string
	err := s.InTx(ctx, func(tx *Tx) error {
		now := Now()
		err := tx.QueryRow(ctx, `UPDATE tasks SET
				state = CASE WHEN state = 'waiting' THEN 'canceled' ELSE 'canceling' END,
				finished_at = CASE WHEN state = 'waiting' THEN $2 ELSE finished_at END,
				error = CASE WHEN state = 'waiting' THEN '`+canceledError+`' ELSE error END,
				last_updated = $2
			WHERE id = $1 AND state IN ('waiting', 'running') RETURNING state`, id, now).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.QueryRow(ctx, `SELECT state FROM tasks WHERE id = $1`, id).Scan(&state)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return ErrNotFound
			case err != nil:
				return err
			case state == TaskCanceling:
				return nil
			default:
				return ErrTaskFinished
			}
		}
		if err != nil {
			return err
		}
		if state == TaskCanceled {
			return s.releaseTask(ctx, tx, id, state)
		}
		return s.notifyTx(ctx, tx, TaskCancelChannel, id)
	})
	if err != nil {
		return "", fmt.Errorf("store: cancel task %s: %w", id, err)
	}
	return state, nil
}

// GetTask returns a task by id.
func (s *Store) GetTask(ctx context.Context, id string) (*Task, error) {
	t, err := ScanTask(s.db.QueryRowContext(ctx, `SELECT `+TaskColumns+` FROM tasks WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get task %s: %w", id, err)
	}
	return t, nil
}

// TaskStates returns the state of each of the given tasks that exists.
func (s *Store) TaskStates(ctx context.Context, ids ...string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	err := s.inBatches(ctx, ids, `SELECT id, state FROM tasks WHERE id IN (%s)`, func(rows *sql.Rows) error {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			return err
		}
		out[id] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: task states: %w", err)
	}
	return out, nil
}

// CountTasksInState counts the tasks in one state.
func (s *Store) CountTasksInState(ctx context.Context, state string) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM tasks WHERE state = $1`, state).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count %s tasks: %w", state, err)
	}
	return n, nil
}

// inBatches runs query (with one %s for the id placeholders) over ids in
// bounded batches, calling scan for every row.
func (s *Store) inBatches(ctx context.Context, ids []string, query string, scan func(*sql.Rows) error) error {
	const batch = 500
	for len(ids) > 0 {
		n := min(len(ids), batch)
		ph := make([]string, n)
		args := make([]any, n)
		for i := range n {
			ph[i] = "$" + strconv.Itoa(i+1)
			args[i] = ids[i]
		}
		ids = ids[n:]
		rows, err := s.db.QueryContext(ctx, fmt.Sprintf(query, strings.Join(ph, ", ")), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// SaveProgress inserts or updates a progress report (by ID).
func (s *Store) SaveProgress(ctx context.Context, p *ProgressReport) error {
	if p.ID == "" {
		p.ID = NewID()
	}
	_, err := s.Exec(ctx, `INSERT INTO progress_reports (id, task_id, seq, message, code, state, total, done, suffix)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET message = excluded.message, code = excluded.code, state = excluded.state,
			total = excluded.total, done = excluded.done, suffix = excluded.suffix`,
		p.ID, p.TaskID, p.Seq, p.Message, p.Code, p.State, p.Total, p.Done, p.Suffix)
	if err != nil {
		return fmt.Errorf("store: save progress %s of task %s: %w", p.Code, p.TaskID, err)
	}
	return nil
}

// TaskProgress returns the progress reports of the given tasks, each
// task's in creation order.
func (s *Store) TaskProgress(ctx context.Context, ids ...string) (map[string][]ProgressReport, error) {
	out := map[string][]ProgressReport{}
	err := s.inBatches(ctx, ids, `SELECT id, task_id, seq, message, code, state, total, done, suffix FROM progress_reports
		WHERE task_id IN (%s) ORDER BY task_id, seq`, func(rows *sql.Rows) error {
		var p ProgressReport
		if err := rows.Scan(&p.ID, &p.TaskID, &p.Seq, &p.Message, &p.Code, &p.State, &p.Total, &p.Done, &p.Suffix); err != nil {
			return err
		}
		out[p.TaskID] = append(out[p.TaskID], p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: task progress: %w", err)
	}
	return out, nil
}

// AddCreatedResource appends href to a task's created resources.
func (s *Store) AddCreatedResource(ctx context.Context, taskID, href string) error {
	_, err := s.Exec(ctx, `INSERT INTO created_resources (task_id, seq, href)
		SELECT $1, COALESCE(MAX(seq), 0) + 1, $2 FROM created_resources WHERE task_id = $1`, taskID, href)
	if err != nil {
		return fmt.Errorf("store: add created resource of task %s: %w", taskID, err)
	}
	return nil
}

// TaskCreatedResources returns the created resource hrefs of the given
// tasks, each task's in the order they were added.
func (s *Store) TaskCreatedResources(ctx context.Context, ids ...string) (map[string][]string, error) {
	out := map[string][]string{}
	err := s.inBatches(ctx, ids, `SELECT task_id, href FROM created_resources WHERE task_id IN (%s) ORDER BY task_id, seq`, func(rows *sql.Rows) error {
		var id, href string
		if err := rows.Scan(&id, &href); err != nil {
			return err
		}
		out[id] = append(out[id], href)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: task created resources: %w", err)
	}
	return out, nil
}

// TaskChildren returns the ids of the child tasks of the given tasks, in
// dispatch order.
func (s *Store) TaskChildren(ctx context.Context, ids ...string) (map[string][]string, error) {
	out := map[string][]string{}
	err := s.inBatches(ctx, ids, `SELECT parent_task_id, id FROM tasks WHERE parent_task_id IN (%s) ORDER BY parent_task_id, created, id`, func(rows *sql.Rows) error {
		var parent, id string
		if err := rows.Scan(&parent, &id); err != nil {
			return err
		}
		out[parent] = append(out[parent], id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: task children: %w", err)
	}
	return out, nil
}

// DeleteTask deletes a finished task; incomplete ones give ErrTaskIncomplete.
func (s *Store) DeleteTask(ctx context.Context, id string) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM tasks WHERE id = $1 AND state IN ('completed', 'failed', 'canceled')`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		if err := s.finishedOrMissing(ctx, tx, id); errors.Is(err, ErrTaskFinished) {
			return ErrTaskIncomplete
		} else {
			return err
		}
	})
	if err != nil {
		return fmt.Errorf("store: delete task %s: %w", id, err)
	}
	return nil
}

// PurgeTasks deletes tasks in the given final states that finished before
// finishedBefore (µs), in bounded batches, and returns how many went.
func (s *Store) PurgeTasks(ctx context.Context, finishedBefore int64, states []string) (int64, error) {
	if len(states) == 0 {
		return 0, nil
	}
	args := []any{finishedBefore}
	ph := make([]string, len(states))
	for i, st := range states {
		if !TaskFinal(st) {
			return 0, fmt.Errorf("store: purge tasks: %q is not a final state", st)
		}
		args = append(args, st)
		ph[i] = "$" + strconv.Itoa(i+2)
	}
	q := `DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE finished_at < $1 AND state IN (` + strings.Join(ph, ", ") + `) LIMIT 1000)`
	var total int64
	for {
		res, err := s.Exec(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("store: purge tasks: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// InsertTaskGroup records a task group; tx may be nil.
func (s *Store) InsertTaskGroup(ctx context.Context, tx *Tx, g *TaskGroup) error {
	if g.ID == "" {
		g.ID = NewID()
	}
	now := Now()
	g.Created, g.LastUpdated = now, now
	q := `INSERT INTO task_groups (id, created, last_updated, description, all_tasks_dispatched) VALUES ($1, $2, $3, $4, $5)`
	var err error
	if tx != nil {
		_, err = tx.Exec(ctx, q, g.ID, g.Created, g.LastUpdated, g.Description, g.AllTasksDispatched)
	} else {
		_, err = s.Exec(ctx, q, g.ID, g.Created, g.LastUpdated, g.Description, g.AllTasksDispatched)
	}
	if err != nil {
		return fmt.Errorf("store: insert task group: %w", err)
	}
	return nil
}

// SetTaskGroupAllDispatched marks a group as fully dispatched.
func (s *Store) SetTaskGroupAllDispatched(ctx context.Context, id string) error {
	res, err := s.Exec(ctx, `UPDATE task_groups SET all_tasks_dispatched = TRUE, last_updated = $2 WHERE id = $1`, id, Now())
	if err != nil {
		return fmt.Errorf("store: task group %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// GetTaskGroup returns a task group with its per-state task counts.
func (s *Store) GetTaskGroup(ctx context.Context, id string) (*TaskGroup, error) {
	g := &TaskGroup{}
	err := s.db.QueryRowContext(ctx, `SELECT id, created, last_updated, description, all_tasks_dispatched FROM task_groups WHERE id = $1`, id).
		Scan(&g.ID, &g.Created, &g.LastUpdated, &g.Description, &g.AllTasksDispatched)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get task group %s: %w", id, err)
	}
	counts, err := s.TaskGroupCounts(ctx, id)
	if err != nil {
		return nil, err
	}
	g.Counts = counts[id]
	return g, nil
}

// TaskGroupCounts returns, per group, the number of its tasks in each state;
// every state is present (zero when none).
func (s *Store) TaskGroupCounts(ctx context.Context, ids ...string) (map[string]map[string]int64, error) {
	out := make(map[string]map[string]int64, len(ids))
	for _, id := range ids {
		out[id] = map[string]int64{TaskWaiting: 0, TaskRunning: 0, TaskCanceling: 0, TaskCompleted: 0, TaskFailed: 0, TaskCanceled: 0}
	}
	err := s.inBatches(ctx, ids, `SELECT task_group_id, state, count(*) FROM tasks WHERE task_group_id IN (%s) GROUP BY task_group_id, state`, func(rows *sql.Rows) error {
		var id, st string
		var n int64
		if err := rows.Scan(&id, &st, &n); err != nil {
			return err
		}
		out[id][st] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: task group counts: %w", err)
	}
	return out, nil
}

// TaskGroupTaskIDs returns the ids of a group's tasks in dispatch order,
// limited to the given states when any are given.
func (s *Store) TaskGroupTaskIDs(ctx context.Context, groupID string, states ...string) ([]string, error) {
	q := `SELECT id FROM tasks WHERE task_group_id = $1`
	args := []any{groupID}
	if len(states) > 0 {
		ph := make([]string, len(states))
		for i, st := range states {
			ph[i] = "$" + strconv.Itoa(i+2)
			args = append(args, st)
		}
		q += ` AND state IN (` + strings.Join(ph, ", ") + `)`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: tasks of group %s: %w", groupID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

const appStatusColumns = `id, created, last_updated, name, app_type, last_heartbeat, versions`

func scanAppStatus(row interface{ Scan(...any) error }) (AppStatus, error) {
	var a AppStatus
	err := row.Scan(&a.ID, &a.Created, &a.LastUpdated, &a.Name, &a.AppType, &a.LastHeartbeat, &a.Versions)
	return a, err
}

// Heartbeat creates or refreshes the app_status row named name.
func (s *Store) Heartbeat(ctx context.Context, name, appType string) error {
	now := Now()
	_, err := s.Exec(ctx, `INSERT INTO app_status (id, created, last_updated, name, app_type, last_heartbeat) VALUES ($1, $2, $2, $3, $4, $2)
		ON CONFLICT (name) DO UPDATE SET last_heartbeat = excluded.last_heartbeat, last_updated = excluded.last_updated, app_type = excluded.app_type`,
		NewID(), now, name, appType)
	if err != nil {
		return fmt.Errorf("store: heartbeat %s: %w", name, err)
	}
	return nil
}

// OnlineApps lists the apps that heartbeated within ttl, by name.
func (s *Store) OnlineApps(ctx context.Context, ttl time.Duration) ([]AppStatus, error) {
	return s.listApps(ctx, `WHERE last_heartbeat >= $1`, Now()-ttl.Microseconds())
}

// ListAppStatuses lists every app of one type (all types when empty),
// online or not, by name.
func (s *Store) ListAppStatuses(ctx context.Context, appType string) ([]AppStatus, error) {
	if appType == "" {
		return s.listApps(ctx, ``)
	}
	return s.listApps(ctx, `WHERE app_type = $1`, appType)
}

func (s *Store) listApps(ctx context.Context, where string, args ...any) ([]AppStatus, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+appStatusColumns+` FROM app_status `+where+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list apps: %w", err)
	}
	defer rows.Close()
	var out []AppStatus
	for rows.Next() {
		a, err := scanAppStatus(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list apps: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// WorkerIDs maps worker names (as tasks record them) to the ids of their
// app_status rows; names without a row are left out.
func (s *Store) WorkerIDs(ctx context.Context, names []string) (map[string]string, error) {
	out := map[string]string{}
	if len(names) == 0 {
		return out, nil
	}
	ph := make([]string, len(names))
	args := []any{}
	for i, n := range names {
		args = append(args, n)
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, id FROM app_status WHERE app_type = 'worker' AND name IN (`+strings.Join(ph, ", ")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: worker ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, id string
		if err := rows.Scan(&name, &id); err != nil {
			return nil, fmt.Errorf("store: worker ids: %w", err)
		}
		out[name] = id
	}
	return out, rows.Err()
}

// GetAppStatus returns an app_status row by id.
func (s *Store) GetAppStatus(ctx context.Context, id string) (*AppStatus, error) {
	a, err := scanAppStatus(s.db.QueryRowContext(ctx, `SELECT `+appStatusColumns+` FROM app_status WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get app status %s: %w", id, err)
	}
	return &a, nil
}

// DeleteAppStatus removes the app_status row named name (a clean exit).
func (s *Store) DeleteAppStatus(ctx context.Context, name string) error {
	if _, err := s.Exec(ctx, `DELETE FROM app_status WHERE name = $1`, name); err != nil {
		return fmt.Errorf("store: delete app status %s: %w", name, err)
	}
	return nil
}

// TaskError renders Pulp's task error object.
func TaskError(description, traceback string) json.RawMessage {
	b, _ := json.Marshal(struct {
		Description string `json:"description"`
		Traceback   string `json:"traceback"`
	}{description, traceback})
	return b
}

// FailTasksOfMissingWorkers fails the running and canceling tasks whose
// worker has not heartbeated within ttl, freeing their locks. It returns
// their ids.
func (s *Store) FailTasksOfMissingWorkers(ctx context.Context, ttl time.Duration) ([]string, error) {
	ids, err := s.failActive(ctx, `AND NOT EXISTS (SELECT 1 FROM app_status a WHERE a.name = tasks.worker AND a.last_heartbeat >= $3)`,
		MissingWorkerError, Now()-ttl.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("store: fail tasks of missing workers: %w", err)
	}
	return ids, nil
}

// FailTasksOfWorker fails the running and canceling tasks held by worker.
// A process calls it for its own names before heartbeating under them:
// tasks still held under such a name belong to a previous incarnation.
func (s *Store) FailTasksOfWorker(ctx context.Context, worker string) ([]string, error) {
	ids, err := s.failActive(ctx, `AND worker = $3`, MissingWorkerError, worker)
	if err != nil {
		return nil, fmt.Errorf("store: fail tasks of worker %s: %w", worker, err)
	}
	return ids, nil
}

// FailAllRunning fails every running or canceling task with the given
// error description. On SQLite, where one process owns the database, it is
// called at start-up: whatever is still running was interrupted by a crash.
func (s *Store) FailAllRunning(ctx context.Context, description string) (int64, error) {
	ids, err := s.failActive(ctx, ``, description)
	if err != nil {
		return 0, fmt.Errorf("store: fail running tasks: %w", err)
	}
	return int64(len(ids)), nil
}

func (s *Store) failActive(ctx context.Context, cond, description string, args ...any) ([]string, error) {
	var ids []string
	err := s.InTx(ctx, func(tx *Tx) error {
		ids = ids[:0]
		now := Now()
		rows, err := tx.Query(ctx, `UPDATE tasks SET state = 'failed', error = $1, finished_at = $2, last_updated = $2
			WHERE state IN ('running', 'canceling') `+cond+` RETURNING id`,
			append([]any{string(TaskError(description, "")), now}, args...)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		for _, id := range ids {
			if err := s.releaseTask(ctx, tx, id, TaskFailed); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}
