package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

func TestValidLabelKey(t *testing.T) {
	for k, want := range map[string]bool{
		"env": true, "key_a": true, "my key": true, "a.b-c": true, "Ünïcode": true, "数字9": true,
		"": false, "@": false, "a/b": false, "a=b": false, "a,b": false, "a\nb": false, "a~b": false, "!a": false, `a\b`: false,
	} {
		if got := ValidLabelKey(k); got != want {
			t.Errorf("ValidLabelKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestValidateLabels(t *testing.T) {
	if fe := ValidateLabels(map[string]string{"a": "x", "b c": "", "d.e-f": "1,2"}); fe != nil {
		t.Fatalf("valid labels rejected: %v", fe)
	}
	if fe := ValidateLabels(nil); fe != nil {
		t.Fatalf("no labels rejected: %v", fe)
	}
	fe := ValidateLabels(map[string]string{"@": "maia", "arda": "eru(illuvatar)", "ok": "fine"})
	want := []string{
		"Key '@' contains invalid characters. Only alphanumerics, underscores, spaces, hyphens, and dots are allowed.",
		"Key 'arda' contains value with parenthesis.",
	}
	if len(fe) != 1 || !slices.Equal(fe["pulp_labels"], want) {
		t.Fatalf("errors = %v, want pulp_labels: %q", fe, want)
	}
}

func TestParseLabelTerm(t *testing.T) {
	type parsed struct{ key, op, val string }
	ok := map[string]parsed{
		"env":             {"env", "", ""},
		"!env":            {"!env", "", ""},
		"env=prod":        {"env", "=", "prod"},
		"env=":            {"env", "=", ""},
		"env!=prod":       {"env", "!=", "prod"},
		"env~pro":         {"env", "~", "pro"},
		"env~":            {"env", "~", ""},
		"my key=a b":      {"my key", "=", "a b"},
		"a.b-c=x=y":       {"a.b-c", "=", "x=y"},
		`k=a\,b`:          {"k", "=", "a,b"},
		"k=with (paren)!": {"k", "=", "with (paren)!"},
		"k!=":             {"k", "!=", ""},
		"ключ=значение":   {"ключ", "=", "значение"},
	}
	for term, want := range ok {
		k, op, v, problem := parseLabelTerm(term)
		if problem != "" || (parsed{k, op, v}) != want {
			t.Errorf("parseLabelTerm(%q) = %q %q %q %q, want %+v", term, k, op, v, problem, want)
		}
	}
	bad := map[string]string{
		"":            "Invalid search term: ''.",
		"=bad filter": "Invalid search term: '=bad filter'.",
		"!":           "Invalid search term: '!'.",
		"!env=prod":   "Cannot use an operator with '!env'.",
		"!env~prod":   "Cannot use an operator with '!env'.",
		"!env!=prod":  "Cannot use an operator with '!env'.",
		"env$":        "Invalid search term: 'env$'.",
		"@key=x":      "Invalid search term: '@key=x'.",
		"!!env":       "Invalid search term: '!!env'.",
		"env<>prod":   "Invalid search term: 'env<>prod'.",
		`env\,x=prod`: `Invalid search term: 'env\,x=prod'.`,
	}
	for term, want := range bad {
		_, _, _, problem := parseLabelTerm(term)
		if problem != want {
			t.Errorf("parseLabelTerm(%q) problem = %q, want %q", term, problem, want)
		}
	}
}

func TestSplitUnescaped(t *testing.T) {
	for in, want := range map[string][]string{
		"":             {""},
		"a":            {"a"},
		"a,b":          {"a", "b"},
		`a=x\,y,b`:     {`a=x\,y`, "b"},
		"a,":           {"a", ""},
		",a":           {"", "a"},
		`a=\,\,,b=\,`:  {`a=\,\,`, `b=\,`},
		"a=1,b=2,c~3x": {"a=1", "b=2", "c~3x"},
	} {
		if got := splitUnescaped(in); !slices.Equal(got, want) {
			t.Errorf("splitUnescaped(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLabelSelectSQL runs label selections against real databases: a
// table of labelled rows, queried with the conditions LabelSelect adds.
func TestLabelSelectSQL(t *testing.T) {
	rows := map[string]map[string]string{
		"prod":    {"env": "production", "tier": "true"},
		"staging": {"env": "staging", "tier": "false"},
		"none":    {},
		"blank":   {"env": ""},
		"comma":   {"signed_by": "release4,release2"},
		"comma2":  {"signed_by": "release4"},
		"odd":     {"my key.x-y": "Mixed Case 100%_done", "ключ": "значение"},
	}
	cases := []struct {
		expr string
		want []string // sorted ids; nil with problem set for a 400
		err  string
	}{
		{expr: "env", want: []string{"blank", "prod", "staging"}},
		{expr: "!env", want: []string{"comma", "comma2", "none", "odd"}},
		{expr: "env=production", want: []string{"prod"}},
		{expr: "env!=production", want: []string{"blank", "staging"}},
		{expr: "env~PROD", want: []string{"prod"}},
		{expr: "env~", want: []string{"blank", "prod", "staging"}},
		{expr: "env=", want: []string{"blank"}},
		{expr: "env=production,tier=true", want: []string{"prod"}},
		{expr: "env=production,tier!=false", want: []string{"prod"}},
		{expr: "!env,tier=false", want: nil},
		{expr: "env,!tier", want: []string{"blank"}},
		{expr: `signed_by=release4\,release2`, want: []string{"comma"}},
		{expr: "signed_by=release4", want: []string{"comma2"}},
		{expr: `signed_by~4\,rel`, want: []string{"comma"}},
		{expr: "my key.x-y=Mixed Case 100%_done", want: []string{"odd"}},
		{expr: "my key.x-y~100%_", want: []string{"odd"}},
		{expr: "my key.x-y~0%x", want: nil}, // % is literal, not a wildcard
		{expr: "my key.x-y~e_c", want: nil}, // so is _
		{expr: "ключ=значение", want: []string{"odd"}},
		{expr: "missing", want: nil},
		{expr: "missing!=x", want: nil},
		{expr: "", err: "Invalid search term: ''."},
		{expr: "env,", err: "Invalid search term: ''."},
		{expr: "!env=production", err: "Cannot use an operator with '!env'."},
		{expr: "=bad filter", err: "Invalid search term: '=bad filter'."},
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if _, err := s.Exec(ctx, `CREATE TABLE labelled (id TEXT PRIMARY KEY, pulp_labels TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		for id, l := range rows {
			if _, err := s.Exec(ctx, `INSERT INTO labelled (id, pulp_labels) VALUES ($1, $2)`, id, store.EncodeLabels(l)); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range cases {
			q := &Query{Regex: s.RegexMatch}
			err := LabelSelect(q, "pulp_labels", tc.expr, s.JSONText)
			if tc.err != "" {
				var fe FieldErrors
				if !errors.As(err, &fe) || !slices.Equal(fe["pulp_label_select"], []string{tc.err}) {
					t.Errorf("%q: error %v, want pulp_label_select: %q", tc.expr, err, tc.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q: %v", tc.expr, err)
				continue
			}
			where, args := q.SQL()
			r, err := s.Query(ctx, `SELECT id FROM labelled`+where+` ORDER BY id`, args...)
			if err != nil {
				t.Fatalf("%q: %v", tc.expr, err)
			}
			var got []string
			for r.Next() {
				var id string
				if err := r.Scan(&id); err != nil {
					t.Fatal(err)
				}
				got = append(got, id)
			}
			r.Close()
			if !slices.Equal(got, tc.want) {
				t.Errorf("%q: got %q, want %q", tc.expr, got, tc.want)
			}
		}
	})
}

// TestJSONTextQuotes checks that no key, however hostile, escapes the SQL
// literal JSONText renders.
func TestJSONTextQuotes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		for _, key := range []string{`a'b`, `x') OR 1=1 --`, `a"b`, `'`, `a\`} {
			var n int
			err := s.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT '{"a":"b"}' AS l) t WHERE `+s.JSONText("l", key)+` IS NOT NULL`).Scan(&n)
			if err != nil {
				t.Errorf("key %q: %v", key, err)
			} else if n != 0 {
				t.Errorf("key %q matched", key)
			}
		}
	})
}

// memLabels is a labelled object for the action tests.
type memLabels struct {
	mu     sync.Mutex
	labels map[string]map[string]string
}

func (m *memLabels) modify(_ *Ctx, id string, fn func(map[string]string) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.labels[id]
	if !ok {
		return store.ErrNotFound
	}
	c := maps.Clone(l)
	if err := fn(c); err != nil {
		return err
	}
	m.labels[id] = c
	return nil
}

func TestLabelActions(t *testing.T) {
	const id = "0190f0e8-0000-7000-8000-000000000001"
	mem := &memLabels{labels: map[string]map[string]string{id: {"a": "1"}}}
	s := New(Options{Auth: fakeAuth{}, SpoolDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	s.Register(LabelActions{OperationPrefix: "things", Detail: Root + "things/{pulp_id}/", Href: "thing_href", Tag: "Things", Modify: mem.modify}.Routes()...)
	s.Register(LabelActions{OperationPrefix: "others", Detail: Root + "others/{pulp_id}/", Href: "other_href", Tag: "Others", Status: http.StatusOK, Modify: mem.modify}.Routes()...)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+path, bytes.NewBufferString(body))
		req.SetBasicAuth("admin", "pw")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	base := Root + "things/" + id + "/"
	expect := func(code, wantCode int, got map[string]any, want string) {
		t.Helper()
		b, _ := json.Marshal(got)
		if code != wantCode || string(b) != want {
			t.Fatalf("got %d %s, want %d %s", code, b, wantCode, want)
		}
	}

	code, out := post(base+"set_label/", `{"key":"b","value":"two, with comma"}`)
	expect(code, 201, out, `{"key":"b","value":"two, with comma"}`)
	code, out = post(base+"set_label/", `{"key":"c","value":null}`)
	expect(code, 201, out, `{"key":"c","value":null}`)
	code, out = post(base+"set_label/", `{"key":"d","value":""}`)
	expect(code, 201, out, `{"key":"d","value":""}`)
	code, out = post(base+"set_label/", `{"key":"a","value":"replaced"}`)
	expect(code, 201, out, `{"key":"a","value":"replaced"}`)
	if got, want := mem.labels[id], map[string]string{"a": "replaced", "b": "two, with comma", "c": "", "d": ""}; !maps.Equal(got, want) {
		t.Fatalf("labels = %v, want %v", got, want)
	}

	code, out = post(base+"set_label/", `{"key":"bad/key","value":"x"}`)
	expect(code, 400, out, `{"non_field_errors":["Key 'bad/key' contains invalid characters. Only alphanumerics, underscores, spaces, hyphens, and dots are allowed."]}`)
	code, out = post(base+"set_label/", `{"key":"k","value":"(x)"}`)
	expect(code, 400, out, `{"non_field_errors":["Key 'k' contains value with parenthesis."]}`)
	code, out = post(base+"set_label/", `{"key":"k"}`)
	expect(code, 400, out, `{"value":["This field is required."]}`)
	code, out = post(base+"set_label/", `{"value":"v"}`)
	expect(code, 400, out, `{"key":["This field is required."]}`)

	code, out = post(base+"unset_label/", `{"key":"b"}`)
	expect(code, 201, out, `{"key":"b","value":"two, with comma"}`)
	code, out = post(base+"unset_label/", `{"key":"b"}`)
	expect(code, 400, out, `{"key":["Label 'b' is not set on the object."]}`)
	if _, ok := mem.labels[id]["b"]; ok {
		t.Fatal("unset label still present")
	}

	missing := Root + "things/0190f0e8-0000-7000-8000-000000000002/"
	code, _ = post(missing+"set_label/", `{"key":"a","value":"x"}`)
	if code != 404 {
		t.Fatalf("set_label on a missing object: %d, want 404", code)
	}

	code, out = post(Root+"others/"+id+"/set_label/", `{"key":"z","value":"1"}`)
	expect(code, 200, out, `{"key":"z","value":"1"}`)

	doc := string(s.Document())
	for _, want := range []string{`"operationId":"things_set_label"`, `"operationId":"things_unset_label"`, `"{thing_href}set_label/"`, `"SetLabelResponse"`, `"UnsetLabel"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %s", want)
		}
	}
}
