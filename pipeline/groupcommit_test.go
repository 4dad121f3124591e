package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
	"github.com/pith-project/pith/pipeline"
)

// groupStorage wraps fs storage and watches its group commits. check, if
// set, runs before each group is committed; hold, if set, blocks it.
type groupStorage struct {
	*fs.Backend
	mu     sync.Mutex
	groups []int
	check  func(ctx context.Context, ws []storage.Writer) error
	hold   chan struct{}
}

func (g *groupStorage) CommitStaged(ctx context.Context, ws []storage.Writer) ([]storage.Committed, error) {
	g.mu.Lock()
	g.groups = append(g.groups, len(ws))
	g.mu.Unlock()
	if g.check != nil {
		if err := g.check(ctx, ws); err != nil {
			for _, w := range ws {
				w.Cancel(ctx)
			}
			return nil, err
		}
	}
	if g.hold != nil {
		select {
		case <-g.hold:
		case <-ctx.Done():
		}
	}
	return g.Backend.CommitStaged(ctx, ws)
}

func (g *groupStorage) committed() (groups, writes int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, n := range g.groups {
		writes += n
	}
	return len(g.groups), writes
}

// artifactFiles lists the committed artifact files in storage.
func artifactFiles(t *testing.T, e *env) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(e.dir, "artifact"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Downloads are committed to storage in groups, and no artifact is
// recorded before its group is committed: when a group commits, none of
// its artifacts has a row yet.
func TestDownloadsCommitInGroupsBeforeTheirRows(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 60 {
			units = append(units, e.up.add(fmt.Sprintf("g/f%d", i), body(i)))
		}
		gs := &groupStorage{Backend: e.storage}
		gs.check = func(ctx context.Context, ws []storage.Writer) error {
			for _, w := range ws {
				sum := w.Digests().SHA256
				var n int
				if err := s.QueryRow(ctx, `SELECT COUNT(*) FROM artifacts WHERE sha256 = $1`, sum).Scan(&n); err != nil {
					return err
				}
				if n != 0 {
					return fmt.Errorf("artifact %s recorded before its commit", sum)
				}
			}
			return nil
		}
		d := e.deps(dummyVersion{}, false)
		d.Storage = gs
		if err := pipeline.NewDeclarativeVersion(d).Run(t.Context(), e.declare(units, false)); err != nil {
			t.Fatal(err)
		}
		groups, writes := gs.committed()
		if writes != 60 || groups == 0 {
			t.Fatalf("%d writes committed in %d groups, want 60", writes, groups)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts`); got != 60 {
			t.Fatalf("artifacts = %d, want 60", got)
		}
		rows, err := s.Query(t.Context(), `SELECT file, sha256 FROM artifacts`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var file, sum string
			if err := rows.Scan(&file, &sum); err != nil {
				t.Fatal(err)
			}
			if got := sha256Hex(e.storedBytes(t, file)); got != sum {
				t.Errorf("%s holds bytes of sha256 %s, want %s", file, got, sum)
			}
		}
		if tmp := e.tempFiles(t); len(tmp) != 0 {
			t.Errorf("temp files left: %v", tmp)
		}
	})
}

// A failed group commit fails the sync, records nothing and leaves no
// temp file.
func TestGroupCommitFailureFailsSync(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 30 {
			units = append(units, e.up.add(fmt.Sprintf("f/f%d", i), body(i)))
		}
		boom := errors.New("disk on fire")
		gs := &groupStorage{Backend: e.storage, check: func(context.Context, []storage.Writer) error { return boom }}
		d := e.deps(dummyVersion{}, false)
		d.Storage = gs
		err := pipeline.NewDeclarativeVersion(d).Run(t.Context(), e.declare(units, false))
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want %v", err, boom)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts`); got != 0 {
			t.Errorf("artifacts = %d after a failed commit", got)
		}
		if files := artifactFiles(t, e); len(files) != 0 {
			t.Errorf("artifact files after a failed commit: %v", files)
		}
		if tmp := e.tempFiles(t); len(tmp) != 0 {
			t.Errorf("temp files left: %v", tmp)
		}
	})
}

// Canceling a sync while downloaded artifacts wait for their group commit
// discards them: no temp file, no artifact file, no row.
func TestCancelWhileStagedDiscards(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 40 {
			units = append(units, e.up.add(fmt.Sprintf("c/f%d", i), body(i)))
		}
		gs := &groupStorage{Backend: e.storage, hold: make(chan struct{})}
		created := make(chan struct{}, 100)
		d := e.deps(dummyVersion{}, false)
		d.Storage = &namingGroupStorage{gs, created}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- pipeline.NewDeclarativeVersion(d).Run(ctx, e.declare(units, false)) }()
		// Wait until a group is held with its writes staged and others
		// have been created.
		for range 20 {
			<-created
		}
		for {
			if groups, _ := gs.committed(); groups > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if len(e.tempFiles(t)) == 0 {
			t.Fatal("no staged write to discard")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not stop")
		}
		if tmp := e.tempFiles(t); len(tmp) != 0 {
			t.Errorf("temp files left after cancellation: %v", tmp)
		}
		if files := artifactFiles(t, e); len(files) != 0 {
			t.Errorf("artifact files after cancellation: %v", files)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts`); got != 0 {
			t.Errorf("artifacts = %d after cancellation", got)
		}
	})
}

// namingGroupStorage names every temp file (as a tailing reader would) so
// that tests see them in tmp/, and tells when a write starts.
type namingGroupStorage struct {
	*groupStorage
	created chan<- struct{}
}

func (n *namingGroupStorage) Create(ctx context.Context) (storage.Writer, error) {
	w, err := n.groupStorage.Create(ctx)
	if err == nil {
		w.(storage.TempPather).TempPath()
	}
	select {
	case n.created <- struct{}{}:
	default:
	}
	return w, err
}

// plainCreator is storage without group commit: each download commits on
// its own.
type plainCreator struct{ c storage.Creator }

func (p plainCreator) Create(ctx context.Context) (storage.Writer, error) { return p.c.Create(ctx) }

func TestStorageWithoutGroupCommit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newEnv(t, s)
		var units []fileUnit
		for i := range 20 {
			units = append(units, e.up.add(fmt.Sprintf("p/f%d", i), body(i)))
		}
		d := e.deps(dummyVersion{}, false)
		d.Storage = plainCreator{e.storage}
		if err := pipeline.NewDeclarativeVersion(d).Run(t.Context(), e.declare(units, false)); err != nil {
			t.Fatal(err)
		}
		if got := count(t, s, `SELECT COUNT(*) FROM artifacts`); got != 20 {
			t.Fatalf("artifacts = %d, want 20", got)
		}
		if files := artifactFiles(t, e); len(files) != 20 {
			t.Fatalf("%d artifact files, want 20", len(files))
		}
	})
}
