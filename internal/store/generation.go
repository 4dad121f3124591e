package store

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ContentGenerationChannel carries the new content generation (PostgreSQL).
const ContentGenerationChannel = "pith_content_generation"

// contentGen tracks the content generation (see migration 0013) in memory
// so that readers need no query to learn it. Every write of this process
// re-reads it after committing, so this process's own changes are seen by
// its next request (on SQLite this process is the only writer); on
// PostgreSQL a listener also follows the notifications the triggers send
// for other processes' changes, with a periodic read in case one is
// missed.
type contentGen struct {
	n       atomic.Int64
	watch   sync.Once
	watched atomic.Bool
}

// ContentGeneration returns the current content generation: a number that
// changes whenever what the content app may serve at some path changes.
func (s *Store) ContentGeneration(ctx context.Context) int64 {
	if s.writeMu == nil {
		s.gen.watch.Do(func() { s.watchGeneration() })
		if !s.gen.watched.Load() {
			// No listener: ask every time rather than serve stale state.
			s.readGeneration(ctx)
		}
	}
	return s.gen.n.Load()
}

// readGeneration loads the generation from the database.
func (s *Store) readGeneration(ctx context.Context) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT n FROM content_generation WHERE id = 1`).Scan(&n); err != nil {
		if ctx.Err() == nil {
			slog.Warn("store: read content generation", "err", err)
		}
		return
	}
	s.bumpGeneration(n)
}

// bumpGeneration raises the in-memory generation to n.
func (s *Store) bumpGeneration(n int64) {
	for {
		cur := s.gen.n.Load()
		if n <= cur || s.gen.n.CompareAndSwap(cur, n) {
			return
		}
	}
}

// afterWrite runs after a write committed (on SQLite with the writer lock
// still held, so generations are read in commit order).
func (s *Store) afterWrite() {
	s.readGeneration(context.Background())
}

// watchGeneration follows notifications on PostgreSQL.
func (s *Store) watchGeneration() {
	ctx := s.bg
	ch, err := s.Listen(ctx, ContentGenerationChannel)
	if err != nil {
		slog.Warn("store: cannot listen for content changes; reading the generation per request", "err", err)
		return
	}
	s.readGeneration(ctx)
	s.gen.watched.Store(true)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					s.gen.watched.Store(false)
					return
				}
				// The channel is database-wide, and other schemas have
				// generations of their own: read ours.
				s.readGeneration(ctx)
			case <-t.C:
				s.readGeneration(ctx)
			}
		}
	}()
}

// touchesContent reports whether statement q may change the content
// generation (see the triggers of migrations 0013 and 0074), so that only
// such writes pay for re-reading it. It errs on the side of yes.
func touchesContent(q string) bool {
	t := strings.TrimSpace(q)
	if len(t) < 6 {
		return false
	}
	switch strings.ToUpper(t[:6]) {
	case "SELECT", "CREATE":
		return false
	}
	l := strings.ToLower(q)
	return strings.Contains(l, "distribution") || strings.Contains(l, "publication") ||
		strings.Contains(l, "content_guard") || strings.Contains(l, "alternate_content_sources") ||
		(strings.Contains(l, "delete") && (strings.Contains(l, "repositor") || strings.Contains(l, "remote")))
}
