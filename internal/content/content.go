// Package content is the content app: it serves what distributions point
// at under /pulp/content/<base_path>/<relative_path>, with Pulp's routing
// rules, directory listings, and HTTP semantics (ranges, conditional
// requests, HEAD) on stored artifacts.
package content

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pith-project/pith/internal/lazy"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
)

// Handler serves distributions.
type Handler struct {
	Store   *store.Store
	Storage storage.Backend
	// Prefix is the URL prefix, e.g. /pulp/content/.
	Prefix string
	Log    *slog.Logger
	// CacheControl is sent with artifacts; listings and metadata get a
	// short one so clients see new publications quickly.
	CacheControl         string
	MetadataCacheControl string
	// Guard, if set, decides whether r may read a distribution protected
	// by the content guard guardID: a non-empty denied is the reason for a
	// 403; err is a failure to decide (500).
	Guard func(ctx context.Context, guardID string, r *http.Request) (denied string, err error)
	// Metrics, if set, counts requests, bytes and latency per distribution.
	Metrics *Metrics
	// HideGuarded leaves guarded distributions out of listings.
	HideGuarded bool
	// PullThrough, if set, lets distributions with a remote serve paths
	// their publication lacks by fetching them from the remote.
	PullThrough PullThrough
	// MissTTL is how long an upstream 404 of a pull-through path is
	// remembered (never an outage).
	MissTTL time.Duration

	missMu sync.Mutex
	misses map[string]time.Time

	snap   atomic.Pointer[snapshot]
	loadMu sync.Mutex
	paths  *pathCache
	// Lazy serves content whose bytes are not stored yet (on_demand and
	// streamed remotes); nil answers such requests with 404.
	Lazy *lazy.Fetcher
	// AnyRemote lets lazy content be fetched through any remote that knows
	// it (Pulp's behaviour), not only remotes linked to the served
	// repository.
	AnyRemote bool

	shared sharedLookups
}

// NewHandler returns a content handler with Pulp's defaults.
func NewHandler(s *store.Store, be storage.Backend, prefix string, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{Store: s, Storage: be, Prefix: prefix, Log: log,
		CacheControl: "public, max-age=86400", MetadataCacheControl: "public, max-age=60",
		paths: newPathCache(DefaultPathCacheSize)}
}

// maxPath bounds request paths; longer ones are not content.
const maxPath = 8192

// cleanPath turns the escaped request path below the prefix into a
// relative path, refusing anything that could escape: NUL, backslashes,
// empty, "." or ".." segments, once percent-decoded. It keeps a trailing
// slash, which decides between listing and redirect.
func cleanPath(escaped string) (string, bool) {
	if len(escaped) > maxPath {
		return "", false
	}
	p, err := url.PathUnescape(escaped)
	if err != nil || strings.ContainsAny(p, "\x00\\") {
		return "", false
	}
	trimmed := strings.TrimSuffix(p, "/")
	if trimmed == "" {
		return p, p == "" || p == "/"
	}
	for _, seg := range strings.Split(trimmed, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", false
		}
	}
	return p, true
}

func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &recorder{ResponseWriter: rw}
	defer func() {
		p := recover()
		h.Metrics.observe(w, start, p != nil)
		if p != nil {
			panic(p)
		}
	}()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405: Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	escaped := strings.TrimPrefix(r.URL.EscapedPath(), h.Prefix)
	if r.URL.EscapedPath()+"/" == h.Prefix {
		http.Redirect(w, r, h.Prefix, http.StatusMovedPermanently)
		return
	}
	rel, ok := cleanPath(escaped)
	if !ok {
		http.Error(w, "404: Not Found", http.StatusNotFound)
		return
	}
	if err := h.serve(w, r, rel, &w.dist); err != nil {
		var he *httpError
		if errors.As(err, &he) {
			http.Error(w, he.msg, he.code)
			return
		}
		h.Log.Error("content: serve", "path", r.URL.Path, "err", err)
		http.Error(w, "500: Internal Server Error", http.StatusInternalServerError)
	}
}

type httpError struct {
	code int
	msg  string
	// gone: the stored artifact's file is missing or damaged.
	gone bool
}

func (e *httpError) Error() string { return e.msg }

func notFound(msg string) error {
	if msg == "" {
		msg = "404: Not Found"
	}
	return &httpError{code: http.StatusNotFound, msg: msg}
}

