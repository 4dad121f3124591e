package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The batch queries below serve the sync pipeline. Each works on a batch of
// any size, split into statements of at most maxBatch rows or IN items, so
// that statement parameters stay far below both engines' limits.
const maxBatch = 500

// inList renders n placeholders "$start, …, $start+n-1".
func inList(start, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(start + i))
	}
	return b.String()
}

// valuesList renders rows tuples of cols placeholders, numbered from $1.
func valuesList(rows, cols int) string {
	var b strings.Builder
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		b.WriteString(inList(1+r*cols, cols))
		b.WriteByte(')')
	}
	return b.String()
}

// Col is a column of InsertRows: its name and PostgreSQL type ("text",
// "bigint" or "integer").
type Col struct{ Name, Type string }

// InsertRows renders an INSERT of rows (values in cols' order: strings,
// *string, integers or nil) into table, followed by suffix (ON CONFLICT …,
// RETURNING …, without placeholders), and returns it with its arguments.
// SQLite gets one VALUES tuple per row. PostgreSQL gets one array per
// column, unnested: a multi-row VALUES list costs it planning and binding
// per value, about as much as inserting the row.
func (s *Store) InsertRows(table string, cols []Col, rows [][]any, suffix string) (string, []any) {
	return s.insertRows(`INSERT INTO `, table, cols, rows, suffix)
}

// InsertNew is InsertRows for rows that may exist already: those that
// conflict with a stored row on the unique columns conflict (PostgreSQL's
// conflict target) are skipped, and returning (a RETURNING clause, or "")
// reports the inserted ones. SQLite gets INSERT OR IGNORE, which skips a
// row violating any uniqueness or NOT NULL constraint: unlike a statement
// that may abort halfway (ON CONFLICT … DO NOTHING still does, on the other
// constraints), it needs no statement journal, which in a multi-statement
// transaction copies every page the statement changes. That is about as
// many bytes as the WAL gets for a sync's scattered index inserts. The
// table must have no foreign keys for that to hold; checking one can abort.
func (s *Store) InsertNew(table string, cols []Col, rows [][]any, conflict, returning string) (string, []any) {
	if s.dialect.name() != "postgres" {
		return s.insertRows(`INSERT OR IGNORE INTO `, table, cols, rows, returning)
	}
	return s.insertRows(`INSERT INTO `, table, cols, rows, `ON CONFLICT `+conflict+` DO NOTHING `+returning)
}

func (s *Store) insertRows(verb, table string, cols []Col, rows [][]any, suffix string) (string, []any) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	head := verb + table + ` (` + strings.Join(names, ", ") + `) `
	if s.dialect.name() != "postgres" {
		args := make([]any, 0, len(rows)*len(cols))
		for _, r := range rows {
			args = append(args, r...)
		}
		return s.Bulk(head + `VALUES ` + valuesList(len(rows), len(cols)) + ` ` + suffix), args
	}
	args := make([]any, len(cols))
	casts := make([]string, len(cols))
	for j, c := range cols {
		casts[j] = `$` + strconv.Itoa(j+1) + `::` + c.Type + `[]`
		switch c.Type {
		case "text":
			col := make([]*string, len(rows))
			for i, r := range rows {
				switch v := r[j].(type) {
				case string:
					col[i] = &v
				case *string:
					col[i] = v
				case nil:
				default:
					panic(fmt.Sprintf("store: insert into %s.%s: %T is not text", table, c.Name, v))
				}
			}
			args[j] = col
		default:
			col := make([]*int64, len(rows))
			for i, r := range rows {
				var n int64
				switch v := r[j].(type) {
				case int64:
					n = v
				case int:
					n = int64(v)
				case nil:
					continue
				default:
					panic(fmt.Sprintf("store: insert into %s.%s: %T is not an integer", table, c.Name, v))
				}
				col[i] = &n
			}
			args[j] = col
		}
	}
	return head + `SELECT * FROM unnest(` + strings.Join(casts, ", ") + `) ` + suffix, args
}

