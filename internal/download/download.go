// Package download fetches remote files the way a Pulp remote describes
// them: TLS settings, client certificates, proxy, basic auth, extra headers,
// timeouts, a per-remote concurrency limit and rate limit, retries with
// backoff, and size and digest verification while the bytes stream to their
// destination.
//
// One [Downloader] is built per remote; every download of that remote shares
// its HTTP client, concurrency slots and rate limiter, as Pulp's
// DownloaderFactory shares one session and semaphore.
package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pith-project/pith/internal/digest"
)

// Defaults, from Pulp (concurrency, retries) and aiohttp (timeouts).
const (
	DefaultConcurrency    = 10
	DefaultMaxRetries     = 3
	DefaultTotalTimeout   = 300 * time.Second
	DefaultConnectTimeout = 30 * time.Second

	defaultBackoffBase = time.Second
	defaultBackoffMax  = time.Minute
	bufSize            = 256 << 10
)

// Config is a remote's download settings. The zero value is usable: it
// validates TLS, uses no proxy or auth, and applies the defaults above.
type Config struct {
	// CACert is PEM; its certificates are trusted in addition to the
	// system pool.
	CACert string
	// ClientCert and ClientKey are PEM, for mutual TLS. Both or neither.
	ClientCert, ClientKey string
	// InsecureSkipVerify disables certificate and host name checks. It is
	// the negation of the remote's tls_validation, so that the zero value
	// is the safe one.
	InsecureSkipVerify bool

	// ProxyURL is an http:// or https:// proxy. Credentials are used only
	// when both are set, as Pulp does.
	ProxyURL, ProxyUsername, ProxyPassword string

	// Username enables basic auth; an empty Password is allowed.
	Username, Password string

	// Headers are the remote's list of single-key objects, sent on every
	// request. A User-Agent entry is appended to UserAgent.
	Headers []map[string]string
	// UserAgent defaults to "pith (<go version>; <os>/<arch>)".
	UserAgent string

	DownloadConcurrency int // ≤0 → 10
	RateLimit           int // requests per second; ≤0 → unlimited
	MaxRetries          int // ≤0 → 3 (Pulp treats 0 as unset)

	// Timeouts in seconds, ≤0 meaning the default. TotalTimeout bounds one
	// attempt (default 300 s). ConnectTimeout and SockConnectTimeout bound
	// dialling plus the TLS handshake (the smaller one wins; default 30 s).
	// SockReadTimeout bounds each wait for response headers or body bytes
	// (default none).
	TotalTimeout, ConnectTimeout, SockConnectTimeout, SockReadTimeout float64

	// AllowedImportPaths are the directories file:// URLs may read below.
	AllowedImportPaths []string

	// BackoffBase is the first retry's maximum delay; it doubles per
	// attempt up to BackoffMax, with full jitter. BackoffMax also caps a
	// server's Retry-After. Defaults 1 s and 60 s; tests set them small.
	BackoffBase, BackoffMax time.Duration

	// Logger receives retry notices; nil means slog.Default().
	Logger *slog.Logger
}

// Dest receives one attempt's bytes. On a failed attempt the downloader
// calls Cancel, so a half-written destination is discarded; on success the
// caller owns it (for example to commit it to storage).
type Dest interface {
	io.Writer
	Cancel(ctx context.Context) error
}

// Result describes a successful download.
type Result struct {
	URL      string
	Size     int64
	Digests  digest.Digests
	Header   http.Header // response headers; nil for file:// URLs
	Attempts int
	Dest     Dest // the destination that holds the verified bytes
}

// Downloader downloads for one remote. It is safe for concurrent use.
type Downloader struct {
	client      *http.Client
	transport   *http.Transport
	header      http.Header
	username    string
	password    string
	useAuth     bool
	slots       chan struct{}
	limiter     *rate.Limiter // nil: unlimited
	maxRetries  int
	total       time.Duration
	sockRead    time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	allowed     []importPath
	log         *slog.Logger
}

