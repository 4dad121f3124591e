package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"
)

type widget struct {
	Base
	Name  string     `json:"name" api:"required" minlen:"1"`
	Count *int       `json:"count" min:"1"`
	Kind  string     `json:"kind" enum:"a,b"`
	Note  *string    `json:"note" api:"nullable"`
	When  *time.Time `json:"when"`
}

func (widget) SchemaName() string { return "Widget" }

type upload struct {
	File File   `json:"file" api:"required"`
	Tag  string `json:"tag"`
	N    int    `json:"n"`
}

type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, u, p string) (bool, error) {
	return u == "admin" && p == "pw", nil
}

func newTestServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s := New(Options{Auth: fakeAuth{}, SpoolDir: t.TempDir(), Info: map[string]any{"x-pulp-app-versions": map[string]string{"core": "3.100.0"}}})
	items := make([]widget, 250)
	for i := range items {
		items[i].Name = "w" + string(rune('a'+i%26))
	}
	s.Register(
		&Route{OperationID: "widgets_list", Method: "GET", Path: Root + "widgets/", Tag: "Widgets", List: true, Response: widget{},
			Handle: func(c *Ctx) (any, error) {
				limit, offset, err := c.Paging()
				if err != nil {
					return nil, err
				}
				end := min(offset+limit, len(items))
				return c.Page(int64(len(items)), limit, offset, items[min(offset, end):end]), nil
			}},
		&Route{OperationID: "widgets_create", Method: "POST", Path: Root + "widgets/", Tag: "Widgets", Body: &widget{}, Response: widget{}, Status: 201,
			Handle: func(c *Ctx) (any, error) {
				w := Body[widget](c)
				w.PulpHref = Root + "widgets/1/"
				return w, nil
			}},
		&Route{OperationID: "widgets_partial_update", Method: "PATCH", Path: Root + "widgets/{pulp_id}/", Href: "widget_href", Tag: "Widgets", Body: &widget{}, Partial: true, Response: widget{},
			Handle: func(c *Ctx) (any, error) {
				w := Body[widget](c)
				if c.Has("note") && w.Note == nil {
					w.Name = "note cleared"
				}
				return w, nil
			}},
		&Route{OperationID: "widgets_upload", Method: "POST", Path: Root + "widgets/upload/", Tag: "Widgets", Body: &upload{}, Multipart: true, Response: widget{},
			Handle: func(c *Ctx) (any, error) {
				u := Body[upload](c)
				f, err := u.File.Open()
				if err != nil {
					return nil, err
				}
				defer f.Close()
				b, _ := io.ReadAll(f)
				return widget{Name: u.Tag + ":" + string(b), Count: &u.N}, nil
			}},
		&Route{OperationID: "status_read", Method: "GET", Path: Root + "status/", Tag: "Status", Public: true, Response: widget{},
			Handle: func(c *Ctx) (any, error) { return widget{Name: "ok"}, nil }},
	)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func do(t *testing.T, method, url, ctype string, body io.Reader, auth bool, hdr ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth {
		req.SetBasicAuth("admin", "pw")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp, m
}

func TestAuthAndPublicRoutes(t *testing.T) {
	_, ts := newTestServer(t)
	resp, body := do(t, "GET", ts.URL+Root+"widgets/", "", nil, false)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="api"` || body["detail"] == nil {
		t.Fatalf("no credentials: %d %v %v", resp.StatusCode, resp.Header, body)
	}
	req, _ := http.NewRequest("GET", ts.URL+Root+"widgets/", nil)
	req.SetBasicAuth("admin", "bad")
	r2, _ := http.DefaultClient.Do(req)
	r2.Body.Close()
	if r2.StatusCode != 401 {
		t.Fatalf("bad password: %d", r2.StatusCode)
	}
	if resp, _ := do(t, "GET", ts.URL+Root+"status/", "", nil, false); resp.StatusCode != 200 {
		t.Fatalf("status must be public: %d", resp.StatusCode)
	}
}

func TestCorrelationIDEchoed(t *testing.T) {
	_, ts := newTestServer(t)
	resp, _ := do(t, "GET", ts.URL+Root+"status/", "", nil, false, "Correlation-Id", "deadbeefdeadbeefdeadbeefdeadbeef")
	if got := resp.Header.Get("Correlation-Id"); got != "deadbeefdeadbeefdeadbeefdeadbeef" {
		t.Fatalf("Correlation-Id = %q", got)
	}
	resp, _ = do(t, "GET", ts.URL+Root+"status/", "", nil, false)
	if resp.Header.Get("Correlation-Id") == "" {
		t.Fatal("no Correlation-Id generated")
	}
}

func TestPagination(t *testing.T) {
	_, ts := newTestServer(t)
	_, body := do(t, "GET", ts.URL+Root+"widgets/", "", nil, true)
	if body["count"].(float64) != 250 || len(body["results"].([]any)) != 100 || body["previous"] != nil {
		t.Fatalf("default page: count=%v results=%d prev=%v", body["count"], len(body["results"].([]any)), body["previous"])
	}
	next := body["next"].(string)
	if !strings.HasPrefix(next, ts.URL) || !strings.Contains(next, "offset=100") {
		t.Fatalf("next must be absolute with offset: %s", next)
	}
	_, body = do(t, "GET", ts.URL+Root+"widgets/?limit=100&offset=200", "", nil, true)
	if len(body["results"].([]any)) != 50 || body["next"] != nil || !strings.Contains(body["previous"].(string), "offset=100") {
		t.Fatalf("last page: %v", body)
	}
	resp, body := do(t, "GET", ts.URL+Root+"widgets/?limit=x", "", nil, true)
	if resp.StatusCode != 400 || body["limit"] == nil {
		t.Fatalf("bad limit: %d %v", resp.StatusCode, body)
	}
}

func TestFieldSelection(t *testing.T) {
	_, ts := newTestServer(t)
	_, body := do(t, "GET", ts.URL+Root+"widgets/?limit=1&fields=name,kind", "", nil, true)
	r := body["results"].([]any)[0].(map[string]any)
	if len(r) != 2 || r["name"] == nil {
		t.Fatalf("fields: %v", r)
	}
	_, body = do(t, "GET", ts.URL+Root+"widgets/?limit=1&exclude_fields=name", "", nil, true)
	r = body["results"].([]any)[0].(map[string]any)
	if _, ok := r["name"]; ok || r["kind"] == nil {
		t.Fatalf("exclude_fields: %v", r)
	}
}

func TestBodyValidation(t *testing.T) {
	_, ts := newTestServer(t)
	cases := []struct {
		body  string
		field string
		msg   string
	}{
		{`{}`, "name", "This field is required."},
		{`{"name": ""}`, "name", "This field may not be blank."},
		{`{"name": 5}`, "name", "Not a valid string."},
		{`{"name": "x", "count": "many"}`, "count", "A valid integer is required."},
		{`{"name": "x", "count": 0}`, "count", "Ensure this value is greater than or equal to 1."},
		{`{"name": "x", "kind": "c"}`, "kind", `"c" is not a valid choice.`},
		{`{"name": "x", "bogus": 1}`, "bogus", "Unexpected field"},
		{`{"name": null}`, "name", "This field may not be null."},
		{`[1]`, "non_field_errors", "Invalid data. Expected a dictionary, but got list."},
	}
	for _, tc := range cases {
		resp, body := do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(tc.body), true)
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d", tc.body, resp.StatusCode)
			continue
		}
		msgs, _ := body[tc.field].([]any)
		if len(msgs) == 0 || msgs[0] != tc.msg {
			t.Errorf("%s: body %v, want %s: %s", tc.body, body, tc.field, tc.msg)
		}
	}
	resp, body := do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(`{"name": `), true)
	if resp.StatusCode != 400 || !strings.Contains(body["detail"].(string), "JSON parse error") {
		t.Errorf("malformed JSON: %d %v", resp.StatusCode, body)
	}
	big := `{"name": "` + strings.Repeat("x", 9<<20) + `"}`
	if resp, _ := do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(big), true); resp.StatusCode != 400 {
		t.Errorf("oversized body: %d", resp.StatusCode)
	}
	resp, body = do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(`{"name": "ok", "count": 3, "note": null}`), true)
	if resp.StatusCode != 201 || body["name"] != "ok" || body["count"].(float64) != 3 {
		t.Errorf("valid body: %d %v", resp.StatusCode, body)
	}
	// PATCH: nothing required; explicit null distinguishable from absent.
	resp, body = do(t, "PATCH", ts.URL+Root+"widgets/0190a7e4-0000-7000-8000-000000000000/", "application/json", strings.NewReader(`{"note": null}`), true)
	if resp.StatusCode != 200 || body["name"] != "note cleared" {
		t.Errorf("partial: %d %v", resp.StatusCode, body)
	}
}

func TestMultipart(t *testing.T) {
	s, ts := newTestServer(t)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "a.txt")
	fw.Write([]byte("hello"))
	mw.WriteField("tag", "t1")
	mw.WriteField("n", "4")
	mw.Close()
	resp, body := do(t, "POST", ts.URL+Root+"widgets/upload/", mw.FormDataContentType(), &buf, true)
	if resp.StatusCode != 200 || body["name"] != "t1:hello" || body["count"].(float64) != 4 {
		t.Fatalf("multipart: %d %v", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", ts.URL+Root+"widgets/upload/", "multipart/form-data; boundary=zzz", strings.NewReader("--zzz\r\nbroken"), true)
	if resp.StatusCode != 400 {
		t.Fatalf("broken multipart: %d %v", resp.StatusCode, body)
	}
	// Spool files never outlive the request.
	if left, _ := filepathGlob(s.opts.SpoolDir); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
}

func TestNotFoundMethodAndSlash(t *testing.T) {
	_, ts := newTestServer(t)
	resp, body := do(t, "GET", ts.URL+Root+"nothing/", "", nil, true)
	if resp.StatusCode != 404 || body["detail"] != "Not found." {
		t.Fatalf("404: %d %v", resp.StatusCode, body)
	}
	resp, _ = do(t, "DELETE", ts.URL+Root+"widgets/", "", nil, true)
	if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Fatalf("405: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, "GET", ts.URL+Root+"widgets?limit=1", "", nil, true)
	if resp.StatusCode != 301 || resp.Header.Get("Location") != Root+"widgets/?limit=1" {
		t.Fatalf("slash redirect: %d %v", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestDocumentIsValidOpenAPI(t *testing.T) {
	s, _ := newTestServer(t)
	doc := s.Document()
	loader := openapi3.NewLoader()
	d, err := loader.LoadFromData(doc)
	if err != nil {
		t.Fatal(err)
	}
	// Pulp's href-style keys ({task_href}) are the document's one deliberate
	// deviation: pulp-glue substitutes whole hrefs. Everything else must
	// validate, so check a copy whose href keys are made routable.
	var generic map[string]any
	json.Unmarshal(doc, &generic)
	paths := generic["paths"].(map[string]any)
	for k, v := range paths {
		if strings.HasPrefix(k, "{") {
			delete(paths, k)
			name := k[1:strings.IndexByte(k, '}')]
			paths["/"+name+"/"+k] = v
		}
	}
	fixed, _ := json.Marshal(generic)
	vd, err := openapi3.NewLoader().LoadFromData(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if err := vd.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI: %v", err)
	}
	p := d.Paths.Find("{widget_href}")
	if p == nil || p.Patch == nil || p.Patch.OperationID != "widgets_partial_update" {
		t.Fatalf("href-style path missing: %v", d.Paths.InMatchingOrder())
	}
	create := d.Paths.Find(Root + "widgets/").Post
	sch := create.RequestBody.Value.Content["application/json"].Schema.Value
	if len(sch.Required) != 1 || sch.Required[0] != "name" || sch.Properties["kind"].Value.Enum == nil {
		t.Fatalf("request schema: %+v", sch)
	}
	patched := d.Paths.Find("{widget_href}").Patch.RequestBody.Value.Content["application/json"].Schema
	if patched.Ref != "#/components/schemas/PatchedWidget" || len(patched.Value.Required) != 0 {
		t.Fatalf("patched schema: %+v", patched)
	}
	up := d.Paths.Find(Root + "widgets/upload/").Post.RequestBody.Value.Content
	if _, ok := up["application/json"]; ok {
		t.Fatal("file upload must not offer JSON")
	}
	if f := up["multipart/form-data"].Schema.Value.Properties["file"].Value; f.Format != "binary" {
		t.Fatalf("file field: %+v", f)
	}
	list := d.Paths.Find(Root + "widgets/").Get.Responses.Status(200).Value.Content["application/json"].Schema
	if list.Ref != "#/components/schemas/PaginatedWidgetList" {
		t.Fatalf("list schema: %v", list.Ref)
	}
}

func filepathGlob(dir string) ([]string, error) { return filepath.Glob(filepath.Join(dir, "*")) }

// Datetime fields take the forms DRF does (pulp-cli and Pulp's own tests
// send "%Y-%m-%dT%H:%M" and dates without a zone), meaning UTC.
func TestBodyDateTimes(t *testing.T) {
	_, ts := newTestServer(t)
	for in, want := range map[string]string{
		"2030-01-02":                "2030-01-02T00:00:00Z",
		"2030-01-02T03:04":          "2030-01-02T03:04:00Z",
		"2030-01-02T03:04:05":       "2030-01-02T03:04:05Z",
		"2030-01-02T03:04:05.5Z":    "2030-01-02T03:04:05.5Z",
		"2030-01-02T03:04:05+02:00": "2030-01-02T01:04:05Z",
		"2030-01-02 03:04:05":       "2030-01-02T03:04:05Z",
		"2030-01-02T03:04+01:00":    "2030-01-02T02:04:00Z",
	} {
		resp, body := do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(`{"name": "x", "when": "`+in+`"}`), true)
		if resp.StatusCode != 201 || body["when"] != want {
			t.Errorf("%s: %d %v, want %s", in, resp.StatusCode, body, want)
		}
	}
	for _, in := range []string{`"yesterday"`, `"2030-13-01"`, `5`, `true`} {
		resp, body := do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(`{"name": "x", "when": `+in+`}`), true)
		msgs, _ := body["when"].([]any)
		if resp.StatusCode != 400 || len(msgs) != 1 || !strings.HasPrefix(msgs[0].(string), "Datetime has wrong format.") {
			t.Errorf("%s: %d %v", in, resp.StatusCode, body)
		}
	}
}

// TestRequestLogAndMetrics: every request is one structured log line and
// is counted by operation and status code.
func TestRequestLogAndMetrics(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s := New(Options{Auth: fakeAuth{}, SpoolDir: t.TempDir(), Registry: reg, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	s.Register(&Route{OperationID: "widgets_create", Method: "POST", Path: Root + "widgets/", Tag: "Widgets", Body: &widget{}, Response: widget{}, Status: 201,
		Handle: func(c *Ctx) (any, error) { return Body[widget](c), nil }})
	ts := httptest.NewServer(s)
	defer ts.Close()
	do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(`{"name": "a"}`), true, "Correlation-Id", "0f8fad5b-d9cb-469f-a165-70867728950e")
	do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(`{}`), true)
	do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(`{"name": "a"}`), false)
	do(t, "POST", ts.URL+Root+"widgets/", "application/json", strings.NewReader(`{"name": "b"}`), true)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 4 {
		t.Fatalf("%d request log lines for 4 requests:\n%s", len(lines), logs.String())
	}
	if l := lines[0]; l["status"] != 201.0 || l["operation"] != "widgets_create" || l["method"] != "POST" || l["cid"] != "0f8fad5b-d9cb-469f-a165-70867728950e" || l["user"] != "admin" {
		t.Errorf("first line: %v", l)
	}
	want := map[string]float64{"201": 2, "400": 1, "401": 1}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "pith_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["operation"] == "widgets_create" {
				got[labels["code"]] = m.GetCounter().GetValue()
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("requests by status: %v, want %v", got, want)
	}
}

func TestAPIRootListsCollections(t *testing.T) {
	_, ts := newTestServer(t)
	// Public, as Pulp's root view: no credentials needed.
	resp, body := do(t, "GET", ts.URL+Root, "", nil, false)
	if resp.StatusCode != 200 {
		t.Fatalf("root: %d %v", resp.StatusCode, body)
	}
	if body["widgets"] != ts.URL+Root+"widgets/" {
		t.Fatalf("root must name the widgets collection with its absolute URL: %v", body)
	}
	for k := range body {
		if strings.Contains(k, "{") || k == "status" {
			t.Fatalf("root lists %q, which is not a collection", k)
		}
	}
	resp, _ = do(t, "POST", ts.URL+Root, "", nil, true)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("POST root: %d %v", resp.StatusCode, resp.Header)
	}
}
