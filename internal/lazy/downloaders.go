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
// concurrency slots and rate limiter) until the remote changes. A caller
// that knows the remote's current stamp (last_updated) saves the query
// that reads it.
func RemoteDownloaders(s *store.Store, config func(*store.Remote) download.Config) Downloaders {
	type entry struct {
		stamp int64
		dl    *download.Downloader
	}
	var mu sync.Mutex
	cache := map[string]entry{}
	return func(ctx context.Context, remoteID string, stamp int64) (*download.Downloader, error) {
		if stamp != 0 {
			// The caller read the remote's stamp with its sources: no
			// query in front of the upstream request.
			mu.Lock()
			e, ok := cache[remoteID]
			mu.Unlock()
			if ok && e.stamp == stamp {
				return e.dl, nil
			}
		}
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
