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
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
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
	paths  *pathCache[*cachedFile]
	// lazyPaths caches where lazy content comes from (lazy.go).
	lazyPaths *pathCache[*lazyEntry]
	files     *openFiles
	indexes   *indexes
	// dirs is built on first use: tests swap Storage after NewHandler.
	dirsOnce sync.Once
	dirs     *artifactDirs
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
	h := &Handler{Store: s, Storage: be, Prefix: prefix, Log: log,
		CacheControl: "public, max-age=86400", MetadataCacheControl: "public, max-age=60",
		paths: newPathCache[*cachedFile](DefaultPathCacheSize), lazyPaths: newPathCache[*lazyEntry](DefaultLazyPathCacheSize),
		files: newOpenFiles(DefaultOpenFiles)}
	h.SetIndexUnits(DefaultIndexUnits)
	return h
}

// SetIndexUnits bounds the units the in-memory path indexes hold
// together (see index.go); 0 turns them off.
func (h *Handler) SetIndexUnits(n int) {
	x := newIndexes(n)
	x.build = h.buildIndex
	x.log = h.Log.Log
	h.indexes = x
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
	for rest := trimmed; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "" || seg == "." || seg == ".." {
			return "", false
		}
		if !more {
			return p, true
		}
		rest = tail
	}
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

// isGone reports whether err says a stored file is missing or damaged.
func isGone(err error) bool {
	var he *httpError
	return errors.As(err, &he) && he.gone
}

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
	// cacheControl, if set, replaces the server's Cache-Control for
	// everything the distribution serves.
	cacheControl string
}

// cacheControl is the Cache-Control of a file of d: the distribution's
// own, or the server's for artifacts or for metadata (short, so clients
// see new publications quickly).
func (h *Handler) cacheControl(d *distribution, metadata bool) string {
	switch {
	case d != nil && d.cacheControl != "":
		return d.cacheControl
	case metadata:
		return h.MetadataCacheControl
	}
	return h.CacheControl
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
		return h.serveDirectory(w, r, d, pub, dir)
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
	// metadata: written by the publication (PULP_MANIFEST, say), not
	// content.
	metadata bool
}

// membershipFrom is the condition that rc is in version number $n+1 of
// repository $n.
func membershipFrom(n int) string {
	return fmt.Sprintf(`rc.repository_id = $%d AND rc.version_added <= $%d AND (rc.version_removed IS NULL OR rc.version_removed > $%d)`, n, n+1, n+1)
}

// membershipOfContent names repository_content (as rc) for a join from
// content_artifacts (as ca, through CROSS JOIN, which keeps SQLite's join
// order): from the path, a few rows in the whole database, to the
// membership rows of that content. SQLite, without statistics, would
// otherwise walk the repository's units by (repository_id, version_added),
// whose number is the repository's size (218 ms a request at 1,000,000
// units); INDEXED BY pins the content index. PostgreSQL plans this well
// from its statistics.
func (h *Handler) membershipOfContent() string {
	if h.Store.Dialect() == "sqlite" {
		return "repository_content rc INDEXED BY repository_content_content"
	}
	return "repository_content rc"
}

// membership is membershipFrom(2), computed once.
var membership = membershipFrom(2)