type distribution struct {
	id, basePath string
	hidden       bool
	guardID      sql.NullString
	remoteID     sql.NullString // pull-through: fetch what the publication lacks
	repoID       sql.NullString
}

// serve routes a cleaned path: distribution lookup by longest base-path
// prefix, listings of partial base paths, then content within it.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, p string, matched *string) error {
	ctx := r.Context()
	slash := p == "" || strings.HasSuffix(p, "/")
	trimmed := strings.TrimSuffix(p, "/")
	snap, err := h.current(ctx)
	if err != nil {
		return err
	}
	d := snap.match(trimmed)
	if d == nil {
		return h.serveBaseListing(w, r, trimmed, slash)
	}
	*matched = d.basePath
	if d.guardID.Valid {
		if err := h.checkGuard(ctx, d.guardID.String, r); err != nil {
			return err
		}
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(trimmed, d.basePath), "/")
	if rel == "" && !slash {
		http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
		return nil
	}
	pub, err := h.resolve(ctx, snap, d.id)
	if err != nil {
		return err
	}
	if pub == nil {
		if d.remoteID.Valid && !slash && h.PullThrough != nil {
			return h.servePullThrough(w, r, d, rel)
		}
		return notFound("404: Distribution is not pointing to a publication, repository, repository version, or remote.")
	}
	if slash {
		dir := rel
		if dir != "" {
			dir += "/"
		}
		return h.serveDirectory(w, r, pub, dir)
	}
	return h.serveFile(w, r, snap, d, pub, rel)
}

// checkGuard refuses r with 403 unless the guard permits it. Without a
// Guard function a guarded distribution serves nothing: failing closed is
// the only safe choice when protection cannot be checked.
func (h *Handler) checkGuard(ctx context.Context, guardID string, r *http.Request) error {
	if h.Guard == nil {
		return &httpError{code: http.StatusForbidden, msg: "403: This distribution is protected by a content guard that this server cannot check."}
	}
	denied, err := h.Guard(ctx, guardID, r)
	if err != nil {
		return fmt.Errorf("check content guard %s: %w", guardID, err)
	}
	if denied != "" {
		return &httpError{code: http.StatusForbidden, msg: "403: " + denied}
	}
	return nil
}

type publication struct {
	id          string
	versionID   string
	repoID      string
	number      int
	passThrough bool
	created     int64
	// expires is when a superseded publication stops being served (Unix
	// µs); 0 for the current one.
	expires int64
}

// ResolvePublication applies Pulp's rule for publication-serving
// distributions: its publication; else the latest complete publication of
// its repository version; else the latest complete publication of its
// repository (by version number, then creation). It returns "" when the
// distribution serves nothing, and store.ErrNotFound for an unknown one.
func ResolvePublication(ctx context.Context, s *store.Store, distID string) (string, error) {
	var pubID sql.NullString
	err := s.QueryRow(ctx, resolveSQL, distID).Scan(&pubID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("resolve distribution %s: %w", distID, err)
	}
	return pubID.String, nil
}

// resolvePublication reads what a distribution serves, or nil.
func (h *Handler) resolvePublication(ctx context.Context, distID string) (*publication, error) {
	id, err := ResolvePublication(ctx, h.Store, distID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && id == "") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := &publication{id: id}
	err = h.Store.QueryRow(ctx, `SELECT p.repository_version_id, rv.repository_id, rv.number, p.pass_through, p.created
		FROM publications p JOIN repository_versions rv ON rv.id = p.repository_version_id WHERE p.id = $1 AND p.complete`, p.id).
		Scan(&p.versionID, &p.repoID, &p.number, &p.passThrough, &p.created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read publication: %w", err)
	}
	return p, nil
}

// file is something servable at a path of a publication.
type file struct {
	artifactID        *string
	contentArtifactID *string
	added             int64
}

const membership = `rc.repository_id = $2 AND rc.version_added <= $3 AND (rc.version_removed IS NULL OR rc.version_removed > $3)`

