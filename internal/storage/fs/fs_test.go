package fs_test

import (
	"testing"

	"github.com/pith-project/pith/internal/storage"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/storage/storagetest"
)

func newBackend(tb testing.TB) *fs.Backend {
	tb.Helper()
	b, err := fs.New(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return newBackend(t) })
}

func BenchmarkCommit(b *testing.B) {
	storagetest.Bench(b, func(b *testing.B) storage.Backend { return newBackend(b) })
}
