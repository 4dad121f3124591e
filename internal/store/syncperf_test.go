package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// SaveUnits reports the content artifacts it created, and only for the
// units it created; SaveRemoteArtifacts takes them without looking them up
// and still records one remote artifact per content artifact and remote.
func TestSaveUnitsReportsNewContentArtifacts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		remote := insertRemote(t, s, "r")
		old := fileUnit("old", "")
		if _, err := s.SaveContent(ctx, "file.file", []store.NewContent{old}, nil); err != nil {
			t.Fatal(err)
		}
		two := store.NewContent{NaturalKey: "two|x", RepoKey: "two", Artifacts: []store.NewContentArtifact{
			{RelativePath: "a"}, {RelativePath: "b"}, {RelativePath: "a"}}}
		units := []store.NewContent{fileUnit("new", ""), old, two, fileUnit("new", "")}
		saved, err := s.SaveUnits(ctx, "file.file", units, nil)
		if err != nil {
			t.Fatal(err)
		}
		caID := func(contentID, rel string) string {
			var id string
			if err := s.QueryRow(ctx, `SELECT id FROM content_artifacts WHERE content_id = $1 AND relative_path = $2`, contentID, rel).Scan(&id); err != nil {
				t.Fatal(err)
			}
			return id
		}
		if got := saved[0].ContentArtifactIDs; len(got) != 1 || got[0] != caID(saved[0].ID, "new") {
			t.Errorf("new unit: content artifacts %v", got)
		}
		if saved[1].ContentArtifactIDs != nil {
			t.Errorf("existing unit reports content artifacts %v", saved[1].ContentArtifactIDs)
		}
		if got := saved[2].ContentArtifactIDs; len(got) != 3 || got[0] != caID(saved[2].ID, "a") || got[1] != caID(saved[2].ID, "b") || got[2] != "" {
			t.Errorf("unit with a repeated path: content artifacts %v", got)
		}
		if saved[3].ID != saved[0].ID || saved[3].ContentArtifactIDs != nil {
			t.Errorf("repeated unit = %+v", saved[3])
		}

		var ras []store.NewRemoteArtifact
		for i, u := range units {
			for j, a := range u.Artifacts {
				ra := store.NewRemoteArtifact{ContentID: saved[i].ID, RelativePath: a.RelativePath, RemoteID: remote,
					URL: "http://up/" + a.RelativePath, Size: 1}
				if saved[i].ContentArtifactIDs != nil {
					ra.NewContentArtifactID = saved[i].ContentArtifactIDs[j]
				}
				ras = append(ras, ra)
			}
		}
		if err := s.SaveRemoteArtifacts(ctx, ras); err != nil {
			t.Fatal(err)
		}
		// new, old, two/a, two/b: one each.
		if n := countWhere(t, s, `SELECT COUNT(*) FROM remote_artifacts`); n != 4 {
			t.Fatalf("remote artifacts = %d, want 4", n)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM remote_artifacts ra JOIN content_artifacts ca ON ca.id = ra.content_artifact_id
			WHERE ra.url = 'http://up/' || ca.relative_path`); n != 4 {
			t.Fatalf("remote artifacts on the right content artifacts = %d, want 4", n)
		}
	})
}

// Looking units up by natural key writes nothing when none is stored:
// timestamps are touched only on the rows found.
func TestFindContentTouchesOnlyFound(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		units := []store.NewContent{fileUnit("a", ""), fileUnit("b", "")}
		if _, err := s.SaveContent(ctx, "file.file", units, nil); err != nil {
			t.Fatal(err)
		}
		ageAll(t, s, "content")
		got, err := s.FindContent(ctx, "file.file", []string{"missing|1", "missing|2"})
		if err != nil || len(got) != 0 {
			t.Fatalf("FindContent of missing keys = %v, %v", got, err)
		}
		got, err = s.FindContent(ctx, "file.file", []string{units[1].NaturalKey, "missing|1"})
		if err != nil || len(got) != 1 || got[units[1].NaturalKey].Deferred != 1 {
			t.Fatalf("FindContent = %v, %v", got, err)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM content WHERE timestamp_of_interest > 1`); n != 1 {
			t.Errorf("%d units touched, want 1", n)
		}
	})
}

// planRows walks an EXPLAIN (ANALYZE, FORMAT JSON) plan and returns the
// rows the scans of relation read: those they returned plus those their
// filters removed.
func planRows(node map[string]any, relation string) float64 {
	var n float64
	if node["Relation Name"] == relation {
		loops, _ := node["Actual Loops"].(float64)
		rows, _ := node["Actual Rows"].(float64)
		removed, _ := node["Rows Removed by Filter"].(float64)
		recheck, _ := node["Rows Removed by Index Recheck"].(float64)
		n += (rows + removed + recheck) * max(loops, 1)
	}
	if kids, ok := node["Plans"].([]any); ok {
		for _, k := range kids {
			n += planRows(k.(map[string]any), relation)
		}
	}
	return n
}

