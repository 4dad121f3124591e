package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Remote is a source of content (Pulp's Remote plus its detail type, which
// for the file plugin adds no columns). Nullable columns are pointers.
type Remote struct {
	ID          string
	Created     int64
	LastUpdated int64
	PulpType    string
	Name        string
	URL         string
	Policy      string

	CACert, ClientCert, ClientKey *string
	TLSValidation                 bool

	ProxyURL, ProxyUsername, ProxyPassword *string
	Username, Password                     *string

	DownloadConcurrency, MaxRetries, RateLimit                        *int64
	TotalTimeout, ConnectTimeout, SockConnectTimeout, SockReadTimeout *float64

	// Headers is Pulp's list of single-key objects, in order.
	Headers []map[string]string
	Labels  map[string]string
}

// RemoteColumns lists the remote columns in scan order.
const RemoteColumns = `id, created, last_updated, pulp_type, name, url, policy, ca_cert, client_cert, client_key, ` +
	`tls_validation, proxy_url, proxy_username, proxy_password, username, password, download_concurrency, ` +
	`max_retries, total_timeout, connect_timeout, sock_connect_timeout, sock_read_timeout, headers, rate_limit, pulp_labels`

// ScanRemote reads a row selected with RemoteColumns, secrets as stored
// (encrypted); the store's own reads decrypt them.
func ScanRemote(row interface{ Scan(...any) error }) (*Remote, error) {
	r := &Remote{}
	var headers, labels string
	if err := row.Scan(&r.ID, &r.Created, &r.LastUpdated, &r.PulpType, &r.Name, &r.URL, &r.Policy,
		&r.CACert, &r.ClientCert, &r.ClientKey, &r.TLSValidation, &r.ProxyURL, &r.ProxyUsername, &r.ProxyPassword,
		&r.Username, &r.Password, &r.DownloadConcurrency, &r.MaxRetries, &r.TotalTimeout, &r.ConnectTimeout,
		&r.SockConnectTimeout, &r.SockReadTimeout, &headers, &r.RateLimit, &labels); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(headers), &r.Headers); err != nil {
		return nil, fmt.Errorf("remote %s: headers: %w", r.ID, err)
	}
	var err error
	if r.Labels, err = decodeLabelsJSON(labels); err != nil {
		return nil, fmt.Errorf("remote %s: %w", r.ID, err)
	}
	if r.Headers == nil {
		r.Headers = []map[string]string{}
	}
	return r, nil
}

// scanRemote is ScanRemote with the secrets decrypted.
func (s *Store) scanRemote(row interface{ Scan(...any) error }) (*Remote, error) {
	r, err := ScanRemote(row)
	if err != nil {
		return nil, err
	}
	if err := s.openRemote(r); err != nil {
		return nil, err
	}
	return r, nil
}

func decodeLabelsJSON(s string) (map[string]string, error) {
	m := map[string]string{}
	if s == "" {
		return m, nil
	}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("pulp_labels: %w", err)
	}
	return m, nil
}

// EncodeLabels renders labels as the JSON object stored in pulp_labels
// columns. Keys come out sorted, so equal label sets store equal text.
func EncodeLabels(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m) // a map of strings always encodes
	return string(b)
}

func encodeRemoteHeaders(h []map[string]string) string {
	if len(h) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(h)
	return string(b)
}

func (r *Remote) values() []any {
	return []any{r.ID, r.Created, r.LastUpdated, r.PulpType, r.Name, r.URL, r.Policy,
		r.CACert, r.ClientCert, r.ClientKey, r.TLSValidation, r.ProxyURL, r.ProxyUsername, r.ProxyPassword,
		r.Username, r.Password, r.DownloadConcurrency, r.MaxRetries, r.TotalTimeout, r.ConnectTimeout,
		r.SockConnectTimeout, r.SockReadTimeout, encodeRemoteHeaders(r.Headers), r.RateLimit, EncodeLabels(r.Labels)}
}

// remoteExec runs a write outside or inside tx; outside a transaction it takes
// the SQLite writer lock as Exec does.
func (s *Store) remoteExec(ctx context.Context, tx *Tx, q string, args ...any) (sql.Result, error) {
	if tx != nil {
		return tx.tx.ExecContext(ctx, q, args...)
	}
	return s.Exec(ctx, q, args...)
}

