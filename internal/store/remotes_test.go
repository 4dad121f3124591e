package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

func remotePtr[T any](v T) *T { return &v }

func fullRemote(name string) *store.Remote {
	return &store.Remote{
		PulpType: "file.file", Name: name, URL: "https://example.com/" + name + "/PULP_MANIFEST", Policy: "on_demand",
		CACert: remotePtr("ca"), ClientCert: remotePtr("cert"), ClientKey: remotePtr("key"), TLSValidation: true,
		ProxyURL: remotePtr("http://proxy:3128"), ProxyUsername: remotePtr("pu"), ProxyPassword: remotePtr("pp"),
		Username: remotePtr("u"), Password: remotePtr(" p "),
		DownloadConcurrency: remotePtr[int64](5), MaxRetries: remotePtr[int64](0), RateLimit: remotePtr[int64](7),
		TotalTimeout: remotePtr(1.5), ConnectTimeout: remotePtr[float64](0), SockConnectTimeout: remotePtr(2.25), SockReadTimeout: remotePtr[float64](3),
		Headers: []map[string]string{{"X-B": "2"}, {"X-A": "1"}, {"User-Agent": "extra"}},
		Labels:  map[string]string{"env": "prod", "a b.c-d": "x,y"},
	}
}

func TestRemoteCRUD(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := fullRemote("one")
		if err := s.InsertRemote(ctx, nil, r); err != nil {
			t.Fatal(err)
		}
		if r.ID == "" || r.Created == 0 || r.LastUpdated != r.Created {
			t.Fatalf("insert did not fill id and timestamps: %+v", r)
		}
		got, err := s.GetRemote(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, got); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
		byName, err := s.RemoteByName(ctx, "one")
		if err != nil || byName.ID != r.ID {
			t.Fatalf("by name: %v %v", byName, err)
		}

		// A minimal remote: every nullable column NULL, empty headers and labels.
		min := &store.Remote{PulpType: "file.file", Name: "two", URL: "file:///srv/x", Policy: "immediate"}
		if err := s.InsertRemote(ctx, nil, min); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetRemote(ctx, min.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.CACert != nil || got.DownloadConcurrency != nil || got.TotalTimeout != nil || got.Password != nil ||
			got.Headers == nil || len(got.Headers) != 0 || got.Labels == nil || len(got.Labels) != 0 || got.TLSValidation {
			t.Fatalf("minimal remote read back as %+v", got)
		}

		if err := s.InsertRemote(ctx, nil, &store.Remote{PulpType: "file.file", Name: "one", URL: "u", Policy: "immediate"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name: %v, want ErrConflict", err)
		}

		// Whole-row update, including clearing nullable columns.
		up := *got
		up.URL, up.Policy, up.CACert, up.Headers = "https://new", "streamed", remotePtr("new ca"), []map[string]string{{"X": "y"}}
		before := up.LastUpdated
		if err := s.UpdateRemote(ctx, nil, &up); err != nil {
			t.Fatal(err)
		}
		if up.LastUpdated <= before {
			t.Fatalf("last_updated not advanced: %d -> %d", before, up.LastUpdated)
		}
		got, _ = s.GetRemote(ctx, min.ID)
		if diff := cmp.Diff(&up, got); diff != "" {
			t.Fatalf("after update (-want +got):\n%s", diff)
		}
		up.Name = "one"
		if err := s.UpdateRemote(ctx, nil, &up); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("rename onto a taken name: %v, want ErrConflict", err)
		}
		ghost := up
		ghost.ID, ghost.Name = store.NewID(), "ghost"
		if err := s.UpdateRemote(ctx, nil, &ghost); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update of a missing row: %v, want ErrNotFound", err)
		}

		list, err := s.ListRemotes(ctx, " WHERE policy = $1", []any{"on_demand"}, "", 10, 0)
		if err != nil || len(list) != 1 || list[0].Name != "one" {
			t.Fatalf("list: %v %v", list, err)
		}
		list, err = s.ListRemotes(ctx, "", nil, "name DESC", 1, 1)
		if err != nil || len(list) != 1 || list[0].Name != "one" {
			t.Fatalf("list page: %v %v", list, err)
		}
		if n, err := s.CountRemotes(ctx, "", nil); err != nil || n != 2 {
			t.Fatalf("count = %d %v, want 2", n, err)
		}

		if err := s.DeleteRemote(ctx, nil, r.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRemote(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := s.DeleteRemote(ctx, nil, r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if n, _ := s.CountRemotes(ctx, "", nil); n != 1 {
			t.Fatalf("count after delete = %d, want 1", n)
		}
	})
}

func TestDeleteRemoteReferences(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := fullRemote("src")
		if err := s.InsertRemote(ctx, nil, r); err != nil {
			t.Fatal(err)
		}
		repoID := store.NewID()
		if _, err := s.Exec(ctx, `INSERT INTO repositories (id, created, last_updated, pulp_type, name, next_version, remote_id) VALUES ($1, 1, 1, 'file.file', 'repo', 1, $2)`, repoID, r.ID); err != nil {
			t.Fatal(err)
		}
		acsID := store.NewID()
		if _, err := s.Exec(ctx, `INSERT INTO alternate_content_sources (id, created, last_updated, pulp_type, name, remote_id) VALUES ($1, 1, 1, 'file.file', 'acs', $2)`, acsID, r.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRemote(ctx, nil, r.ID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("delete of a remote an ACS uses: %v, want ErrConflict", err)
		}
		if _, err := s.Exec(ctx, `DELETE FROM alternate_content_sources WHERE id = $1`, acsID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRemote(ctx, nil, r.ID); err != nil {
			t.Fatal(err)
		}
		var remote *string
		if err := s.QueryRow(ctx, `SELECT remote_id FROM repositories WHERE id = $1`, repoID).Scan(&remote); err != nil || remote != nil {
			t.Fatalf("repository remote after delete = %v (%v), want NULL", remote, err)
		}
	})
}

func TestModifyRemoteConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := fullRemote("busy")
		r.Labels = map[string]string{}
		if err := s.InsertRemote(ctx, nil, r); err != nil {
			t.Fatal(err)
		}
		// Half the writers rewrite the whole row, half only set a label:
		// with compare-and-set, no writer's change may be lost.
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := s.ModifyRemote(ctx, r.ID, func(r *store.Remote) error {
					r.Headers = append(r.Headers, map[string]string{fmt.Sprintf("X-%d", i): "v"})
					return nil
				})
				errs <- err
			}()
			go func() {
				defer wg.Done()
				_, err := s.ModifyLabels(ctx, "remotes", r.ID, func(l map[string]string) error {
					l[fmt.Sprintf("k%d", i)] = "v"
					return nil
				})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.GetRemote(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Labels) != n || len(got.Headers) != len(r.Headers)+n {
			t.Fatalf("lost updates: %d labels, %d headers; want %d and %d", len(got.Labels), len(got.Headers), n, len(r.Headers)+n)
		}

		stop := errors.New("stop")
		if _, err := s.ModifyRemote(ctx, r.ID, func(*store.Remote) error { return stop }); err != stop {
			t.Fatalf("fn error = %v, want it returned as is", err)
		}
		if _, err := s.ModifyRemote(ctx, store.NewID(), func(*store.Remote) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("modify missing: %v", err)
		}
		if _, err := s.ModifyLabels(ctx, "remotes", store.NewID(), func(map[string]string) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("labels of missing: %v", err)
		}
		if _, err := s.ModifyLabels(ctx, "remotes; DROP TABLE remotes", r.ID, func(map[string]string) error { return nil }); err == nil {
			t.Fatal("ModifyLabels accepted a table name that is not an identifier")
		}
	})
}
