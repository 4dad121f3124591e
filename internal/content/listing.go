package content

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/pith-project/pith/internal/store"
)

// entry is one line of a directory listing.
type entry struct {
	name  string // ends in "/" for directories
	when  int64
	size  int64
	isDir bool
}

func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}

// serveBaseListing lists the next segment of every visible distribution
// below p (the content root when p is empty), or redirects a partial base
// path to its slashed form.
func (h *Handler) serveBaseListing(w http.ResponseWriter, r *http.Request, p string, slash bool) error {
	ctx := r.Context()
	prefix := ""
	if p != "" {
		prefix = p + "/"
	}
	rows, err := h.Store.Query(ctx, `SELECT base_path, created, hidden OR ($2 AND content_guard_id IS NOT NULL) FROM distributions WHERE base_path LIKE $1 ESCAPE '\'`, likePrefix(prefix), h.HideGuarded)
	if err != nil {
		return fmt.Errorf("list distributions: %w", err)
	}
	defer rows.Close()
	seen := map[string]*entry{}
	found := false
	for rows.Next() {
		var bp string
		var created int64
		var hidden bool
		if err := rows.Scan(&bp, &created, &hidden); err != nil {
			return err
		}
		found = true
		if hidden {
			continue
		}
		rest := strings.TrimPrefix(bp, prefix)
		name, _, _ := strings.Cut(rest, "/")
		name += "/"
		if e, ok := seen[name]; !ok || created > e.when {
			seen[name] = &entry{name: name, when: created, isDir: true}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if p != "" && !found {
		return notFound("")
	}
	if !slash {
		http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
		return nil
	}
	entries := make([]*entry, 0, len(seen))
	for _, e := range seen {
		entries = append(entries, e)
	}
	h.writeListing(w, r, entries, p == "", h.MetadataCacheControl)
	return nil
}

// underDir is an SQL condition that col starts with dir (ending in "/"),
// written as a range so that an index on col finds the rows: LIKE with
// ESCAPE uses no index in SQLite, nor in PostgreSQL under a locale
// collation. On PostgreSQL the range is in byte order ("C"), which the
// indexes of migration 0030 serve. The arguments are dir and the first
// string after everything that starts with it.
func (h *Handler) underDir(col string, lo, hi int) string {
	if h.Store.Dialect() == "postgres" {
		col += ` COLLATE "C"`
	}
	return fmt.Sprintf("%s >= $%d AND %s < $%d", col, lo, col, hi)
}

// dirEnd is the first string after all strings starting with dir, which
// ends in "/" ('/' + 1 is '0').
func dirEnd(dir string) string {
	return dir[:len(dir)-1] + "0"
}

// isDir reports whether anything is published below dir (ending in "/").
func (h *Handler) isDir(ctx context.Context, pub *publication, dir string) (bool, error) {
	var n int
	err := h.Store.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM published_artifacts WHERE publication_id = $1 AND `+h.underDir("relative_path", 2, 3)+` LIMIT 1) x`,
		pub.id, dir, dirEnd(dir)).Scan(&n)
	if err != nil || n > 0 {
		return n > 0, err
	}
	if !pub.passThrough {
		return false, nil
	}
	err = h.Store.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM content_artifacts ca CROSS JOIN `+h.membershipOfContent()+`
		WHERE rc.content_id = ca.content_id AND `+h.underDir("ca.relative_path", 1, 4)+` AND `+membership+` LIMIT 1) x`,
		dir, pub.repoID, pub.number, dirEnd(dir)).Scan(&n)
	return n > 0, err
}

