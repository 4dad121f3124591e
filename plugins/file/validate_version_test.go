package file

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
)

// vvUnits saves on_demand file units at paths in one batch and returns
// their ids.
func vvUnits(t *testing.T, e *testEnv, paths []string) []string {
	t.Helper()
	ctx := context.Background()
	units := make([]Unit, len(paths))
	nc := make([]store.NewContent, len(paths))
	for i, p := range paths {
		units[i] = Unit{RelativePath: p, Digest: pdSHA(p)}
		nc[i] = store.NewContent{NaturalKey: units[i].NaturalKey(), RepoKey: units[i].RepoKey(), Artifacts: []store.NewContentArtifact{{RelativePath: p}}}
	}
	ids, err := e.Store.SaveContent(ctx, Type, nc, func(tx *store.Tx, idx []int, newIDs []string) error {
		us := make([]Unit, len(idx))
		for j, i := range idx {
			us[j] = units[i]
		}
		return SaveDetail(ctx, tx, us, newIDs)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// vvFinalize adds ids to a new version of repo and finalizes it with the
// file plugin's validation.
func vvFinalize(t *testing.T, e *testEnv, repo *repository.Repo, ids []string) error {
	t.Helper()
	ctx := context.Background()
	v, err := repository.NewVersion(ctx, e.Store, repo.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Add(ctx, ids); err != nil {
		t.Fatal(err)
	}
	_, err = v.Finalize(ctx, validateVersion)
	if err != nil {
		v.Discard(ctx)
	}
	return err
}

// The overlap check pages through the new units; an overlap is found
// whichever page its two paths land on, and many paths without one pass.
func TestValidateVersionPages(t *testing.T) {
	pdEach(t, func(t *testing.T, e *testEnv) {
		var paths []string
		for i := range 1200 { // more than two pages of 500
			paths = append(paths, fmt.Sprintf("d%02d/f%04d", i%7, i))
		}
		repo := pdRepo(t, e)
		if err := vvFinalize(t, e, repo, vvUnits(t, e, paths)); err != nil {
			t.Fatalf("paths without overlaps refused: %v", err)
		}

		// A file named like a directory of the first batch, added among
		// many other new files: found against the existing version.
		more := []string{"d03"}
		for i := range 1100 {
			more = append(more, fmt.Sprintf("e/f%04d", i))
		}
		err := vvFinalize(t, e, repo, vvUnits(t, e, more))
		if err == nil || !strings.Contains(err.Error(), `"d03"`) {
			t.Fatalf("file over an existing directory: err = %v", err)
		}

		// Both ends of an overlap new in one version, far apart in the
		// stream.
		repo2 := pdRepo(t, e)
		var fresh []string
		fresh = append(fresh, "x/y/z")
		for i := range 1100 {
			fresh = append(fresh, fmt.Sprintf("g/f%04d", i))
		}
		fresh = append(fresh, "x/y")
		err = vvFinalize(t, e, repo2, vvUnits(t, e, fresh))
		if err == nil || !strings.Contains(err.Error(), `"x/y"`) {
			t.Fatalf("overlap within one version: err = %v", err)
		}
	})
}
