package lazy

import (
	"context"
	"fmt"
	"sync"

	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/store"
)

// RemoteDownloaders returns Downloaders that build one downloader per
// remote from its stored settings and reuse it (its connection pool,
// concurrency slots and rate limiter) until the remote changes.
func RemoteDownloaders(s *store.Store, config func(*store.Remote) download.Config) Downloaders {
	type entry struct {
		stamp int64
		dl    *download.Downloader
	}
	var mu sync.Mutex
	cache := map[string]entry{}
	return func(ctx context.Context, remoteID string) (*download.Downloader, error) {
		r, err := s.GetRemote(ctx, remoteID)
		if err != nil {
			return nil, fmt.Errorf("remote %s: %w", remoteID, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if e, ok := cache[remoteID]; ok && e.stamp == r.LastUpdated {
			return e.dl, nil
		}
		dl, err := download.New(config(r))
		if err != nil {
			return nil, fmt.Errorf("remote %s: %w", r.Name, err)
		}
		if old, ok := cache[remoteID]; ok {
			// Transfers in progress keep their connections.
			old.dl.Close()
		}
		cache[remoteID] = entry{stamp: r.LastUpdated, dl: dl}
		return dl, nil
	}
}
