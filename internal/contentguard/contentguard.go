// Package contentguard holds Pulp's content guards: their rows, and the
// check the content app runs before serving a guarded distribution.
//
// Every guard lives in the content_guards table; what is specific to a type
// (the header guard's header, the redirect guard's secret, the composite
// guard's members) is kept in its settings JSON.
package contentguard

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pith-project/pith/internal/store"
)

// Guard types, as Pulp names them in pulp_type.
const (
	TypeHeader          = "core.header"
	TypeContentRedirect = "core.content_redirect"
	TypeComposite       = "core.composite"
)

// Settings are the type-specific fields of a guard.
type Settings struct {
	// Header guard.
	HeaderName  string  `json:"header_name,omitempty"`
	HeaderValue string  `json:"header_value,omitempty"`
	JQFilter    *string `json:"jq_filter,omitempty"`
	// SharedSecret is the redirect guard's signing key, hex-encoded. It is
	// generated at creation and never shown.
	SharedSecret string `json:"shared_secret,omitempty"`
	// Guards are the composite guard's members, by id, in order.
	Guards []string `json:"guards,omitempty"`
}

// Guard is one content guard row.
type Guard struct {
	ID          string
	Created     int64
	LastUpdated int64
	PulpType    string
	Name        string
	Description *string
	Settings    Settings
}

// Columns lists the guard columns in scan order.
const Columns = `id, created, last_updated, pulp_type, name, description, settings`

// Scan reads a row selected with Columns.
func Scan(row interface{ Scan(...any) error }) (*Guard, error) {
	g := &Guard{}
	var settings string
	if err := row.Scan(&g.ID, &g.Created, &g.LastUpdated, &g.PulpType, &g.Name, &g.Description, &settings); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(settings), &g.Settings); err != nil {
		return nil, fmt.Errorf("content guard %s: settings: %w", g.ID, err)
	}
	return g, nil
}

