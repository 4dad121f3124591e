package file

import (
	"errors"
	"strings"
	"testing"
)

func TestValidatePath(t *testing.T) {
	good := []string{"a", "a/b/c.iso", "dir with space/f,1,2.txt", "ünï/cødé", "a..b/c", ".hidden/file"}
	for _, p := range good {
		if err := ValidatePath(p); err != nil {
			t.Errorf("%q rejected: %v", p, err)
		}
	}
	bad := []string{"", "/abs", "a/", "a//b", "../x", "a/../b", "a/./b", ".", "..", "a\x00b", "a\nb", "a\\b", "x\x7f", strings.Repeat("a", 5000), "bad\xffutf8"}
	for _, p := range bad {
		if err := ValidatePath(p); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%q accepted", p)
		}
	}
}
