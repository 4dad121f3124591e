package download

import (
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/pith-project/pith/internal/digest"
)

func fileURL(p string) string { return (&url.URL{Scheme: "file", Path: p}).String() }

func TestFileURLs(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	outside := filepath.Join(root, "outside")
	for _, dir := range []string{allowed, filepath.Join(allowed, "sub dir"), outside} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	content := []byte("local bytes")
	write := func(p string) {
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(allowed, "sub dir", "f.iso"))
	write(filepath.Join(outside, "secret"))
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(allowed, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(allowed, "sub dir", "f.iso"), filepath.Join(allowed, "inside-link")); err != nil {
		t.Fatal(err)
	}
	// The allowed path may itself be reached through a symlink.
	alias := filepath.Join(root, "alias")
	if err := os.Symlink(allowed, alias); err != nil {
		t.Fatal(err)
	}

	d := newTestDownloader(t, Config{AllowedImportPaths: []string{alias}})

	for _, ok := range []string{
		filepath.Join(alias, "sub dir", "f.iso"),
		filepath.Join(allowed, "sub dir", "f.iso"),
		filepath.Join(alias, "inside-link"),
	} {
		var ds dests
		res, err := d.Download(t.Context(), fileURL(ok), expectOf(content), ds.new)
		if err != nil {
			t.Errorf("%s: %v", ok, err)
			continue
		}
		if res.Digests.SHA256 != sha256Hex(content) || res.Header != nil || res.Attempts != 1 || ds.snapshot()[0].String() != string(content) {
			t.Errorf("%s: result %+v", ok, res)
		}
	}
	for _, bad := range []string{
		filepath.Join(outside, "secret"),
		filepath.Join(alias, "escape"),
		alias + "/../outside/secret",
		filepath.Join(outside, "does-not-exist"),
		alias,
	} {
		_, err := d.Download(t.Context(), fileURL(bad), unknown, newDiscard)
		if !errors.Is(err, ErrPathNotAllowed) {
			t.Errorf("%s: err = %v, want ErrPathNotAllowed", bad, err)
		}
	}
	if _, err := d.Download(t.Context(), "file://otherhost"+filepath.Join(alias, "sub dir", "f.iso"), unknown, newDiscard); !errors.Is(err, ErrPathNotAllowed) {
		t.Errorf("remote host accepted: %v", err)
	}
	if _, err := d.Download(t.Context(), fileURL(filepath.Join(alias, "missing")), unknown, newDiscard); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := d.Download(t.Context(), fileURL(filepath.Join(alias, "sub dir")), unknown, newDiscard); err == nil {
		t.Error("directory downloaded")
	}

	// Verification applies to local files too.
	var ds dests
	_, err := d.Download(t.Context(), fileURL(filepath.Join(alias, "sub dir", "f.iso")),
		digest.Expect{Size: -1, Digests: map[string]string{digest.SHA256: sha256Hex([]byte("other"))}}, ds.new)
	var dme *digest.DigestMismatchError
	if !errors.As(err, &dme) || !ds.snapshot()[0].canceled {
		t.Errorf("digest mismatch on file: %v", err)
	}

	// No allowed paths: nothing is readable.
	none := newTestDownloader(t, Config{})
	if _, err := none.Download(t.Context(), fileURL(filepath.Join(allowed, "sub dir", "f.iso")), unknown, newDiscard); !errors.Is(err, ErrPathNotAllowed) {
		t.Errorf("no allowed paths: %v", err)
	}

	// Open serves local files as a 200 response.
	resp, err := d.Open(t.Context(), fileURL(filepath.Join(alias, "sub dir", "f.iso")), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(content)) || string(b) != string(content) {
		t.Errorf("Open file: %d %d %q", resp.StatusCode, resp.ContentLength, b)
	}
	if _, err := d.Open(t.Context(), fileURL(filepath.Join(alias, "escape")), nil); !errors.Is(err, ErrPathNotAllowed) {
		t.Errorf("Open escape: %v", err)
	}
}
