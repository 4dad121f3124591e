package contentguard

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestJQPath(t *testing.T) {
	doc := `{"identity": {"org_id": "42", "a-b": {"c": "dash"}, "list": [{"id": "first"}, {"id": "last"}], "n": 7}}`
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		filter string
		want   any
		ok     bool
	}{
		{".identity.org_id", "42", true},
		{" .identity.org_id ", "42", true},
		{`.identity."a-b".c`, "dash", true},
		{`.identity["a-b"].c`, "dash", true},
		{`.["identity"].org_id`, "42", true},
		{".identity.list[0].id", "first", true},
		{".identity.list.[1].id", "last", true},
		{".identity.list[-1].id", "last", true},
		{".identity.list[5].id", nil, true},
		{".identity.missing.deeper", nil, true},
		{".identity.org_id?", "42", true},
		{".identity.n", float64(7), true},
		{".identity.org_id.x", nil, false}, // indexing a string fails
		{".identity[0]", nil, false},       // indexing an object by number fails
	} {
		steps, err := parseJQPath(c.filter)
		if err != nil {
			t.Fatalf("%q: %v", c.filter, err)
		}
		got, ok := applyJQPath(v, steps)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%q: %v %v, want %v %v", c.filter, got, ok, c.want, c.ok)
		}
	}
	if steps, err := parseJQPath("."); err != nil || len(steps) != 0 {
		t.Errorf(`".": %v %v`, steps, err)
	}
	for _, bad := range []string{"", "identity", ".a | length", ".a[", `.["a]`, ".a..b", ".a.", "select(.a)", ".a[1:2]", ".a,.b"} {
		if err := ValidateJQFilter(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDecodeBase64LikePython(t *testing.T) {
	for in, want := range map[string]string{"czNjcmV0": "s3cret", " czNj\ncmV0 ": "s3cret", "czNjcmV0MQ==": "s3cret1"} {
		if got, ok := decodeBase64(in); !ok || string(got) != want {
			t.Errorf("%q: %q %v", in, got, ok)
		}
	}
	for _, in := range []string{"czNjcmV0MQ", "s3cret!"} {
		if got, ok := decodeBase64(in); ok {
			t.Errorf("%q decoded to %q", in, got)
		}
	}
}

func TestSignedURL(t *testing.T) {
	secret := NewSecret()
	now := time.Unix(1_700_000_000, 0)
	signed, err := SignURL(secret, "https://cdn.example/pulp/content/dist/a%20b.iso?x=1#frag", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != "cdn.example" || u.Path != "/pulp/content/dist/a b.iso" || u.Fragment != "" ||
		u.Query().Get("x") != "1" || u.Query().Get(ParamExpires) != "1700003600" ||
		!strings.Contains(u.RawQuery, "&validate_token=") || strings.Contains(strings.SplitN(u.RawQuery, "&validate_token=", 2)[1], "&") {
		t.Fatalf("signed %s", signed)
	}
	for _, c := range []struct {
		name, path, query string
		at                time.Time
		want              string
	}{
		{"valid", u.Path, u.RawQuery, now, ""},
		{"valid at the last second", u.Path, u.RawQuery, now.Add(time.Hour), ""},
		{"expired", u.Path, u.RawQuery, now.Add(time.Hour + time.Second), reasonExpired},
		{"other path", "/pulp/content/dist/other.iso", u.RawQuery, now, reasonNotAuthenticated},
		{"dropped parameter", u.Path, strings.Replace(u.RawQuery, "&x=1", "", 1), now, reasonNotAuthenticated},
		{"no token", u.Path, "expires=1700003600&x=1", now, reasonNotAuthenticated},
		{"two tokens", u.Path, u.RawQuery + "&validate_token=" + u.Query().Get(ParamToken), now, reasonNotAuthenticated},
		{"no expiry", u.Path, "x=1&validate_token=" + url.QueryEscape(u.Query().Get(ParamToken)), now, reasonNotAuthenticated},
		{"token without colon", u.Path, "expires=1700003600&x=1&validate_token=abcd", now, reasonNotAuthenticated},
		{"token not hex", u.Path, "expires=1700003600&x=1&validate_token=zz:zz", now, reasonNotAuthenticated},
	} {
		if got := verifyURL(secret, c.path, c.query, c.at); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := verifyURL(NewSecret(), u.Path, u.RawQuery, now); got != reasonNotAuthenticated {
		t.Errorf("another secret: %q", got)
	}
	if _, err := SignURL("", "/pulp/content/x", now); err == nil {
		t.Error("signed without a secret")
	}
}
