package store

import (
	"context"
	"fmt"
)

// ListTasks returns one page of tasks matching where (with args).
func (s *Store) ListTasks(ctx context.Context, where string, args []any, orderBy string, limit, offset int) ([]*Task, error) {
	if orderBy == "" {
		orderBy = "created DESC, id DESC"
	}
	q := `SELECT ` + TaskColumns + ` FROM tasks` + where + ` ORDER BY ` + orderBy + fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset)
	if offset > 0 || where != "" {
		// Find the page's ids on the narrow indexes first, then read only
		// those rows: skipped and filtered rows are never fetched whole.
		q = `SELECT ` + TaskColumns + ` FROM tasks WHERE id IN (SELECT id FROM tasks` + where + ` ORDER BY ` + orderBy +
			fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset) + `) ORDER BY ` + orderBy
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list tasks: %w", err)
	}
	defer rows.Close()
	var out []*Task
	for rows.Next() {
		t, err := ScanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// ListTaskGroups returns one page of task groups, newest first.
func (s *Store) ListTaskGroups(ctx context.Context, limit, offset int) ([]*TaskGroup, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, created, last_updated, description, all_tasks_dispatched FROM task_groups
		ORDER BY created DESC, id DESC LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("store: list task groups: %w", err)
	}
	defer rows.Close()
	var out []*TaskGroup
	for rows.Next() {
		g := &TaskGroup{}
		if err := rows.Scan(&g.ID, &g.Created, &g.LastUpdated, &g.Description, &g.AllTasksDispatched); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
