package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// TestContentGeneration: every change that can alter what the content app
// serves moves the generation, seen at once by the process that made it,
// and other writes do not.
func TestContentGeneration(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		g0 := s.ContentGeneration(ctx)
		if _, err := s.Exec(ctx, `INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path) VALUES ('d1', 1, 1, 'file.file', 'd1', 'd1')`); err != nil {
			t.Fatal(err)
		}
		g1 := s.ContentGeneration(ctx)
		if g1 <= g0 {
			t.Fatalf("insert of a distribution: generation %d → %d", g0, g1)
		}
		err := s.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE distributions SET hidden = TRUE WHERE id = 'd1'`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		g2 := s.ContentGeneration(ctx)
		if g2 <= g1 {
			t.Fatalf("update in a transaction: generation %d → %d", g1, g2)
		}
		// Unrelated writes leave it alone.
		if err := s.InsertRemote(ctx, nil, &store.Remote{PulpType: "file.file", Name: "r1", URL: "http://x/", Policy: "immediate"}); err != nil {
			t.Fatal(err)
		}
		if g := s.ContentGeneration(ctx); g != g2 {
			t.Fatalf("remote insert moved the generation %d → %d", g2, g)
		}
		if _, err := s.Exec(ctx, `DELETE FROM distributions WHERE id = 'd1'`); err != nil {
			t.Fatal(err)
		}
		if g := s.ContentGeneration(ctx); g <= g2 {
			t.Fatalf("delete: generation %d → %d", g2, g)
		}
	})
}

// TestContentGenerationAcrossProcesses: on PostgreSQL a second store (as a
// second process would have) learns of changes through notifications.
func TestContentGenerationAcrossProcesses(t *testing.T) {
	for _, be := range storetest.Backends() {
		if be.Name != "postgres" {
			continue
		}
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			url := be.URL(t)
			a, err := store.Open(ctx, url, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := store.Open(ctx, url, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			before := b.ContentGeneration(ctx)
			if _, err := a.Exec(ctx, `INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path) VALUES ('x', 1, 1, 'file.file', 'x', 'x')`); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for b.ContentGeneration(ctx) == before {
				if time.Now().After(deadline) {
					t.Fatal("the other store never saw the change")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
