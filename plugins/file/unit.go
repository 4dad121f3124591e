package file

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/pith-project/pith/internal/store"
)

// Unit is a file content unit: one file at a relative path, identified by
// its path and sha256 (Pulp's FileContent).
type Unit struct {
	RelativePath string
	Digest       string
}

// Type is the unit's pulp_type.
func (u Unit) Type() string { return Type }

// NaturalKey identifies the unit among file units. The digest has a fixed
// length, so the key is unambiguous whatever the path contains.
func (u Unit) NaturalKey() string { return u.Digest + ":" + u.RelativePath }

// RepoKey is what a newer unit replaces inside a repository: the path.
func (u Unit) RepoKey() string { return u.RelativePath }

// fileContentCols are the columns SaveDetail inserts.
var fileContentCols = []store.Col{{Name: "content_id", Type: "text"}, {Name: "relative_path", Type: "text"}, {Name: "digest", Type: "text"}}

// SaveDetail writes file_content rows for newly created units. It goes
// through store.InsertRows: anonymous parameters on SQLite (numbered ones
// cost a linear search each, quadratic in a big statement) and one array
// per column on PostgreSQL.
func SaveDetail(ctx context.Context, tx *store.Tx, units []Unit, ids []string) error {
	const chunk = 500
	for i := 0; i < len(units); i += chunk {
		end := min(i+chunk, len(units))
		rows := make([][]any, 0, end-i)
		for j := i; j < end; j++ {
			rows = append(rows, []any{ids[j], units[j].RelativePath, units[j].Digest})
		}
		q, args := tx.Store().InsertRows("file_content", fileContentCols, rows, "")
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("file: save content: %w", err)
		}
	}
	return nil
}

// ErrUnsafePath is returned for relative paths that could escape a base.
var ErrUnsafePath = errors.New("unsafe relative path")

// maxPathLen bounds relative paths; filesystems and URLs choke beyond it.
const maxPathLen = 4096

// ValidatePath checks that p is a safe relative path: no leading '/', no
// '.' or '..' segment, no empty segment, no NUL or control characters, no
// backslash. Nothing a manifest or a client says can then make pith read or
// write outside storage, or serve outside a distribution's base path.
func ValidatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty", ErrUnsafePath)
	case len(p) > maxPathLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrUnsafePath, maxPathLen)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: %q starts with '/'", ErrUnsafePath, p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("%w: %q ends with '/'", ErrUnsafePath, p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("%w: %q contains a backslash", ErrUnsafePath, p)
	}
	for _, r := range p {
		if r == 0 || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: %q contains a control or invalid character", ErrUnsafePath, p)
		}
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %q has an empty segment", ErrUnsafePath, p)
		case ".", "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrUnsafePath, p, seg)
		}
	}
	return nil
}
