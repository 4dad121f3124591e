package file

import (
	"errors"
	"strings"
	"testing"
)

const h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestReadManifest(t *testing.T) {
	in := "# comment\n\n1.iso," + h + ",1024\n  dir/with,commas,in name.iso," + strings.ToUpper(h) + ",0  \r\nx/y," + h + ",7\n"
	var got []ManifestEntry
	if err := ReadManifest(strings.NewReader(in), func(e ManifestEntry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []ManifestEntry{{"1.iso", h, 1024}, {"dir/with,commas,in name.iso", h, 0}, {"x/y", h, 7}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadManifestRejects(t *testing.T) {
	cases := map[string]int{
		"ok," + h + ",1\nno-commas\n":         2,
		"a," + h + "\n":                       1,
		"a,xyz,1\n":                           1,
		"a," + h + ",-1\n":                    1,
		"a," + h + ",1.5\n":                   1,
		"# c\n../escape," + h + ",1\n":        2,
		"/abs," + h + ",1\n":                  1,
		"a//b," + h + ",1\n":                  1,
		"a/\x01b," + h + ",1\n":               1,
		"a," + h[:63] + ",1\n":                1,
		"ok," + h + ",1\nok2," + h + ",+5\n":  2,
		strings.Repeat("x", 70000) + ",a,1\n": 1,
	}
	for in, line := range cases {
		err := ReadManifest(strings.NewReader(in), func(ManifestEntry) error { return nil })
		var me *ManifestError
		if !errors.As(err, &me) || me.Line != line {
			t.Errorf("%.40q: err %v, want failure on line %d", in, err, line)
		}
		if err != nil && !strings.Contains(err.Error(), "Parsing of the manifest file failed on line") {
			t.Errorf("message: %v", err)
		}
	}
}