// Querier runs queries: *store.Store and *store.Tx are ones.
type Querier interface {
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	Exec(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// Get returns the guard with id, or store.ErrNotFound.
func Get(ctx context.Context, q Querier, id string) (*Guard, error) {
	if !store.ValidID(id) {
		return nil, store.ErrNotFound
	}
	g, err := Scan(q.QueryRow(ctx, `SELECT `+Columns+` FROM content_guards WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read content guard %s: %w", id, err)
	}
	return g, nil
}

// ByName returns the guard named name, or store.ErrNotFound.
func ByName(ctx context.Context, q Querier, name string) (*Guard, error) {
	g, err := Scan(q.QueryRow(ctx, `SELECT `+Columns+` FROM content_guards WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read content guard %q: %w", name, err)
	}
	return g, nil
}

// Types returns the pulp_type of each of ids that exists.
func Types(ctx context.Context, q Querier, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(ids))
	ph := make([]string, 0, len(ids))
	for _, id := range ids {
		args = append(args, id)
		ph = append(ph, "$"+strconv.Itoa(len(args)))
	}
	rows, err := q.Query(ctx, `SELECT id, pulp_type FROM content_guards WHERE id IN (`+strings.Join(ph, ", ")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read content guard types: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, typ string
		if err := rows.Scan(&id, &typ); err != nil {
			return nil, fmt.Errorf("read content guard types: %w", err)
		}
		out[id] = typ
	}
	return out, rows.Err()
}

// List returns one page of guards; where (with args) and order come from
// the API's filters.
func List(ctx context.Context, s *store.Store, where string, args []any, order string, limit, offset int) ([]*Guard, error) {
	if order == "" {
		order = "created DESC, id DESC"
	}
	rows, err := s.Query(ctx, `SELECT `+Columns+` FROM content_guards`+where+` ORDER BY `+order+
		` LIMIT `+strconv.Itoa(limit)+` OFFSET `+strconv.Itoa(offset), args...)
	if err != nil {
		return nil, fmt.Errorf("list content guards: %w", err)
	}
	defer rows.Close()
	var out []*Guard
	for rows.Next() {
		g, err := Scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list content guards: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// Count counts the guards matching where. The table is small (a
// deployment has a handful of guards), so it keeps no row counter.
func Count(ctx context.Context, s *store.Store, where string, args []any) (int64, error) {
	var n int64
	if err := s.QueryRow(ctx, `SELECT COUNT(*) FROM content_guards`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count content guards: %w", err)
	}
	return n, nil
}

// NewSecret returns a fresh redirect-guard secret: 32 random bytes, hex.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func (g *Guard) settingsJSON() (string, error) {
	b, err := json.Marshal(g.Settings)
	if err != nil {
		return "", fmt.Errorf("content guard %s: settings: %w", g.ID, err)
	}
	return string(b), nil
}

// Insert stores a new guard, filling its id and timestamps. A taken name
// yields store.ErrConflict.
func Insert(ctx context.Context, s *store.Store, g *Guard) error {
	if g.ID == "" {
		g.ID = store.NewID()
	}
	now := store.Now()
	g.Created, g.LastUpdated = now, now
	settings, err := g.settingsJSON()
	if err != nil {
		return err
	}
	_, err = s.Exec(ctx, `INSERT INTO content_guards (`+Columns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		g.ID, g.Created, g.LastUpdated, g.PulpType, g.Name, g.Description, settings)
	if err != nil {
		if s.IsUniqueViolation(err) {
			return fmt.Errorf("insert content guard %q: name taken: %w", g.Name, store.ErrConflict)
		}
		return fmt.Errorf("insert content guard %q: %w", g.Name, err)
	}
	return nil
}

// errStale reports a compare-and-set write that lost a race.
var errStale = errors.New("content guard changed concurrently")

// update writes g's mutable columns if its last_updated is still expect.
func update(ctx context.Context, q Querier, isUnique func(error) bool, g *Guard, expect int64) error {
	settings, err := g.settingsJSON()
	if err != nil {
		return err
	}
	stamp := max(store.Now(), expect+1)
	res, err := q.Exec(ctx, `UPDATE content_guards SET last_updated = $2, name = $3, description = $4, settings = $5
		WHERE id = $1 AND last_updated = $6`, g.ID, stamp, g.Name, g.Description, settings, expect)
	if err != nil {
		if isUnique(err) {
			return fmt.Errorf("update content guard %s: name %q taken: %w", g.ID, g.Name, store.ErrConflict)
		}
		return fmt.Errorf("update content guard %s: %w", g.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errStale
	}
	g.LastUpdated = stamp
	return nil
}

// maxAttempts bounds the retries of a read-modify-write that keeps losing
// races; each loss means another writer succeeded.
const maxAttempts = 20

// Modify reads guard id, lets fn change it and writes it back, starting
// over from a fresh read if the row changed in between, so concurrent
// updates never lose each other's changes. fn's error aborts the change
// and is returned as is; a taken name is store.ErrConflict.
func Modify(ctx context.Context, s *store.Store, id string, fn func(g *Guard) error) (*Guard, error) {
	for range maxAttempts {
		g, err := Get(ctx, s, id)
		if err != nil {
			return nil, err
		}
		expect := g.LastUpdated
		if err := fn(g); err != nil {
			return nil, err
		}
		g.ID = id
		err = update(ctx, s, s.IsUniqueViolation, g, expect)
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return g, nil
	}
	return nil, fmt.Errorf("modify content guard %s: too many concurrent changes", id)
}

// Delete removes guard id in one transaction: distributions it protected
// lose the reference (the foreign key sets it NULL), and composite guards
// that listed it drop it, as Pulp's many-to-many table does.
func Delete(ctx context.Context, s *store.Store, id string) error {
	return s.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM content_guards WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete content guard %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		// Ids are UUIDs, so a substring match finds exactly the composites
		// that may list this one; each is checked after decoding.
		rows, err := tx.Query(ctx, `SELECT `+Columns+` FROM content_guards WHERE pulp_type = $1 AND settings LIKE $2`,
			TypeComposite, "%"+id+"%")
		if err != nil {
			return fmt.Errorf("delete content guard %s: find composites: %w", id, err)
		}
		var owners []*Guard
		for rows.Next() {
			g, err := Scan(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("delete content guard %s: %w", id, err)
			}
			owners = append(owners, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("delete content guard %s: find composites: %w", id, err)
		}
		for _, g := range owners {
			if !slices.Contains(g.Settings.Guards, id) {
				continue
			}
			g.Settings.Guards = slices.DeleteFunc(g.Settings.Guards, func(m string) bool { return m == id })
			// Bumping last_updated makes a concurrent Modify of the
			// composite start over and see the member gone.
			if err := update(ctx, tx, tx.Store().IsUniqueViolation, g, g.LastUpdated); err != nil {
				return fmt.Errorf("delete content guard %s: update composite %s: %w", id, g.ID, err)
			}
		}
		return nil
	})
}

// Reaches reports whether guard from is target or lists it, directly or
// through nested composite guards. It is how a composite is kept from
// containing itself.
func Reaches(ctx context.Context, q Querier, from, target string) (bool, error) {
	seen := map[string]bool{}
	queue := []string{from}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if id == target {
			return true, nil
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		g, err := Get(ctx, q, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if g.PulpType == TypeComposite {
			queue = append(queue, g.Settings.Guards...)
		}
	}
	return false, nil
}
