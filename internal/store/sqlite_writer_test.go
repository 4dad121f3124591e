package store_test

import (
	"context"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// On SQLite every write transaction runs on the one writer connection,
// tuned for big batches: a warm page cache of its own, statement journals
// in memory, and checkpoints every 64,000 WAL pages. A pooled reader
// keeps SQLite's defaults.
func TestSQLiteWriterConnection(t *testing.T) {
	s := storetest.Open(t, storetest.Backends()[0])
	if s.Dialect() != "sqlite" {
		t.Fatalf("first backend is %s, want sqlite", s.Dialect())
	}
	ctx := t.Context()
	pragmas := func(q func(string) int64) [3]int64 {
		return [3]int64{q("PRAGMA cache_size"), q("PRAGMA temp_store"), q("PRAGMA wal_autocheckpoint")}
	}
	var conns []int64
	for range 3 {
		err := s.InTx(ctx, func(tx *store.Tx) error {
			got := pragmas(func(p string) int64 {
				var n int64
				if err := tx.QueryRow(ctx, p).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			})
			if want := [3]int64{-32 << 10, 2, 64000}; got != want {
				t.Errorf("writer pragmas (cache_size, temp_store, wal_autocheckpoint) = %v, want %v", got, want)
			}
			// Occupy a pooled reader meanwhile, so a writer drawn from
			// the pool would have to be another connection.
			rows, err := s.Query(ctx, `SELECT 1`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			_, err = tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS writer_mark (n INTEGER)`)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM writer_mark`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, n)
			_, err = tx.Exec(ctx, `INSERT INTO writer_mark VALUES (1)`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A temp table lives on its connection: one connection saw all marks.
	if conns[0] != 0 || conns[1] != 1 || conns[2] != 2 {
		t.Errorf("writes ran on different connections: marks seen %v, want [0 1 2]", conns)
	}
	var reader int64
	if err := s.QueryRow(context.Background(), "PRAGMA cache_size").Scan(&reader); err != nil {
		t.Fatal(err)
	}
	if reader == -32<<10 {
		t.Errorf("pooled reader has the writer's cache size")
	}
}
