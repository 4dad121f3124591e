// Package server assembles pith's parts into a running process: the data
// layer, artifact storage, the task system, the REST API, the content app
// and metrics, for whichever roles the process plays.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/auth"
	"github.com/pith-project/pith/internal/config"
	"github.com/pith-project/pith/internal/content"
	"github.com/pith-project/pith/internal/contentguard"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/lazy"
	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/tasking"
	"github.com/pith-project/pith/plugins/file"
)

// Roles selects what a process does.
type Roles struct {
	API     bool
	Content bool
	Workers bool
}

// Server is one pith process.
type Server struct {
	cfg     *config.Config
	roles   Roles
	log     *slog.Logger
	Store   *store.Store
	Storage storage.Backend
	Tasks   *tasking.Manager
	API     *api.Server
	reg     *prometheus.Registry
	// pullThrough records content fetched by pull-through distributions.
	pullThrough *file.PullThrough
	// lazy fetches uncached content for the content app; Run lets its
	// fetches land before returning, unless Shutdown was told to cancel
	// what runs (cancelFetches).
	lazy          *lazy.Fetcher
	cancelFetches atomic.Bool
	handler       http.Handler
	lock          *os.File
	name          string

	mu      sync.Mutex
	httpSrv *http.Server
	ln      net.Listener
}

