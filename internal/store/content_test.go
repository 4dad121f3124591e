package store_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func testArtifact(s string) *store.Artifact {
	h := sha(s)
	return &store.Artifact{File: "artifact/" + h[:2] + "/" + h[2:], Size: int64(len(s)), SHA256: h,
		SHA224: strings.Repeat("a", 56), SHA384: strings.Repeat("b", 80) + h[:16], SHA512: h + h}
}

// ageAll sets every row's timestamp_of_interest of table to 1, so touches
// are visible.
func ageAll(t *testing.T, s *store.Store, table string) {
	t.Helper()
	if _, err := s.Exec(t.Context(), `UPDATE `+table+` SET timestamp_of_interest = 1`); err != nil {
		t.Fatal(err)
	}
}

func countWhere(t *testing.T, s *store.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.QueryRow(t.Context(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestInsertArtifactsBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		pre, _, err := s.InsertArtifact(ctx, nil, testArtifact("pre"))
		if err != nil {
			t.Fatal(err)
		}
		ageAll(t, s, "artifacts")
		var in []*store.Artifact
		for i := range 1200 { // more than one statement's worth
			in = append(in, testArtifact(fmt.Sprint(i)))
		}
		dup := testArtifact("7") // same sha256 as in[7]
		in = append(in, testArtifact("pre"), dup)
		out, err := s.InsertArtifacts(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(in) {
			t.Fatalf("got %d results for %d inputs", len(out), len(in))
		}
		for i, a := range out {
			if a.SHA256 != in[i].SHA256 || a.ID == "" {
				t.Fatalf("result %d = %+v, want sha256 %s", i, a, in[i].SHA256)
			}
		}
		if out[1200].ID != pre.ID {
			t.Errorf("existing artifact got id %s, want stored %s", out[1200].ID, pre.ID)
		}
		if out[1201].ID != out[7].ID {
			t.Errorf("duplicate input got id %s, want %s", out[1201].ID, out[7].ID)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM artifacts`); n != 1201 {
			t.Errorf("artifacts rows = %d, want 1201", n)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM artifacts WHERE timestamp_of_interest = 1`); n != 0 {
			t.Errorf("%d artifacts not touched", n)
		}
		// A second insert of the same batch adds nothing.
		again, err := s.InsertArtifacts(ctx, in[:10])
		if err != nil {
			t.Fatal(err)
		}
		for i := range again {
			if again[i].ID != out[i].ID {
				t.Fatalf("re-insert %d: id %s, want %s", i, again[i].ID, out[i].ID)
			}
		}
		if _, err := s.InsertArtifacts(ctx, []*store.Artifact{{File: "x", Size: 1}}); err == nil {
			t.Error("artifact without sha256 accepted")
		}
	})
}

func TestArtifactsBySHA256(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		var in []*store.Artifact
		for i := range 700 {
			in = append(in, testArtifact(fmt.Sprint(i)))
		}
		if _, err := s.InsertArtifacts(ctx, in); err != nil {
			t.Fatal(err)
		}
		ageAll(t, s, "artifacts")
		var query []string
		for i := 0; i < 700; i += 2 {
			query = append(query, strings.ToUpper(in[i].SHA256)) // case-insensitive
		}
		query = append(query, sha("missing"), in[0].SHA256, "")
		got, err := s.ArtifactsBySHA256(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 350 {
			t.Fatalf("found %d artifacts, want 350", len(got))
		}
		for i := 0; i < 700; i += 2 {
			a := got[in[i].SHA256]
			if a == nil || a.File != in[i].File || a.Size != in[i].Size || a.SHA512 != in[i].SHA512 {
				t.Fatalf("artifact %d = %+v", i, a)
			}
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM artifacts WHERE timestamp_of_interest > 1`); n != 350 {
			t.Errorf("%d artifacts touched, want the 350 found", n)
		}
	})
}

func insertRemote(t *testing.T, s *store.Store, name string) string {
	t.Helper()
	id := store.NewID()
	if _, err := s.Exec(t.Context(), `INSERT INTO remotes (id, created, last_updated, pulp_type, name, url, policy, tls_validation) VALUES ($1, 1, 1, 'file.file', $2, 'http://x/', 'immediate', TRUE)`, id, name); err != nil {
		t.Fatal(err)
	}
	return id
}

// fileDetail is a saveDetail writing the file plugin's detail rows, with
// the relative path and digest taken from the natural key "path|digest".
func fileDetail(units []store.NewContent, calls *[][]int) func(tx *store.Tx, idx []int, ids []string) error {
	return func(tx *store.Tx, idx []int, ids []string) error {
		*calls = append(*calls, append([]int(nil), idx...))
		for j, i := range idx {
			path, dig, _ := strings.Cut(units[i].NaturalKey, "|")
			if _, err := tx.Exec(context.Background(), `INSERT INTO file_content (content_id, relative_path, digest) VALUES ($1, $2, $3)`, ids[j], path, dig); err != nil {
				return err
			}
		}
		return nil
	}
}

func fileUnit(path, artifactID string) store.NewContent {
	return store.NewContent{NaturalKey: path + "|" + sha(path), RepoKey: path,
		Artifacts: []store.NewContentArtifact{{RelativePath: path, ArtifactID: artifactID}}}
}

func caArtifact(t *testing.T, s *store.Store, contentID string) sql.NullString {
	t.Helper()
	var a sql.NullString
	if err := s.QueryRow(t.Context(), `SELECT artifact_id FROM content_artifacts WHERE content_id = $1`, contentID).Scan(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSaveContent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		arts, err := s.InsertArtifacts(ctx, []*store.Artifact{testArtifact("a"), testArtifact("b")})
		if err != nil {
			t.Fatal(err)
		}
		// Deferred units, one listed twice, plus enough to need chunking.
		units := []store.NewContent{fileUnit("a", ""), fileUnit("b", ""), fileUnit("a", "")}
		for i := range 600 {
			units = append(units, fileUnit(fmt.Sprintf("f/%d", i), ""))
		}
		units[0].Labels = map[string]string{"k": "v"}
		var calls [][]int
		ids, err := s.SaveContent(ctx, "file.file", units, fileDetail(units, &calls))
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != len(units) || ids[0] != ids[2] || ids[0] == ids[1] || ids[0] == "" {
			t.Fatalf("ids = %v…", ids[:3])
		}
		if len(calls) != 1 || len(calls[0]) != 602 {
			t.Fatalf("saveDetail calls = %d (first with %d units), want 1 with 602", len(calls), len(calls[0]))
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM file_content fc JOIN content c ON c.id = fc.content_id WHERE c.natural_key = fc.relative_path || '|' || fc.digest`); n != 602 {
			t.Errorf("file_content rows matching their content = %d, want 602", n)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM content_artifacts WHERE artifact_id IS NULL`); n != 602 {
			t.Errorf("deferred content artifacts = %d, want 602", n)
		}
		var labels string
		if err := s.QueryRow(ctx, `SELECT pulp_labels FROM content WHERE id = $1`, ids[0]).Scan(&labels); err != nil || labels != `{"k":"v"}` {
			t.Errorf("labels = %q, %v", labels, err)
		}

		// Saving again, still deferred: same ids, no detail, no writes.
		var lu int64
		s.QueryRow(ctx, `SELECT MAX(last_updated) FROM content_artifacts`).Scan(&lu)
		calls = nil
		again, err := s.SaveContent(ctx, "file.file", units, fileDetail(units, &calls))
		if err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			if again[i] != ids[i] {
				t.Fatalf("re-save id %d = %s, want %s", i, again[i], ids[i])
			}
		}
		if len(calls) != 0 {
			t.Errorf("saveDetail called for existing units: %v", calls)
		}

		// Deferred → immediate: the content artifacts get their artifacts.
		up := []store.NewContent{fileUnit("a", arts[0].ID), fileUnit("b", arts[1].ID)}
		got, err := s.SaveContent(ctx, "file.file", up, fileDetail(up, &calls))
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != ids[0] || got[1] != ids[1] || len(calls) != 0 {
			t.Fatalf("upgrade: ids %v, detail calls %v", got, calls)
		}
		if a := caArtifact(t, s, ids[0]); a.String != arts[0].ID {
			t.Errorf("content a artifact = %v, want %s", a, arts[0].ID)
		}
		if a := caArtifact(t, s, ids[1]); a.String != arts[1].ID {
			t.Errorf("content b artifact = %v, want %s", a, arts[1].ID)
		}
		var newLU int64
		s.QueryRow(ctx, `SELECT last_updated FROM content_artifacts WHERE content_id = $1`, ids[0]).Scan(&newLU)
		if newLU <= lu {
			t.Errorf("upgraded content artifact last_updated %d not after %d", newLU, lu)
		}
		// A deferred save never clears a stored artifact.
		if _, err := s.SaveContent(ctx, "file.file", units[:1], nil); err != nil {
			t.Fatal(err)
		}
		if a := caArtifact(t, s, ids[0]); a.String != arts[0].ID {
			t.Errorf("deferred re-save cleared the artifact: %v", a)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM content`); n != 602 {
			t.Errorf("content rows = %d, want 602", n)
		}
		// Same natural key under another type is another unit.
		other, err := s.SaveContent(ctx, "other.type", units[:1], nil)
		if err != nil || other[0] == ids[0] {
			t.Errorf("other type: %v, %v", other, err)
		}
	})
}

