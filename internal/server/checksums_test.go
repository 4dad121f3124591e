package server

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/pith-project/pith/internal/config"
	"github.com/pith-project/pith/internal/digest"
)

// The server applies --allowed-content-checksums to every hasher in the
// process.
func TestServerConfiguresChecksums(t *testing.T) {
	t.Cleanup(func() { digest.Configure(digest.Allowed) })
	for _, tc := range []struct {
		flag string
		want []string
	}{
		{"", []string{digest.SHA256}},
		{"sha512,sha256", []string{digest.SHA256, digest.SHA512}},
	} {
		var cfg config.Config
		fs := newFlagSet()
		cfg.Register(fs)
		args := []string{"--data-dir", t.TempDir()}
		if tc.flag != "" {
			args = append(args, "--allowed-content-checksums", tc.flag)
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Load(fs); err != nil {
			t.Fatal(err)
		}
		s, err := New(context.Background(), &cfg, Roles{API: true}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got := digest.Configured(); !slices.Equal(got, tc.want) {
			t.Errorf("flag %q: configured %v, want %v", tc.flag, got, tc.want)
		}
		if sum := digest.NewHasher().Sum(); (sum.SHA512 != "") != slices.Contains(tc.want, digest.SHA512) || sum.SHA384 != "" {
			t.Errorf("flag %q: hasher computes %+v", tc.flag, sum)
		}
	}
}