// Bulk adapts a statement with many parameters to the engine. SQLite reads
// "$n" as a named parameter and "?n" as a numbered one, and both cost a
// linear search per parameter when preparing or binding, which makes a
// statement with thousands of them quadratic. Anonymous "?" parameters cost
// nothing, so for SQLite the $n are rewritten to "?"; this requires them to
// appear in the text as $1, $2, … in order, each once (checked: a mistake is
// a programming error). PostgreSQL gets the statement as written.
func (s *Store) Bulk(q string) string {
	if s.dialect.name() != "sqlite" {
		return q
	}
	b := make([]byte, 0, len(q))
	next := 1
	for i := 0; i < len(q); i++ {
		if q[i] != '$' || i+1 == len(q) || q[i+1] < '0' || q[i+1] > '9' {
			b = append(b, q[i])
			continue
		}
		j := i + 1
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			j++
		}
		if n, _ := strconv.Atoi(q[i+1 : j]); n != next {
			panic(fmt.Sprintf("store: bulk statement has $%d where $%d was due", n, next))
		}
		next++
		b = append(b, '?')
		i = j - 1
	}
	return string(b)
}

// chunks calls fn for consecutive pieces of s of at most maxBatch elements.
func chunks[T any](s []T, fn func([]T) error) error {
	for len(s) > 0 {
		n := min(len(s), maxBatch)
		if err := fn(s[:n]); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}

func anys[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Columns of the bulk inserts.
var (
	artifactCols = []Col{{"id", "text"}, {"created", "bigint"}, {"last_updated", "bigint"}, {"file", "text"}, {"size", "bigint"},
		{"md5", "text"}, {"sha1", "text"}, {"sha224", "text"}, {"sha256", "text"}, {"sha384", "text"}, {"sha512", "text"}, {"timestamp_of_interest", "bigint"}}
	contentCols = []Col{{"id", "text"}, {"created", "bigint"}, {"last_updated", "bigint"}, {"pulp_type", "text"},
		{"timestamp_of_interest", "bigint"}, {"natural_key", "text"}, {"repo_key", "text"}, {"pulp_labels", "text"}}
	contentArtifactCols = []Col{{"id", "text"}, {"created", "bigint"}, {"last_updated", "bigint"}, {"content_id", "text"},
		{"artifact_id", "text"}, {"relative_path", "text"}}
	remoteArtifactCols = []Col{{"id", "text"}, {"created", "bigint"}, {"last_updated", "bigint"}, {"content_artifact_id", "text"},
		{"remote_id", "text"}, {"url", "text"}, {"size", "bigint"}, {"sha224", "text"}, {"sha256", "text"}, {"sha384", "text"}, {"sha512", "text"}}
)

// KeyedRows renders a condition selecting the rows of table (which has an
// id primary key) that satisfy cond and whose column col equals one of
// keys, with the keys' placeholders numbered from next; it returns the
// condition and the keys' arguments, to append after cond's. cond names
// the table's columns unqualified and uses only placeholders below next.
//
// SQLite gets "cond AND col IN (…)". PostgreSQL gets the keys as one
// array, each looked up on its own through the index on cond's columns and
// col. Given "col IN (…)" it may instead scan every row matching cond and
// filter: the generic plan of a prepared statement takes that path when
// the table has no statistics (autovacuum off, or early in a big sync),
// which makes every batch cost as much as the whole table and a big sync
// quadratic. The lateral lookup has no such alternative.
func (s *Store) KeyedRows(table, cond, col string, next int, keys []string) (string, []any) {
	if s.dialect.name() != "postgres" {
		return cond + ` AND ` + col + ` IN (` + inList(next, len(keys)) + `)`, anys(keys)
	}
	return `id IN (SELECT m.id FROM unnest($` + strconv.Itoa(next) + `::text[]) AS keys(k) CROSS JOIN LATERAL
		(SELECT id FROM ` + table + ` WHERE ` + cond + ` AND ` + col + ` = keys.k OFFSET 0) m)`, []any{keys}
}

// ArtifactsBySHA256 returns the artifacts with the given sha256 digests,
// keyed by lower-case sha256, and touches their timestamp_of_interest so
// orphan cleanup spares them while a sync uses them. Missing digests are
// simply absent from the map.
func (s *Store) ArtifactsBySHA256(ctx context.Context, sha256s []string) (map[string]*Artifact, error) {
	out := make(map[string]*Artifact, len(sha256s))
	keys := make([]string, 0, len(sha256s))
	seen := make(map[string]bool, len(sha256s))
	for _, h := range sha256s {
		h = strings.ToLower(h)
		if h != "" && !seen[h] {
			seen[h] = true
			keys = append(keys, h)
		}
	}
	slices.Sort(keys) // a stable lock order between concurrent syncs
	now := Now()
	err := chunks(keys, func(c []string) error {
		// A sync mostly asks for artifacts not stored yet: look without
		// the write lock first, and write only if some are.
		c, err := s.existing(ctx, `SELECT sha256 FROM artifacts WHERE sha256 IN (`+inList(1, len(c))+`)`, nil, c)
		if err != nil || len(c) == 0 {
			return err
		}
		// One statement both touches and reads.
		rows, err := s.writeQuery(ctx, s.Bulk(`UPDATE artifacts SET timestamp_of_interest = $1 WHERE sha256 IN (`+inList(2, len(c))+`) RETURNING `+ArtifactColumns),
			append([]any{now}, anys(c)...)...)
		if err != nil {
			return err
		}
		return scanArtifacts(rows, func(a *Artifact) { out[a.SHA256] = a })
	})
	if err != nil {
		return nil, fmt.Errorf("store: artifacts by sha256: %w", err)
	}
	return out, nil
}

// writeQuery runs a row-returning write statement outside a transaction,
// holding the SQLite write lock until the rows are read by the caller's
// scan (see scanArtifacts and friends, which close rows).
func (s *Store) writeQuery(ctx context.Context, q string, args ...any) (*lockedRows, error) {
	if s.writeMu != nil {
		s.writeMu.Lock()
	}
	rows, err := s.wdb.QueryContext(ctx, q, args...)
	if err != nil {
		if s.writeMu != nil {
			s.writeMu.Unlock()
		}
		return nil, err
	}
	return &lockedRows{Rows: rows, s: s}, nil
}

// lockedRows releases the SQLite write lock when closed.
type lockedRows struct {
	*sql.Rows
	s    *Store
	done bool
}

func (r *lockedRows) Close() error {
	err := r.Rows.Close()
	if !r.done {
		r.done = true
		if r.s.writeMu != nil {
			r.s.writeMu.Unlock()
		}
	}
	return err
}

type rowsCloser interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}

func scanArtifacts(rows rowsCloser, fn func(*Artifact)) error {
	defer rows.Close()
	for rows.Next() {
		a, err := ScanArtifact(rows)
		if err != nil {
			return err
		}
		fn(a)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// InsertArtifacts records committed artifacts in one transaction: new ones
// are inserted, those whose sha256 is already known are touched and
// returned as stored. The result is in input order, and inputs with one
// sha256 share a row. The inputs' ID (when empty) and timestamps are filled
// in; an input whose sha256 was known is not the stored row, the result is.
func (s *Store) InsertArtifacts(ctx context.Context, arts []*Artifact) ([]*Artifact, error) {
	if len(arts) == 0 {
		return nil, nil
	}
	now := Now()
	uniq := make([]*Artifact, 0, len(arts))
	seen := make(map[string]bool, len(arts))
	for _, a := range arts {
		a.SHA256 = strings.ToLower(a.SHA256)
		if a.SHA256 == "" {
			return nil, fmt.Errorf("store: insert artifacts: artifact %s has no sha256", a.File)
		}
		if !seen[a.SHA256] {
			seen[a.SHA256] = true
			uniq = append(uniq, a)
		}
	}
	// Sorted, so concurrent syncs take row locks in one order.
	slices.SortFunc(uniq, func(a, b *Artifact) int { return strings.Compare(a.SHA256, b.SHA256) })
	stored := make(map[string]*Artifact, len(uniq))
	err := s.InTx(ctx, func(tx *Tx) error {
		var known []*Artifact
		err := chunks(uniq, func(c []*Artifact) error {
			vals := make([][]any, len(c))
			for i, a := range c {
				if a.ID == "" {
					a.ID = NewID()
				}
				a.Created, a.LastUpdated, a.TimestampOfInterest = now, now, now
				vals[i] = []any{a.ID, a.Created, a.LastUpdated, a.File, a.Size, a.MD5, a.SHA1,
					nullStr(a.SHA224), a.SHA256, nullStr(a.SHA384), nullStr(a.SHA512), a.TimestampOfInterest}
			}
			q, args := s.InsertNew("artifacts", artifactCols, vals, ``, `RETURNING id, sha256`)
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			inserted := map[string]string{}
			if err := scanPairs(rows, func(id, sum string) { inserted[sum] = id }); err != nil {
				return err
			}
			for _, a := range c {
				if inserted[a.SHA256] == a.ID {
					stored[a.SHA256] = a
				} else {
					known = append(known, a)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Those already stored are touched and read back.
		return chunks(known, func(c []*Artifact) error {
			args := []any{now}
			for _, a := range c {
				args = append(args, a.SHA256)
			}
			rows, err := tx.Query(ctx, s.Bulk(`UPDATE artifacts SET timestamp_of_interest = $1 WHERE sha256 IN (`+inList(2, len(c))+`) RETURNING `+ArtifactColumns), args...)
			if err != nil {
				return err
			}
			return scanArtifacts(rows, func(a *Artifact) { stored[a.SHA256] = a })
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: insert artifacts: %w", err)
	}
	out := make([]*Artifact, len(arts))
	for i, a := range arts {
		out[i] = stored[a.SHA256]
		if out[i] == nil {
			// Another digest column (sha384, sha512) collided with a
			// different artifact: not a real-world case, but not silent.
			return nil, fmt.Errorf("store: insert artifacts: %s conflicts with a stored artifact on another digest", a.SHA256)
		}
	}
	return out, nil
}

// ContentByNaturalKeys returns the ids of the content units of pulpType
// with the given natural keys, keyed by natural key, and touches them.
func (s *Store) ContentByNaturalKeys(ctx context.Context, pulpType string, keys []string) (map[string]string, error) {
	found, err := s.FindContent(ctx, pulpType, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(found))
	for k, f := range found {
		out[k] = f.ID
	}
	return out, nil
}

// FoundContent is a stored unit found by natural key.
type FoundContent struct {
	ID string
	// Deferred counts its content artifacts that have no artifact yet
	// (on-demand content not downloaded).
	Deferred int
}

// FindContent is ContentByNaturalKeys telling also how many of each unit's
// content artifacts lack their artifact, so a sync can tell which existing
// units may need artifacts attached without reading them again.
func (s *Store) FindContent(ctx context.Context, pulpType string, keys []string) (map[string]FoundContent, error) {
	out := make(map[string]FoundContent, len(keys))
	uniq := dedupe(keys)
	slices.Sort(uniq)
	now := Now()
	err := chunks(uniq, func(c []string) error {
		// As in ArtifactsBySHA256: write only if some exist.
		where, keyArgs := s.KeyedRows("content", `pulp_type = $1`, "natural_key", 2, c)
		c, err := s.existing(ctx, `SELECT natural_key FROM content WHERE `+where, []any{pulpType}, keyArgs)
		if err != nil || len(c) == 0 {
			return err
		}
		// One statement touches and reads.
		where, keyArgs = s.KeyedRows("content", `pulp_type = $2`, "natural_key", 3, c)
		rows, err := s.writeQuery(ctx, s.Bulk(`UPDATE content SET timestamp_of_interest = $1 WHERE `+where+`
			RETURNING id, natural_key, (SELECT COUNT(*) FROM content_artifacts ca WHERE ca.content_id = content.id AND ca.artifact_id IS NULL)`),
			append([]any{now, pulpType}, keyArgs...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				f   FoundContent
				key string
			)
			if err := rows.Scan(&f.ID, &key, &f.Deferred); err != nil {
				return err
			}
			out[key] = f
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return rows.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("store: content by natural keys: %w", err)
	}
	return out, nil
}

// existing runs q, a read of one text column with args followed by
// keyArgs (a []string or the keys as []any), and returns the values found.
// It takes no write lock, so on SQLite it runs beside the writer.
func (s *Store) existing(ctx context.Context, q string, args []any, keyArgs any) ([]string, error) {
	switch k := keyArgs.(type) {
	case []string:
		args = append(args, anys(k)...)
	case []any:
		args = append(args, k...)
	}
	rows, err := s.db.QueryContext(ctx, s.Bulk(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	slices.Sort(out) // a stable lock order for the writes that follow
	return out, rows.Err()
}

func dedupe(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func scanPairs(rows rowsCloser, fn func(a, b string)) error {
	defer rows.Close()
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		fn(a, b)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// NewContent is a content unit to save: its identity and its artifacts.
type NewContent struct {
	// NaturalKey identifies the unit within its type; RepoKey decides which
	// unit it replaces inside a repository.
	NaturalKey, RepoKey string
	Labels              map[string]string // nil: none
	Artifacts           []NewContentArtifact
	// Unseen says the caller looked the unit up by natural key just
	// before and did not find it (as the sync pipeline does), so SaveUnits
	// does not look again before inserting. A unit stored meanwhile is
	// still found: its insert is skipped and it is read back.
	Unseen bool
}

// NewContentArtifact places an artifact in a unit at RelativePath.
// ArtifactID "" means deferred: the bytes are not downloaded yet.
type NewContentArtifact struct {
	RelativePath string
	ArtifactID   string
}

// caKey identifies a content artifact.
type caKey struct{ contentID, relPath string }

// caState is what is stored for a content artifact.
type caState struct {
	id         string
	artifactID string // "" when NULL
}

// SaveContent saves a batch of content units of pulpType and returns
// their ids in input order. Units whose natural key exists are reused (also
// when a concurrent transaction inserts them first). New units, their
// detail rows and their content artifacts are written in one transaction:
// saveDetail (which may be nil) is called in it with the input indexes and
// new ids of the units it created. An existing content artifact gets the
// given artifact when it has none or a different one (on-demand content
// becoming downloaded); a deferred input never clears a stored artifact. A
// batch that changes nothing writes nothing.
func (s *Store) SaveContent(ctx context.Context, pulpType string, units []NewContent, saveDetail func(tx *Tx, idx []int, ids []string) error) ([]string, error) {
	saved, err := s.SaveUnits(ctx, pulpType, units, saveDetail)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(saved))
	for i, u := range saved {
		ids[i] = u.ID
	}
	return ids, nil
}

// SavedContent is a unit saved by SaveUnits.
type SavedContent struct {
	ID string
	// ContentArtifactIDs, for a unit this call created, holds the ids of
	// its new content artifacts, in the order of its Artifacts ("" for a
	// relative path repeated within the unit); nil for other units. A
	// content artifact created just now has no remote artifacts yet.
	ContentArtifactIDs []string
}

// SaveUnits is SaveContent telling also the content artifacts it created.
func (s *Store) SaveUnits(ctx context.Context, pulpType string, units []NewContent, saveDetail func(tx *Tx, idx []int, ids []string) error) ([]SavedContent, error) {
	if len(units) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(units))
	for _, u := range units {
		if !u.Unseen {
			keys = append(keys, u.NaturalKey)
		}
	}
	uniq := dedupe(keys)
	slices.Sort(uniq)

	// Read first, without the write lock: a re-sync mostly meets units
	// that exist with the right artifacts, and then nothing is written.
	// Unseen units were looked for already; at scale each lookup is a few
	// page reads of a big, scattered index.
	ids, err := s.contentIDs(ctx, s.db, pulpType, uniq)
	if err != nil {
		return nil, fmt.Errorf("store: save %s content: %w", pulpType, err)
	}
	plan, err := s.planContentArtifacts(ctx, s.db, units, ids)
	if err != nil {
		return nil, fmt.Errorf("store: save %s content: %w", pulpType, err)
	}
	if len(ids) == len(uniq) && len(keys) == len(units) && plan.empty() {
		return orderIDs(units, ids, nil, nil), nil
	}
	var (
		inserted map[string]bool
		newCAs   map[caKey]string
	)

	err = s.InTx(ctx, func(tx *Tx) error {
		// Insert the missing units, first occurrence of each key.
		var (
			fresh  []int // input indexes to insert
			newIdx []int
			newIDs []string
			raced  []string // keys a concurrent transaction inserted first
		)
		inserted, newCAs = map[string]bool{}, map[caKey]string{}
		queued := map[string]bool{}
		for i, u := range units {
			if _, ok := ids[u.NaturalKey]; !ok && !queued[u.NaturalKey] {
				queued[u.NaturalKey] = true
				fresh = append(fresh, i)
			}
		}
		now := Now()
		err := chunks(fresh, func(c []int) error {
			vals := make([][]any, 0, len(c))
			for _, i := range c {
				u := units[i]
				labels := "{}"
				if len(u.Labels) > 0 {
					b, err := json.Marshal(u.Labels)
					if err != nil {
						return err
					}
					labels = string(b)
				}
				vals = append(vals, []any{NewID(), now, now, pulpType, now, u.NaturalKey, u.RepoKey, labels})
			}
			q, args := s.InsertNew("content", contentCols, vals, `(pulp_type, natural_key)`, `RETURNING id, natural_key`)
			rows, err := tx.Query(ctx, q, args...)
			if err != nil {
				return err
			}
			got := map[string]string{}
			if err := scanPairs(rows, func(id, key string) { got[key] = id }); err != nil {
				return err
			}
			for _, i := range c {
				k := units[i].NaturalKey
				if id, ok := got[k]; ok {
					ids[k], inserted[k] = id, true
					newIdx = append(newIdx, i)
					newIDs = append(newIDs, id)
				} else {
					raced = append(raced, k)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(raced) > 0 {
			got, err := s.contentIDs(ctx, tx.tx, pulpType, raced)
			if err != nil {
				return err
			}
			if len(got) < len(raced) {
				return fmt.Errorf("content vanished while saving")
			}
			for k, id := range got {
				ids[k] = id
			}
			// Their content artifacts are someone else's; plan afresh.
			if plan, err = s.planContentArtifacts(ctx, tx.tx, units, ids); err != nil {
				return err
			}
		}
		if saveDetail != nil && len(newIdx) > 0 {
			if err := saveDetail(tx, newIdx, newIDs); err != nil {
				return err
			}
		}
		// New units get all their content artifacts.
		planned := map[caKey]bool{}
		for _, in := range plan.inserts {
			planned[caKey{in.contentID, in.relPath}] = true
		}
		for _, u := range units {
			if !inserted[u.NaturalKey] {
				continue
			}
			cid := ids[u.NaturalKey]
			for _, a := range u.Artifacts {
				if k := (caKey{cid, a.RelativePath}); !planned[k] {
					planned[k] = true
					in := caInsert{NewID(), cid, a.RelativePath, a.ArtifactID}
					plan.inserts = append(plan.inserts, in)
					newCAs[k] = in.id
				}
			}
		}
		return plan.apply(ctx, tx, now)
	})
	if err != nil {
		return nil, fmt.Errorf("store: save %s content: %w", pulpType, err)
	}
	return orderIDs(units, ids, inserted, newCAs), nil
}

// orderIDs lists the saved units in input order, with the content
// artifacts of those created (inserted) by this call.
func orderIDs(units []NewContent, ids map[string]string, inserted map[string]bool, newCAs map[caKey]string) []SavedContent {
	out := make([]SavedContent, len(units))
	seen := make(map[string]bool, len(inserted))
	for i, u := range units {
		out[i].ID = ids[u.NaturalKey]
		if !inserted[u.NaturalKey] || seen[u.NaturalKey] {
			continue // a repeated unit: its first occurrence reports them
		}
		seen[u.NaturalKey] = true
		cas := make([]string, len(u.Artifacts))
		done := map[string]bool{}
		for j, a := range u.Artifacts {
			if !done[a.RelativePath] {
				done[a.RelativePath] = true
				cas[j] = newCAs[caKey{out[i].ID, a.RelativePath}]
			}
		}
		out[i].ContentArtifactIDs = cas
	}
	return out
}

// contentIDs maps the natural keys of pulpType that exist to their ids.
func (s *Store) contentIDs(ctx context.Context, q querier, pulpType string, keys []string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	err := chunks(keys, func(c []string) error {
		where, keyArgs := s.KeyedRows("content", `pulp_type = $1`, "natural_key", 2, c)
		rows, err := q.QueryContext(ctx, s.Bulk(`SELECT id, natural_key FROM content WHERE `+where),
			append([]any{pulpType}, keyArgs...)...)
		if err != nil {
			return err
		}
		return scanPairs(rows, func(id, key string) { out[key] = id })
	})
	return out, err
}

// contentArtifacts loads the content artifacts of the given content ids.
func (s *Store) contentArtifacts(ctx context.Context, q querier, contentIDs []string) (map[caKey]caState, error) {
	out := make(map[caKey]caState, len(contentIDs))
	err := chunks(contentIDs, func(c []string) error {
		rows, err := q.QueryContext(ctx, s.Bulk(`SELECT id, content_id, relative_path, artifact_id FROM content_artifacts WHERE content_id IN (`+inList(1, len(c))+`)`), anys(c)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				k   caKey
				st  caState
				art sql.NullString
			)
			if err := rows.Scan(&st.id, &k.contentID, &k.relPath, &art); err != nil {
				return err
			}
			st.artifactID = art.String
			out[k] = st
		}
		return rows.Err()
	})
	return out, err
}

// caPlan is what SaveContent must write for content artifacts.
type caPlan struct {
	inserts []caInsert
	updates []caUpdate
}

type caInsert struct{ id, contentID, relPath, artifactID string }
type caUpdate struct{ id, artifactID string }

func (p caPlan) empty() bool { return len(p.inserts) == 0 && len(p.updates) == 0 }

// planContentArtifacts compares the wanted content artifacts of the units
// whose content ids are in ids with the stored ones; units not in ids are
// skipped.
func (s *Store) planContentArtifacts(ctx context.Context, q querier, units []NewContent, ids map[string]string) (caPlan, error) {
	var plan caPlan
	cids := make([]string, 0, len(ids))
	for _, id := range ids {
		cids = append(cids, id)
	}
	slices.Sort(cids)
	have, err := s.contentArtifacts(ctx, q, cids)
	if err != nil {
		return plan, err
	}
	planned := map[caKey]bool{}
	for _, u := range units {
		cid, ok := ids[u.NaturalKey]
		if !ok {
			continue
		}
		for _, a := range u.Artifacts {
			k := caKey{cid, a.RelativePath}
			if planned[k] {
				continue
			}
			st, ok := have[k]
			switch {
			case !ok:
				planned[k] = true
				plan.inserts = append(plan.inserts, caInsert{NewID(), cid, a.RelativePath, a.ArtifactID})
			case a.ArtifactID != "" && st.artifactID != a.ArtifactID:
				planned[k] = true
				plan.updates = append(plan.updates, caUpdate{st.id, a.ArtifactID})
			}
		}
	}
	return plan, nil
}

func (p caPlan) apply(ctx context.Context, tx *Tx, now int64) error {
	err := chunks(p.inserts, func(c []caInsert) error {
		vals := make([][]any, len(c))
		for i, in := range c {
			vals[i] = []any{in.id, now, now, in.contentID, nullStr(in.artifactID), in.relPath}
		}
		q, args := tx.s.InsertRows("content_artifacts", contentArtifactCols, vals, `ON CONFLICT (content_id, relative_path) DO NOTHING`)
		_, err := tx.Exec(ctx, q, args...)
		return err
	})
	if err != nil {
		return err
	}
	return chunks(p.updates, func(c []caUpdate) error {
		// One statement per chunk: CASE picks each row's new artifact.
		var b strings.Builder
		args := make([]any, 0, 3*len(c)+1)
		args = append(args, now)
		b.WriteString(`UPDATE content_artifacts SET last_updated = $1, artifact_id = CASE id`)
		for _, u := range c {
			args = append(args, u.id, u.artifactID)
			fmt.Fprintf(&b, ` WHEN $%d THEN $%d`, len(args)-1, len(args))
		}
		b.WriteString(` END WHERE id IN (` + inList(len(args)+1, len(c)) + `)`)
		for _, u := range c {
			args = append(args, u.id)
		}
		_, err := tx.Exec(ctx, tx.s.Bulk(b.String()), args...)
		return err
	})
}

// NewRemoteArtifact says where a content artifact can be fetched from a
// remote.
type NewRemoteArtifact struct {
	ContentID, RelativePath string
	// NewContentArtifactID may name the content artifact when the caller
	// just created it (SavedContent.ContentArtifactIDs): it then has no
	// remote artifacts, so this one is inserted without looking.
	NewContentArtifactID string
	RemoteID             string
	URL                  string
	Size                 int64 // negative: unknown
	SHA224, SHA256       string
	SHA384, SHA512       string
}

type raKey struct{ caID, remoteID string }

type raRow struct {
	id                             string
	url                            string
	size                           sql.NullInt64
	sha224, sha256, sha384, sha512 sql.NullString
}

func (r raRow) differs(n *NewRemoteArtifact) bool {
	sizeChanged := r.size.Valid != (n.Size >= 0) || r.size.Valid && r.size.Int64 != n.Size
	return r.url != n.URL || sizeChanged || r.sha224.String != n.SHA224 || r.sha256.String != n.SHA256 ||
		r.sha384.String != n.SHA384 || r.sha512.String != n.SHA512
}

// SaveRemoteArtifacts records, for each input, that its content artifact
// (found by content id and relative path) can be fetched from RemoteID at
// URL. There is at most one remote artifact per (content artifact, remote):
// an existing one whose URL, size or digests changed is updated (and its
// failure mark cleared). Inputs that change nothing write nothing.
func (s *Store) SaveRemoteArtifacts(ctx context.Context, ras []NewRemoteArtifact) error {
	if len(ras) == 0 {
		return nil
	}
	cidSet := make(map[string]bool, len(ras))
	var cids []string
	for _, r := range ras {
		if r.NewContentArtifactID != "" {
			continue
		}
		if !cidSet[r.ContentID] {
			cidSet[r.ContentID] = true
			cids = append(cids, r.ContentID)
		}
	}
	slices.Sort(cids)
	// One read finds both the content artifacts and their remote
	// artifacts.
	cas := make(map[caKey]string, len(ras))
	have := make(map[raKey]raRow, len(ras))
	err := chunks(cids, func(c []string) error {
		rows, err := s.db.QueryContext(ctx, s.Bulk(`SELECT ca.id, ca.content_id, ca.relative_path, ra.id, ra.remote_id, ra.url, ra.size, ra.sha224, ra.sha256, ra.sha384, ra.sha512
			FROM content_artifacts ca LEFT JOIN remote_artifacts ra ON ra.content_artifact_id = ca.id WHERE ca.content_id IN (`+inList(1, len(c))+`)`), anys(c)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				caID            string
				k               caKey
				r               raRow
				id, remote, url sql.NullString
			)
			if err := rows.Scan(&caID, &k.contentID, &k.relPath, &id, &remote, &url, &r.size, &r.sha224, &r.sha256, &r.sha384, &r.sha512); err != nil {
				return err
			}
			cas[k] = caID
			if id.Valid {
				r.id, r.url = id.String, url.String
				have[raKey{caID, remote.String}] = r
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("store: save remote artifacts: %w", err)
	}

	type insert struct {
		caID string
		ra   *NewRemoteArtifact
	}
	var (
		inserts []insert
		updates []insert // caID is the remote artifact's id here
	)
	planned := map[raKey]bool{}
	for i := range ras {
		r := &ras[i]
		if r.NewContentArtifactID != "" {
			if k := (raKey{r.NewContentArtifactID, r.RemoteID}); !planned[k] {
				planned[k] = true
				inserts = append(inserts, insert{r.NewContentArtifactID, r})
			}
			continue
		}
		caID, ok := cas[caKey{r.ContentID, r.RelativePath}]
		if !ok {
			return fmt.Errorf("store: save remote artifacts: content %s has no artifact at %q", r.ContentID, r.RelativePath)
		}
		k := raKey{caID, r.RemoteID}
		if planned[k] {
			continue
		}
		planned[k] = true
		if old, ok := have[k]; !ok {
			inserts = append(inserts, insert{caID, r})
		} else if old.differs(r) {
			updates = append(updates, insert{old.id, r})
		}
	}
	if len(inserts) == 0 && len(updates) == 0 {
		return nil
	}
	now := Now()
	insertSQL := func(c []insert) (string, []any) {
		vals := make([][]any, len(c))
		for i, in := range c {
			r := in.ra
			vals[i] = []any{NewID(), now, now, in.caID, r.RemoteID, r.URL, nullSize(r.Size),
				nullStr(r.SHA224), nullStr(r.SHA256), nullStr(r.SHA384), nullStr(r.SHA512)}
		}
		return s.InsertRows("remote_artifacts", remoteArtifactCols, vals, `ON CONFLICT (content_artifact_id, remote_id) DO NOTHING`)
	}
	if len(updates) == 0 && len(inserts) <= maxBatch {
		// One statement (a pipeline batch): atomic on its own. Outside a
		// transaction SQLite also skips the statement journal, a copy of
		// every page the statement changes, which a multi-row insert
		// checking foreign keys needs inside one.
		q, args := insertSQL(inserts)
		if _, err := s.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("store: save remote artifacts: %w", err)
		}
		return nil
	}
	err = s.InTx(ctx, func(tx *Tx) error {
		err := chunks(inserts, func(c []insert) error {
			q, args := insertSQL(c)
			_, err := tx.Exec(ctx, q, args...)
			return err
		})
		if err != nil {
			return err
		}
		// Changed URLs are rare (an upstream moved): one statement each.
		for _, u := range updates {
			r := u.ra
			if _, err := tx.Exec(ctx, `UPDATE remote_artifacts SET last_updated = $2, url = $3, size = $4, sha224 = $5, sha256 = $6, sha384 = $7, sha512 = $8, failed_at = NULL WHERE id = $1`,
				u.caID, now, r.URL, nullSize(r.Size), nullStr(r.SHA224), nullStr(r.SHA256), nullStr(r.SHA384), nullStr(r.SHA512)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save remote artifacts: %w", err)
	}
	return nil
}

func nullSize(n int64) any {
	if n < 0 {
		return nil
	}
	return n
}

// syncTables are the core tables a sync grows.
var syncTables = []string{"artifacts", "content", "content_artifacts", "remote_artifacts", "repository_content"}

// AnalyzeSyncTables refreshes PostgreSQL's planner statistics of the core
// tables a sync grows, and of the plugin tables named in extra (SQLite
// plans well without statistics: a no-op there). A big sync calls it as
// those tables grow, so that what it runs later is planned for their real
// size even where autovacuum is off or has not caught up.
func (s *Store) AnalyzeSyncTables(ctx context.Context, extra ...string) error {
	if s.dialect.name() != "postgres" {
		return nil
	}
	tables := strings.Join(append(slices.Clone(syncTables), extra...), ", ")
	if _, err := s.db.ExecContext(ctx, `ANALYZE `+tables); err != nil {
		return fmt.Errorf("store: analyze %s: %w", tables, err)
	}
	return nil
}