// importPath is an allowed import directory, as configured and with
// symlinks resolved.
type importPath struct{ asGiven, resolved string }

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// New builds a Downloader from a remote's settings.
func New(cfg Config) (*Downloader, error) {
	tlsConf, err := tlsConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	proxy, err := proxyURL(cfg)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}

	concurrency := cfg.DownloadConcurrency
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	connect := DefaultConnectTimeout
	if t := seconds(cfg.SockConnectTimeout); t > 0 {
		connect = t
	}
	if t := seconds(cfg.ConnectTimeout); t > 0 && (cfg.SockConnectTimeout <= 0 || t < connect) {
		connect = t
	}
	d := &Downloader{
		header:      http.Header{},
		username:    cfg.Username,
		password:    cfg.Password,
		useAuth:     cfg.Username != "",
		slots:       make(chan struct{}, concurrency),
		maxRetries:  cfg.MaxRetries,
		total:       seconds(cfg.TotalTimeout),
		sockRead:    seconds(cfg.SockReadTimeout),
		backoffBase: cfg.BackoffBase,
		backoffMax:  cfg.BackoffMax,
		log:         cfg.Logger,
	}
	if d.maxRetries <= 0 {
		d.maxRetries = DefaultMaxRetries
	}
	if d.total <= 0 {
		d.total = DefaultTotalTimeout
	}
	if d.backoffBase <= 0 {
		d.backoffBase = defaultBackoffBase
	}
	if d.backoffMax <= 0 {
		d.backoffMax = defaultBackoffMax
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if cfg.RateLimit > 0 {
		// Burst 1 spaces requests evenly, so no one-second window sees
		// more than about RateLimit of them.
		d.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), 1)
	}

	ua := cfg.UserAgent
	if ua == "" {
		ua = fmt.Sprintf("pith (%s; %s/%s)", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	for _, m := range cfg.Headers {
		for k, v := range m {
			if http.CanonicalHeaderKey(k) == "User-Agent" {
				if v != "" {
					ua += ", " + v
				}
				continue
			}
			d.header.Add(k, v)
		}
	}
	d.header.Set("User-Agent", ua)

	for _, p := range cfg.AllowedImportPaths {
		if p == "" || !filepath.IsAbs(p) {
			return nil, fmt.Errorf("download: allowed import path %q is not absolute", p)
		}
		ip := importPath{asGiven: filepath.Clean(p)}
		ip.resolved = ip.asGiven
		if real, err := filepath.EvalSymlinks(ip.asGiven); err == nil {
			ip.resolved = real
		}
		d.allowed = append(d.allowed, ip)
	}

	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	d.transport = &http.Transport{
		Proxy:                  proxy,
		OnProxyConnectResponse: onProxyConnectResponse,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    connect,
		ResponseHeaderTimeout:  d.sockRead,
		ForceAttemptHTTP2:      true,
		// The bytes must arrive exactly as stored upstream: transparent
		// gunzip would change them and break digest verification.
		DisableCompression:    true,
		MaxIdleConnsPerHost:   concurrency,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	d.client = &http.Client{Transport: d.transport, CheckRedirect: checkRedirect}
	return d, nil
}

// Close releases idle connections. Downloads in progress are not affected.
func (d *Downloader) Close() {
	d.transport.CloseIdleConnections()
}

// checkRedirect follows up to 10 redirects (aiohttp's max_redirects), with an error
// that IsRetryable knows to be final.
func checkRedirect(_ *http.Request, via []*http.Request) error {
	if len(via) > 10 {
		return ErrTooManyRedirects
	}
	return nil
}

func seconds(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

func proxyURL(cfg Config) (func(*http.Request) (*url.URL, error), error) {
	if cfg.ProxyURL == "" {
		return nil, nil
	}
	u, err := url.Parse(cfg.ProxyURL)
	if err != nil {
		return nil, fmt.Errorf("proxy url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("proxy url %q: want http:// or https:// with a host", redact(u))
	}
	if cfg.ProxyUsername != "" && cfg.ProxyPassword != "" {
		// The transport turns userinfo into Proxy-Authorization, both for
		// plain requests and for CONNECT.
		u.User = url.UserPassword(cfg.ProxyUsername, cfg.ProxyPassword)
	}
	return http.ProxyURL(u), nil
}

// onProxyConnectResponse types a refused CONNECT so that it reads like
// Pulp's ("407 Proxy Authentication Required") and is not retried.
func onProxyConnectResponse(_ context.Context, proxy *url.URL, _ *http.Request, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return &HTTPError{URL: "proxy " + redact(proxy), StatusCode: resp.StatusCode, Status: resp.Status}
}

// redact returns u without userinfo, for messages.
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = nil
	return c.String()
}

// parseURL accepts http, https and file URLs.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("download %s: missing host", redact(u))
		}
	case "file":
	default:
		return nil, fmt.Errorf("download %s: %w %q", redact(u), ErrUnsupportedScheme, u.Scheme)
	}
	return u, nil
}

