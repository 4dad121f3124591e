package coreapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// OrphanCleanupTask is the task name of orphan cleanup.
const OrphanCleanupTask = "pulpcore.app.tasks.orphan.orphan_cleanup"

// OrphansLock is the resource orphan cleanup holds exclusively.
const OrphansLock = "pdrn:default:orphans"

// OrphansCleanup is the body of orphans_cleanup_cleanup.
type OrphansCleanup struct {
	ContentHrefs         *[]string `json:"content_hrefs" doc:"Will delete specified content and associated Artifacts if they are orphans."`
	OrphanProtectionTime *int      `json:"orphan_protection_time" api:"nullable" min:"0" doc:"The time in minutes for how long Pulp will hold orphan Content and Artifacts before they become candidates for deletion by an orphan cleanup task."`
}

type orphanArgs struct {
	ContentIDs      []string `json:"content_ids,omitempty"`
	HasContentHrefs bool     `json:"has_content_hrefs,omitempty"`
	ProtectionMins  int      `json:"orphan_protection_time"`
}

// ContentOrphans is what orphan cleanup needs from the content layer.
type ContentOrphans interface {
	// Resolve turns content hrefs into content ids, failing on unknown ones.
	Resolve(ctx context.Context, hrefs []string) ([]string, error)
	// Clean deletes content in no repository version, untouched since
	// olderThan (limited to ids when given), returning how many it removed.
	Clean(ctx context.Context, olderThan int64, ids []string) (int64, error)
}

// unknownContent is a content href orphan cleanup cannot resolve (a 400).
type unknownContent string

func (u unknownContent) Error() string { return "Could not find the specified content: " + string(u) }

// storeOrphans is the default ContentOrphans: content units of every type
// live in the content table, so the store can find and delete them.
type storeOrphans struct{ st *store.Store }

func (o storeOrphans) Resolve(ctx context.Context, hrefs []string) ([]string, error) {
	ids := make([]string, 0, len(hrefs))
	for _, h := range hrefs {
		id := contentRefID(h)
		if id == "" {
			return nil, unknownContent(h)
		}
		ids = append(ids, id)
	}
	exist, err := o.st.ExistingContent(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		if !exist[id] {
			return nil, unknownContent(hrefs[i])
		}
	}
	return ids, nil
}

func (o storeOrphans) Clean(ctx context.Context, olderThan int64, ids []string) (int64, error) {
	return o.st.DeleteOrphanContent(ctx, olderThan, ids, 500)
}

// contentOrphans is the content layer's orphan handling, or the store's.
func (d *Deps) contentOrphans() ContentOrphans {
	if d.Content != nil {
		return d.Content
	}
	return storeOrphans{d.Store}
}

func orphanRoutes(d *Deps) []*api.Route {
	return []*api.Route{
		{OperationID: "orphans_cleanup_cleanup", Method: "POST", Path: api.Root + "orphans/cleanup/", Tag: "Orphans: Cleanup",
			Summary: "Trigger an asynchronous orphan cleanup operation.", Body: &OrphansCleanup{},
			Response: api.AsyncResponse{}, Status: http.StatusAccepted, Handle: d.orphanCleanup},
	}
}

func (d *Deps) orphanCleanup(c *api.Ctx) (any, error) {
	b := api.Body[OrphansCleanup](c)
	args := orphanArgs{ProtectionMins: d.OrphanProtectionTime}
	if b.OrphanProtectionTime != nil {
		args.ProtectionMins = *b.OrphanProtectionTime
	}
	if b.ContentHrefs != nil {
		if len(*b.ContentHrefs) == 0 {
			return nil, api.FieldError("content_hrefs", "Must not be [].")
		}
		ids, err := d.contentOrphans().Resolve(c, *b.ContentHrefs)
		var unknown unknownContent
		if errors.As(err, &unknown) {
			return nil, api.FieldError("content_hrefs", err.Error())
		}
		if err != nil {
			return nil, err
		}
		args.ContentIDs, args.HasContentHrefs = ids, true
	}
	t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{
		Name: OrphanCleanupTask, Args: args, Exclusive: []string{OrphansLock}, LoggingCID: c.CID, CreatedBy: c.User,
	})
	if err != nil {
		return nil, err
	}
	return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
}

func registerOrphanTasks(d *Deps) {
	d.Tasks.Register(OrphanCleanupTask, func(ctx context.Context, t *tasking.Task) error {
		var args orphanArgs
		if err := t.Args(&args); err != nil {
			return err
		}
		olderThan := store.Now() - int64(args.ProtectionMins)*int64(time.Minute/time.Microsecond)
		cp := t.Progress("Clean up orphan Content", "clean-up.content", nil)
		var ids []string
		if args.HasContentHrefs {
			ids = append([]string{}, args.ContentIDs...)
		}
		nc, err := d.contentOrphans().Clean(ctx, olderThan, ids)
		cp.Increment(nc)
		if err != nil {
			cp.Fail()
			return err
		}
		cp.Done()
		ap := t.Progress("Clean up orphan Artifacts", "clean-up.artifacts", nil)
		n, err := CleanOrphanArtifacts(ctx, d, olderThan)
		ap.Increment(n)
		if err != nil {
			ap.Fail()
			return err
		}
		ap.Done()
		return nil
	})
}

// CleanOrphanArtifacts deletes artifacts nothing references whose
// timestamp_of_interest is older than olderThan: rows first, then their
// files once the rows are gone, so no visible row ever lacks its file. Files
// in storage without any row (left by a crash) are removed too.
func CleanOrphanArtifacts(ctx context.Context, d *Deps, olderThan int64) (int64, error) {
	var total int64
	for {
		batch, err := d.Store.OrphanArtifacts(ctx, olderThan, 500)
		if err != nil {
			return total, err
		}
		if len(batch) == 0 {
			break
		}
		deleted, err := d.Store.DeleteArtifactsIfOrphan(ctx, batch, olderThan)
		if err != nil {
			return total, err
		}
		for _, a := range deleted {
			if err := d.Storage.Delete(ctx, a.File); err != nil {
				d.Log.Warn("orphan cleanup: delete file", "file", a.File, "err", err)
			}
		}
		total += int64(len(deleted))
		if len(deleted) < len(batch) {
			// Some became referenced meanwhile; they are not orphans now.
			if len(deleted) == 0 {
				break
			}
		}
	}
	if w, ok := d.Storage.(storage.Walker); ok {
		cutoff := store.Time(olderThan)
		var stray []string
		err := w.Walk(ctx, "artifact/", func(name string, info storage.Info) error {
			if info.ModTime.After(cutoff) {
				return nil
			}
			stray = append(stray, name)
			if len(stray) >= 500 {
				if err := d.removeStray(ctx, stray); err != nil {
					return err
				}
				stray = stray[:0]
			}
			return nil
		})
		if err == nil {
			err = d.removeStray(ctx, stray)
		}
		if err != nil {
			return total, fmt.Errorf("orphan cleanup: sweep storage: %w", err)
		}
	}
	return total, nil
}

// removeStray deletes the named files that no artifact row points at.
func (d *Deps) removeStray(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	known, err := d.Store.ArtifactFilesExist(ctx, names)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !known[n] {
			if err := d.Storage.Delete(ctx, n); err != nil {
				d.Log.Warn("orphan cleanup: delete stray file", "file", n, "err", err)
			}
		}
	}
	return nil
}
