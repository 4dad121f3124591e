package storage_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/pith-project/pith/internal/storage"
)

const sum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestArtifactName(t *testing.T) {
	want := "artifact/e3/b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := storage.ArtifactName(sum); got != want {
		t.Errorf("ArtifactName = %q, want %q", got, want)
	}
	if got := storage.ArtifactName(strings.ToUpper(sum)); got != want {
		t.Errorf("ArtifactName(upper) = %q, want the lower-case %q", got, want)
	}
	for _, bad := range []string{"", sum[:63], sum + "0", "../" + sum[3:], strings.Repeat("g", 64)} {
		if got := storage.ArtifactName(bad); got != "" {
			t.Errorf("ArtifactName(%q) = %q, want \"\"", bad, got)
		}
	}
	if err := storage.CheckName(storage.ArtifactName(sum)); err != nil {
		t.Errorf("CheckName(ArtifactName) = %v", err)
	}
}

func TestParseArtifactName(t *testing.T) {
	got, ok := storage.ParseArtifactName(storage.ArtifactName(sum))
	if !ok || got != sum {
		t.Errorf("ParseArtifactName(ArtifactName(s)) = %q, %v", got, ok)
	}
	for _, bad := range []string{
		"",
		"artifact/" + sum,
		"artifact/e3b0/" + sum[4:],
		"artifact/E3/" + sum[2:],
		"artifact/e3/" + sum[2:] + "0",
		"artifact/e3/" + sum[2:63] + "x",
		"tmp/e3/" + sum[2:],
	} {
		if _, ok := storage.ParseArtifactName(bad); ok {
			t.Errorf("ParseArtifactName(%q) ok", bad)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, good := range []string{"a", "artifact/ab/cd", "upload/x.y", "a/b/c..d", "a b"} {
		if err := storage.CheckName(good); err != nil {
			t.Errorf("CheckName(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "/a", "a/", "a//b", "a/./b", "a/../b", "../a", "a/..", "a\x00b", `a\b`} {
		err := storage.CheckName(bad)
		if !errors.Is(err, storage.ErrInvalidName) || !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestErrNotExistIsFS(t *testing.T) {
	if !errors.Is(storage.ErrNotExist, fs.ErrNotExist) {
		t.Error("storage.ErrNotExist does not match fs.ErrNotExist")
	}
}
