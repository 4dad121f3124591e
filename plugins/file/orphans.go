package file

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/store"
)

// contentOrphans is orphan cleanup's view of content units: what
// POST orphans/cleanup/ removes before it turns to artifacts.
type contentOrphans struct{ d *Deps }

// Resolve turns content hrefs (or PRNs) into unit ids; any href naming no
// unit fails the whole request, as in Pulp.
func (o contentOrphans) Resolve(ctx context.Context, hrefs []string) ([]string, error) {
	ids := make([]string, 0, len(hrefs))
	var missing []string
	for _, h := range hrefs {
		id, err := coreapi.ContentRef(ctx, o.d.Store, h)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, coreapi.ErrBadReference):
			missing = append(missing, h)
		case err != nil:
			return nil, fmt.Errorf("orphan cleanup: resolve content: %w", err)
		default:
			ids = append(ids, id)
		}
	}
	if len(missing) > 0 {
		return nil, unknownContent(missing)
	}
	return ids, nil
}

// unknownContent lists content references that name no unit; its message
// is the 400 body clients see.
type unknownContent []string

func (u unknownContent) Error() string {
	return "Could not find the following content units: " + strings.Join(u, ", ")
}

// Clean deletes units in no repository version untouched since olderThan
// (only among ids when given).
func (o contentOrphans) Clean(ctx context.Context, olderThan int64, ids []string) (int64, error) {
	return o.d.Store.DeleteOrphanContent(ctx, olderThan, ids)
}