// lookup finds what a publication serves at rel: published files first,
// then pass-through content of its version. With contentOnly (the path
// index knows rel is content, and a complete publication's files do not
// change) it looks for content alone.
func (h *Handler) lookup(ctx context.Context, pub *publication, rel string, contentOnly bool) (*file, error) {
	f := &file{}
	if !contentOnly {
		err := h.Store.QueryRow(ctx, `SELECT COALESCE(pa.artifact_id, ca.artifact_id), pa.content_artifact_id, pa.created, pa.artifact_id IS NOT NULL
		FROM published_artifacts pa LEFT JOIN content_artifacts ca ON ca.id = pa.content_artifact_id WHERE pa.publication_id = $1 AND pa.relative_path = $2`,
			pub.id, rel).Scan(&f.artifactID, &f.contentArtifactID, &f.added, &f.metadata)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("lookup published file: %w", err)
		}
	}
	if !pub.passThrough {
		return nil, nil
	}
	err := h.Store.QueryRow(ctx, `SELECT ca.artifact_id, ca.id, rc.created FROM content_artifacts ca
		CROSS JOIN `+h.membershipOfContent()+`
		WHERE rc.content_id = ca.content_id AND ca.relative_path = $1 AND `+membership+` LIMIT 1`, rel, pub.repoID, pub.number).Scan(&f.artifactID, &f.contentArtifactID, &f.added)
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
	absent := false      // the index knows rel is not in pub
	contentOnly := false // the index knows rel is content, not a published file
	if idx := h.indexes.get(pub); idx != nil {
		e := h.indexes.lookup(idx, rel)
		switch {
		case e == nil:
			absent = true
		case e.ask:
			contentOnly = e.content
		case !e.ask:
			err := h.serveArtifact(w, r, e.blob(), rel, e.added, h.cacheControl(d, e.metadata))
			if !isGone(err) {
				return err
			}
			// Reclaimed or damaged since the index was built: the database
			// decides below.
		}
	}
	key := pathKey(pub.id, rel)
	if cf := h.paths.get(key); cf != nil && !absent {
		err := h.serveArtifact(w, r, blobOf(cf.artifact), rel, cf.added, h.cacheControl(d, cf.metadata))
		if !isGone(err) {
			return err
		}
		// Reclaimed or damaged since it was cached: look again.
		h.paths.drop(key)
	}
	var f *file
	var epoch uint64
	if !absent {
		if req, ok := h.cachedLazy(snap, key); ok {
			return h.fetchLazy(withCacheControl(w, d.cacheControl), r, req, rel)
		}
		if h.Lazy != nil {
			epoch = h.Lazy.Epoch()
		}
		var err error
		if f, err = h.lookupShared(ctx, pub, rel, contentOnly); err != nil {
			return err
		}
	}
	if f == nil {
		// A client holding metadata of the publication served before may
		// still ask for its files, during the retention period.
		prev, err := h.previousOf(ctx, snap, d.id, pub.id)
		if err != nil {
			return err
		}
		for _, p := range prev {
			if f, err = h.lookup(ctx, p, rel, false); err != nil {
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
		return h.serveLazy(withCacheControl(w, d.cacheControl), r, snap, pub, f, rel, key, epoch)
	}
	a, err := h.Store.GetArtifact(ctx, *f.artifactID)
	if err != nil {
		return err
	}
	h.paths.put(key, &cachedFile{artifact: a, added: f.added, contentArtifactID: f.contentArtifactID, metadata: f.metadata})
	err = h.serveArtifact(w, r, blobOf(a), rel, f.added, h.cacheControl(d, f.metadata))
	if isGone(err) {
		h.paths.drop(key)
	}
	return err
}

// serveArtifact sends a stored artifact with full HTTP semantics and the
// given Cache-Control. A file that is missing or of the wrong size is an
// error, never wrong bytes.
func (h *Handler) serveArtifact(w http.ResponseWriter, r *http.Request, a blob, rel string, added int64, cacheControl string) error {
	ctx := r.Context()
	lf, ok := h.Storage.(storage.LocalFiler)
	if !ok {
		return fmt.Errorf("storage backend cannot open local files")
	}
	f, err := h.artifactFile(ctx, lf, a)
	if err != nil {
		return err
	}
	defer h.files.put(a.File, f)
	var content io.ReadSeeker = f // *os.File: ServeContent's copy uses sendfile
	if a.Size <= maxKeptSize {
		content = &preadFile{*io.NewSectionReader(f, 0, a.Size)}
	}
	hdr := w.Header()
	hdr["Content-Type"] = []string{ContentType(rel)}
	hdr["Etag"] = []string{`"` + a.SHA256 + `"`}
	hdr["Cache-Control"] = []string{cacheControl}
	hdr["X-Pulp-Artifact-Size"] = []string{strconv.FormatInt(a.Size, 10)}
	// ServeContent handles Range (single and multiple), If-None-Match,
	// If-Modified-Since, If-Range, HEAD and 416.
	http.ServeContent(w, r, rel, store.Time(added).Truncate(time.Second), content)
	return nil
}

// artifactFile checks out an open descriptor of a's file, kept from an
// earlier request or opened now, checked against the storage (see
// files.go).
func (h *Handler) artifactFile(ctx context.Context, lf storage.LocalFiler, a blob) (*os.File, error) {
	if f := h.files.take(a.File); f != nil {
		st, err := f.Stat()
		if err == nil && current(st, a.Size) {
			return f, nil
		}
		// Deleted, replaced or damaged since it was opened: look again.
		f.Close()
		h.files.drop(a.File)
	}
	f, err := h.openArtifact(ctx, lf, a.File)
	if err != nil {
		return nil, h.openFailed(a, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat artifact %s: %w", a.SHA256, err)
	}
	if !current(st, a.Size) {
		f.Close()
		return nil, h.damaged(a, st.Size())
	}
	return f, nil
}

// openArtifact opens a stored file: in one openat when the storage is a
// local directory (see artifactDirs), else through the backend.
func (h *Handler) openArtifact(ctx context.Context, lf storage.LocalFiler, name string) (*os.File, error) {
	h.dirsOnce.Do(func() { h.dirs = newArtifactDirs(h.Storage) })
	if f, ok := h.dirs.open(name); ok {
		return f, nil
	}
	return lf.OpenFile(ctx, name)
}

func (h *Handler) openFailed(a blob, err error) error {
	if errors.Is(err, storage.ErrNotExist) {
		h.Log.Error("content: artifact file missing; run repair", "artifact", a.SHA256, "file", a.File)
		return &httpError{code: http.StatusNotFound, msg: "404: The artifact is missing from storage.", gone: true}
	}
	return fmt.Errorf("open artifact %s: %w", a.SHA256, err)
}

func (h *Handler) damaged(a blob, have int64) error {
	h.Log.Error("content: artifact file has the wrong size; run repair", "artifact", a.SHA256, "file", a.File, "want", a.Size, "have", have)
	return &httpError{code: http.StatusInternalServerError, msg: "500: The stored artifact is damaged.", gone: true}
}
