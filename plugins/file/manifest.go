package file

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pith-project/pith/internal/digest"
)

// ManifestEntry is one line of a PULP_MANIFEST.
type ManifestEntry struct {
	RelativePath string
	SHA256       string
	Size         int64
}

// ManifestError names the line a manifest failed on.
type ManifestError struct {
	Line int
	Text string
	Err  error
}

func (e *ManifestError) Error() string {
	return fmt.Sprintf("Parsing of the manifest file failed on line %d: %q: %v", e.Line, e.Text, e.Err)
}

func (e *ManifestError) Unwrap() error { return e.Err }

// maxManifestLine bounds one line; a longer one is malformed, not a reason
// to buffer without limit.
const maxManifestLine = 64 << 10

// ReadManifest streams a PULP_MANIFEST, calling fn for each entry. Lines are
// "relative_path,sha256,size", split on the last two commas so paths may
// contain commas; blank lines and lines starting with '#' are skipped. Any
// malformed line stops the read with a *ManifestError naming it.
func ReadManifest(r io.Reader, fn func(ManifestEntry) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxManifestLine)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		e, err := parseManifestLine(text)
		if err != nil {
			return &ManifestError{Line: line, Text: truncate(text, 200), Err: err}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &ManifestError{Line: line + 1, Text: "", Err: fmt.Errorf("line longer than %d bytes", maxManifestLine)}
		}
		return fmt.Errorf("read manifest: %w", err)
	}
	return nil
}

func parseManifestLine(text string) (ManifestEntry, error) {
	i := strings.LastIndexByte(text, ',')
	if i < 0 {
		return ManifestEntry{}, errors.New("expected relative_path,sha256,size")
	}
	j := strings.LastIndexByte(text[:i], ',')
	if j < 0 {
		return ManifestEntry{}, errors.New("expected relative_path,sha256,size")
	}
	path, sum, sizeText := text[:j], strings.ToLower(strings.TrimSpace(text[j+1:i])), strings.TrimSpace(text[i+1:])
	if err := ValidatePath(path); err != nil {
		return ManifestEntry{}, err
	}
	if !digest.ValidHex("sha256", sum) {
		return ManifestEntry{}, fmt.Errorf("%q is not a sha256 digest", sum)
	}
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strings.HasPrefix(sizeText, "+") {
		return ManifestEntry{}, fmt.Errorf("%q is not a size", sizeText)
	}
	return ManifestEntry{RelativePath: path, SHA256: sum, Size: size}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WriteManifestLine formats one manifest line.
func WriteManifestLine(w io.Writer, e ManifestEntry) error {
	_, err := fmt.Fprintf(w, "%s,%s,%d\n", e.RelativePath, e.SHA256, e.Size)
	return err
}
