// Package config holds pith's typed configuration. Every setting is a
// command-line flag, may also come from a PITH_<NAME> environment variable
// (dashes become underscores) or from an optional YAML config file whose
// keys are the flag names. Precedence: flag > environment > file > default.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration.
type Config struct {
	Addr               string
	DataDir            string
	Workers            int
	DatabaseURL        string
	ContentOrigin      string
	ContentPathPrefix  string
	LogLevel           string
	LogFormat          string
	AllowedImportPaths []string
	// WorkerTTL is how long a worker may miss heartbeats before its tasks
	// are failed.
	WorkerTTL time.Duration
	// ShutdownTimeout bounds how long SIGTERM waits for running tasks.
	ShutdownTimeout time.Duration
	// OrphanProtectionTime is the default for orphan cleanup (minutes).
	OrphanProtectionTime int
	// AllowedContentChecksums are the digests every artifact carries
	// (Pulp's ALLOWED_CONTENT_CHECKSUMS); sha256 is required.
	AllowedContentChecksums []string
	// LazyCooldown is how long a remote source that sent wrong bytes is
	// skipped by the content app.
	LazyCooldown time.Duration
	// LazyFetchTimeout bounds an on_demand fetch that goes on after its
	// clients left.
	LazyFetchTimeout time.Duration
	// LazyAnyRemote lets the content app fetch lazy content through any
	// remote that knows its digest (Pulp's behaviour) instead of only the
	// remotes linked to the served repository.
	LazyAnyRemote bool
	// LazyRangeAhead is how far past the spool's end a Range request on
	// content being fetched must start to be asked of the upstream
	// separately (bytes); 0 never asks.
	LazyRangeAhead int64
	// ContentCacheControl is sent with artifacts the content app serves.
	ContentCacheControl string
	// ContentMetadataCacheControl is sent with publication metadata and
	// directory listings, which change with every publication.
	ContentMetadataCacheControl string
	// ContentIndexUnits bounds the units the content app's in-memory path
	// indexes hold together (about 90 bytes each); 0 turns them off.
	ContentIndexUnits int
	// PullThroughDelay is how long content fetched by a pull-through
	// distribution waits to be added to its repository, batched with more.
	PullThroughDelay time.Duration
	// PullThroughMissTTL is how long an upstream 404 of a pull-through
	// path is remembered.
	PullThroughMissTTL time.Duration
	// ReadHeaderTimeout and IdleTimeout bound how long a client may take to
	// send its request headers and how long an idle keep-alive connection
	// is kept, so slow or idle clients cannot exhaust the server.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// DBEncryptionKey is the file holding the key that encrypts remote
	// secrets at rest ("" means <data-dir>/db_encryption.key).
	DBEncryptionKey string
	// DistributedPublicationRetention is how long a distribution keeps
	// serving the files of the publication it served before.
	DistributedPublicationRetention time.Duration
	// HideGuardedDistributions keeps distributions with a content guard
	// out of the content app's directory listings.
	HideGuardedDistributions bool
}

// DefaultAllowedContentChecksums is the default of
// --allowed-content-checksums: sha256 alone, because computing Pulp's
// default four digests caps a sync of large files at the speed of sha512
// (see bench/README.md); set sha224,sha256,sha384,sha512 for Pulp's
// behaviour.
var DefaultAllowedContentChecksums = []string{"sha256"}

