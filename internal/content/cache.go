package content

import (
	"container/list"
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/pith-project/pith/internal/store"
)

// What the content app reads on every request is cached in memory, so a
// request for a stored file costs no database query:
//
//   - a snapshot of all distributions and of what each serves (its
//     publication, and the publications it still serves for the retention
//     period), valid for one content generation: the store bumps the
//     generation on every change that could alter them (see
//     store.ContentGeneration), so an API change is seen by the next
//     request, and a request never mixes two states;
//   - per publication, path → stored artifact. Complete publications never
//     change, so entries stay valid; only an artifact whose file went
//     missing (reclaimed, say) is dropped and looked up again.
//
// Misses are not cached: they go to the database every time. Paths whose
// bytes are not stored (lazy content) are cached for a few seconds at
// most, and less when this process stores or cools down anything (see
// lazyEntry in lazy.go).

// snapshot is the routing state of one content generation.
type snapshot struct {
	gen   int64
	dists map[string]*distribution // by base path

	mu       sync.Mutex
	resolved map[string]*publication   // by distribution id; nil: serves nothing
	previous map[string][]*publication // by distribution id
}

// current returns the snapshot of the store's current generation.
func (h *Handler) current(ctx context.Context) (*snapshot, error) {
	gen := h.Store.ContentGeneration(ctx)
	if s := h.snap.Load(); s != nil && s.gen == gen {
		return s, nil
	}
	h.loadMu.Lock()
	defer h.loadMu.Unlock()
	if s := h.snap.Load(); s != nil && s.gen == gen {
		return s, nil
	}
	// Read after the generation: a change committed meanwhile is included
	// and bumps the generation again, so nothing stale is kept.
	rows, err := h.Store.Query(ctx, `SELECT id, base_path, hidden, content_guard_id, remote_id, repository_id, COALESCE(cache_control, '') FROM distributions`)
	if err != nil {
		return nil, fmt.Errorf("load distributions: %w", err)
	}
	defer rows.Close()
	s := &snapshot{gen: gen, dists: map[string]*distribution{},
		resolved: map[string]*publication{}, previous: map[string][]*publication{}}
	for rows.Next() {
		d := &distribution{}
		if err := rows.Scan(&d.id, &d.basePath, &d.hidden, &d.guardID, &d.remoteID, &d.repoID, &d.cacheControl); err != nil {
			return nil, fmt.Errorf("load distributions: %w", err)
		}
		s.dists[d.basePath] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load distributions: %w", err)
	}
	h.snap.Store(s)
	return s, nil
}

// match finds the distribution whose base path is the longest prefix (by
// whole segments) of p.
func (s *snapshot) match(p string) *distribution {
	for p != "" {
		if d := s.dists[p]; d != nil {
			return d
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return nil
}

// resolve returns what distribution d serves, from the snapshot or, once
// per generation, from the database.
func (h *Handler) resolve(ctx context.Context, s *snapshot, distID string) (*publication, error) {
	s.mu.Lock()
	p, ok := s.resolved[distID]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := h.resolveShared(ctx, s.gen, distID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.resolved[distID] = p
	s.mu.Unlock()
	return p, nil
}

// previousOf returns the superseded publications distribution d still
// serves: those loaded for this generation whose retention has not ended
// by now.
func (h *Handler) previousOf(ctx context.Context, s *snapshot, distID, currentID string) ([]*publication, error) {
	s.mu.Lock()
	all, ok := s.previous[distID]
	s.mu.Unlock()
	if !ok {
		var err error
		if all, err = h.previousPublications(ctx, distID, currentID); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.previous[distID] = all
		s.mu.Unlock()
	}
	now := store.Now()
	live := make([]*publication, 0, len(all))
	for _, p := range all {
		if p.expires > now {
			live = append(live, p)
		}
	}
	return live, nil
}

// cachedFile is a stored file of a publication.
type cachedFile struct {
	artifact          *store.Artifact
	added             int64
	contentArtifactID *string
	metadata          bool
}

// pathCache is a bounded LRU of (publication, path) → what is served
// there: a stored file, or (lazyPaths) where lazy content comes from.
type pathCache[V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	items map[string]*list.Element
}

type pathEntry[V any] struct {
	key string
	v   V
}

// DefaultPathCacheSize bounds the cached paths (about 300 bytes each).
const DefaultPathCacheSize = 200_000

func newPathCache[V any](max int) *pathCache[V] {
	return &pathCache[V]{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func pathKey(pubID, rel string) string { return pubID + "\x00" + rel }

func (c *pathCache[V]) get(key string) (v V) {
	if c == nil {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*pathEntry[V]).v
	}
	return v
}

func (c *pathCache[V]) put(key string, v V) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		e.Value.(*pathEntry[V]).v = v
		c.order.MoveToFront(e)
		return
	}
	c.items[key] = c.order.PushFront(&pathEntry[V]{key: key, v: v})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*pathEntry[V]).key)
	}
}

func (c *pathCache[V]) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.Remove(e)
		delete(c.items, key)
	}
}
