package config

import (
	"os"
	"path/filepath"
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