// serveDirectory serves dir/index.html if published, else a listing of
// the directory's entries.
func (h *Handler) serveDirectory(w http.ResponseWriter, r *http.Request, d *distribution, pub *publication, dir string) error {
	ctx := r.Context()
	if f, err := h.lookup(ctx, pub, dir+"index.html", false); err != nil {
		return err
	} else if f != nil && f.artifactID != nil {
		a, err := h.Store.GetArtifact(ctx, *f.artifactID)
		if err != nil {
			return err
		}
		return h.serveArtifact(w, r, blobOf(a), dir+"index.html", f.added, h.cacheControl(d, true))
	}
	entries := map[string]*entry{}
	add := func(rel string, when, size int64) {
		rest := strings.TrimPrefix(rel, dir)
		name, _, isDir := strings.Cut(rest, "/")
		if isDir {
			name += "/"
			size = 0
		}
		if e, ok := entries[name]; !ok || (isDir && when > e.when) {
			entries[name] = &entry{name: name, when: when, size: size, isDir: isDir}
		}
	}
	// The root lists everything; a directory reads only the paths below it
	// (through the path index, see underDir).
	pubQ, pubArgs := `SELECT pa.relative_path, pa.created, COALESCE(a.size, 0) FROM published_artifacts pa
		LEFT JOIN artifacts a ON a.id = pa.artifact_id WHERE pa.publication_id = $1`, []any{pub.id}
	if dir != "" {
		pubQ, pubArgs = pubQ+" AND "+h.underDir("pa.relative_path", 2, 3), append(pubArgs, dir, dirEnd(dir))
	}
	rows, err := h.Store.Query(ctx, pubQ, pubArgs...)
	if err != nil {
		return fmt.Errorf("list published files: %w", err)
	}
	for rows.Next() {
		var rel string
		var when, size int64
		if err := rows.Scan(&rel, &when, &size); err != nil {
			rows.Close()
			return err
		}
		add(rel, when, size)
	}
	rows.Close()
	if pub.passThrough {
		// Size from the artifact, or from a remote artifact for on-demand
		// content, as Pulp's listing does. Below the root, the join starts
		// from the paths (CROSS JOIN fixes SQLite's order), not from the
		// repository's units.
		sel := `SELECT ca.relative_path, rc.created,
				COALESCE(a.size, (SELECT MAX(ra.size) FROM remote_artifacts ra WHERE ra.content_artifact_id = ca.id), 0)`
		q, args := sel+` FROM repository_content rc JOIN content_artifacts ca ON ca.content_id = rc.content_id
			LEFT JOIN artifacts a ON a.id = ca.artifact_id WHERE `+membershipFrom(1), []any{pub.repoID, pub.number}
		if dir != "" {
			q = sel + ` FROM content_artifacts ca CROSS JOIN ` + h.membershipOfContent() + ` LEFT JOIN artifacts a ON a.id = ca.artifact_id
			WHERE rc.content_id = ca.content_id AND ` + h.underDir("ca.relative_path", 3, 4) + ` AND ` + membershipFrom(1)
			args = append(args, dir, dirEnd(dir))
		}
		rows, err := h.Store.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("list content: %w", err)
		}
		for rows.Next() {
			var rel string
			var when, size int64
			if err := rows.Scan(&rel, &when, &size); err != nil {
				rows.Close()
				return err
			}
			add(rel, when, size)
		}
		rows.Close()
	}
	if len(entries) == 0 && dir != "" {
		return notFound("")
	}
	list := make([]*entry, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	h.writeListing(w, r, list, false, h.cacheControl(d, true))
	return nil
}

// writeListing renders an nginx-like index page.
func (h *Handler) writeListing(w http.ResponseWriter, r *http.Request, entries []*entry, root bool, cacheControl string) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	title := html.EscapeString(r.URL.Path)
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html>\n<head><title>Index of %s</title></head>\n<body>\n<h1>Index of %s</h1>\n<hr><pre>", title, title)
	if !root {
		b.WriteString(`<a href="../">../</a>` + "\n")
	}
	for _, e := range entries {
		name := html.EscapeString(e.name)
		link := `<a href="./` + html.EscapeString(pathEscape(e.name)) + `">` + name + `</a>`
		pad := 100 - len(e.name) - 15
		if pad < 1 {
			pad = 1
		}
		size := "-"
		if !e.isDir {
			size = FileSize(e.size)
		}
		fmt.Fprintf(&b, "%s%s%s  %s\n", link, strings.Repeat(" ", pad), store.Time(e.when).Format("02-Jan-2006 15:04"), size)
	}
	b.WriteString("</pre><hr></body>\n</html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", cacheControl)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(b.String()))
	}
}

func pathEscape(name string) string {
	if dir, ok := strings.CutSuffix(name, "/"); ok {
		return url.PathEscape(dir) + "/"
	}
	return url.PathEscape(name)
}

// FileSize formats a size as Jinja's filesizeformat does (decimal units):
// "0 Bytes", "1 Byte", "4.2 MB".
func FileSize(n int64) string {
	switch {
	case n == 1:
		return "1 Byte"
	case n < 1000:
		return fmt.Sprintf("%d Bytes", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n)
	for i, u := range units {
		v /= 1000
		if v < 1000 || i == len(units)-1 {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return ""
}

// contentTypes is Pulp's table of types by final extension.
var contentTypes = map[string]string{
	".gz": "application/gzip", ".xml": "text/xml", ".json": "application/json", ".zstd": "application/zstd",
	".zst": "application/zstd", ".xz": "application/x-xz", ".bz2": "application/x-bzip2", ".txt": "text/plain",
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml",
	".html": "text/html", ".htm": "text/html", ".css": "text/css", ".js": "text/javascript", ".pdf": "application/pdf",
	".zip": "application/zip", ".tar": "application/x-tar", ".rpm": "application/x-rpm", ".deb": "application/vnd.debian.binary-package",
	".iso": "application/x-iso9660-image", ".asc": "text/plain", ".sig": "application/pgp-signature", ".md": "text/markdown",
	".yaml": "application/yaml", ".yml": "application/yaml", ".csv": "text/csv",
}

// ContentType returns the type for a path by its final extension
// (lower-cased); unknown ones are application/octet-stream.
func ContentType(rel string) string {
	if t, ok := contentTypes[strings.ToLower(path.Ext(rel))]; ok {
		return t
	}
	return "application/octet-stream"
}
