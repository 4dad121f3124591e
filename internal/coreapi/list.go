package coreapi

import (
	"context"

	"github.com/pith-project/pith/internal/api"
)

// listTable serves a paginated list of one table: filters and ordering
// from fs, the count from the store (O(1) when unfiltered), one page of
// rows, rendered to responses.
func listTable[Row, Resp any](c *api.Ctx, d *Deps, fs *api.FilterSet, table string,
	list func(ctx context.Context, where string, args []any, order string, limit, offset int) ([]Row, error),
	render func(ctx context.Context, rows []Row) ([]Resp, error)) (any, error) {
	limit, offset, err := c.Paging()
	if err != nil {
		return nil, err
	}
	q := &api.Query{Regex: d.Store.RegexMatch}
	order, err := fs.Build(c.Query(), q)
	if err != nil {
		return nil, err
	}
	where, args := q.SQL()
	n, err := d.Store.CountRows(c, table, where, args)
	if err != nil {
		return nil, err
	}
	rows, err := list(c, where, args, order, limit, offset)
	if err != nil {
		return nil, err
	}
	out, err := render(c, rows)
	if err != nil {
		return nil, err
	}
	return c.Page(n, limit, offset, out), nil
}

// each renders rows one by one.
func each[Row, Resp any](f func(Row) Resp) func(context.Context, []Row) ([]Resp, error) {
	return func(_ context.Context, rows []Row) ([]Resp, error) {
		out := make([]Resp, len(rows))
		for i, r := range rows {
			out[i] = f(r)
		}
		return out, nil
	}
}
