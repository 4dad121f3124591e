package content

import (
	"cmp"
	"container/list"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
)

// A path index holds, in memory, everything needed to serve the stored
// files of one publication: per path its artifact's digest, size and file
// and the time it was added. With it a request costs no database query,
// whatever the size of the repository (issue 4, point 4); without it, a
// lookup is a few B-tree probes, whose pages a large repository no longer
// keeps in memory.
//
// A publication never changes once complete, so an index never needs
// rebuilding; it is keyed by publication id, and what a distribution
// serves is resolved per content generation (cache.go). What can change
// underneath is handled by falling back to the database: content not
// stored yet (on_demand) is marked and looked up as before, and a file
// that turns out missing (reclaimed, say) is looked up again.
//
// An index is built once per publication in the background, from one
// streaming query; requests do not wait for it. Indexes are bounded by the
// units they hold in total (about 90 bytes a unit); the least recently
// used ones are dropped to make room, and a publication larger than the
// bound is served from the database.

// DefaultIndexUnits bounds the units held by all path indexes together.
const DefaultIndexUnits = 4_000_000

// indexEntry is one path of a publication.
type indexEntry struct {
	check    uint64 // a second hash of the path: two 64-bit hashes must match
	sha256   [32]byte
	size     int64
	added    int64
	file     string // "" when it is storage.ArtifactName of the digest
	metadata bool   // written by the publication, not content
	ask      bool   // not (known to be) stored: look it up in the database
	// content: a unit of a pass-through publication's version, not a
	// published file, so the database lookup need not ask for one.
	content bool
}

// pathIndex is a publication's index, sorted by the first path hash.
type pathIndex struct {
	keys    []uint64
	entries []indexEntry
}

// indexes builds and keeps the path indexes of publications.
type indexes struct {
	seed1, seed2 maphash.Seed
	max          int
	build        func(ctx context.Context, pub *publication, max int) (*pathIndex, error)
	log          func(ctx context.Context, level slog.Level, msg string, args ...any)

	mu    sync.Mutex
	units int // in ready indexes
	order *list.List
	slots map[string]*indexSlot // by publication id
}

type indexSlot struct {
	pubID  string
	idx    *pathIndex // nil while building, or when the build failed
	failed time.Time  // when the last build failed (retried after a while)
	elem   *list.Element
}

// indexRetry is how long after a failed build a publication is served
// from the database before trying again.
const indexRetry = time.Minute

func newIndexes(max int) *indexes {
	return &indexes{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), max: max, order: list.New(), slots: map[string]*indexSlot{}}
}

// get returns the ready index of pub, or nil; if there is none, it starts
// building one.
func (x *indexes) get(pub *publication) *pathIndex {
	if x == nil || x.max <= 0 {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if s := x.slots[pub.id]; s != nil {
		if s.idx != nil {
			x.order.MoveToFront(s.elem)
			return s.idx
		}
		if s.failed.IsZero() || time.Since(s.failed) < indexRetry {
			return nil // building, or failed recently
		}
		s.failed = time.Time{}
		go x.run(pub, s)
		return nil
	}
	s := &indexSlot{pubID: pub.id}
	x.slots[pub.id] = s
	go x.run(pub, s)
	return nil
}

// run builds pub's index into slot s.
func (x *indexes) run(pub *publication, s *indexSlot) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	idx, err := x.build(ctx, pub, x.max)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.slots[pub.id] != s {
		return
	}
	if err != nil {
		s.failed = time.Now()
		level := slog.LevelError
		if errors.Is(err, errIndexTooLarge) {
			level = slog.LevelWarn
		}
		x.log(ctx, level, "content: path index not built; serving the publication from the database", "publication", pub.id, "err", err)
		return
	}
	s.idx = idx
	s.elem = x.order.PushFront(s)
	x.units += len(idx.keys)
	for x.units > x.max && x.order.Len() > 1 {
		old := x.order.Back().Value.(*indexSlot)
		x.order.Remove(old.elem)
		delete(x.slots, old.pubID)
		x.units -= len(old.idx.keys)
	}
	x.log(ctx, slog.LevelInfo, "content: path index built", "publication", pub.id, "units", len(idx.keys), "took", time.Since(start).Round(time.Millisecond))
}

