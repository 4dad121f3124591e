// Package lazy serves content that is known but not stored: it fetches the
// bytes from an upstream source while streaming them to every client that
// asks, verifies size and digest as they arrive, and (for on_demand
// remotes) commits the verified artifact so the next request is a local hit.
//
// One fetch per artifact: concurrent requests for the same sha256 join one
// flight. The leader writes the upstream body into a storage temp file (the
// spool); every client reads the spool at its own pace with pread, so a
// slow client never slows the upstream or the others, and memory does not
// grow with the number of clients. No client ever receives the last byte of
// a body before the whole body is verified: on a mismatch every client's
// connection is aborted instead of ending cleanly.
//
// Across processes sharing a PostgreSQL database the leader holds a lease
// row per sha256 naming its spool file; leaders in other processes tail
// that file, verifying it themselves (see remote.go).
package lazy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/store"
)

// Defaults.
const (
	DefaultCooldown     = 300 * time.Second
	DefaultFetchTimeout = time.Hour
	DefaultCacheControl = "public, max-age=86400"
	leaseTTL            = 30 * time.Second
	chunkSize           = 256 << 10
)

// Downloaders returns the downloader of a remote, built from its current
// settings. stamp, if not 0, is the remote's last_updated as the caller
// read it.
type Downloaders func(ctx context.Context, remoteID string, stamp int64) (*download.Downloader, error)

// Backend is the storage a fetcher spools into and commits to.
type Backend interface {
	storage.Creator
	storage.LocalFiler
}

// Config configures a Fetcher.
type Config struct {
	Store       *store.Store
	Storage     Backend
	Downloaders Downloaders
	// Cooldown is how long a source that sent wrong bytes is skipped.
	Cooldown time.Duration
	// FetchTimeout bounds an on_demand fetch that continues after every
	// client left.
	FetchTimeout time.Duration
	// CacheControl is sent with lazily fetched content.
	CacheControl string
	// RangeAhead: a Range request starting more than this many bytes past
	// the spool's end is asked of the upstream separately (see ranged.go).
	// 0 means DefaultRangeAhead, negative never.
	RangeAhead int64
	// Owner names this process in cross-process leases; "" disables
	// leases (a single process, as with SQLite).
	Owner    string
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Fetcher serves lazy content. It is safe for concurrent use.
type Fetcher struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	mu      sync.Mutex
	flights map[string]*flight
	cooling map[string]time.Time // remote artifact id → end of cooldown
	// epoch counts this process's changes to what callers may have cached
	// about lazy content: artifacts committed or found stored, sources
	// cooled down.
	epoch atomic.Uint64
	// flying counts leaders; Close waits for it. closed (under mu) stops
	// new fetches.
	flying sync.WaitGroup
	closed bool
}

// ErrClosed is returned by Serve for uncached content once Close has
// begun: the process is shutting down.
var ErrClosed = errors.New("lazy: the content server is shutting down")

