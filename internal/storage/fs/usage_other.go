//go:build !linux

package fs

import (
	"context"
	"errors"
	"fmt"

	"github.com/pith-project/pith/internal/storage"
)

// Usage is only implemented on Linux.
func (b *Backend) Usage(ctx context.Context) (storage.Usage, error) {
	return storage.Usage{}, fmt.Errorf("storage: usage: %w", errors.ErrUnsupported)
}