// Download fetches rawURL into a fresh Dest per attempt, hashing while it
// writes, and verifies size and digests against expect. Connection errors,
// truncated bodies, timeouts, 429, 5xx and size or digest mismatches are
// retried with exponential backoff and full jitter, honouring Retry-After;
// other 4xx fail at once. file:// URLs are read once, only below the
// allowed import paths.
func (d *Downloader) Download(ctx context.Context, rawURL string, expect digest.Expect, newDest func() (Dest, error)) (Result, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return Result{}, err
	}
	if err := expect.Validate(); err != nil {
		return Result{}, fmt.Errorf("download %s: %w", redact(u), err)
	}
	if u.Scheme == "file" {
		return d.downloadFile(ctx, u, expect, newDest)
	}
	for attempt := 1; ; attempt++ {
		res, err := d.attempt(ctx, u, expect, newDest)
		if err == nil {
			res.Attempts = attempt
			return res, nil
		}
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("download %s: %w", redact(u), context.Cause(ctx))
		}
		if attempt > d.maxRetries || !IsRetryable(err) {
			if attempt > 1 {
				return Result{}, fmt.Errorf("download %s: giving up after %d attempts: %w", redact(u), attempt, err)
			}
			return Result{}, fmt.Errorf("download %s: %w", redact(u), err)
		}
		if err := d.wait(ctx, u, attempt, err); err != nil {
			return Result{}, fmt.Errorf("download %s: %w", redact(u), err)
		}
	}
}

// wait sleeps before retry number attempt+1.
func (d *Downloader) wait(ctx context.Context, u *url.URL, attempt int, cause error) error {
	delay := d.delay(attempt, cause)
	d.log.WarnContext(ctx, "download failed, retrying", "url", redact(u), "attempt", attempt, "delay", delay, "error", cause)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// delay is the backoff before retry number attempt+1: a server's
// Retry-After if it gave one, else full jitter over base·2^(attempt-1),
// both capped at backoffMax.
func (d *Downloader) delay(attempt int, cause error) time.Duration {
	var he *HTTPError
	if errors.As(cause, &he) && he.RetryAfter > 0 {
		return min(he.RetryAfter, d.backoffMax)
	}
	ceil := d.backoffMax
	if attempt-1 < 32 {
		if c := d.backoffBase << (attempt - 1); c > 0 && c < ceil {
			ceil = c
		}
	}
	return rand.N(ceil + 1)
}

// acquire takes a concurrency slot and then a rate-limit token.
func (d *Downloader) acquire(ctx context.Context, limit bool) (release func(), err error) {
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	release = func() { <-d.slots }
	if limit && d.limiter != nil {
		if err := d.limiter.Wait(ctx); err != nil {
			release()
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return nil, err
		}
	}
	return release, nil
}

// attempt runs one HTTP request and streams its body into a new Dest.
func (d *Downloader) attempt(ctx context.Context, u *url.URL, expect digest.Expect, newDest func() (Dest, error)) (Result, error) {
	release, err := d.acquire(ctx, true)
	if err != nil {
		return Result{}, err
	}
	defer release()

	resp, err := d.do(ctx, u, nil)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	if expect.Size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != expect.Size {
		return Result{}, &digest.SizeMismatchError{Expected: expect.Size, Actual: resp.ContentLength}
	}
	dst, err := newDest()
	if err != nil {
		return Result{}, &DestError{Err: err}
	}
	size, sums, err := copyVerify(dst, resp.Body, expect)
	if err != nil {
		if cerr := dst.Cancel(context.WithoutCancel(ctx)); cerr != nil {
			d.log.WarnContext(ctx, "download: cancel destination", "url", redact(u), "error", cerr)
		}
		return Result{}, err
	}
	return Result{URL: u.String(), Size: size, Digests: sums, Header: resp.Header, Dest: dst}, nil
}

// HashingDest is a Dest that hashes what it is written, as a storage
// writer does. The downloader then verifies the size and digests it
// reports instead of hashing every byte a second time.
type HashingDest interface {
	Dest
	Size() int64
	Digests() digest.Digests
}

// copyVerify streams src into dst through a hasher (dst's own, if it is a
// HashingDest) and checks the result. It stops early once more bytes than
// expected have arrived.
func copyVerify(dst io.Writer, src io.Reader, expect digest.Expect) (int64, digest.Digests, error) {
	hd, ok := dst.(HashingDest)
	var h *digest.Hasher
	if !ok {
		h = digest.NewHasher()
		dst = io.MultiWriter(dst, h)
	}
	size := func() int64 {
		if ok {
			return hd.Size()
		}
		return h.Size()
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return 0, digest.Digests{}, &DestError{Err: err}
			}
			if expect.Size >= 0 && size() > expect.Size {
				return 0, digest.Digests{}, &digest.SizeMismatchError{Expected: expect.Size, Actual: size()}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, digest.Digests{}, rerr
		}
	}
	var sums digest.Digests
	if ok {
		sums = hd.Digests()
	} else {
		sums = h.Sum()
	}
	if err := expect.Verify(size(), sums); err != nil {
		return 0, digest.Digests{}, err
	}
	return size(), sums, nil
}

