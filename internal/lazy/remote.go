package lazy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pith-project/pith/internal/store"
)

// Cross-process single flight. The process holding the lease row of a
// sha256 fetches; it publishes the path of its spool file in the row.
// Others open that file and tail it, hashing what they read themselves,
// so they need nothing from the leader but the file: if the leader dies,
// its lease expires and its spool stops growing, and they abort. The
// spool must be on storage all content processes see (the same local
// directory, or a shared filesystem).

const (
	followPoll  = 10 * time.Millisecond
	leaseChecks = 500 * time.Millisecond
)

// followRemote takes the lease or, if another process holds it, serves
// the flight from that process's spool. It reports whether the flight
// was served; if not, the caller fetches (holding the lease if fl.leased).
//
// The bytes may have arrived since the caller looked (through another
// flight that just landed, here or in another process, an upload, or an
// immediate sync): the first claim is refused if they are stored, which
// costs nothing more than the claim.
func (f *Fetcher) followRemote(ctx context.Context, fl *flight) bool {
	checkStored := true
	for {
		want := store.LazyLease{SHA256: fl.req.SHA256, Owner: f.cfg.Owner, Size: fl.req.Size,
			Expires: store.Micros(time.Now().Add(leaseTTL))}
		var held store.LazyLease
		var ok, stored bool
		var err error
		if checkStored {
			held, ok, stored, err = f.cfg.Store.AcquireLazyLeaseUnlessStored(ctx, want)
		} else {
			held, ok, err = f.cfg.Store.AcquireLazyLease(ctx, want)
		}
		if err != nil {
			f.log.WarnContext(ctx, "lazy: lease unavailable, fetching without it", "error", err)
			return f.serveIfStored(ctx, fl)
		}
		if stored {
			// Served from storage unless the file turns out unreadable;
			// then it is fetched again, under the lease.
			checkStored = false
			if f.serveIfStored(ctx, fl) {
				return true
			}
			continue
		}
		if ok {
			fl.leased = true
			f.flying.Add(1) // within fly's own count, so before any Wait ends
			go f.renewLease(fl)
			return false
		}
		if held.Spool != "" {
			file, err := os.Open(held.Spool)
			if err == nil {
				f.m.requests.WithLabelValues("coalesced").Inc()
				f.tail(ctx, fl, file)
				return true
			}
			// Gone: committed (look for the artifact) or abandoned.
			if f.serveIfStored(ctx, fl) {
				return true
			}
		}
		select {
		case <-ctx.Done():
			fl.fail(fmt.Errorf("lazy: waiting for another process's fetch: %w", context.Cause(ctx)))
			return true
		case <-time.After(followPoll):
		}
	}
}

// tail streams another process's spool into the flight, verifying the
// digest itself.
func (f *Fetcher) tail(ctx context.Context, fl *flight, file *os.File) {
	fl.setStoring(false)
	fl.start(file, file.Name(), fl.req.Size, nil)
	h := sha256.New()
	buf := make([]byte, chunkSize)
	var n int64
	lastGrowth, lastCheck := time.Now(), time.Now()
	for {
		m, _ := file.ReadAt(buf, n)
		if m > 0 {
			h.Write(buf[:m])
			n += int64(m)
			lastGrowth = time.Now()
			if n > fl.req.Size {
				fl.fail(fmt.Errorf("lazy: the leading process's spool grew past %d bytes", fl.req.Size))
				return
			}
			fl.progress(n)
		}
		if n == fl.req.Size {
			if hex.EncodeToString(h.Sum(nil)) != fl.req.SHA256 {
				f.m.digestFailures.Inc()
				fl.fail(errors.New("lazy: the leading process's spool does not match the digest"))
				return
			}
			fl.finish(true)
			// The leading process commits what it spooled.
			f.epoch.Add(1)
			return
		}
		if m > 0 {
			continue
		}
		if time.Since(lastCheck) > leaseChecks {
			lastCheck = time.Now()
			l, err := f.cfg.Store.GetLazyLease(ctx, fl.req.SHA256)
			if errors.Is(err, store.ErrNotFound) || (err == nil && l.Spool != file.Name()) {
				// The leader finished or gave up; a finished leader's
				// spool is complete, so what is missing never comes.
				if m, _ := file.ReadAt(buf[:1], n); m == 0 {
					fl.fail(errors.New("lazy: the leading process abandoned the fetch"))
					return
				}
			}
		}
		if time.Since(lastGrowth) > leaseTTL {
			fl.fail(errors.New("lazy: the leading process's fetch stalled"))
			return
		}
		select {
		case <-ctx.Done():
			fl.fail(context.Cause(ctx))
			return
		case <-time.After(followPoll):
		}
	}
}

// publishLease records the spool path so other processes can follow.
// The row is written in the background: this process's clients need not
// wait for it (followers elsewhere poll), and an update landing after the
// lease was released matches no row.
func (f *Fetcher) publishLease(ctx context.Context, fl *flight, spool string) {
	fl.mu.Lock()
	fl.spool = spool
	fl.mu.Unlock()
	l := store.LazyLease{SHA256: fl.req.SHA256, Owner: f.cfg.Owner, Spool: spool, Size: fl.req.Size,
		Expires: store.Micros(time.Now().Add(leaseTTL))}
	go func() {
		if err := f.cfg.Store.UpdateLazyLease(context.WithoutCancel(ctx), l); err != nil {
			f.log.WarnContext(ctx, "lazy: publish spool", "error", err)
		}
	}()
}

// renewLease extends the lease until the flight lands.
func (f *Fetcher) renewLease(fl *flight) {
	defer f.flying.Done()
	t := time.NewTicker(leaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-fl.landedCh:
			return
		case <-t.C:
			fl.mu.Lock()
			spool := fl.spool
			fl.mu.Unlock()
			l := store.LazyLease{SHA256: fl.req.SHA256, Owner: f.cfg.Owner, Spool: spool, Size: fl.req.Size,
				Expires: store.Micros(time.Now().Add(leaseTTL))}
			if err := f.cfg.Store.UpdateLazyLease(context.Background(), l); err != nil {
				f.log.Warn("lazy: renew lease", "error", err)
			}
		}
	}
}

// releaseLease drops the lease once the flight's outcome is settled.
func (f *Fetcher) releaseLease(fl *flight) {
	if err := f.cfg.Store.ReleaseLazyLease(context.Background(), fl.req.SHA256, f.cfg.Owner); err != nil {
		f.log.Warn("lazy: release lease", "error", err)
	}
}
