package file

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
)

// PullThrough records what file distributions with a remote fetched: a
// file unit per path, the remote artifact it came from (so the next
// request finds it by URL), and, for a distribution with a repository,
// new repository versions holding the units, batched so that a burst of
// requests makes a few versions rather than one per file.
type PullThrough struct {
	d *Deps
	// Batch and Delay bound a batch: it is added when it holds Batch
	// units or Delay after its first unit, whichever comes first.
	Batch int
	Delay time.Duration

	mu      sync.Mutex
	pending map[string][]string // repository id → content ids
	timer   *time.Timer
}

// NewPullThrough returns the file plugin's pull-through recorder.
func NewPullThrough(d *Deps) *PullThrough {
	return &PullThrough{d: d, Batch: 500, Delay: 5 * time.Second, pending: map[string][]string{}}
}

// URL is where a file remote serves relPath: next to its manifest.
func (p *PullThrough) URL(remote *store.Remote, relPath string) (string, error) {
	if err := ValidatePath(relPath); err != nil {
		return "", err
	}
	return ArtifactURL(remote.URL, relPath)
}

// Stored records a fetched artifact as the file unit at relPath.
func (p *PullThrough) Stored(ctx context.Context, repositoryID string, remote *store.Remote, url, relPath string, a *store.Artifact) error {
	id, _, err := p.d.makeFileContent(ctx, &contentArgs{RelativePath: relPath, ArtifactID: a.ID})
	if err != nil {
		return fmt.Errorf("file: pull-through unit %s: %w", relPath, err)
	}
	if err := p.d.Store.SaveRemoteArtifacts(ctx, []store.NewRemoteArtifact{{ContentID: id, RelativePath: relPath,
		RemoteID: remote.ID, URL: url, Size: a.Size, SHA256: a.SHA256}}); err != nil {
		return fmt.Errorf("file: pull-through remote artifact %s: %w", relPath, err)
	}
	if repositoryID != "" {
		p.queue(repositoryID, id)
	}
	return nil
}

func (p *PullThrough) queue(repoID, contentID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[repoID] = append(p.pending[repoID], contentID)
	if len(p.pending[repoID]) >= p.Batch {
		ids := p.pending[repoID]
		delete(p.pending, repoID)
		go p.add(repoID, ids)
		return
	}
	if p.timer == nil {
		p.timer = time.AfterFunc(p.Delay, p.Flush)
	}
}

// Flush adds every pending batch now.
func (p *PullThrough) Flush() {
	p.mu.Lock()
	batches := p.pending
	p.pending = map[string][]string{}
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	for repoID, ids := range batches {
		p.add(repoID, ids)
	}
}

// add dispatches a modify task: the same task, lock and autopublish as
// POST modify/ with overwrite.
func (p *PullThrough) add(repoID string, ids []string) {
	ctx := context.Background()
	_, err := p.d.Tasks.Dispatch(ctx, tasking.DispatchRequest{Name: ModifyTask,
		Args:      modifyArgs{RepoID: repoID, Add: dedupe(ids), Overwrite: true},
		Exclusive: []string{RepoPRN(repoID)}})
	if err != nil {
		p.d.Log.Error("file: add pull-through content to repository", "repository", repoID, "units", len(ids), "err", err)
	}
}