// InsertRemote stores a new remote, filling ID and timestamps when unset.
// A taken name yields ErrConflict.
func (s *Store) InsertRemote(ctx context.Context, tx *Tx, r *Remote) error {
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.Created == 0 {
		now := Now()
		r.Created, r.LastUpdated = now, now
	}
	vals, err := s.sealRemote(r)
	if err != nil {
		return err
	}
	_, err = s.remoteExec(ctx, tx, `INSERT INTO remotes (`+RemoteColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, `+
		`$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)`, vals...)
	if err != nil {
		if s.IsUniqueViolation(err) {
			return fmt.Errorf("store: insert remote %q: name taken: %w", r.Name, ErrConflict)
		}
		return fmt.Errorf("store: insert remote %q: %w", r.Name, err)
	}
	return nil
}

// GetRemote returns a remote by id.
func (s *Store) GetRemote(ctx context.Context, id string) (*Remote, error) {
	r, err := s.scanRemote(s.db.QueryRowContext(ctx, `SELECT `+RemoteColumns+` FROM remotes WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get remote %s: %w", id, err)
	}
	return r, nil
}

// RemoteByName returns the remote with that name.
func (s *Store) RemoteByName(ctx context.Context, name string) (*Remote, error) {
	r, err := s.scanRemote(s.db.QueryRowContext(ctx, `SELECT `+RemoteColumns+` FROM remotes WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get remote by name: %w", err)
	}
	return r, nil
}

// ListRemotes returns one page of remotes matching where (with args).
func (s *Store) ListRemotes(ctx context.Context, where string, args []any, orderBy string, limit, offset int) ([]*Remote, error) {
	if orderBy == "" {
		orderBy = "created DESC, id DESC"
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+RemoteColumns+` FROM remotes`+where+` ORDER BY `+orderBy+
		fmt.Sprintf(` LIMIT %d OFFSET %d`, limit, offset), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list remotes: %w", err)
	}
	defer rows.Close()
	var out []*Remote
	for rows.Next() {
		r, err := s.scanRemote(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list remotes: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CountRemotes counts the remotes matching where. Remotes are few, so it
// always counts rather than relying on row_counts.
func (s *Store) CountRemotes(ctx context.Context, where string, args []any) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM remotes`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count remotes: %w", err)
	}
	return n, nil
}

// nextRemoteStamp is a last_updated value that differs from old even when the
// clock has not moved, so compare-and-set writes always see a change.
func nextRemoteStamp(old int64) int64 { return max(Now(), old+1) }

// UpdateRemote writes every column of r (the whole row) and sets
// r.LastUpdated. A missing row yields ErrNotFound, a taken name ErrConflict.
func (s *Store) UpdateRemote(ctx context.Context, tx *Tx, r *Remote) error {
	return s.updateRemote(ctx, tx, r, nil)
}

// updateRemote writes r; with expect set, only if last_updated still equals
// *expect (ErrStale otherwise).
func (s *Store) updateRemote(ctx context.Context, tx *Tx, r *Remote, expect *int64) error {
	old := r.LastUpdated
	r.LastUpdated = nextRemoteStamp(old)
	vals, err := s.sealRemote(r)
	if err != nil {
		r.LastUpdated = old
		return err
	}
	q := `UPDATE remotes SET created = $2, last_updated = $3, pulp_type = $4, name = $5, url = $6, policy = $7, ` +
		`ca_cert = $8, client_cert = $9, client_key = $10, tls_validation = $11, proxy_url = $12, proxy_username = $13, ` +
		`proxy_password = $14, username = $15, password = $16, download_concurrency = $17, max_retries = $18, ` +
		`total_timeout = $19, connect_timeout = $20, sock_connect_timeout = $21, sock_read_timeout = $22, headers = $23, ` +
		`rate_limit = $24, pulp_labels = $25 WHERE id = $1`
	if expect != nil {
		q += ` AND last_updated = $26`
		vals = append(vals, *expect)
	}
	res, err := s.remoteExec(ctx, tx, q, vals...)
	if err != nil {
		r.LastUpdated = old
		if s.IsUniqueViolation(err) {
			return fmt.Errorf("store: update remote %s: name %q taken: %w", r.ID, r.Name, ErrConflict)
		}
		return fmt.Errorf("store: update remote %s: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		r.LastUpdated = old
		if expect != nil {
			return errRemoteStale
		}
		return ErrNotFound
	}
	return nil
}

// errRemoteStale reports a compare-and-set write that lost a race.
var errRemoteStale = errors.New("store: row changed concurrently")

// maxRemoteCASAttempts bounds the retries of a read-modify-write that keeps
// losing races; each loss means someone else's write succeeded.
const maxRemoteCASAttempts = 20

// ModifyRemote reads remote id, lets fn change it and writes it back,
// retrying from a fresh read if the row changed in between. fn's error
// aborts the change and is returned as is.
func (s *Store) ModifyRemote(ctx context.Context, id string, fn func(r *Remote) error) (*Remote, error) {
	for range maxRemoteCASAttempts {
		r, err := s.GetRemote(ctx, id)
		if err != nil {
			return nil, err
		}
		expect := r.LastUpdated
		if err := fn(r); err != nil {
			return nil, err
		}
		r.ID, r.LastUpdated = id, expect
		err = s.updateRemote(ctx, nil, r, &expect)
		if errors.Is(err, errRemoteStale) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("store: modify remote %s: too many concurrent changes", id)
}

// DeleteRemote removes a remote. Its remote artifacts go with it, and
// repositories and distributions that named it lose the reference. A
// remote used by an alternate content source is kept (ErrConflict), as
// Pulp protects it.
func (s *Store) DeleteRemote(ctx context.Context, tx *Tx, id string) error {
	del := func(tx *Tx) error {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM alternate_content_sources WHERE remote_id = $1`, id).Scan(&n); err != nil {
			return fmt.Errorf("store: delete remote %s: %w", id, err)
		}
		if n > 0 {
			return fmt.Errorf("store: delete remote %s: used by %d alternate content source(s): %w", id, n, ErrConflict)
		}
		res, err := tx.Exec(ctx, `DELETE FROM remotes WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("store: delete remote %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	}
	if tx != nil {
		return del(tx)
	}
	return s.InTx(ctx, del)
}

// ModifyLabels changes the pulp_labels of row id in table (any labelled
// table: remotes, repositories, distributions, content) through fn, with a
// compare-and-set on last_updated so concurrent writers never lose each
// other's changes. It returns the labels written. table must be a trusted
// identifier, never user input.
func (s *Store) ModifyLabels(ctx context.Context, table, id string, fn func(labels map[string]string) error) (map[string]string, error) {
	if !isTableName(table) {
		return nil, fmt.Errorf("store: modify labels: bad table name %q", table)
	}
	for range maxRemoteCASAttempts {
		var text string
		var stamp int64
		err := s.db.QueryRowContext(ctx, `SELECT pulp_labels, last_updated FROM `+table+` WHERE id = $1`, id).Scan(&text, &stamp)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("store: read labels of %s %s: %w", table, id, err)
		}
		labels, err := decodeLabelsJSON(text)
		if err != nil {
			return nil, fmt.Errorf("store: %s %s: %w", table, id, err)
		}
		if err := fn(labels); err != nil {
			return nil, err
		}
		res, err := s.Exec(ctx, `UPDATE `+table+` SET pulp_labels = $1, last_updated = $2 WHERE id = $3 AND last_updated = $4`,
			EncodeLabels(labels), nextRemoteStamp(stamp), id, stamp)
		if err != nil {
			return nil, fmt.Errorf("store: write labels of %s %s: %w", table, id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return labels, nil
		}
	}
	return nil, fmt.Errorf("store: modify labels of %s %s: too many concurrent changes", table, id)
}

func isTableName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return true
}

// JSONText renders a SQL expression extracting the text value of key from
// the JSON object in column col, NULL when the key is absent. Label keys
// are validated (letters, digits, '_', ' ', '.', '-'), so they can be
// inlined; quotes are escaped anyway so that no key can break out of the
// literal.
func (s *Store) JSONText(col, key string) string {
	lit := strings.ReplaceAll(key, "'", "''")
	if s.dialect.name() == "postgres" {
		return "(" + col + "::jsonb ->> '" + lit + "')"
	}
	// A quoted JSON path step takes the key literally, dots included; a
	// double quote or backslash cannot be escaped inside it, so such a key
	// (never a valid label) is made to match nothing.
	if strings.ContainsAny(key, `"\`) {
		return "NULL"
	}
	return "json_extract(" + col + `, '$."` + lit + `"')`
}
