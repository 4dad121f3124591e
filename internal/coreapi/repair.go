package coreapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// RepairTask is the task name of repair/.
const RepairTask = "pulpcore.app.tasks.repair.repair_all_artifacts"

// Repair is the body of repair_post.
type Repair struct {
	VerifyChecksums *bool `json:"verify_checksums" default:"true" doc:"Will verify that the checksum of all stored files matches what saved in the database. Otherwise only the existence of the files will be checked. Enabled by default"`
}

// ArtifactRepairer restores a missing or damaged artifact file from one of
// the remote sources that know it; content layers provide it.
type ArtifactRepairer interface {
	RepairArtifact(ctx context.Context, a *store.Artifact) error
}

type repairArgs struct {
	VerifyChecksums bool `json:"verify_checksums"`
}

func repairRoutes(d *Deps) []*api.Route {
	return []*api.Route{
		{OperationID: "repair_post", Method: "POST", Path: api.Root + "repair/", Tag: "Repair",
			Summary: "Repair Artifact Storage", Body: &Repair{}, Response: api.AsyncResponse{}, Status: http.StatusAccepted,
			Handle: func(c *api.Ctx) (any, error) {
				b := api.Body[Repair](c)
				args := repairArgs{VerifyChecksums: b.VerifyChecksums == nil || *b.VerifyChecksums}
				t, err := d.Tasks.Dispatch(c, tasking.DispatchRequest{Name: RepairTask, Args: args, LoggingCID: c.CID, CreatedBy: c.User})
				if err != nil {
					return nil, err
				}
				return api.AsyncResponse{Task: TaskHref(t.ID)}, nil
			}},
	}
}

func registerRepairTasks(d *Deps) {
	d.Tasks.Register(RepairTask, func(ctx context.Context, t *tasking.Task) error {
		var args repairArgs
		if err := t.Args(&args); err != nil {
			return err
		}
		return RepairArtifacts(ctx, d, t, "", nil, args.VerifyChecksums)
	})
}

// RepairArtifacts checks artifacts (all, or those matching where/args on
// the artifacts table aliased a) for missing or damaged files and restores
// them through d.Repairer, reporting Pulp's progress codes.
func RepairArtifacts(ctx context.Context, d *Deps, t *tasking.Task, where string, args []any, verify bool) error {
	missing := t.Progress("Identify missing units", "repair.missing", nil)
	corrupted := t.Progress("Identify corrupted units", "repair.corrupted", nil)
	repaired := t.Progress("Repair corrupted units", "repair.repaired", nil)
	var failed int
	after := ""
	for {
		batch, err := d.Store.ArtifactsAfter(ctx, after, where, args, 500)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		after = batch[len(batch)-1].ID
		for _, a := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			state, err := checkArtifact(ctx, d.Storage, a, verify)
			if err != nil {
				return err
			}
			switch state {
			case "ok":
				continue
			case "missing":
				missing.Increment(1)
			case "corrupted":
				corrupted.Increment(1)
			}
			if d.Repairer == nil {
				failed++
				continue
			}
			if err := d.Repairer.RepairArtifact(ctx, a); err != nil {
				t.Logger().Warn("repair: could not restore artifact", "sha256", a.SHA256, "err", err)
				failed++
				continue
			}
			repaired.Increment(1)
		}
	}
	missing.Done()
	corrupted.Done()
	repaired.Done()
	if failed > 0 {
		return fmt.Errorf("%d artifacts are missing or damaged and could not be restored from any remote source", failed)
	}
	return nil
}

// checkArtifact reports "ok", "missing" or "corrupted".
func checkArtifact(ctx context.Context, be storage.Backend, a *store.Artifact, verify bool) (string, error) {
	info, err := be.Stat(ctx, a.File)
	if errors.Is(err, storage.ErrNotExist) {
		return "missing", nil
	}
	if err != nil {
		return "", fmt.Errorf("repair: stat %s: %w", a.File, err)
	}
	if info.Size != a.Size {
		return "corrupted", nil
	}
	if !verify {
		return "ok", nil
	}
	r, err := be.Open(ctx, a.File, 0)
	if err != nil {
		return "", fmt.Errorf("repair: open %s: %w", a.File, err)
	}
	defer r.Close()
	h := digest.NewHasher()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("repair: read %s: %w", a.File, err)
	}
	if h.Sum().SHA256 != a.SHA256 {
		return "corrupted", nil
	}
	return "ok", nil
}
