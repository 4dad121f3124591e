package content

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/pith-project/pith/internal/lazy"
	"github.com/pith-project/pith/internal/store"
)

// sharedLookups lets concurrent requests for the same path share their
// database queries. Paths whose bytes are stored are cached (see
// cache.go), lazy paths only briefly (lazyEntry); a herd of clients asking
// for one cold file would otherwise queue hundreds of identical queries in
// front of the first byte.
type sharedLookups struct {
	resolves singleflight.Group
	lookups  singleflight.Group
	sources  singleflight.Group
}

// resolveShared is resolvePublication, shared by the concurrent requests
// of one content generation: after a publication, a herd of clients
// would otherwise all resolve the distribution at once.
func (h *Handler) resolveShared(ctx context.Context, gen int64, distID string) (*publication, error) {
	v, err, _ := h.shared.resolves.Do(fmt.Sprint(gen, "\x00", distID), func() (any, error) {
		return h.resolvePublication(context.WithoutCancel(ctx), distID)
	})
	if err != nil {
		return nil, err
	}
	return v.(*publication), nil
}

// lookupShared is lookup, shared by the concurrent requests for one path
// of one publication. The query runs without the first caller's
// cancellation, since others wait for it.
func (h *Handler) lookupShared(ctx context.Context, pub *publication, rel string, contentOnly bool) (*file, error) {
	v, err, _ := h.shared.lookups.Do(pub.id+"\x00"+rel, func() (any, error) {
		return h.lookup(context.WithoutCancel(ctx), pub, rel, contentOnly)
	})
	if err != nil {
		return nil, err
	}
	return v.(*file), nil
}

// lazyEntry caches, for a path of a publication whose bytes were not
// stored, where they come from: a cold request then goes from the path
// straight to the fetch (issue 5), and a HEAD or an earlier request has
// done the lookups. It is valid for one content generation and one epoch
// of the fetcher (this process's commits, late local hits and cooldowns), and for
// lazyLookupTTL at most, which bounds how long another process's cooldown
// or a remote's changed policy goes unseen. A stale entry is never wrong:
// the fetcher checks for stored bytes before fetching, and skips the
// sources it cooled down itself.
type lazyEntry struct {
	req   lazy.Request
	gen   int64
	epoch uint64
	at    time.Time
}

// lazyLookupTTL bounds the life of a lazyEntry.
const lazyLookupTTL = 5 * time.Second

// DefaultLazyPathCacheSize bounds the cached lazy paths.
const DefaultLazyPathCacheSize = 10_000

// cachedLazy returns the cached request for key, if still valid.
func (h *Handler) cachedLazy(snap *snapshot, key string) (lazy.Request, bool) {
	if h.Lazy == nil {
		return lazy.Request{}, false
	}
	e := h.lazyPaths.get(key)
	if e == nil || e.gen != snap.gen || e.epoch != h.Lazy.Epoch() || time.Since(e.at) > lazyLookupTTL {
		return lazy.Request{}, false
	}
	return e.req, true
}

// serveLazy fetches content whose bytes are not stored from the remotes
// that may provide it, streaming while it arrives. epoch is the fetcher's
// before f was looked up.
func (h *Handler) serveLazy(w http.ResponseWriter, r *http.Request, snap *snapshot, pub *publication, f *file, rel, key string, epoch uint64) error {
	if h.Lazy == nil || f.contentArtifactID == nil {
		return notFound("404: The content is not stored and this server does not fetch content on demand.")
	}
	repo := pub.repoID
	if h.AnyRemote {
		repo = ""
	}
	// A herd of clients asking for the same cold file shares one set of
	// queries, as it shares one upstream fetch.
	v, err, _ := h.shared.sources.Do(*f.contentArtifactID+"\x00"+repo, func() (any, error) {
		return h.lazyRequest(context.WithoutCancel(r.Context()), *f.contentArtifactID, repo)
	})
	if err != nil {
		return err
	}
	req := v.(lazy.Request)
	h.lazyPaths.put(key, &lazyEntry{req: req, gen: snap.gen, epoch: epoch, at: time.Now()})
	return h.fetchLazy(w, r, req, rel)
}

// fetchLazy serves req through the fetcher.
func (h *Handler) fetchLazy(w http.ResponseWriter, r *http.Request, req lazy.Request, rel string) error {
	req.ContentType = ContentType(rel)
	err := h.Lazy.Serve(w, r, req)
	var na *lazy.NotAvailableError
	if errors.As(err, &na) {
		return notFound("404: " + na.Reason)
	}
	return lazyClosing(w, err)
}

// lazyClosing turns the fetcher's shutdown into a 503 that clients (and
// load balancers) retry elsewhere, rather than a 500.
func lazyClosing(w http.ResponseWriter, err error) error {
	if errors.Is(err, lazy.ErrClosed) {
		w.Header().Set("Retry-After", "1")
		return &httpError{code: http.StatusServiceUnavailable, msg: "503: The content server is shutting down."}
	}
	return err
}

// lazyRequest lists where the bytes of a content artifact may be fetched
// from: alternate content sources first, then the remotes repo may use
// ("" for any remote). One query reads them all.
func (h *Handler) lazyRequest(ctx context.Context, contentArtifactID, repo string) (lazy.Request, error) {
	plan, err := h.Store.LazyPlan(ctx, contentArtifactID, repo)
	if err != nil {
		return lazy.Request{}, err
	}
	req := lazy.Request{Size: -1}
	for _, s := range plan.Sources {
		if s.SHA256 == "" {
			continue // nothing to verify against: never served
		}
		if req.SHA256 == "" {
			req.SHA256, req.Size = s.SHA256, s.Size
		}
		if s.SHA256 != req.SHA256 {
			continue
		}
		req.Sources = append(req.Sources, lazy.Source{RemoteArtifactID: s.RemoteArtifactID, RemoteID: s.RemoteID,
			URL: s.URL, Streamed: s.Policy == "streamed", FailedAt: store.Time(s.FailedAt), RemoteStamp: s.RemoteStamp})
	}
	addACSSources(&req, plan)
	return req, nil
}

// addACSSources puts the alternate content sources that can deliver the
// bytes before the repository's own sources. ACSs are configured by the
// administrator for everyone, so they are not subject to credential
// isolation. Their bytes are kept unless the repository's content is
// streamed.
func addACSSources(req *lazy.Request, plan store.LazyPlan) {
	if req.SHA256 == "" {
		// The repository's remotes know nothing usable; any remote
		// artifact still tells which digest an ACS would have to match.
		for _, s := range plan.Others {
			if s.SHA256 != "" {
				req.SHA256, req.Size = s.SHA256, s.Size
				break
			}
		}
		if req.SHA256 == "" {
			return
		}
	}
	streamed := len(req.Sources) > 0
	for _, s := range req.Sources {
		streamed = streamed && s.Streamed
	}
	srcs := make([]lazy.Source, 0, len(plan.ACS)+len(req.Sources))
	for _, s := range plan.ACS {
		if s.SHA256 != req.SHA256 || s.Size >= 0 && req.Size >= 0 && s.Size != req.Size {
			continue
		}
		srcs = append(srcs, lazy.Source{RemoteArtifactID: s.RemoteArtifactID, RemoteID: s.RemoteID,
			URL: s.URL, Streamed: streamed, FailedAt: store.Time(s.FailedAt), RemoteStamp: s.RemoteStamp})
	}
	req.Sources = append(srcs, req.Sources...)
}