// stats reports the indexes ready, the units they hold, and the builds
// under way.
func (x *indexes) stats() (ready, units, building int) {
	if x == nil {
		return 0, 0, 0
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.slots {
		switch {
		case s.idx != nil:
			ready++
		case s.failed.IsZero():
			building++
		}
	}
	return ready, x.units, building
}

// lookup finds rel in idx.
func (x *indexes) lookup(idx *pathIndex, rel string) *indexEntry {
	k := maphash.String(x.seed1, rel)
	i, found := slices.BinarySearch(idx.keys, k)
	if !found {
		return nil
	}
	c := maphash.String(x.seed2, rel)
	for ; i < len(idx.keys) && idx.keys[i] == k; i++ {
		if idx.entries[i].check == c {
			return &idx.entries[i]
		}
	}
	return nil
}

// errIndexTooLarge stops a build that would exceed the bound.
var errIndexTooLarge = fmt.Errorf("publication has more units than the path index bound")

// buildIndex reads every path pub serves: its published files, then, for
// pass-through publications, its version's content (published files win,
// as in lookup).
func (h *Handler) buildIndex(ctx context.Context, pub *publication, max int) (*pathIndex, error) {
	x := h.indexes
	type row struct {
		key   uint64
		order int
		e     indexEntry
	}
	var rows []row
	add := func(rel string, added int64, metadata, content bool, sha, file sql.NullString, size sql.NullInt64) error {
		if len(rows) >= max {
			return errIndexTooLarge
		}
		e := indexEntry{check: maphash.String(x.seed2, rel), added: added, metadata: metadata, content: content}
		if !sha.Valid || !size.Valid || hex.DecodedLen(len(sha.String)) != 32 {
			e.ask = true
		} else if _, err := hex.Decode(e.sha256[:], []byte(sha.String)); err != nil {
			e.ask = true
		} else {
			e.size = size.Int64
			if file.String != storage.ArtifactName(sha.String) {
				e.file = file.String
			}
		}
		rows = append(rows, row{key: maphash.String(x.seed1, rel), order: len(rows), e: e})
		return nil
	}
	scan := func(content bool, q string, args ...any) error {
		rs, err := h.Store.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var rel string
			var added int64
			var metadata bool
			var sha, file sql.NullString
			var size sql.NullInt64
			if err := rs.Scan(&rel, &added, &metadata, &sha, &size, &file); err != nil {
				return err
			}
			if err := add(rel, added, metadata, content, sha, file, size); err != nil {
				return err
			}
		}
		return rs.Err()
	}
	err := scan(false, `SELECT pa.relative_path, pa.created, pa.artifact_id IS NOT NULL, a.sha256, a.size, a.file
		FROM published_artifacts pa LEFT JOIN content_artifacts ca ON ca.id = pa.content_artifact_id
		LEFT JOIN artifacts a ON a.id = COALESCE(pa.artifact_id, ca.artifact_id) WHERE pa.publication_id = $1`, pub.id)
	if err != nil {
		return nil, fmt.Errorf("index publication %s: %w", pub.id, err)
	}
	if pub.passThrough {
		err := scan(true, `SELECT ca.relative_path, rc.created, FALSE, a.sha256, a.size, a.file
			FROM repository_content rc JOIN content_artifacts ca ON ca.content_id = rc.content_id
			LEFT JOIN artifacts a ON a.id = ca.artifact_id WHERE `+membershipFrom(1), pub.repoID, pub.number)
		if err != nil {
			return nil, fmt.Errorf("index content of publication %s: %w", pub.id, err)
		}
	}
	// Sort by hash; for one path, the first row read wins.
	slices.SortFunc(rows, func(a, b row) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		if c := cmp.Compare(a.e.check, b.e.check); c != 0 {
			return c
		}
		return cmp.Compare(a.order, b.order)
	})
	idx := &pathIndex{keys: make([]uint64, 0, len(rows)), entries: make([]indexEntry, 0, len(rows))}
	for i, r := range rows {
		if i > 0 && r.key == rows[i-1].key && r.e.check == rows[i-1].e.check {
			continue
		}
		idx.keys = append(idx.keys, r.key)
		idx.entries = append(idx.entries, r.e)
	}
	return idx, nil
}

// IndexStats reports the path indexes ready, the units they hold, and the
// builds under way.
func (h *Handler) IndexStats() (ready, units, building int) { return h.indexes.stats() }

// blob is what serving a stored artifact needs.
type blob struct {
	File, SHA256 string
	Size         int64
}

func blobOf(a *store.Artifact) blob { return blob{File: a.File, SHA256: a.SHA256, Size: a.Size} }

func (e *indexEntry) blob() blob {
	sha := hex.EncodeToString(e.sha256[:])
	file := e.file
	if file == "" {
		file = "artifact/" + sha[:2] + "/" + sha[2:] // storage.ArtifactName
	}
	return blob{File: file, SHA256: sha, Size: e.size}
}