func TestSaveContentDetailErrorRollsBack(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		boom := errors.New("boom")
		units := []store.NewContent{fileUnit("x", ""), fileUnit("y", "")}
		_, err := s.SaveContent(t.Context(), "file.file", units, func(*store.Tx, []int, []string) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM content`) + countWhere(t, s, `SELECT COUNT(*) FROM content_artifacts`); n != 0 {
			t.Errorf("%d rows left after a failed save", n)
		}
	})
}

func TestSaveContentConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		var units []store.NewContent
		for i := range 300 {
			units = append(units, fileUnit(fmt.Sprint(i), ""))
		}
		var (
			wg      sync.WaitGroup
			results [4][]string
			errs    [4]error
			details sync.Mutex
			created int
		)
		for g := range results {
			wg.Go(func() {
				results[g], errs[g] = s.SaveContent(t.Context(), "file.file", units, func(tx *store.Tx, idx []int, ids []string) error {
					details.Lock()
					created += len(ids)
					details.Unlock()
					return nil
				})
			})
		}
		wg.Wait()
		for g := range results {
			if errs[g] != nil {
				t.Fatalf("saver %d: %v", g, errs[g])
			}
			for i := range units {
				if results[g][i] != results[0][i] {
					t.Fatalf("saver %d got id %s for unit %d, saver 0 got %s", g, results[g][i], i, results[0][i])
				}
			}
		}
		if created != 300 {
			t.Errorf("detail written for %d units, want 300 (each exactly once)", created)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM content_artifacts`); n != 300 {
			t.Errorf("content artifacts = %d, want 300", n)
		}
	})
}

func TestContentByNaturalKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		var units []store.NewContent
		for i := range 700 {
			units = append(units, fileUnit(fmt.Sprint(i), ""))
		}
		ids, err := s.SaveContent(ctx, "file.file", units, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveContent(ctx, "other.type", units[:5], nil); err != nil {
			t.Fatal(err)
		}
		ageAll(t, s, "content")
		var keys []string
		for i := 0; i < 700; i += 2 {
			keys = append(keys, units[i].NaturalKey)
		}
		keys = append(keys, "nope", units[0].NaturalKey)
		got, err := s.ContentByNaturalKeys(ctx, "file.file", keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 350 {
			t.Fatalf("found %d, want 350", len(got))
		}
		for i := 0; i < 700; i += 2 {
			if got[units[i].NaturalKey] != ids[i] {
				t.Fatalf("key %d → %s, want %s", i, got[units[i].NaturalKey], ids[i])
			}
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM content WHERE timestamp_of_interest > 1`); n != 350 {
			t.Errorf("%d content touched, want 350", n)
		}
	})
}

type raRow struct {
	URL      string
	Size     sql.NullInt64
	SHA256   sql.NullString
	FailedAt sql.NullInt64
}

func readRA(t *testing.T, s *store.Store, contentID, remoteID string) (raRow, int) {
	t.Helper()
	var r raRow
	n := countWhere(t, s, `SELECT COUNT(*) FROM remote_artifacts ra JOIN content_artifacts ca ON ca.id = ra.content_artifact_id WHERE ca.content_id = $1 AND ra.remote_id = $2`, contentID, remoteID)
	err := s.QueryRow(t.Context(), `SELECT ra.url, ra.size, ra.sha256, ra.failed_at FROM remote_artifacts ra JOIN content_artifacts ca ON ca.id = ra.content_artifact_id
		WHERE ca.content_id = $1 AND ra.remote_id = $2`, contentID, remoteID).Scan(&r.URL, &r.Size, &r.SHA256, &r.FailedAt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return r, n
}

func TestSaveRemoteArtifacts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r1, r2 := insertRemote(t, s, "r1"), insertRemote(t, s, "r2")
		var units []store.NewContent
		for i := range 600 {
			units = append(units, fileUnit(fmt.Sprint(i), ""))
		}
		ids, err := s.SaveContent(ctx, "file.file", units, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ras []store.NewRemoteArtifact
		for i, id := range ids {
			ras = append(ras, store.NewRemoteArtifact{ContentID: id, RelativePath: fmt.Sprint(i), RemoteID: r1,
				URL: fmt.Sprintf("http://up/%d", i), Size: int64(i), SHA256: sha(fmt.Sprint(i))})
		}
		ras[1].Size = -1
		ras = append(ras, ras[0]) // listed twice
		ras = append(ras, store.NewRemoteArtifact{ContentID: ids[0], RelativePath: "0", RemoteID: r2, URL: "http://mirror/0", Size: 0})
		if err := s.SaveRemoteArtifacts(ctx, ras); err != nil {
			t.Fatal(err)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM remote_artifacts`); n != 601 {
			t.Fatalf("remote artifacts = %d, want 601", n)
		}
		if r, _ := readRA(t, s, ids[1], r1); r.Size.Valid || r.URL != "http://up/1" || r.SHA256.String != sha("1") {
			t.Errorf("ra 1 = %+v", r)
		}
		if r, _ := readRA(t, s, ids[0], r2); r.URL != "http://mirror/0" || !r.Size.Valid {
			t.Errorf("ra 0 of r2 = %+v", r)
		}

		// Unchanged: nothing written.
		var lu int64
		s.QueryRow(ctx, `SELECT MAX(last_updated) FROM remote_artifacts`).Scan(&lu)
		if err := s.SaveRemoteArtifacts(ctx, ras); err != nil {
			t.Fatal(err)
		}
		var lu2 int64
		s.QueryRow(ctx, `SELECT MAX(last_updated) FROM remote_artifacts`).Scan(&lu2)
		if lu2 != lu {
			t.Errorf("unchanged save rewrote rows (last_updated %d → %d)", lu, lu2)
		}

		// The upstream moved a file: the URL is updated, the failure mark
		// cleared, and no second row appears.
		if _, err := s.Exec(ctx, `UPDATE remote_artifacts SET failed_at = 5`); err != nil {
			t.Fatal(err)
		}
		moved := ras[5]
		moved.URL = "http://up/new/5"
		if err := s.SaveRemoteArtifacts(ctx, []store.NewRemoteArtifact{moved}); err != nil {
			t.Fatal(err)
		}
		r, n := readRA(t, s, ids[5], r1)
		if n != 1 || r.URL != "http://up/new/5" || r.FailedAt.Valid {
			t.Errorf("moved ra = %+v (%d rows)", r, n)
		}
		if r, _ := readRA(t, s, ids[6], r1); !r.FailedAt.Valid {
			t.Errorf("unrelated ra lost its failure mark: %+v", r)
		}

		bad := store.NewRemoteArtifact{ContentID: ids[0], RelativePath: "no/such/path", RemoteID: r1, URL: "http://x"}
		if err := s.SaveRemoteArtifacts(ctx, []store.NewRemoteArtifact{bad}); err == nil || !strings.Contains(err.Error(), "no/such/path") {
			t.Errorf("missing content artifact: err = %v", err)
		}
	})
}

