package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestAllowedContentChecksums(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.AllowedContentChecksums, []string{"sha256"}) {
		t.Errorf("default = %v, want [sha256]", c.AllowedContentChecksums)
	}

	c, err = load(t, []string{"--allowed-content-checksums", "SHA512, sha256"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.AllowedContentChecksums, []string{"sha512", "sha256"}) {
		t.Errorf("flag = %v, want normalised [sha512 sha256]", c.AllowedContentChecksums)
	}

	t.Setenv("PITH_ALLOWED_CONTENT_CHECKSUMS", "sha224,sha256,sha384,sha512")
	c, err = load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AllowedContentChecksums) != 4 {
		t.Errorf("env = %v, want Pulp's four", c.AllowedContentChecksums)
	}

	file := filepath.Join(t.TempDir(), "pith.yaml")
	os.WriteFile(file, []byte("allowed-content-checksums: [sha256, sha384]\n"), 0o600)
	t.Setenv("PITH_ALLOWED_CONTENT_CHECKSUMS", "")
	os.Unsetenv("PITH_ALLOWED_CONTENT_CHECKSUMS")
	c, err = load(t, []string{"--config", file})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.AllowedContentChecksums, []string{"sha256", "sha384"}) {
		t.Errorf("file = %v", c.AllowedContentChecksums)
	}
}

func TestAllowedContentChecksumsRejected(t *testing.T) {
	for _, v := range []string{"sha512", "md5,sha256", "sha1,sha256", "sha256,blake3", ""} {
		if _, err := load(t, []string{"--allowed-content-checksums", v}); err == nil {
			t.Errorf("--allowed-content-checksums %q accepted", v)
		}
	}
}

// The default must not be changed through the slice the flag was given.
func TestAllowedContentChecksumsDefaultNotAliased(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.AllowedContentChecksums[0] = "x"
	if DefaultAllowedContentChecksums[0] != "sha256" {
		t.Fatal("DefaultAllowedContentChecksums changed through a loaded config")
	}
}
