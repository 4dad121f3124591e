package content

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pith-project/pith/internal/lazy"
	"github.com/pith-project/pith/internal/store"
)

// PullThrough is what a plugin provides for pull-through distributions.
type PullThrough interface {
	// URL is where remote serves relPath.
	URL(remote *store.Remote, relPath string) (string, error)
	// Stored records content fetched through a pull-through distribution
	// (and, with repositoryID set, adds it to that repository).
	Stored(ctx context.Context, repositoryID string, remote *store.Remote, url, relPath string, a *store.Artifact) error
}

// DefaultMissTTL is how long an upstream "not found" is remembered.
const DefaultMissTTL = time.Minute

// maxMisses bounds the negative cache; past it the cache starts over.
const maxMisses = 100_000

// servePullThrough serves a path a pull-through distribution's publication
// lacks from the distribution's remote: a stored copy if it was fetched
// before, else a lazy fetch that streams, stores (unless the remote is
// streamed) and records what it got.
func (h *Handler) servePullThrough(w http.ResponseWriter, r *http.Request, d *distribution, rel string) error {
	ctx := r.Context()
	if h.Lazy == nil {
		return notFound("")
	}
	missKey := d.id + "\x00" + rel
	if h.missed(missKey) {
		return notFound("404: The upstream has no such file.")
	}
	remote, err := h.Store.GetRemote(ctx, d.remoteID.String)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("")
	}
	if err != nil {
		return err
	}
	url, err := h.PullThrough.URL(remote, rel)
	if err != nil {
		return notFound("")
	}
	var artID, sha sql.NullString
	var size int64
	// A unit this remote described at url has rel as its path (the URL is
	// the remote's base joined with it, in sync and here alike), so the
	// path's index finds it; remote_artifacts has no index on url.
	err = h.Store.QueryRow(ctx, `SELECT ca.artifact_id, ra.sha256, COALESCE(ra.size, -1) FROM content_artifacts ca
		JOIN remote_artifacts ra ON ra.content_artifact_id = ca.id
		WHERE ca.relative_path = $3 AND ra.remote_id = $1 AND ra.url = $2 ORDER BY ca.artifact_id IS NULL LIMIT 1`, remote.ID, url, rel).Scan(&artID, &sha, &size)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		size = -1
	case err != nil:
		return fmt.Errorf("pull-through lookup: %w", err)
	case artID.Valid:
		a, err := h.Store.GetArtifact(ctx, artID.String)
		if err != nil {
			return err
		}
		return h.serveArtifact(w, r, blobOf(a), rel, a.Created, h.cacheControl(d, false))
	}
	streamed := remote.Policy == "streamed"
	req := lazy.Request{SHA256: sha.String, Size: size, ContentType: ContentType(rel),
		Sources: []lazy.Source{{RemoteArtifactID: "pull-through:" + remote.ID + ":" + url, RemoteID: remote.ID, URL: url, Streamed: streamed}}}
	if !streamed {
		repoID := d.repoID.String
		req.OnStored = func(ctx context.Context, a *store.Artifact) {
			if err := h.PullThrough.Stored(ctx, repoID, remote, url, rel, a); err != nil {
				h.Log.ErrorContext(ctx, "content: record pull-through content", "url", url, "err", err)
			}
		}
	}
	err = h.Lazy.Serve(withCacheControl(w, d.cacheControl), r, req)
	var na *lazy.NotAvailableError
	if errors.As(err, &na) {
		if na.NotFound {
			h.miss(missKey)
		}
		return notFound("404: " + na.Reason)
	}
	return lazyClosing(w, err)
}

func (h *Handler) missed(key string) bool {
	h.missMu.Lock()
	defer h.missMu.Unlock()
	until, ok := h.misses[key]
	if ok && time.Now().After(until) {
		delete(h.misses, key)
		return false
	}
	return ok
}

func (h *Handler) miss(key string) {
	ttl := h.MissTTL
	if ttl <= 0 {
		ttl = DefaultMissTTL
	}
	h.missMu.Lock()
	defer h.missMu.Unlock()
	if h.misses == nil || len(h.misses) >= maxMisses {
		h.misses = map[string]time.Time{}
	}
	h.misses[key] = time.Now().Add(ttl)
}