// New opens the database and storage and wires the roles. The admin
// password, when generated, is written to announce once.
func New(ctx context.Context, cfg *config.Config, roles Roles, log *slog.Logger, announce func(string)) (*Server, error) {
	s := &Server{cfg: cfg, roles: roles, log: log, reg: prometheus.NewRegistry()}
	// Process-wide, like Pulp's setting: every hasher must agree.
	if err := digest.Configure(cfg.AllowedContentChecksums); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	if cfg.DatabaseURL == "" {
		// SQLite is single-process by design; refuse a second server on the
		// same data directory instead of corrupting task state.
		l, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		s.lock = l
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Store = st
	keyFile := cfg.DBEncryptionKey
	if keyFile == "" {
		keyFile = filepath.Join(cfg.DataDir, "db_encryption.key")
	}
	key, err := store.LoadOrCreateKey(keyFile)
	if err == nil {
		err = st.SetEncryptionKey(key)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	media := filepath.Join(cfg.DataDir, "media")
	be, err := fs.New(media)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("server: storage: %w", err)
	}
	// Temp files are writes in progress. With SQLite this process is the
	// only writer, so any left are from a crash; with shared storage other
	// processes may be writing, so only long-abandoned ones go.
	stale := time.Hour
	if cfg.DatabaseURL == "" {
		stale = 0
	}
	if _, err := be.CleanTemp(ctx, stale); err != nil {
		log.Warn("clean temporary files", "err", err)
	}
	s.Storage = be
	host, _ := os.Hostname()
	s.name = fmt.Sprintf("%d@%s", os.Getpid(), host)
	spool, err := spoolDir(filepath.Join(media, "tmp", "spool"), host)
	if err != nil {
		s.Close()
		return nil, err
	}

	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.Tasks, err = tasking.New(st, tasking.Options{
		Logger:     log,
		Registerer: s.reg,
		WorkerTTL:  cfg.WorkerTTL,
		Name:       s.name,
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		// Anything still running belongs to a process that crashed.
		if n, err := st.FailAllRunning(ctx, "Worker has gone missing."); err != nil {
			log.Warn("fail interrupted tasks", "err", err)
		} else if n > 0 {
			log.Warn("failed tasks interrupted by a previous crash", "count", n)
		}
	}

	deps := &coreapi.Deps{
		Store: st, Storage: be, Tasks: s.Tasks, Log: log, DataDir: cfg.DataDir,
		ContentOrigin: cfg.ContentOrigin, ContentPathPrefix: cfg.ContentPathPrefix,
		OrphanProtectionTime: cfg.OrphanProtectionTime,
	}
	fileDeps := &file.Deps{
		Store: st, Storage: be, Tasks: s.Tasks, Log: log, Core: deps, TempDir: spool,
		AllowedImportPaths: cfg.AllowedImportPaths, ContentOrigin: cfg.ContentOrigin, ContentPathPrefix: cfg.ContentPathPrefix,
		PublicationRetention: cfg.DistributedPublicationRetention,
	}
	testTasks := os.Getenv("PITH_ENABLE_TEST_TASKS") == "true"
	mux := http.NewServeMux()
	if roles.API {
		gen, stale, err := auth.EnsureAdmin(ctx, st, os.Getenv("PITH_ADMIN_PASSWORD"))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("server: admin user: %w", err)
		}
		if stale {
			log.Warn("PITH_ADMIN_PASSWORD is not the admin password and was ignored: it applies only on first start; change the password with pith admin reset-password")
		}
		if gen != "" && announce != nil {
			announce(gen)
		}
		s.API = api.New(api.Options{
			Auth: auth.New(st), Logger: log, Registry: s.reg,
			SpoolDir: spool,
			Info:     map[string]any{"x-pulp-app-versions": coreapi.AppVersions(), "x-pulp-domain-enabled": false},
		})
		coreapi.Register(s.API, deps)
		s.API.Register(coreapi.GenericRemoteRoutes(deps)...)
		s.API.Register(coreapi.GenericRepositoryRoutes(deps)...)
		s.API.Register(coreapi.GenericContentRoutes(deps)...)
		s.API.Register(coreapi.GenericPublicationRoutes(deps)...)
		s.API.Register(coreapi.GenericDistributionRoutes(deps)...)
		s.API.Register(coreapi.ContentGuardRoutes(deps)...)
		file.Register(s.API, fileDeps)
		if testTasks {
			coreapi.RegisterTesting(s.API, deps)
		}
		mux.Handle(api.Root, s.API)
		mux.Handle("/pulp/api/v3", http.RedirectHandler(api.Root, http.StatusMovedPermanently))
	} else {
		// Task functions must be known wherever tasks run.
		coreapi.RegisterTaskFuncs(deps)
		file.RegisterTaskFuncs(fileDeps)
		if testTasks {
			coreapi.RegisterTestingTasks(deps)
		}
	}
	if roles.Content {
		ch := content.NewHandler(st, be, cfg.ContentPathPrefix, log)
		ch.CacheControl = cfg.ContentCacheControl
		ch.SetIndexUnits(cfg.ContentIndexUnits)
		if cfg.ContentMetadataCacheControl != "" {
			ch.MetadataCacheControl = cfg.ContentMetadataCacheControl
		}
		ch.Metrics = content.NewMetrics(s.reg)
		ch.Guard = (&contentguard.Checker{Store: st, Log: log}).Check
		ch.HideGuarded = cfg.HideGuardedDistributions
		s.pullThrough = file.NewPullThrough(fileDeps)
		s.pullThrough.Delay = cfg.PullThroughDelay
		ch.MissTTL = cfg.PullThroughMissTTL
		ch.PullThrough = s.pullThrough
		ch.AnyRemote = cfg.LazyAnyRemote
		owner := ""
		if st.Dialect() == "postgres" {
			// Several content processes may share the database.
			owner = fmt.Sprintf("%s@%d", host, os.Getpid())
		}
		rangeAhead := cfg.LazyRangeAhead
		if rangeAhead == 0 {
			rangeAhead = -1 // the flag's 0 is "never"; lazy.Config's is "default"
		}
		s.lazy = lazy.New(lazy.Config{Store: st, Storage: be, Cooldown: cfg.LazyCooldown, FetchTimeout: cfg.LazyFetchTimeout,
			CacheControl: cfg.ContentCacheControl, RangeAhead: rangeAhead, Owner: owner, Log: log, Registry: s.reg,
			Downloaders: lazy.RemoteDownloaders(st, func(r *store.Remote) download.Config {
				return file.DownloadConfig(r, cfg.AllowedImportPaths)
			})})
		ch.Lazy = s.lazy
		mux.Handle(cfg.ContentPathPrefix, ch)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	s.handler = mux
	return s, nil
}

// Handler returns the process's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds the configured address (or addr if given).
func (s *Server) Listen(addr string) (net.Addr, error) {
	if addr == "" {
		addr = s.cfg.Addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: listen %s: %w", addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return ln.Addr(), nil
}

// Run serves until ctx is canceled, then stops accepting requests. Task
// workers are left to Shutdown, which decides whether they finish or stop.
func (s *Server) Run(ctx context.Context) error {
	if s.roles.Workers && s.cfg.Workers > 0 {
		if err := s.Tasks.RunWorkers(ctx, s.cfg.Workers); err != nil {
			return err
		}
	}
	var apps []string
	if s.roles.API {
		apps = append(apps, "api")
	}
	if s.roles.Content {
		apps = append(apps, "content")
	}
	for _, app := range apps {
		// The first beat is synchronous, so status shows this process as
		// soon as it answers requests.
		if err := s.Store.Heartbeat(ctx, app+":"+s.name, app); err != nil {
			s.log.Warn("heartbeat", "app", app, "err", err)
		}
		go s.heartbeat(ctx, app)
	}
	if !s.roles.API && !s.roles.Content {
		<-ctx.Done()
		return nil
	}
	s.mu.Lock()
	if s.ln == nil {
		s.mu.Unlock()
		if _, err := s.Listen(""); err != nil {
			return err
		}
		s.mu.Lock()
	}
	s.httpSrv = &http.Server{
		Handler: s.handler,
		// Slow or idle clients must not pin resources: headers must arrive
		// quickly and idle keep-alives are reaped. No write timeout, since
		// large artifacts legitimately take long to send.
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	srv, ln := s.httpSrv, s.ln
	s.mu.Unlock()
	s.log.Info("pith listening", "addr", ln.Addr().String(), "api", s.roles.API, "content", s.roles.Content,
		"workers", s.roles.Workers, "database", s.Store.Dialect())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if s.lazy != nil {
		// An on_demand fetch whose clients left still commits, within the
		// same deadline; past it, it is canceled and its spool removed.
		// SIGINT cancels at once, as it does running tasks.
		lctx := sctx
		if s.cancelFetches.Load() {
			c, cancel := context.WithCancel(sctx)
			cancel()
			lctx = c
		}
		if err := s.lazy.Close(lctx); err != nil {
			s.log.Warn("lazy fetches canceled at shutdown", "err", err)
		}
	}
	return nil
}

func (s *Server) heartbeat(ctx context.Context, app string) {
	name := app + ":" + s.name
	beat := func() {
		if err := s.Store.Heartbeat(context.WithoutCancel(ctx), name, app); err != nil {
			s.log.Warn("heartbeat", "app", app, "err", err)
		}
	}
	beat()
	t := time.NewTicker(max(s.cfg.WorkerTTL/3, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.Store.DeleteAppStatus(dctx, name)
			cancel()
			return
		case <-t.C:
			beat()
		}
	}
}

// Shutdown stops the task workers: with cancelRunning, running tasks are
// canceled (SIGINT); otherwise they may finish within the timeout (SIGTERM).
func (s *Server) Shutdown(ctx context.Context, cancelRunning bool) error {
	// Lazy fetches follow the same rule; Run closes them after the HTTP
	// server, which stops once Shutdown has returned.
	s.cancelFetches.Store(cancelRunning)
	if s.pullThrough != nil {
		// Dispatch the batches of pull-through content still waiting, so
		// a restart does not lose their repository versions.
		s.pullThrough.Flush()
	}
	if s.Tasks == nil {
		return nil
	}
	return s.Tasks.Shutdown(ctx, cancelRunning)
}

// Close releases the database and the data-dir lock.
func (s *Server) Close() error {
	var err error
	if s.Store != nil {
		err = s.Store.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// lockDataDir takes an exclusive lock on dir/pith.lock.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "pith.lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("server: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("server: data dir %s is in use by another pith process (SQLite allows one; use PostgreSQL to scale out)", dir)
	}
	return f, nil
}

// spoolDir returns this process's directory for uploaded request bodies,
// first removing the directories of processes on this host that are gone,
// so a crash mid-upload leaves nothing behind after a restart.
func spoolDir(base, host string) (string, error) {
	if err := os.MkdirAll(base, 0o750); err != nil {
		return "", fmt.Errorf("server: spool dir: %w", err)
	}
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		h, pidText, ok := strings.Cut(e.Name(), "@")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || h != host {
			continue
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		os.RemoveAll(filepath.Join(base, e.Name()))
	}
	dir := filepath.Join(base, host+"@"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("server: spool dir: %w", err)
	}
	return dir, nil
}