// New returns a Fetcher.
func New(cfg Config) *Fetcher {
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.CacheControl == "" {
		cfg.CacheControl = DefaultCacheControl
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Fetcher{cfg: cfg, log: cfg.Log, m: newMetrics(cfg.Registry),
		flights: map[string]*flight{}, cooling: map[string]time.Time{}}
}

// Source is one place the bytes may be fetched from.
type Source struct {
	RemoteArtifactID string
	RemoteID         string
	URL              string
	// Streamed sources are never stored (the remote's policy is
	// "streamed"); others are committed once verified.
	Streamed bool
	// FailedAt is when the source last sent wrong bytes (as recorded by
	// any process); within the cooldown after it the source is skipped.
	FailedAt time.Time
	// RemoteStamp is the remote's last_updated when the source was read,
	// or 0 (see Downloaders).
	RemoteStamp int64
}

// Request describes content that is not stored locally.
type Request struct {
	// SHA256 (lower-case hex) is what the bytes must hash to. Empty for
	// pull-through content nobody has described yet: then the upstream is
	// trusted, as any caching proxy trusts it, and the artifact is stored
	// under the digest of what arrived.
	SHA256      string
	Size        int64 // -1: unknown
	ContentType string
	Sources     []Source
	// OnStored, if set, runs after a fetched artifact is committed and
	// recorded, e.g. to record pull-through content.
	OnStored func(ctx context.Context, a *store.Artifact)
}

// key identifies the flight that fetches r: its digest, or for content
// of unknown digest its first URL.
func (r Request) key() string {
	if r.SHA256 != "" {
		return r.SHA256
	}
	if len(r.Sources) > 0 {
		return "url:" + r.Sources[0].URL
	}
	return ""
}

// NotAvailableError says why no source could deliver; the content app
// answers 404 with it.
type NotAvailableError struct {
	Reason string
	// NotFound reports that every source answered 404 or 410 (not an
	// outage), which a caller may cache briefly.
	NotFound bool
}

func (e *NotAvailableError) Error() string { return e.Reason }

// reprDigest is the RFC 9530 Repr-Digest value for a hex sha256.
func reprDigest(hexSum string) string {
	b, err := hex.DecodeString(hexSum)
	if err != nil || len(b) != sha256.Size {
		return ""
	}
	return "sha-256=:" + base64.StdEncoding.EncodeToString(b) + ":"
}

// cooled reports whether a source is in its cooldown.
func (f *Fetcher) cooled(src Source) bool {
	if !src.FailedAt.IsZero() && src.FailedAt.Unix() > 0 && time.Since(src.FailedAt) < f.cfg.Cooldown {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.cooling[src.RemoteArtifactID]
	if ok && time.Now().After(until) {
		delete(f.cooling, src.RemoteArtifactID)
		return false
	}
	return ok
}

// coolDown skips a source that sent wrong bytes, here and (through the
// database) in other processes.
func (f *Fetcher) coolDown(ctx context.Context, src Source, why error) {
	f.mu.Lock()
	f.cooling[src.RemoteArtifactID] = time.Now().Add(f.cfg.Cooldown)
	f.mu.Unlock()
	f.m.cooldowns.Inc()
	f.epoch.Add(1)
	f.log.WarnContext(ctx, "lazy: source cooling down", "url", src.URL, "for", f.cfg.Cooldown, "error", why)
	if err := f.cfg.Store.MarkRemoteArtifactFailed(context.WithoutCancel(ctx), src.RemoteArtifactID, store.Now()); err != nil {
		f.log.ErrorContext(ctx, "lazy: record cooldown", "error", err)
	}
}

// Cooldown is the configured cooldown, for callers that filter sources
// in the database.
func (f *Fetcher) Cooldown() time.Duration { return f.cfg.Cooldown }

// Epoch changes whenever this process commits a fetched artifact, finds
// one stored after all, or cools a source down. A caller may cache what it looked up for a Request (the
// path's content and its sources) while the epoch stays the same: the
// Request may then describe stored bytes or a cooled source, which Serve
// still handles correctly, only less directly.
func (f *Fetcher) Epoch() uint64 { return f.epoch.Load() }

// join returns the flight for req's digest, starting one if none is in
// the air. The caller must call leave when done with it.
func (f *Fetcher) join(req Request) (fl *flight, leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		fl = newFlight(f, req)
		fl.clients = 1
		fl.fail(ErrClosed)
		fl.cancel(ErrClosed) // never flies: release its timer now
		return fl, false
	}
	if fl := f.flights[req.key()]; fl != nil {
		fl.mu.Lock()
		// A failed fetch is not joined: this request tries afresh. Nor is
		// a finished streamed one: streamed content is fetched for every
		// request that does not overlap another.
		failed := fl.startErr != nil || fl.err != nil
		if !failed && !(fl.done && !fl.storing) {
			fl.clients++
			fl.mu.Unlock()
			return fl, false
		}
		fl.mu.Unlock()
	}
	fl = newFlight(f, req)
	fl.clients = 1
	f.flights[req.key()] = fl
	f.flying.Add(1) // done when fly returns
	return fl, true
}

// Close stops new fetches and waits for those in flight to land, so an
// on_demand fetch whose clients have all left still commits its artifact
// and cleans its spool before the process exits. When ctx ends first, the
// fetches left are canceled (discarding what they spooled) and Close
// returns ctx's error once they have cleaned up. Serve must not be running
// when Close returns: call it after the HTTP server's Shutdown.
func (f *Fetcher) Close(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	landed := make(chan struct{})
	go func() { f.flying.Wait(); close(landed) }()
	select {
	case <-landed:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	n := len(f.flights)
	for _, fl := range f.flights {
		fl.cancel(ErrClosed)
	}
	f.mu.Unlock()
	<-landed
	if n == 0 {
		return nil // they landed meanwhile
	}
	return fmt.Errorf("lazy: close: %d fetches canceled: %w", n, ctx.Err())
}

// land removes a finished flight so later requests start afresh (or find
// the committed artifact).
func (f *Fetcher) land(fl *flight) {
	f.mu.Lock()
	if k := fl.req.key(); f.flights[k] == fl {
		delete(f.flights, k)
	}
	f.mu.Unlock()
	fl.mu.Lock()
	fl.landed = true
	fl.closeIfIdle()
	fl.mu.Unlock()
}

// fly is the leader: it finds a source, streams it into the spool and
// verifies and (for on_demand) commits it.
func (f *Fetcher) fly(fl *flight) {
	defer f.flying.Done()
	defer f.land(fl)
	defer close(fl.landedCh)
	ctx := fl.ctx
	defer fl.cancel(nil)
	f.m.inFlight.Inc()
	defer f.m.inFlight.Dec()

	if f.cfg.Owner != "" && fl.req.Size >= 0 && fl.req.SHA256 != "" {
		// Checks for stored bytes as it claims the lease.
		if handled := f.followRemote(ctx, fl); handled {
			return
		}
		if fl.leased {
			defer f.releaseLease(fl)
		}
	} else if fl.req.SHA256 != "" {
		// The bytes may have arrived since the caller looked: through
		// another flight that just landed, an upload, or an immediate sync.
		a, err := f.cfg.Store.ArtifactBySHA256(ctx, fl.req.SHA256)
		switch {
		case err == nil:
			if f.serveLocal(ctx, fl, a) {
				return
			}
		case !errors.Is(err, store.ErrNotFound):
			fl.fail(fmt.Errorf("lazy: look up artifact: %w", err))
			return
		}
	}

	var reasons []string
	notFound := len(fl.req.Sources) > 0
	for _, src := range fl.req.Sources {
		if ctx.Err() != nil {
			break
		}
		if f.cooled(src) {
			notFound = false
			reasons = append(reasons, src.URL+": cooling down after a bad transfer")
			continue
		}
		done, err := f.fetchFrom(ctx, fl, src)
		if done {
			return
		}
		var he *download.HTTPError
		if !errors.As(err, &he) || (he.StatusCode != 404 && he.StatusCode != 410) {
			notFound = false
		}
		reasons = append(reasons, err.Error())
	}
	msg := "no remote source could deliver the content"
	if len(fl.req.Sources) == 0 {
		msg = "the content is not stored and no remote linked to this repository can provide it"
	}
	if len(reasons) > 0 {
		msg += ": " + strings.Join(reasons, "; ")
	}
	f.m.requests.WithLabelValues("failed").Inc()
	fl.fail(&NotAvailableError{Reason: msg, NotFound: notFound && ctx.Err() == nil})
}

// serveIfStored serves the flight from storage if its bytes are stored
// and readable.
func (f *Fetcher) serveIfStored(ctx context.Context, fl *flight) bool {
	a, err := f.cfg.Store.ArtifactBySHA256(ctx, fl.req.SHA256)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			f.log.WarnContext(ctx, "lazy: look up artifact", "sha256", fl.req.SHA256, "error", err)
		}
		return false
	}
	return f.serveLocal(ctx, fl, a)
}