// do sends one GET with the remote's headers and auth plus hdr. It returns
// a 2xx response whose body enforces the read timeout and, on Close, ends
// the attempt's context; any other status is returned as *HTTPError.
func (d *Downloader) do(ctx context.Context, u *url.URL, hdr http.Header) (*http.Response, error) {
	actx, cancelCause := context.WithCancelCause(ctx)
	tctx, cancelTimeout := context.WithTimeoutCause(actx, d.total, &TimeoutError{Kind: "total", After: d.total})
	cancel := func() { cancelTimeout(); cancelCause(context.Canceled) }

	req, err := http.NewRequestWithContext(tctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header = d.header.Clone()
	for k, vs := range hdr {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	if d.useAuth {
		req.SetBasicAuth(d.username, d.password)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		cancel()
		return nil, attemptError(ctx, tctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Drain a little so a keep-alive connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
		cancel()
		return nil, newHTTPError(u, resp)
	}
	b := &body{rc: resp.Body, parent: ctx, attempt: tctx, idle: d.sockRead, cancel: cancel}
	if d.sockRead > 0 {
		// Created stopped; Read arms it. Creating it here keeps the field
		// immutable, as Close may run on another goroutine than Read.
		b.timer = time.AfterFunc(time.Hour, func() {
			cancelCause(&TimeoutError{Kind: "sock_read", After: d.sockRead})
		})
		b.timer.Stop()
	}
	resp.Body = b
	return resp, nil
}

// attemptError replaces the transport's "context canceled" by the reason
// the attempt's own context ended (a timeout), unless the caller cancelled.
func attemptError(parent, attempt context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if parent.Err() == nil && attempt.Err() != nil {
		var te *TimeoutError
		if c := context.Cause(attempt); errors.As(c, &te) {
			return te
		}
	}
	return &requestError{err}
}

// body enforces the sock_read timeout while the caller is blocked in Read
// (not while it is busy elsewhere), and releases the attempt on Close.
type body struct {
	rc      io.ReadCloser
	parent  context.Context
	attempt context.Context
	idle    time.Duration
	timer   *time.Timer // nil without a sock_read timeout
	cancel  func()
	once    sync.Once
	onClose func()
}

func (b *body) Read(p []byte) (int, error) {
	if b.timer != nil {
		b.timer.Reset(b.idle)
	}
	n, err := b.rc.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if err != nil && err != io.EOF {
		err = &ReadError{Err: unwrapRequestError(attemptError(b.parent, b.attempt, err))}
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		if b.timer != nil {
			b.timer.Stop()
		}
		b.cancel()
		if b.onClose != nil {
			b.onClose()
		}
	})
	return err
}
