package fs

import (
	"context"
	"fmt"
	"syscall"

	"github.com/pith-project/pith/internal/storage"
)

// Usage implements storage.Usager from statfs(2) on the root directory, in
// the same terms as df: Used counts all allocated blocks, Free only those
// available to unprivileged users.
func (b *Backend) Usage(ctx context.Context) (storage.Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.dir, &st); err != nil {
		return storage.Usage{}, fmt.Errorf("storage: usage: %w", err)
	}
	bs := st.Frsize
	if bs <= 0 {
		bs = st.Bsize
	}
	return storage.Usage{
		Total: int64(st.Blocks) * bs,
		Used:  int64(st.Blocks-st.Bfree) * bs,
		Free:  int64(st.Bavail) * bs,
	}, nil
}
