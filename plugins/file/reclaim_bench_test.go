package file

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/pith-project/pith/internal/repository"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// rsBenchUnits is the size of each served repository of
// BenchmarkRemoteSoleSource1M (PITH_BENCH_RECLAIM_UNITS sets another).
const rsBenchUnits = 1_000_000

// rsBulk fills a served repository with n file units whose remote
// artifacts come from remoteID, all lazy or all stored (with artifacts
// whose sha256 the remote artifacts share), in a few set-based statements.
func rsBulk(b *testing.B, s *store.Store, prefix, remoteID string, n int, stored bool) {
	b.Helper()
	ctx := context.Background()
	series := `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ` + strconv.Itoa(n-1) + `) SELECT %s FROM n`
	if s.Dialect() == "postgres" {
		series = `SELECT %s FROM generate_series(0, ` + strconv.Itoa(n-1) + `) AS n(i)`
	}
	p := "'" + prefix
	repoID, remote := store.NewID(), "'"+remoteID+"'"
	art := "NULL"
	if stored {
		art = p + "a' || i"
	}
	stmts := []string{
		`INSERT INTO repositories (id, created, last_updated, pulp_type, name, next_version, remote_id) VALUES ('` + repoID + `', 1, 1, 'file.file', '` + prefix + `', 2, ` + remote + `)`,
		`INSERT INTO repository_versions (id, created, last_updated, repository_id, number, complete) VALUES ('` + store.NewID() + `', 1, 1, '` + repoID + `', 1, TRUE)`,
		`INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path, repository_id) VALUES ('` + store.NewID() + `', 1, 1, 'file.file', '` + prefix + `', '` + prefix + `', '` + repoID + `')`,
		`INSERT INTO content (id, created, last_updated, pulp_type, timestamp_of_interest, natural_key, repo_key) ` +
			fmt.Sprintf(series, p+"c' || i, 1, 1, 'file.file', 1, "+p+"' || i, "+p+"' || i"),
		`INSERT INTO content_artifacts (id, created, last_updated, content_id, artifact_id, relative_path) ` +
			fmt.Sprintf(series, p+"ca' || i, 1, 1, "+p+"c' || i, "+art+", "+p+"/' || i"),
		`INSERT INTO remote_artifacts (id, created, last_updated, content_artifact_id, remote_id, url, size, sha256) ` +
			fmt.Sprintf(series, p+"ra' || i, 1, 1, "+p+"ca' || i, "+remote+", 'http://x/' || i, 1, "+p+"h' || i"),
		`INSERT INTO repository_content (id, created, repository_id, content_id, version_added) ` +
			fmt.Sprintf(series, p+"rc' || i, 1, '"+repoID+"', "+p+"c' || i, 1"),
	}
	if stored {
		stmts = append([]string{`INSERT INTO artifacts (id, created, last_updated, file, size, sha256, timestamp_of_interest) ` +
			fmt.Sprintf(series, p+"a' || i, 1, 1, 'artifact/' || i, 1, "+p+"h' || i, 1")}, stmts...)
	}
	for _, q := range stmts {
		if _, err := s.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q[:60], err)
		}
	}
	if s.Dialect() == "postgres" {
		if _, err := s.Exec(ctx, `ANALYZE`); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRemoteSoleSource1M measures the remote-deletion check, the
// reclaim count and a version download's page query with two served
// repositories of 1,000,000 units each: one lazy from remote "lazy", one
// stored from remote "stored"; remote "idle" has nothing.
func BenchmarkRemoteSoleSource1M(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy benchmark; not under -short")
	}
	n := rsBenchUnits
	if v := os.Getenv("PITH_BENCH_RECLAIM_UNITS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("PITH_BENCH_RECLAIM_UNITS=%q", v)
		}
	}
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			s := storetest.Open(b, be)
			ctx := context.Background()
			remotes := map[string]string{}
			for _, name := range []string{"lazy", "stored", "idle"} {
				r := &store.Remote{PulpType: Type, Name: name, URL: "http://x/PULP_MANIFEST", Policy: "on_demand", TLSValidation: true,
					Headers: []map[string]string{}, Labels: map[string]string{}}
				if err := s.InsertRemote(ctx, nil, r); err != nil {
					b.Fatal(err)
				}
				remotes[name] = r.ID
			}
			rsBulk(b, s, "l", remotes["lazy"], n, false)
			rsBulk(b, s, "s", remotes["stored"], n, true)
			for _, tc := range []struct {
				remote string
				want   int64
			}{{"lazy", int64(n)}, {"stored", 0}, {"idle", 0}} {
				b.Run("sole-source-"+tc.remote, func(b *testing.B) {
					for b.Loop() {
						got, err := s.RemoteSoleSource(ctx, nil, remotes[tc.remote])
						if err != nil || got.Units != tc.want {
							b.Fatalf("%+v %v, want %d units", got, err, tc.want)
						}
					}
				})
			}
			var repoS string
			if err := s.QueryRow(ctx, `SELECT id FROM repositories WHERE name = 's'`).Scan(&repoS); err != nil {
				b.Fatal(err)
			}
			b.Run("reclaim-count", func(b *testing.B) {
				for b.Loop() {
					got, err := s.CountReclaimable(ctx, store.ReclaimScope{Repositories: []string{repoS}})
					if err != nil || got != int64(n) {
						b.Fatalf("%d %v", got, err)
					}
				}
			})
			var repoL string
			if err := s.QueryRow(ctx, `SELECT id FROM repositories WHERE name = 'l'`).Scan(&repoL); err != nil {
				b.Fatal(err)
			}
			v := &repository.VersionRow{RepositoryID: repoL, Number: 1}
			b.Run("download-10-pages", func(b *testing.B) {
				for b.Loop() {
					pages := 0
					stop := fmt.Errorf("enough")
					err := (&Deps{Store: s}).eachMissing(ctx, v, func(missingUnit) error {
						pages++
						if pages == 5000 {
							return stop
						}
						return nil
					})
					if err != stop {
						b.Fatal(err)
					}
				}
			})
			// Last: it changes the data. The time to the first released
			// batch: the candidate query's start-up plus one release.
			b.Run("reclaim-first-batch", func(b *testing.B) {
				scope := store.ReclaimScope{Repositories: []string{repoS}}
				stop := fmt.Errorf("enough")
				for b.Loop() {
					err := s.ReclaimCandidates(ctx, scope, 500, func(batch []store.Reclaimed) error {
						released, err := s.ReleaseArtifacts(ctx, scope, batch)
						if err != nil {
							return err
						}
						if len(released) != len(batch) {
							return fmt.Errorf("released %d of %d", len(released), len(batch))
						}
						return stop
					})
					if err != stop {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