// A unit the caller marks Unseen is inserted without being looked up first;
// one that exists all the same (stored meanwhile) is found by its insert:
// its id comes back, it gets no second row or detail, and an artifact
// given for it is attached. Fresh Unseen units are created as usual.
func TestSaveUnitsUnseen(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		arts, err := s.InsertArtifacts(ctx, []*store.Artifact{testArtifact("x")})
		if err != nil {
			t.Fatal(err)
		}
		first := []store.NewContent{fileUnit("x", ""), fileUnit("y", "")}
		var calls [][]int
		ids, err := s.SaveContent(ctx, "file.file", first, fileDetail(first, &calls))
		if err != nil {
			t.Fatal(err)
		}
		units := []store.NewContent{fileUnit("x", arts[0].ID), fileUnit("y", ""), fileUnit("z", ""), fileUnit("x", arts[0].ID)}
		for i := range units {
			units[i].Unseen = true
		}
		calls = nil
		saved, err := s.SaveUnits(ctx, "file.file", units, fileDetail(units, &calls))
		if err != nil {
			t.Fatal(err)
		}
		if saved[0].ID != ids[0] || saved[1].ID != ids[1] || saved[3].ID != ids[0] || saved[2].ID == "" || saved[2].ID == ids[0] || saved[2].ID == ids[1] {
			t.Fatalf("saved %+v, want x=%s y=%s and a new z", saved, ids[0], ids[1])
		}
		if saved[0].ContentArtifactIDs != nil || saved[1].ContentArtifactIDs != nil || len(saved[2].ContentArtifactIDs) != 1 {
			t.Errorf("new content artifacts %+v, want only z's", saved)
		}
		if len(calls) != 1 || !slices.Equal(calls[0], []int{2}) {
			t.Errorf("saveDetail calls %v, want [[2]]", calls)
		}
		if a := caArtifact(t, s, ids[0]); a.String != arts[0].ID {
			t.Errorf("x's artifact = %v, want %s", a, arts[0].ID)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM content`); n != 3 {
			t.Errorf("content rows = %d, want 3", n)
		}
		if n := countWhere(t, s, `SELECT COUNT(*) FROM content_artifacts`); n != 3 {
			t.Errorf("content artifacts = %d, want 3", n)
		}
	})
}