// lookup finds what a publication serves at rel: published files first,
// then pass-through content of its version.
func (h *Handler) lookup(ctx context.Context, pub *publication, rel string) (*file, error) {
	f := &file{}
	err := h.Store.QueryRow(ctx, `SELECT COALESCE(pa.artifact_id, ca.artifact_id), pa.content_artifact_id, pa.created FROM published_artifacts pa
		LEFT JOIN content_artifacts ca ON ca.id = pa.content_artifact_id WHERE pa.publication_id = $1 AND pa.relative_path = $2`,
		pub.id, rel).Scan(&f.artifactID, &f.contentArtifactID, &f.added)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("lookup published file: %w", err)
	}
	if !pub.passThrough {
		return nil, nil
	}
	err = h.Store.QueryRow(ctx, `SELECT ca.artifact_id, ca.id, rc.created FROM content_artifacts ca
		JOIN repository_content rc ON rc.content_id = ca.content_id
		WHERE ca.relative_path = $1 AND `+membership+` LIMIT 1`, rel, pub.repoID, pub.number).Scan(&f.artifactID, &f.contentArtifactID, &f.added)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lookup content: %w", err)
	}
	return f, nil
}

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, snap *snapshot, d *distribution, pub *publication, rel string) error {
	ctx := r.Context()
	key := pathKey(pub.id, rel)
	if cf := h.paths.get(key); cf != nil {
		err := h.serveArtifact(w, r, cf.artifact, rel, cf.added)
		var he *httpError
		if !errors.As(err, &he) || !he.gone {
			return err
		}
		// Reclaimed or damaged since it was cached: look again.
		h.paths.drop(key)
	}
	f, err := h.lookupShared(ctx, pub, rel)
	if err != nil {
		return err
	}
	if f == nil {
		// A client holding metadata of the publication served before may
		// still ask for its files, during the retention period.
		prev, err := h.previousOf(ctx, snap, d.id, pub.id)
		if err != nil {
			return err
		}
		for _, p := range prev {
			if f, err = h.lookup(ctx, p, rel); err != nil {
				return err
			}
			if f != nil {
				pub, key = p, pathKey(p.id, rel)
				break
			}
		}
	}
	if f == nil {
		// A directory without its slash is redirected, as Pulp does.
		if ok, err := h.isDir(ctx, pub, rel+"/"); err != nil {
			return err
		} else if ok {
			http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
			return nil
		}
		if d.remoteID.Valid && h.PullThrough != nil {
			return h.servePullThrough(w, r, d, rel)
		}
		return notFound("")
	}
	if f.artifactID == nil {
		// On-demand or streamed content that has not been fetched yet.
		return h.serveLazy(w, r, pub, f, rel)
	}
	a, err := h.Store.GetArtifact(ctx, *f.artifactID)
	if err != nil {
		return err
	}
	h.paths.put(key, &cachedFile{artifact: a, added: f.added, contentArtifactID: f.contentArtifactID})
	err = h.serveArtifact(w, r, a, rel, f.added)
	var he *httpError
	if errors.As(err, &he) && he.gone {
		h.paths.drop(key)
	}
	return err
}

// serveArtifact sends a stored artifact with full HTTP semantics. A file
// that is missing or of the wrong size is an error, never wrong bytes.
func (h *Handler) serveArtifact(w http.ResponseWriter, r *http.Request, a *store.Artifact, rel string, added int64) error {
	ctx := r.Context()
	lf, ok := h.Storage.(storage.LocalFiler)
	if !ok {
		return fmt.Errorf("storage backend cannot open local files")
	}
	fh, err := lf.OpenFile(ctx, a.File)
	if errors.Is(err, storage.ErrNotExist) {
		h.Log.Error("content: artifact file missing; run repair", "artifact", a.SHA256, "file", a.File)
		return &httpError{code: http.StatusNotFound, msg: "404: The artifact is missing from storage.", gone: true}
	}
	if err != nil {
		return err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	if st.Size() != a.Size {
		h.Log.Error("content: artifact file has the wrong size; run repair", "artifact", a.SHA256, "want", a.Size, "have", st.Size())
		return &httpError{code: http.StatusInternalServerError, msg: "500: The stored artifact is damaged.", gone: true}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ContentType(rel))
	hdr.Set("ETag", `"`+a.SHA256+`"`)
	hdr.Set("Cache-Control", h.CacheControl)
	hdr.Set("X-PULP-ARTIFACT-SIZE", fmt.Sprint(a.Size))
	// ServeContent handles Range (single and multiple), If-None-Match,
	// If-Modified-Since, If-Range, HEAD and 416, and hands *os.File to
	// sendfile.
	http.ServeContent(w, r, path.Base(rel), store.Time(added).Truncate(time.Second), fh)
	return nil
}
