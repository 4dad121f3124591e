package contentguard

import (
	"errors"
	"strconv"
	"strings"
)

// pathStep is one step of a jq path: an object key, or an array index when
// key is nil.
type pathStep struct {
	key   *string
	index int
}

// errJQ is the message for a jq_filter pith cannot evaluate.
var errJQ = errors.New(`pith supports jq path filters only, such as ".identity.org_id", ".[\"a-b\"].c" or ".items[0].id"`)

// parseJQPath parses the subset of jq that header guards use in practice:
// paths made of .key, ."quoted key", .["quoted key"] and [index] steps,
// each optionally followed by "?". "." alone is the whole input.
func parseJQPath(f string) ([]pathStep, error) {
	s := strings.TrimSpace(f)
	if !strings.HasPrefix(s, ".") {
		return nil, errJQ
	}
	var steps []pathStep
	i := 0
	for i < len(s) {
		switch {
		case s[i] == '.' && i+1 < len(s) && s[i+1] == '[':
			i++ // ".[" is the same as "["
		case s[i] == '.' && i+1 < len(s) && s[i+1] == '"':
			key, n, err := quoted(s[i+1:])
			if err != nil {
				return nil, err
			}
			steps = append(steps, pathStep{key: &key})
			i += 1 + n
		case s[i] == '.':
			j := i + 1
			for j < len(s) && isIdent(s[j], j == i+1) {
				j++
			}
			if j == i+1 {
				if i == 0 && len(s) == 1 {
					return nil, nil // "." is the identity
				}
				return nil, errJQ
			}
			key := s[i+1 : j]
			steps = append(steps, pathStep{key: &key})
			i = j
		case s[i] == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, errJQ
			}
			inner := strings.TrimSpace(s[i+1 : i+end])
			if strings.HasPrefix(inner, `"`) {
				key, n, err := quoted(inner)
				if err != nil || n != len(inner) {
					return nil, errJQ
				}
				steps = append(steps, pathStep{key: &key})
			} else {
				idx, err := strconv.Atoi(inner)
				if err != nil {
					return nil, errJQ
				}
				steps = append(steps, pathStep{index: idx})
			}
			i += end + 1
		default:
			return nil, errJQ
		}
		if i < len(s) && s[i] == '?' {
			i++
		}
	}
	return steps, nil
}

// quoted reads a JSON-style string at the start of s and returns it with
// the number of bytes it took.
func quoted(s string) (string, int, error) {
	for j := 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			v, err := strconv.Unquote(s[:j+1])
			if err != nil {
				return "", 0, errJQ
			}
			return v, j + 1, nil
		}
	}
	return "", 0, errJQ
}

func isIdent(c byte, first bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
}

// ValidateJQFilter reports why a jq_filter cannot be used, or nil.
func ValidateJQFilter(f string) error {
	_, err := parseJQPath(f)
	return err
}

// applyJQPath follows steps through a decoded JSON value. Like jq, a
// missing key or index gives null; indexing anything else fails (ok false).
func applyJQPath(v any, steps []pathStep) (any, bool) {
	for _, st := range steps {
		if v == nil {
			continue // jq: null[.key] is null
		}
		if st.key != nil {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			v = m[*st.key]
			continue
		}
		a, ok := v.([]any)
		if !ok {
			return nil, false
		}
		i := st.index
		if i < 0 {
			i += len(a)
		}
		if i < 0 || i >= len(a) {
			v = nil
			continue
		}
		v = a[i]
	}
	return v, true
}
