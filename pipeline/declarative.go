package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
)

// Names of the generic stages built by NewDeclarativeVersion, in order.
const (
	StageQueryArtifacts     = "query_existing_artifacts"
	StageDownload           = "download_artifacts"
	StageSaveArtifacts      = "save_artifacts"
	StageQueryContent       = "query_existing_content"
	StageSaveContent        = "save_content"
	StageSaveRemoteArtifact = "save_remote_artifacts"
	StageAssociate          = "associate_content"
)

// Defaults for Deps.
const (
	DefaultConcurrency = 20
	DefaultBatchSize   = 500
	DefaultBatchWait   = 100 * time.Millisecond
)

// Progress is a task progress report.
type Progress interface {
	Increment(n int64)
	Done()
	Fail()
}

// Version is the repository version being built; the association stage adds
// the units it sees to it. *repository.Version implements it.
type Version interface {
	// Add puts units into the version (idempotent; units removed earlier
	// in this version come back).
	Add(ctx context.Context, contentIDs []string) error
	// RemoveAll marks every unit of the version's base removed.
	RemoveAll(ctx context.Context) error
}

// Deps are what the generic stages work with.
type Deps struct {
	Store   *store.Store
	Storage storage.Creator
	// Downloaders returns the downloader of a remote. It should return the
	// same one for every call with one remote, so that the remote's
	// concurrency and rate limits hold across the whole sync.
	Downloaders func(remoteID string) (*download.Downloader, error)
	// SaveDetail writes the plugin's detail rows for units created in this
	// transaction; ids[i] is the new content id of units[i]. It may be nil.
	SaveDetail func(ctx context.Context, tx *store.Tx, units []Unit, ids []string) error
	// DetailTables names the plugin's tables that grow with its units
	// (SaveDetail's), whose planner statistics a big sync refreshes along
	// with the core tables'.
	DetailTables []string
	// Version receives the units; nil leaves out the association stage.
	Version Version
	// Mirror makes the version hold exactly the units of the stream:
	// whatever the base version had that the stream lacks is removed.
	Mirror bool
	// Progress creates a progress report; nil reports nothing.
	Progress func(message, code string) Progress
	// Concurrency bounds the downloads in flight across all remotes (each
	// remote's downloader limits its own too); ≤0 means 20.
	Concurrency int
	// BatchSize and BatchWait shape the database batches: at most
	// BatchSize units, handed on after BatchWait without new arrivals.
	// ≤0 means 500 and 100 ms.
	BatchSize int
	BatchWait time.Duration
}

// NewDeclarativeVersion returns the generic pipeline that turns declarative
// content into saved artifacts, content, remote artifacts and a repository
// version: query existing artifacts, download, save artifacts, query
// existing content, save content, save remote artifacts, associate. The
// plugin may edit its Stages before running it with its first stage.
func NewDeclarativeVersion(d Deps) *Pipeline {
	dv := &declarative{Deps: d, downloaders: map[string]*download.Downloader{}}
	if dv.Concurrency <= 0 {
		dv.Concurrency = DefaultConcurrency
	}
	if dv.BatchSize <= 0 {
		dv.BatchSize = DefaultBatchSize
	}
	if dv.BatchWait <= 0 {
		dv.BatchWait = DefaultBatchWait
	}
	p := &Pipeline{Stages: []Stage{
		{StageQueryArtifacts, dv.queryArtifacts},
		{StageDownload, dv.download},
		{StageSaveArtifacts, dv.saveArtifacts},
		{StageQueryContent, dv.queryContent},
		{StageSaveContent, dv.saveContent},
		{StageSaveRemoteArtifact, dv.saveRemoteArtifacts},
	}}
	if d.Version != nil {
		p.Stages = append(p.Stages, Stage{StageAssociate, dv.associate})
	}
	return p
}

type declarative struct {
	Deps
	mu          sync.Mutex
	downloaders map[string]*download.Downloader
}

// artifactInfo is what the stages learn about an artifact's stored bytes.
type artifactInfo struct {
	rec *store.Artifact // ID "" until saved
	// staged is the write of a downloaded artifact until its group
	// commit; nil once committed.
	staged storage.Writer
}

type noProgress struct{}

func (noProgress) Increment(int64) {}
func (noProgress) Done()           {}
func (noProgress) Fail()           {}

func (dv *declarative) progress(message, code string) Progress {
	if dv.Progress == nil {
		return noProgress{}
	}
	if p := dv.Progress(message, code); p != nil {
		return p
	}
	return noProgress{}
}