// Register defines the flags on fs with their defaults.
func (c *Config) Register(fs *pflag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:24817", "listen address for the API and content app")
	fs.StringVar(&c.DataDir, "data-dir", "./pith-data", "directory for the SQLite database and local artifact storage")
	fs.IntVar(&c.Workers, "workers", 2, "number of task workers in this process")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "database URL: empty for SQLite in the data dir, or postgres://…")
	fs.StringVar(&c.ContentOrigin, "content-origin", "", "scheme and host clients use to reach the content app (default derived from --addr)")
	fs.StringVar(&c.ContentPathPrefix, "content-path-prefix", "/pulp/content/", "URL path prefix of the content app")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringSliceVar(&c.AllowedImportPaths, "allowed-import-paths", nil, "local directories file:// remotes and uploads may read from")
	fs.DurationVar(&c.WorkerTTL, "worker-ttl", 30*time.Second, "heartbeat timeout after which a worker counts as gone")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Minute, "how long SIGTERM waits for running tasks to finish")
	fs.IntVar(&c.OrphanProtectionTime, "orphan-protection-time", 1440, "minutes an orphan is protected from orphan cleanup by default")
	fs.StringSliceVar(&c.AllowedContentChecksums, "allowed-content-checksums", slices.Clone(DefaultAllowedContentChecksums), "checksums computed and stored for every artifact, from sha224, sha256, sha384, sha512 (sha256 required)")
	fs.DurationVar(&c.LazyCooldown, "lazy-cooldown", 300*time.Second, "how long the content app skips a remote source that sent wrong bytes")
	fs.DurationVar(&c.LazyFetchTimeout, "lazy-fetch-timeout", time.Hour, "how long an on_demand fetch may go on after every client left")
	fs.BoolVar(&c.LazyAnyRemote, "lazy-any-remote", false, "fetch on-demand content through any remote that knows it, not only remotes linked to the served repository (Pulp's behaviour)")
	fs.Int64Var(&c.LazyRangeAhead, "lazy-range-ahead", 4<<20, "bytes past what a lazy fetch has received beyond which a Range request is answered from a separate upstream range request; 0 always waits for the fetch")
	fs.StringVar(&c.ContentCacheControl, "content-cache-control", "public, max-age=86400", "Cache-Control sent with content served by the content app")
	fs.IntVar(&c.ContentIndexUnits, "content-index-units", 4_000_000, "units of published paths the content app keeps indexed in memory (about 90 bytes each); 0 serves every request from the database")
	fs.StringVar(&c.ContentMetadataCacheControl, "content-metadata-cache-control", "public, max-age=60", "Cache-Control sent with publication metadata (PULP_MANIFEST) and directory listings")
	fs.DurationVar(&c.PullThroughDelay, "pull-through-delay", 5*time.Second, "how long content fetched by a pull-through distribution waits before it is added to the distribution's repository, batched with more")
	fs.DurationVar(&c.PullThroughMissTTL, "pull-through-miss-ttl", time.Minute, "how long the content app remembers that a pull-through upstream answered 404 (outages are never remembered)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "how long a client may take to send its request headers")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection is kept open")
	fs.StringVar(&c.DBEncryptionKey, "db-encryption-key", "", "file with the key that encrypts remote secrets in the database (default <data-dir>/db_encryption.key, created on first start; every process sharing a database needs the same file)")
	fs.DurationVar(&c.DistributedPublicationRetention, "distributed-publication-retention", 72*time.Hour, "how long a distribution keeps serving files of the publication it served before a switch (Pulp's DISTRIBUTED_PUBLICATION_RETENTION_PERIOD)")
	fs.BoolVar(&c.HideGuardedDistributions, "hide-guarded-distributions", false, "leave distributions protected by a content guard out of content app listings")
	fs.String("config", "", "optional YAML config file (keys are flag names)")
}

// Load overlays the config file and PITH_* environment onto every flag the
// command line did not set, then validates.
func (c *Config) Load(fs *pflag.FlagSet) error {
	file := map[string]any{}
	path, _ := fs.GetString("config")
	if !fs.Changed("config") {
		path = os.Getenv("PITH_CONFIG")
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: read %s: %w", path, err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config: parse %s: %w", path, err)
		}
		for k := range file {
			if fs.Lookup(k) == nil {
				return fmt.Errorf("config: %s: unknown setting %q", path, k)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" {
			return
		}
		env := "PITH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: %w", env, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := setFromYAML(f, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: %s: %w", path, f.Name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.validate()
}

func setFromYAML(f *pflag.Flag, v any) error {
	if list, ok := v.([]any); ok {
		parts := make([]string, len(list))
		for i, x := range list {
			parts[i] = fmt.Sprint(x)
		}
		return f.Value.Set(strings.Join(parts, ","))
	}
	return f.Value.Set(fmt.Sprint(v))
}

func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("config: addr %q: %w", c.Addr, err)
	}
	if c.Workers < 0 {
		return fmt.Errorf("config: workers must be >= 0")
	}
	if c.LazyRangeAhead < 0 {
		return fmt.Errorf("config: lazy-range-ahead must be >= 0")
	}
	if c.ContentIndexUnits < 0 {
		return fmt.Errorf("config: content-index-units must be >= 0")
	}
	for _, v := range []string{c.ContentCacheControl, c.ContentMetadataCacheControl} {
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
			return fmt.Errorf("config: cache control %q: printable ASCII only", v)
		}
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return fmt.Errorf("config: database-url must be empty (SQLite) or postgres://…")
	}
	if !strings.HasPrefix(c.ContentPathPrefix, "/") || !strings.HasSuffix(c.ContentPathPrefix, "/") {
		return fmt.Errorf("config: content-path-prefix must start and end with /")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("config: log-format must be text or json")
	}
	if err := checkChecksums(c.AllowedContentChecksums); err != nil {
		return err
	}
	for i, p := range c.AllowedImportPaths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("config: allowed-import-paths: %q is not absolute", p)
		}
		c.AllowedImportPaths[i] = filepath.Clean(p)
	}
	if c.ContentOrigin == "" {
		host, port, _ := net.SplitHostPort(c.Addr)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		c.ContentOrigin = "http://" + net.JoinHostPort(host, port)
	}
	c.ContentOrigin = strings.TrimRight(c.ContentOrigin, "/")
	return nil
}

// checkChecksums validates --allowed-content-checksums: known algorithms
// Pulp can allow, sha256 among them. md5 and sha1 are refused because pith
// does not compute them.
func checkChecksums(algs []string) error {
	has256 := false
	for i, alg := range algs {
		alg = strings.ToLower(strings.TrimSpace(alg))
		algs[i] = alg
		switch alg {
		case "sha256":
			has256 = true
		case "sha224", "sha384", "sha512":
		default:
			return fmt.Errorf("config: allowed-content-checksums: %q is not one of sha224, sha256, sha384, sha512", alg)
		}
	}
	if !has256 {
		return fmt.Errorf("config: allowed-content-checksums must include sha256")
	}
	return nil
}