// On PostgreSQL a lookup built by KeyedRows reads only the rows it looks
// for, even under the generic plan of a prepared statement and without
// table statistics — where "natural_key IN (…)" scans every unit of the
// type (the cause of quadratic syncs).
func TestKeyedRowsPlanWithoutStatistics(t *testing.T) {
	for _, b := range storetest.Backends() {
		if b.Name != "postgres" {
			continue
		}
		t.Run(b.Name, func(t *testing.T) {
			s := storetest.Open(t, b)
			ctx := t.Context()
			const rows, keys = 20000, 50
			if _, err := s.Exec(ctx, `INSERT INTO content (id, created, last_updated, pulp_type, timestamp_of_interest, natural_key, repo_key)
				SELECT 'id-' || i, i, i, 'file.file', i, 'key-' || i, 'path-' || i FROM generate_series(1, $1::int) AS i`, rows); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range keys {
				want = append(want, fmt.Sprintf("key-%d", 1+i*(rows/keys)))
			}
			conn, err := s.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			explain := func(where string, types string, args string) float64 {
				t.Helper()
				stmt := fmt.Sprintf("q%d", len(where))
				if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.ExecContext(ctx, `PREPARE `+stmt+`(`+types+`) AS SELECT id FROM content WHERE `+where); err != nil {
					t.Fatal(err)
				}
				var plan string
				if err := conn.QueryRowContext(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE `+stmt+`(`+args+`)`).Scan(&plan); err != nil {
					t.Fatal(err)
				}
				var p []map[string]any
				if err := json.Unmarshal([]byte(plan), &p); err != nil {
					t.Fatal(err)
				}
				return planRows(p[0]["Plan"].(map[string]any), "content")
			}
			quoted := "'" + strings.Join(want, "', '") + "'"
			where, _ := s.KeyedRows("content", `pulp_type = $1`, "natural_key", 2, want)
			if got := explain(where, "text, text[]", `'file.file', ARRAY[`+quoted+`]`); got > 2*keys {
				t.Errorf("KeyedRows lookup of %d keys read %.0f rows of %d", keys, got, rows)
			}
			// The shape it replaces, for contrast: if this stops scanning
			// the whole table, the test no longer shows anything.
			ph := make([]string, keys)
			for i := range ph {
				ph[i] = fmt.Sprintf("$%d", i+2)
			}
			if got := explain(`pulp_type = $1 AND natural_key IN (`+strings.Join(ph, ", ")+`)`, "text"+strings.Repeat(", text", keys), `'file.file', `+quoted); got < rows/2 {
				t.Logf("note: the IN-list shape read only %.0f rows here", got)
			}
		})
	}
}

// AnalyzeSyncTables gives PostgreSQL statistics for the sync tables (and
// extra ones); SQLite needs none.
func TestAnalyzeSyncTables(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if _, err := s.SaveContent(ctx, "file.file", []store.NewContent{fileUnit("a", "")}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.AnalyzeSyncTables(ctx, "file_content"); err != nil {
			t.Fatal(err)
		}
		if s.Dialect() != "postgres" {
			return
		}
		for _, table := range []string{"content", "content_artifacts", "repository_content", "file_content"} {
			var analyzed int
			if err := s.QueryRow(context.Background(), `SELECT COUNT(*) FROM pg_stat_user_tables WHERE relid = $1::regclass AND last_analyze IS NOT NULL`, table).Scan(&analyzed); err != nil {
				t.Fatal(err)
			}
			if analyzed != 1 {
				t.Errorf("%s was not analyzed", table)
			}
		}
	})
}

// InsertRows writes text, *string, integer and NULL values alike on both
// engines, and its suffix applies.
func TestInsertRows(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		md5 := "d41d8cd98f00b204e9800998ecf8427e"
		cols := []store.Col{{Name: "id", Type: "text"}, {Name: "created", Type: "bigint"}, {Name: "last_updated", Type: "bigint"},
			{Name: "file", Type: "text"}, {Name: "size", Type: "bigint"}, {Name: "md5", Type: "text"}, {Name: "sha256", Type: "text"},
			{Name: "timestamp_of_interest", Type: "bigint"}}
		rows := [][]any{
			{"a1", int64(1), 1, "artifact/a1", int64(10), &md5, sha("a1"), int64(5)},
			{"a2", int64(2), 2, "artifact/a2", int64(0), (*string)(nil), sha("a2"), int64(6)},
			{"a3", int64(3), 3, "artifact/a3", int64(0), nil, sha("a1"), int64(7)}, // conflicts on sha256
		}
		q, args := s.InsertRows("artifacts", cols, rows, `ON CONFLICT DO NOTHING RETURNING id`)
		got, err := s.Query(ctx, q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for got.Next() {
			var id string
			got.Scan(&id)
			ids = append(ids, id)
		}
		got.Close()
		if len(ids) != 2 {
			t.Fatalf("inserted %v, want a1 and a2", ids)
		}
		var (
			size int64
			m    sql.NullString
		)
		if err := s.QueryRow(ctx, `SELECT size, md5 FROM artifacts WHERE id = 'a1'`).Scan(&size, &m); err != nil || size != 10 || m.String != md5 {
			t.Fatalf("a1: size %d, md5 %v, %v", size, m, err)
		}
		if err := s.QueryRow(ctx, `SELECT md5 FROM artifacts WHERE id = 'a2'`).Scan(&m); err != nil || m.Valid {
			t.Fatalf("a2: md5 %v, %v; want NULL", m, err)
		}
	})
}