// finish ends a progress report according to a stage's result.
func finish(p Progress, err error) error {
	if err != nil {
		p.Fail()
	} else {
		p.Done()
	}
	return err
}

func (dv *declarative) batches(ctx context.Context, in <-chan *DeclarativeContent) <-chan []*DeclarativeContent {
	return Batches(ctx, in, dv.BatchSize, dv.BatchWait)
}

func sendAll(ctx context.Context, out chan<- *DeclarativeContent, batch []*DeclarativeContent) error {
	for _, d := range batch {
		if err := Send(ctx, out, d); err != nil {
			return err
		}
	}
	return nil
}

func sha256Of(a *DeclarativeArtifact) string {
	return strings.ToLower(a.Digests[digest.SHA256])
}

// queryArtifacts swaps in stored artifacts, found by sha256, so they are
// neither downloaded again nor left deferred.
func (dv *declarative) queryArtifacts(ctx context.Context, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) error {
	for batch := range dv.batches(ctx, in) {
		var sums []string
		for _, d := range batch {
			for _, a := range d.Artifacts {
				if a.ArtifactID == "" && sha256Of(a) != "" {
					sums = append(sums, sha256Of(a))
				}
			}
		}
		if len(sums) > 0 {
			found, err := dv.Store.ArtifactsBySHA256(ctx, sums)
			if err != nil {
				return err
			}
			for _, d := range batch {
				for _, a := range d.Artifacts {
					if rec := found[sha256Of(a)]; a.ArtifactID == "" && rec != nil {
						a.ArtifactID, a.found = rec.ID, &artifactInfo{rec: rec}
					}
				}
			}
		}
		if err := sendAll(ctx, out, batch); err != nil {
			return err
		}
	}
	return stopped(ctx)
}

func needsDownload(a *DeclarativeArtifact) bool {
	return a.ArtifactID == "" && a.found == nil && !a.Deferred
}

// download fetches the artifacts that are neither stored nor deferred, up
// to Concurrency content units at a time, streaming each into storage.
// Units come out in the order their downloads finish, their artifacts
// durable and visible in storage.
//
// Where storage can stage writes and commit them together (fs does), the
// downloads only stage theirs, and one committer commits whatever has
// been staged meanwhile as a group: the fsyncs that dominate small
// artifacts are shared by the group instead of paid per file, and no
// download waits for them.
func (dv *declarative) download(ctx context.Context, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) (err error) {
	prog := dv.progress("Downloading Artifacts", "sync.downloading.artifacts")
	defer func() { err = finish(prog, err) }()
	g, gctx := errgroup.WithContext(ctx)
	gc, _ := dv.Storage.(groupCommitter)
	next := out // where downloaded units go
	var staged chan *DeclarativeContent
	if gc != nil {
		staged = make(chan *DeclarativeContent, maxCommitGroup)
		next = staged
		g.Go(func() error { return commitGroups(gctx, gc, staged, out) })
	}
	var workers sync.WaitGroup
	slots := make(chan struct{}, dv.Concurrency)
	func() {
		for d := range Items(gctx, in) {
			var todo []*DeclarativeArtifact
			for _, a := range d.Artifacts {
				if needsDownload(a) {
					todo = append(todo, a)
				}
			}
			if len(todo) == 0 {
				if Send(gctx, out, d) != nil {
					return
				}
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-gctx.Done():
				return
			}
			workers.Add(1)
			g.Go(func() (err error) {
				defer func() { <-slots }()
				defer workers.Done()
				defer func() {
					if err != nil {
						cancelStaged(ctx, d)
					}
				}()
				for _, a := range todo {
					if err := dv.fetch(gctx, a, gc != nil); err != nil {
						return err
					}
					prog.Increment(1)
				}
				return Send(gctx, next, d)
			})
		}
	}()
	workers.Wait()
	if staged != nil {
		close(staged)
	}
	err = g.Wait()
	if staged != nil {
		// Staged and never committed (the pipeline stopped): discard.
		for d := range staged {
			cancelStaged(ctx, d)
		}
	}
	if err != nil {
		return err
	}
	return stopped(ctx)
}

// maxCommitGroup bounds a commit group, and so the staged writes (each an
// open file) waiting for one.
const maxCommitGroup = 256

// stager is a storage writer that can verify a write and end it without
// committing it, for a later group commit.
type stager interface {
	Stage(ctx context.Context, expect digest.Expect) (storage.Committed, error)
}

// groupCommitter is storage that commits staged writes together, with one
// round of syncs for the group (fs.Backend).
type groupCommitter interface {
	CommitStaged(ctx context.Context, ws []storage.Writer) ([]storage.Committed, error)
}

