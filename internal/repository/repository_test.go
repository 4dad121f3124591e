package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// unit inserts a content row with the given repo key and returns its id.
func unit(t *testing.T, s *store.Store, key, digest string) string {
	t.Helper()
	id := store.NewID()
	now := store.Now()
	if _, err := s.Exec(context.Background(), `INSERT INTO content (id, created, last_updated, pulp_type, timestamp_of_interest, natural_key, repo_key)
		VALUES ($1, $2, $2, 'file.file', $2, $3, $4)`, id, now, digest+":"+key, key); err != nil {
		t.Fatal(err)
	}
	return id
}

func members(t *testing.T, s *store.Store, repoID string, number int) []string {
	t.Helper()
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	cond := Membership(arg, repoID, number)
	rows, err := s.Query(context.Background(), `SELECT rc.content_id FROM repository_content rc WHERE `+cond, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func build(t *testing.T, s *store.Store, repoID string, base *VersionRow, fn func(v *Version)) *VersionRow {
	t.Helper()
	ctx := context.Background()
	v, err := NewVersion(ctx, s, repoID, base)
	if err != nil {
		t.Fatal(err)
	}
	fn(v)
	row, err := v.Finalize(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func counts(t *testing.T, s *store.Store, v *VersionRow) Counts {
	t.Helper()
	c, err := VersionCounts(context.Background(), s, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	return c[v.ID]
}

func TestVersionSemantics(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		repo := &Repo{PulpType: "file.file", Name: "r1"}
		if err := Create(ctx, s, repo); err != nil {
			t.Fatal(err)
		}
		if err := Create(ctx, s, &Repo{PulpType: "file.file", Name: "r1"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name: %v", err)
		}
		v0, err := Latest(ctx, s, repo.ID)
		if err != nil || v0.Number != 0 {
			t.Fatalf("version 0: %v %v", v0, err)
		}
		a, b, c := unit(t, s, "a", "1"), unit(t, s, "b", "1"), unit(t, s, "c", "1")
		v1 := build(t, s, repo.ID, nil, func(v *Version) {
			if err := v.Add(ctx, []string{a, b, c, a}); err != nil {
				t.Fatal(err)
			}
		})
		if v1 == nil || v1.Number != 1 {
			t.Fatalf("v1: %+v", v1)
		}
		if got := counts(t, s, v1); got["added"]["file.file"] != 3 || got["present"]["file.file"] != 3 {
			t.Fatalf("v1 counts: %v", got)
		}
		// A change that changes nothing makes no version and uses no number.
		if none := build(t, s, repo.ID, nil, func(v *Version) { v.Add(ctx, []string{a, b}) }); none != nil {
			t.Fatalf("no-op made version %d", none.Number)
		}
		// Same repo key replaces the old unit.
		a2 := unit(t, s, "a", "2")
		v2 := build(t, s, repo.ID, nil, func(v *Version) { v.Add(ctx, []string{a2}) })
		if v2.Number != 2 {
			t.Fatalf("numbers reused or skipped: %d", v2.Number)
		}
		if got := members(t, s, repo.ID, 2); !slices.Equal(got, sorted(a2, b, c)) {
			t.Fatalf("v2 members: %v", got)
		}
		if got := counts(t, s, v2); got["added"]["file.file"] != 1 || got["removed"]["file.file"] != 1 || got["present"]["file.file"] != 3 {
			t.Fatalf("v2 counts: %v", got)
		}
		if got := members(t, s, repo.ID, 1); !slices.Equal(got, sorted(a, b, c)) {
			t.Fatalf("v1 changed: %v", got)
		}
		// Two new units with one key fail, and leave nothing behind.
		dup1, dup2 := unit(t, s, "d", "1"), unit(t, s, "d", "2")
		v, _ := NewVersion(ctx, s, repo.ID, nil)
		v.Add(ctx, []string{dup1, dup2})
		var dk *DuplicateKeyError
		if _, err := v.Finalize(ctx, nil); !errors.As(err, &dk) {
			t.Fatalf("duplicate keys: %v", err)
		}
		if err := v.Discard(ctx); err != nil {
			t.Fatal(err)
		}
		if got := members(t, s, repo.ID, 2); !slices.Equal(got, sorted(a2, b, c)) {
			t.Fatalf("discard changed v2: %v", got)
		}
		// Removal.
		v3 := build(t, s, repo.ID, nil, func(v *Version) { v.Remove(ctx, []string{b}) })
		if v3.Number != 3 {
			t.Fatalf("failed version consumed a number: v3 is %d", v3.Number)
		}
		if got := members(t, s, repo.ID, 3); !slices.Equal(got, sorted(a2, c)) {
			t.Fatalf("v3: %v", got)
		}
		// Mirror: everything not re-added goes.
		d := unit(t, s, "d", "3")
		v4 := build(t, s, repo.ID, nil, func(v *Version) {
			v.RemoveAll(ctx)
			v.Add(ctx, []string{c, d})
		})
		if got := members(t, s, repo.ID, 4); !slices.Equal(got, sorted(c, d)) {
			t.Fatalf("mirror v4: %v", got)
		}
		if got := counts(t, s, v4); got["added"]["file.file"] != 1 || got["removed"]["file.file"] != 1 || got["present"]["file.file"] != 2 {
			t.Fatalf("v4 counts: %v", got)
		}
		// Base version: v5 = v1's content.
		v5 := build(t, s, repo.ID, v1, func(v *Version) {})
		if got := members(t, s, repo.ID, 5); !slices.Equal(got, sorted(a, b, c)) {
			t.Fatalf("v5 from base v1: %v", got)
		}
		// Squash: deleting v2 folds its changes into v3; every other
		// version keeps its content.
		before := map[int][]string{}
		for _, n := range []int{1, 3, 4, 5} {
			before[n] = members(t, s, repo.ID, n)
		}
		if err := DeleteVersion(ctx, s, v2); err != nil {
			t.Fatal(err)
		}
		for n, want := range before {
			if got := members(t, s, repo.ID, n); !slices.Equal(got, want) {
				t.Errorf("after deleting v2, v%d = %v, want %v", n, got, want)
			}
		}
		v3b, _ := GetVersion(ctx, s, repo.ID, 3)
		if got := counts(t, s, v3b); got["added"]["file.file"] != 1 || got["removed"]["file.file"] != 2 || got["present"]["file.file"] != 2 {
			t.Fatalf("v3 counts after squash: %v", got)
		}
		// Deleting the latest reverts it.
		if err := DeleteVersion(ctx, s, v5); err != nil {
			t.Fatal(err)
		}
		if got := members(t, s, repo.ID, 4); !slices.Equal(got, before[4]) {
			t.Fatalf("v4 after deleting latest: %v", got)
		}
		v6 := build(t, s, repo.ID, nil, func(v *Version) { v.Add(ctx, []string{b}) })
		if v6.Number != 6 {
			t.Fatalf("number after deleting latest: %d (numbers are never reused)", v6.Number)
		}
		// A distribution protects what it serves.
		now := store.Now()
		s.Exec(ctx, `INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path, repository_version_id) VALUES ($1, $2, $2, 'file.file', 'd', 'd', $3)`, store.NewID(), now, v4.ID)
		if err := DeleteVersion(ctx, s, v4); !errors.Is(err, ErrProtected) {
			t.Fatalf("protected: %v", err)
		}
		// Retention keeps the newest, skipping protected ones.
		two := 2
		repo, _ = Get(ctx, s, repo.ID)
		repo.RetainRepoVersions = &two
		Update(ctx, s, repo)
		if err := ApplyRetention(ctx, s, repo.ID); err != nil {
			t.Fatal(err)
		}
		var nums []int
		rows, _ := s.Query(ctx, `SELECT number FROM repository_versions WHERE repository_id = $1 AND complete ORDER BY number`, repo.ID)
		for rows.Next() {
			var n int
			rows.Scan(&n)
			nums = append(nums, n)
		}
		rows.Close()
		if !slices.Equal(nums, []int{4, 6}) {
			t.Fatalf("after retention: %v, want [4 6]", nums)
		}
		if got := members(t, s, repo.ID, 6); !slices.Equal(got, sorted(b, c, d)) {
			t.Fatalf("v6 after retention: %v", got)
		}
		// The last version cannot be deleted.
		r2 := &Repo{PulpType: "file.file", Name: "r2"}
		Create(ctx, s, r2)
		only, _ := Latest(ctx, s, r2.ID)
		if err := DeleteVersion(ctx, s, only); !errors.Is(err, ErrLastVersion) {
			t.Fatalf("last version: %v", err)
		}
		// Discarding a version after it completed changes nothing.
		done, _ := NewVersion(ctx, s, r2.ID, nil)
		done.Add(ctx, []string{c})
		doneRow, err := done.Finalize(ctx, nil)
		if err != nil || doneRow == nil {
			t.Fatal(err)
		}
		if err := done.Discard(ctx); err != nil {
			t.Fatal(err)
		}
		if got := members(t, s, r2.ID, doneRow.Number); !slices.Equal(got, []string{c}) {
			t.Fatalf("discard after finalize changed the version: %v", got)
		}
		// An incomplete version left by a crash is undone by the next one.
		crash, _ := NewVersion(ctx, s, r2.ID, nil)
		crash.Add(ctx, []string{a})
		if got := members(t, s, r2.ID, doneRow.Number); !slices.Equal(got, []string{c}) {
			t.Fatalf("incomplete version visible: %v", got)
		}
		next, _ := NewVersion(ctx, s, r2.ID, nil)
		row, _ := next.Finalize(ctx, nil)
		if row != nil {
			t.Fatalf("crash leftovers leaked into the next version %d", row.Number)
		}
		if err := Delete(ctx, s, repo.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := Get(ctx, s, repo.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted repo: %v", err)
		}
	})
}

// A unit removed and added again within one version is back, with its
// original interval: the add finds it among the version's removals.
func TestReAddAfterRemoveInOneVersion(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		repo := &Repo{PulpType: "file.file", Name: "readd"}
		if err := Create(ctx, s, repo); err != nil {
			t.Fatal(err)
		}
		a, b, c := unit(t, s, "a", "1"), unit(t, s, "b", "1"), unit(t, s, "c", "1")
		build(t, s, repo.ID, nil, func(v *Version) {
			if err := v.Add(ctx, []string{a, b}); err != nil {
				t.Fatal(err)
			}
		})
		if none := build(t, s, repo.ID, nil, func(v *Version) {
			if err := v.Remove(ctx, []string{a}); err != nil {
				t.Fatal(err)
			}
			if err := v.Add(ctx, []string{a}); err != nil {
				t.Fatal(err)
			}
		}); none != nil {
			t.Fatalf("remove and re-add made version %d", none.Number)
		}
		v2 := build(t, s, repo.ID, nil, func(v *Version) {
			if err := v.Remove(ctx, []string{b}); err != nil {
				t.Fatal(err)
			}
			if err := v.Add(ctx, []string{c, b}); err != nil {
				t.Fatal(err)
			}
		})
		if v2 == nil || v2.Number != 2 {
			t.Fatalf("v2 = %+v", v2)
		}
		if got, want := members(t, s, repo.ID, 2), sorted(a, b, c); !slices.Equal(got, want) {
			t.Fatalf("v2 members = %v, want %v", got, want)
		}
		if got := counts(t, s, v2); got["added"]["file.file"] != 1 || got["removed"]["file.file"] != 0 {
			t.Fatalf("v2 counts: %v", got)
		}
		var rows int
		if err := s.QueryRow(ctx, `SELECT COUNT(*) FROM repository_content WHERE repository_id = $1`, repo.ID).Scan(&rows); err != nil || rows != 3 {
			t.Fatalf("membership rows = %d, %v; want 3 (one interval each)", rows, err)
		}
	})
}