// serveLocal turns a flight into a local hit on a stored artifact. It
// links the artifact to content that still waits for it.
func (f *Fetcher) serveLocal(ctx context.Context, fl *flight, a *store.Artifact) bool {
	fh, err := f.cfg.Storage.OpenFile(ctx, a.File)
	if err != nil {
		f.log.ErrorContext(ctx, "lazy: stored artifact unreadable, fetching again", "artifact", a.SHA256, "error", err)
		return false
	}
	if _, err := f.cfg.Store.AttachArtifact(ctx, a); err != nil {
		f.log.ErrorContext(ctx, "lazy: attach artifact", "artifact", a.SHA256, "error", err)
	}
	// Callers' cached lookups still send this path here: the next one
	// should find the content stored.
	f.epoch.Add(1)
	fl.start(fh, "", a.Size, nil)
	fl.progress(a.Size)
	fl.finish(true)
	f.m.requests.WithLabelValues("hit").Inc()
	return true
}

// fetchFrom tries one source. done reports that the flight started
// (successfully or not, clients have their answer); otherwise err says
// why this source could not be used and the next one may be tried.
func (f *Fetcher) fetchFrom(ctx context.Context, fl *flight, src Source) (done bool, err error) {
	dl, err := f.cfg.Downloaders(ctx, src.RemoteID, src.RemoteStamp)
	if err != nil {
		return false, fmt.Errorf("%s: %w", src.URL, err)
	}
	resp, err := dl.Open(ctx, src.URL, nil)
	if err != nil {
		f.log.WarnContext(ctx, "lazy: source failed", "url", src.URL, "error", err)
		return false, err
	}
	defer resp.Body.Close()
	want := fl.req.Size
	if want < 0 {
		want = resp.ContentLength // -1 if the upstream does not say
	}
	if want >= 0 && resp.ContentLength >= 0 && resp.ContentLength != want {
		err := &digest.SizeMismatchError{Expected: want, Actual: resp.ContentLength}
		f.coolDown(ctx, src, err)
		return false, fmt.Errorf("%s: %w", src.URL, err)
	}
	w, err := f.cfg.Storage.Create(ctx)
	if err != nil {
		return false, fmt.Errorf("lazy: spool: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			if cerr := w.Cancel(context.WithoutCancel(ctx)); cerr != nil {
				f.log.WarnContext(ctx, "lazy: discard spool", "error", cerr)
			}
		}
	}()
	tp, ok := w.(storage.TempPather)
	if !ok {
		return false, errors.New("lazy: storage cannot spool to a local file")
	}
	rd, err := os.Open(tp.TempPath())
	if err != nil {
		return false, fmt.Errorf("lazy: open spool: %w", err)
	}
	if fl.leased {
		f.publishLease(ctx, fl, tp.TempPath())
	}
	f.m.requests.WithLabelValues("miss").Inc()
	fl.setStoring(!src.Streamed)
	fl.setSource(src)
	fl.start(rd, tp.TempPath(), want, resp.Header)

	buf := make([]byte, chunkSize)
	var n64 int64
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				fl.fail(fmt.Errorf("lazy: write spool: %w", err))
				return true, nil
			}
			n64 += int64(n)
			f.m.upstreamBytes.Add(float64(n))
			if want >= 0 && n64 > want {
				err := &digest.SizeMismatchError{Expected: want, Actual: n64}
				f.badBytes(ctx, fl, src, err)
				return true, nil
			}
			fl.progress(n64)
		}
		if rerr != nil {
			if rerr == io.EOF {
				break
			}
			f.log.WarnContext(ctx, "lazy: upstream body failed", "url", src.URL, "error", rerr)
			fl.fail(fmt.Errorf("lazy: %s: %w", src.URL, rerr))
			return true, nil
		}
	}
	sums := w.Digests()
	expect := digest.Expect{Size: want, Digests: map[string]string{"sha256": fl.req.SHA256}}
	if err := expect.Verify(n64, sums); err != nil {
		f.badBytes(ctx, fl, src, err)
		return true, nil
	}
	// Verified: clients may have their last byte now; the commit follows.
	fl.finish(true)
	if src.Streamed {
		return true, nil
	}
	bg := context.WithoutCancel(ctx)
	c, err := w.Commit(bg, expect)
	committed = true
	defer f.epoch.Add(1)
	if err != nil {
		f.log.ErrorContext(ctx, "lazy: commit artifact", "url", src.URL, "error", err)
		return true, nil
	}
	a := &store.Artifact{File: c.Name, Size: c.Size, SHA256: c.Digests.SHA256,
		SHA224: c.Digests.SHA224, SHA384: c.Digests.SHA384, SHA512: c.Digests.SHA512}
	stored, err := f.cfg.Store.AttachArtifact(bg, a)
	if err != nil {
		f.log.ErrorContext(ctx, "lazy: record artifact", "sha256", a.SHA256, "error", err)
		return true, nil
	}
	if fl.req.OnStored != nil {
		fl.req.OnStored(bg, stored)
	}
	return true, nil
}

// badBytes aborts every client of a flight whose source sent wrong bytes
// and cools the source down.
func (f *Fetcher) badBytes(ctx context.Context, fl *flight, src Source, err error) {
	f.m.digestFailures.Inc()
	f.coolDown(ctx, src, err)
	fl.fail(fmt.Errorf("lazy: %s: %w", src.URL, err))
}