// commitWindow is how long a commit group stays open after its first
// unit. Every group costs two rounds of syncs, which also slow down the
// file creations running meanwhile (ours and other processes'), so fewer,
// larger groups are cheaper; 50 ms is nothing next to a download.
const commitWindow = 50 * time.Millisecond

// commitGroups commits the staged artifacts of the units arriving on in
// and passes the units on. A group is what arrives within commitWindow of
// its first unit (and while the previous group committed), up to
// maxCommitGroup units; the end of the input closes it at once.
func commitGroups(ctx context.Context, gc groupCommitter, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) error {
	var group []*DeclarativeContent
	defer func() {
		for _, d := range group {
			cancelStaged(ctx, d)
		}
	}()
	for {
		group = group[:0]
		select {
		case d, ok := <-in:
			if !ok {
				return nil
			}
			group = append(group, d)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		window := time.NewTimer(commitWindow)
	more:
		for len(group) < maxCommitGroup {
			select {
			case d, ok := <-in:
				if !ok {
					break more
				}
				group = append(group, d)
			case <-window.C:
				break more
			case <-ctx.Done():
				window.Stop()
				return context.Cause(ctx)
			}
		}
		window.Stop()
		var (
			ws   []storage.Writer
			arts []*DeclarativeArtifact
		)
		for _, d := range group {
			for _, a := range d.Artifacts {
				if a.found != nil && a.found.staged != nil {
					ws = append(ws, a.found.staged)
					arts = append(arts, a)
				}
			}
		}
		cs, err := gc.CommitStaged(ctx, ws)
		for _, a := range arts {
			a.found.staged = nil // committed or discarded either way
		}
		if err != nil {
			return fmt.Errorf("commit downloaded artifacts: %w", err)
		}
		for i, a := range arts {
			a.found.rec = artifactRecord(cs[i])
		}
		for len(group) > 0 {
			if err := Send(ctx, out, group[0]); err != nil {
				return err
			}
			group = group[1:]
		}
	}
}

// cancelStaged discards the staged, uncommitted writes of a unit.
func cancelStaged(ctx context.Context, d *DeclarativeContent) {
	for _, a := range d.Artifacts {
		if a.found != nil && a.found.staged != nil {
			_ = a.found.staged.Cancel(context.WithoutCancel(ctx))
			a.found = nil
		}
	}
}

func (dv *declarative) downloader(remoteID string) (*download.Downloader, error) {
	dv.mu.Lock()
	defer dv.mu.Unlock()
	if dl, ok := dv.downloaders[remoteID]; ok {
		return dl, nil
	}
	if dv.Downloaders == nil {
		return nil, fmt.Errorf("no downloader for remote %q", remoteID)
	}
	dl, err := dv.Downloaders(remoteID)
	if err != nil {
		return nil, err
	}
	dv.downloaders[remoteID] = dl
	return dl, nil
}

// fetch downloads one artifact into a storage writer (the downloader
// verifies size and digests while writing, and retries), then commits it,
// or with stage only stages it when the writer can (see download).
// A failed or canceled download leaves no temporary file: the downloader
// cancels the writer of every failed attempt, and Commit and Stage discard
// on error.
func (dv *declarative) fetch(ctx context.Context, a *DeclarativeArtifact, stage bool) error {
	dl, err := dv.downloader(a.RemoteID)
	if err != nil {
		return fmt.Errorf("download %s: %w", redact(a.URL), err)
	}
	expect := digest.Expect{Size: a.Size, Digests: a.Digests}
	if expect.Size < 0 {
		expect.Size = digest.UnknownSize
	}
	res, err := dl.Download(ctx, a.URL, expect, func() (download.Dest, error) {
		return dv.Storage.Create(ctx)
	})
	if err != nil {
		return err // names the URL already
	}
	w, ok := res.Dest.(storage.Writer)
	if !ok {
		_ = res.Dest.Cancel(context.WithoutCancel(ctx))
		return fmt.Errorf("download %s: destination is not a storage writer", redact(a.URL))
	}
	if st, ok := w.(stager); ok && stage {
		c, err := st.Stage(ctx, expect)
		if err != nil {
			return fmt.Errorf("download %s: %w", redact(a.URL), err)
		}
		a.found = &artifactInfo{rec: artifactRecord(c), staged: w}
		return nil
	}
	c, err := w.Commit(ctx, expect)
	if err != nil {
		return fmt.Errorf("download %s: %w", redact(a.URL), err)
	}
	a.found = &artifactInfo{rec: artifactRecord(c)}
	return nil
}

func artifactRecord(c storage.Committed) *store.Artifact {
	return &store.Artifact{
		File: c.Name, Size: c.Size,
		SHA224: c.Digests.SHA224, SHA256: c.Digests.SHA256, SHA384: c.Digests.SHA384, SHA512: c.Digests.SHA512,
	}
}

// redact drops userinfo from a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// saveArtifacts records the downloaded artifacts in batches.
func (dv *declarative) saveArtifacts(ctx context.Context, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) error {
	for batch := range dv.batches(ctx, in) {
		var (
			recs []*store.Artifact
			arts []*DeclarativeArtifact
		)
		for _, d := range batch {
			for _, a := range d.Artifacts {
				if a.ArtifactID == "" && a.found != nil {
					recs = append(recs, a.found.rec)
					arts = append(arts, a)
				}
			}
		}
		if len(recs) > 0 {
			saved, err := dv.Store.InsertArtifacts(ctx, recs)
			if err != nil {
				return err
			}
			for i, a := range arts {
				a.ArtifactID, a.found.rec = saved[i].ID, saved[i]
			}
		}
		if err := sendAll(ctx, out, batch); err != nil {
			return err
		}
	}
	return stopped(ctx)
}

// byType groups the units of a batch by content type, keeping order.
func byType(batch []*DeclarativeContent, keep func(*DeclarativeContent) bool) (types []string, groups map[string][]*DeclarativeContent) {
	groups = map[string][]*DeclarativeContent{}
	for _, d := range batch {
		if !keep(d) {
			continue
		}
		t := d.Unit.Type()
		if groups[t] == nil {
			types = append(types, t)
		}
		groups[t] = append(groups[t], d)
	}
	return types, groups
}

func checkUnits(batch []*DeclarativeContent) error {
	for _, d := range batch {
		if d == nil || d.Unit == nil {
			return fmt.Errorf("declarative content without a unit")
		}
	}
	return nil
}

// queryContent swaps in stored units, found by natural key.
func (dv *declarative) queryContent(ctx context.Context, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) error {
	for batch := range dv.batches(ctx, in) {
		if err := checkUnits(batch); err != nil {
			return err
		}
		types, groups := byType(batch, func(d *DeclarativeContent) bool { return d.ContentID == "" })
		for _, t := range types {
			g := groups[t]
			keys := make([]string, len(g))
			for i, d := range g {
				keys[i] = d.Unit.NaturalKey()
			}
			found, err := dv.Store.FindContent(ctx, t, keys)
			if err != nil {
				return err
			}
			for _, d := range g {
				if f, ok := found[d.Unit.NaturalKey()]; ok {
					d.ContentID, d.found, d.deferred = f.ID, true, f.Deferred
				}
			}
		}
		if err := sendAll(ctx, out, batch); err != nil {
			return err
		}
	}
	return stopped(ctx)
}

// saveContent saves new units with their detail rows and content artifacts
// in one transaction per batch and type, and attaches newly stored
// artifacts to existing units that lack them (on_demand content synced
// immediate). Units found stored with all their artifacts are skipped, so
// a re-sync of unchanged content writes nothing here.
func (dv *declarative) saveContent(ctx context.Context, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) error {
	for batch := range dv.batches(ctx, in) {
		if err := checkUnits(batch); err != nil {
			return err
		}
		types, groups := byType(batch, func(d *DeclarativeContent) bool {
			if d.ContentID == "" {
				return true
			}
			if d.found && d.deferred == 0 {
				// Stored with all its artifacts: nothing to write.
				return false
			}
			for _, a := range d.Artifacts {
				if a.ArtifactID != "" {
					return true // may need attaching
				}
			}
			return false
		})
		for _, t := range types {
			g := groups[t]
			units := make([]store.NewContent, len(g))
			for i, d := range g {
				// queryContent looked for it moments ago.
				nc := store.NewContent{NaturalKey: d.Unit.NaturalKey(), RepoKey: d.Unit.RepoKey(), Unseen: d.ContentID == ""}
				for _, a := range d.Artifacts {
					nc.Artifacts = append(nc.Artifacts, store.NewContentArtifact{RelativePath: a.RelativePath, ArtifactID: a.ArtifactID})
				}
				units[i] = nc
			}
			var detail func(tx *store.Tx, idx []int, ids []string) error
			if dv.SaveDetail != nil {
				detail = func(tx *store.Tx, idx []int, ids []string) error {
					us := make([]Unit, len(idx))
					for j, i := range idx {
						us[j] = g[i].Unit
					}
					return dv.SaveDetail(ctx, tx, us, ids)
				}
			}
			saved, err := dv.Store.SaveUnits(ctx, t, units, detail)
			if err != nil {
				return err
			}
			for i, d := range g {
				d.ContentID = saved[i].ID
				for j, caID := range saved[i].ContentArtifactIDs {
					d.Artifacts[j].newCA = caID
				}
			}
		}
		if err := sendAll(ctx, out, batch); err != nil {
			return err
		}
	}
	return stopped(ctx)
}

// saveRemoteArtifacts records where each artifact can be fetched from its
// remote, so deferred content can be downloaded later and repaired.
func (dv *declarative) saveRemoteArtifacts(ctx context.Context, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) error {
	for batch := range dv.batches(ctx, in) {
		var ras []store.NewRemoteArtifact
		for _, d := range batch {
			if d.ContentID == "" {
				return fmt.Errorf("unit %s reached %s unsaved", d.Unit.NaturalKey(), StageSaveRemoteArtifact)
			}
			for _, a := range d.Artifacts {
				if a.RemoteID == "" || a.URL == "" {
					continue
				}
				ra := store.NewRemoteArtifact{ContentID: d.ContentID, RelativePath: a.RelativePath, NewContentArtifactID: a.newCA,
					RemoteID: a.RemoteID, URL: a.URL, Size: a.Size,
					SHA224: a.Digests[digest.SHA224], SHA256: a.Digests[digest.SHA256], SHA384: a.Digests[digest.SHA384], SHA512: a.Digests[digest.SHA512]}
				if a.found != nil {
					// The bytes are known: record every digest.
					r := a.found.rec
					ra.Size, ra.SHA224, ra.SHA256, ra.SHA384, ra.SHA512 = r.Size, r.SHA224, r.SHA256, r.SHA384, r.SHA512
				}
				ra.SHA224, ra.SHA256 = strings.ToLower(ra.SHA224), strings.ToLower(ra.SHA256)
				ra.SHA384, ra.SHA512 = strings.ToLower(ra.SHA384), strings.ToLower(ra.SHA512)
				ras = append(ras, ra)
			}
		}
		if err := dv.Store.SaveRemoteArtifacts(ctx, ras); err != nil {
			return err
		}
		if err := sendAll(ctx, out, batch); err != nil {
			return err
		}
	}
	return stopped(ctx)
}

// A big sync refreshes the database's planner statistics once analyzeFirst
// units went through, and again each time their number has grown by
// analyzeGrowth, so the later batches and the version's finalization are
// planned for the tables' real size.
const (
	analyzeFirst  = 10000
	analyzeGrowth = 4
)

func (dv *declarative) analyze(ctx context.Context) {
	if err := dv.Store.AnalyzeSyncTables(ctx, dv.DetailTables...); err != nil && ctx.Err() == nil {
		slog.WarnContext(ctx, "sync: refreshing planner statistics failed", "error", err)
	}
}

// associate adds the units to the new version. In mirror mode it first
// marks everything removed; the version brings back what is re-added, so
// what remains removed is exactly what the stream did not contain.
func (dv *declarative) associate(ctx context.Context, in <-chan *DeclarativeContent, out chan<- *DeclarativeContent) (err error) {
	prog := dv.progress("Associating Content", "associating.content")
	defer func() { err = finish(prog, err) }()
	removed := false
	removeAll := func() error {
		if removed || !dv.Mirror {
			return nil
		}
		removed = true
		p := dv.progress("Un-Associating Content", "unassociating.content")
		return finish(p, dv.Version.RemoveAll(ctx))
	}
	total, analyzeAt := 0, analyzeFirst
	for batch := range dv.batches(ctx, in) {
		ids := make([]string, 0, len(batch))
		for _, d := range batch {
			if d.ContentID == "" {
				return fmt.Errorf("unit %s reached %s unsaved", d.Unit.NaturalKey(), StageAssociate)
			}
			ids = append(ids, d.ContentID)
		}
		if err := removeAll(); err != nil {
			return err
		}
		if err := dv.Version.Add(ctx, ids); err != nil {
			return err
		}
		prog.Increment(int64(len(ids)))
		if total += len(ids); total >= analyzeAt {
			analyzeAt = total * analyzeGrowth
			dv.analyze(ctx)
		}
		if err := sendAll(ctx, out, batch); err != nil {
			return err
		}
	}
	if err := stopped(ctx); err != nil {
		return err
	}
	// An empty stream still mirrors: the version ends up empty.
	return removeAll()
}
