package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string) (*Config, error) {
	t.Helper()
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return &c, c.Load(fs)
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:24817" || c.DataDir != "./pith-data" || c.Workers != 2 || c.DatabaseURL != "" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.ContentOrigin != "http://127.0.0.1:24817" {
		t.Fatalf("content origin derived from addr: got %q", c.ContentOrigin)
	}
}

func TestPrecedenceFlagEnvFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pith.yaml")
	if err := os.WriteFile(file, []byte("workers: 7\ndata-dir: /from/file\naddr: 127.0.0.1:1000\nallowed-import-paths: [/a, /b]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PITH_CONFIG", file)
	t.Setenv("PITH_DATA_DIR", "/from/env")
	c, err := load(t, []string{"--addr", "127.0.0.1:2000"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Workers != 7 {
		t.Errorf("file value: workers = %d, want 7", c.Workers)
	}
	if c.DataDir != "/from/env" {
		t.Errorf("env beats file: data dir = %q", c.DataDir)
	}
	if c.Addr != "127.0.0.1:2000" {
		t.Errorf("flag beats all: addr = %q", c.Addr)
	}
	if len(c.AllowedImportPaths) != 2 || c.AllowedImportPaths[1] != "/b" {
		t.Errorf("list from file: %v", c.AllowedImportPaths)
	}
}

func TestRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pith.yaml")
	os.WriteFile(file, []byte("wrokers: 3\n"), 0o600)
	if _, err := load(t, []string{"--config", file}); err == nil {
		t.Error("unknown key in config file accepted")
	}
	if _, err := load(t, []string{"--database-url", "mysql://x"}); err == nil {
		t.Error("unsupported database url accepted")
	}
	t.Setenv("PITH_WORKERS", "many")
	if _, err := load(t, nil); err == nil {
		t.Error("non-numeric PITH_WORKERS accepted")
	}
}

// TestEverySettingFromEnvAndFile: each setting the issue names (and every
// other flag) is reachable as PITH_<NAME> and as a config-file key.
func TestEverySettingFromEnvAndFile(t *testing.T) {
	cases := []struct {
		flag, value string
		got         func(*Config) any
		want        any
	}{
		{"addr", "127.0.0.1:3456", func(c *Config) any { return c.Addr }, "127.0.0.1:3456"},
		{"data-dir", "/srv/pith", func(c *Config) any { return c.DataDir }, "/srv/pith"},
		{"workers", "9", func(c *Config) any { return c.Workers }, 9},
		{"database-url", "postgres://db/pith", func(c *Config) any { return c.DatabaseURL }, "postgres://db/pith"},
		{"content-origin", "https://cdn.example.test/", func(c *Config) any { return c.ContentOrigin }, "https://cdn.example.test"},
		{"worker-ttl", "45s", func(c *Config) any { return c.WorkerTTL.String() }, "45s"},
		{"orphan-protection-time", "7", func(c *Config) any { return c.OrphanProtectionTime }, 7},
	}
	for _, tc := range cases {
		t.Run(tc.flag+"/env", func(t *testing.T) {
			t.Setenv("PITH_"+strings.ToUpper(strings.ReplaceAll(tc.flag, "-", "_")), tc.value)
			c, err := load(t, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.got(c); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
		t.Run(tc.flag+"/file", func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "pith.yaml")
			if err := os.WriteFile(file, []byte(tc.flag+": "+strconv.Quote(tc.value)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := load(t, []string{"--config", file})
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.got(c); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Every flag has its variable: none is silently flag-only.
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.Register(fs)
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		n++
		env := "PITH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		t.Run("all/"+f.Name, func(t *testing.T) {
			// A string flag takes the value; a typed one rejects it and
			// Load names the variable. Either way it was read.
			const junk = "junk-value"
			t.Setenv(env, junk)
			var c2 Config
			fs2 := pflag.NewFlagSet("t", pflag.ContinueOnError)
			c2.Register(fs2)
			err := c2.Load(fs2)
			if fs2.Lookup(f.Name).Value.String() != junk && !strings.Contains(strings.Trim(fs2.Lookup(f.Name).Value.String(), "[]"), junk) &&
				(err == nil || !strings.Contains(err.Error(), env)) {
				t.Errorf("%s was not read (value %q, err %v)", env, fs2.Lookup(f.Name).Value.String(), err)
			}
		})
	})
	if n < 20 {
		t.Fatalf("only %d flags", n)
	}
}
