package coreapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/content"
	"github.com/pith-project/pith/internal/contentguard"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/storage/fs"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

const (
	cgHeaders   = api.Root + "contentguards/core/header/"
	cgRedirects = api.Root + "contentguards/core/content_redirect/"
	cgComposite = api.Root + "contentguards/core/composite/"
	cgContent   = "/pulp/content/"
)

// cgEnv is the content guard API and the content app, with guards checked
// by contentguard.Checker, served together on loopback over a real store.
type cgEnv struct {
	t       *testing.T
	Store   *store.Store
	URL     string
	Content *content.Handler
}

type cgAuth struct{}

func (cgAuth) Authenticate(_ context.Context, u, p string) (bool, error) {
	return u == "admin" && p == "password", nil
}

func newCGEnv(t *testing.T, s *store.Store) *cgEnv {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	srv := api.New(api.Options{Auth: cgAuth{}, Logger: log, SpoolDir: t.TempDir()})
	d := &coreapi.Deps{Store: s, Log: log, ContentPathPrefix: cgContent}
	srv.Register(coreapi.ContentGuardRoutes(d)...)
	be, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	h := content.NewHandler(s, be, cgContent, log)
	h.Guard = (&contentguard.Checker{Store: s, Log: log}).Check
	mux := http.NewServeMux()
	mux.Handle(api.Root, srv)
	mux.Handle(cgContent, h)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	d.ContentOrigin = hs.URL
	return &cgEnv{t: t, Store: s, URL: hs.URL, Content: h}
}

func (e *cgEnv) do(method, path string, body any, hdr http.Header) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				e.t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	if !strings.HasPrefix(path, "http") {
		path = e.URL + path
	}
	req, err := http.NewRequest(method, path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if strings.Contains(path, api.Root) {
		req.SetBasicAuth("admin", "password")
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out
}

func (e *cgEnv) call(method, path string, body any, want int, out any) []byte {
	e.t.Helper()
	code, b := e.do(method, path, body, nil)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return b
}

// bad expects a 400 naming field.
func (e *cgEnv) bad(method, path string, body any, field, msg string) {
	e.t.Helper()
	var fe map[string][]string
	e.call(method, path, body, http.StatusBadRequest, &fe)
	if !slices.ContainsFunc(fe[field], func(m string) bool { return strings.Contains(m, msg) }) {
		e.t.Fatalf("%s %s %v: errors %v, want %s: %q", method, path, body, fe, field, msg)
	}
}

type cgGuard struct {
	PulpHref    string   `json:"pulp_href"`
	PRN         string   `json:"prn"`
	Name        string   `json:"name"`
	Description *string  `json:"description"`
	HeaderName  string   `json:"header_name"`
	HeaderValue string   `json:"header_value"`
	JQFilter    *string  `json:"jq_filter"`
	Guards      []string `json:"guards"`
}

type cgPage struct {
	Count   int64     `json:"count"`
	Results []cgGuard `json:"results"`
}

func (e *cgEnv) create(path string, body map[string]any) cgGuard {
	e.t.Helper()
	var g cgGuard
	e.call("POST", path, body, http.StatusCreated, &g)
	return g
}

func cgID(href string) string {
	return href[strings.LastIndex(strings.TrimSuffix(href, "/"), "/")+1 : len(href)-1]
}

// distribute adds a distribution at basePath guarded by guardHref ("" for
// none) serving an empty, complete publication, whose root listing is a
// 200.
func (e *cgEnv) distribute(basePath, guardHref string) string {
	e.t.Helper()
	ctx := context.Background()
	now := store.Now()
	repo, ver, pub, dist := store.NewID(), store.NewID(), store.NewID(), store.NewID()
	var guard any
	if guardHref != "" {
		guard = cgID(guardHref)
	}
	stmts := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO repositories (id, created, last_updated, pulp_type, name, next_version) VALUES ($1, $2, $2, 'file.file', $3, 1)`, []any{repo, now, "repo-" + basePath}},
		{`INSERT INTO repository_versions (id, created, last_updated, repository_id, number, complete) VALUES ($1, $2, $2, $3, 0, TRUE)`, []any{ver, now, repo}},
		{`INSERT INTO publications (id, created, last_updated, pulp_type, repository_version_id, complete) VALUES ($1, $2, $2, 'file.file', $3, TRUE)`, []any{pub, now, ver}},
		{`INSERT INTO distributions (id, created, last_updated, pulp_type, name, base_path, content_guard_id, publication_id) VALUES ($1, $2, $2, 'file.file', $3, $3, $4, $5)`, []any{dist, now, basePath, guard, pub}},
	}
	for _, s := range stmts {
		if _, err := e.Store.Exec(ctx, s.q, s.args...); err != nil {
			e.t.Fatal(err)
		}
	}
	return dist
}

// fetch GETs a content URL with headers given as name, value pairs.
func (e *cgEnv) fetch(u string, hdr ...string) (int, string) {
	e.t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	code, b := e.do("GET", u, nil, h)
	return code, string(b)
}

func (e *cgEnv) expect(u string, want int, wantBody string, hdr ...string) {
	e.t.Helper()
	code, body := e.fetch(u, hdr...)
	if code != want || !strings.Contains(body, wantBody) {
		e.t.Fatalf("GET %s %q: %d %q, want %d containing %q", u, hdr, code, body, want, wantBody)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestContentGuardCRUD(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newCGEnv(t, s)

		// Header guards.
		h := e.create(cgHeaders, map[string]any{"name": " hdr ", "header_name": "X-Token", "header_value": "s3cret", "description": "d"})
		id := cgID(h.PulpHref)
		if h.PulpHref != cgHeaders+id+"/" || h.PRN != "prn:core.headercontentguard:"+id || h.Name != "hdr" ||
			h.HeaderName != "X-Token" || h.HeaderValue != "s3cret" || h.JQFilter != nil || h.Description == nil || *h.Description != "d" {
			t.Fatalf("created %+v", h)
		}
		var got cgGuard
		e.call("GET", h.PulpHref, nil, http.StatusOK, &got)
		if got.PulpHref != h.PulpHref || got.HeaderValue != "s3cret" {
			t.Fatalf("read %+v", got)
		}
		got = cgGuard{}
		e.call("PATCH", h.PulpHref, map[string]any{"jq_filter": ".org.id"}, http.StatusOK, &got)
		if got.JQFilter == nil || *got.JQFilter != ".org.id" || got.HeaderValue != "s3cret" || got.Description == nil {
			t.Fatalf("after PATCH %+v", got)
		}
		// PUT replaces the guard: what it leaves out takes its default.
		got = cgGuard{}
		e.call("PUT", h.PulpHref, map[string]any{"name": "hdr", "header_name": "X-Other", "header_value": "v"}, http.StatusOK, &got)
		if got.JQFilter != nil || got.Description != nil || got.HeaderName != "X-Other" || got.HeaderValue != "v" {
			t.Fatalf("after PUT %+v", got)
		}

		// Bad input.
		e.bad("POST", cgHeaders, map[string]any{"name": "x", "header_value": "v"}, "header_name", "This field is required.")
		e.bad("POST", cgHeaders, map[string]any{"name": " ", "header_name": "X", "header_value": "v"}, "name", "may not be blank")
		e.bad("POST", cgHeaders, map[string]any{"name": "x", "header_name": "Bad Header", "header_value": "v"}, "header_name", "valid HTTP header name")
		e.bad("POST", cgHeaders, map[string]any{"name": "x", "header_name": "X", "header_value": "v", "jq_filter": ".a | length"}, "jq_filter", "path filters only")
		e.bad("POST", cgHeaders, map[string]any{"name": "hdr", "header_name": "X", "header_value": "v"}, "name", "This field must be unique.")
		e.bad("PUT", h.PulpHref, map[string]any{"name": "hdr"}, "header_value", "This field is required.")
		e.bad("PATCH", h.PulpHref, map[string]any{"header_value": 5}, "header_value", "Not a valid string.")

		// Content redirect guards: the secret is made by the server and
		// neither shown nor accepted.
		raw := e.call("POST", cgRedirects, map[string]any{"name": "redir"}, http.StatusCreated, nil)
		var fields map[string]any
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatal(err)
		}
		if _, ok := fields["shared_secret"]; ok || strings.Contains(string(raw), "secret") {
			t.Fatalf("redirect guard shows its secret: %s", raw)
		}
		r := cgGuard{PulpHref: fields["pulp_href"].(string)}
		if !strings.HasPrefix(r.PulpHref, cgRedirects) || fields["prn"] != "prn:core.contentredirectcontentguard:"+cgID(r.PulpHref) {
			t.Fatalf("redirect guard %s", raw)
		}
		e.bad("POST", cgRedirects, map[string]any{"name": "r2", "shared_secret": "00"}, "shared_secret", "Unexpected field")
		e.bad("POST", cgRedirects, map[string]any{"name": "hdr"}, "name", "This field must be unique.")
		// The guard's secret survives updates.
		before, err := contentguard.Get(context.Background(), s, cgID(r.PulpHref))
		if err != nil {
			t.Fatal(err)
		}
		e.call("PATCH", r.PulpHref, map[string]any{"name": "redir2", "description": "x"}, http.StatusOK, nil)
		after, err := contentguard.Get(context.Background(), s, cgID(r.PulpHref))
		if err != nil || after.Settings.SharedSecret != before.Settings.SharedSecret || len(after.Settings.SharedSecret) != 64 || after.Name != "redir2" {
			t.Fatalf("secret %q → %q (%v), name %q", before.Settings.SharedSecret, after.Settings.SharedSecret, err, after.Name)
		}

		// A guard is only found under its own type.
		e.call("GET", cgRedirects+id+"/", nil, http.StatusNotFound, nil)
		e.call("DELETE", cgComposite+id+"/", nil, http.StatusNotFound, nil)
		e.call("PATCH", cgRedirects+id+"/", map[string]any{"name": "x"}, http.StatusNotFound, nil)

		// Composite guards.
		c := e.create(cgComposite, map[string]any{"name": "comp"})
		if c.Guards == nil || len(c.Guards) != 0 {
			t.Fatalf("empty composite %+v", c)
		}
		got = cgGuard{}
		e.call("PATCH", c.PulpHref, map[string]any{"guards": []string{r.PulpHref, h.PulpHref, r.PulpHref}}, http.StatusOK, &got)
		if !slices.Equal(got.Guards, []string{r.PulpHref, h.PulpHref}) {
			t.Fatalf("composite guards %q", got.Guards)
		}
		// PRNs name guards too.
		c2 := e.create(cgComposite, map[string]any{"name": "comp2", "guards": []string{"prn:core.compositecontentguard:" + cgID(c.PulpHref)}})
		if !slices.Equal(c2.Guards, []string{c.PulpHref}) {
			t.Fatalf("nested composite guards %q", c2.Guards)
		}
		e.bad("PATCH", c.PulpHref, map[string]any{"guards": []string{"/pulp/api/v3/remotes/file/file/" + id + "/"}}, "guards", "No URL match")
		e.bad("PATCH", c.PulpHref, map[string]any{"guards": []string{cgHeaders + store.NewID() + "/"}}, "guards", "Object does not exist")
		e.bad("PATCH", c.PulpHref, map[string]any{"guards": []string{cgRedirects + id + "/"}}, "guards", "Object does not exist")
		e.bad("PATCH", c.PulpHref, map[string]any{"guards": []string{c.PulpHref}}, "guards", "cannot contain itself")
		e.bad("PATCH", c.PulpHref, map[string]any{"guards": []string{c2.PulpHref}}, "guards", "cannot contain itself")
		e.bad("PATCH", c.PulpHref, map[string]any{"guards": "x"}, "guards", "Expected a list")

		// Lists: per type, and the generic one with its filters.
		var page cgPage
		e.call("GET", cgComposite, nil, http.StatusOK, &page)
		if page.Count != 2 || len(page.Results) != 2 || page.Results[0].Name != "comp2" || !slices.Equal(page.Results[1].Guards, []string{r.PulpHref, h.PulpHref}) {
			t.Fatalf("composite list %+v", page)
		}
		page = cgPage{}
		e.call("GET", coreapi.ContentGuardsPath, nil, http.StatusOK, &page)
		if page.Count != 4 {
			t.Fatalf("generic list %+v", page)
		}
		page = cgPage{}
		e.call("GET", coreapi.ContentGuardsPath+"?pulp_type__in=core.header,core.content_redirect&ordering=name", nil, http.StatusOK, &page)
		if page.Count != 2 || page.Results[0].Name != "hdr" || page.Results[1].PulpHref != r.PulpHref {
			t.Fatalf("filtered generic list %+v", page)
		}
		page = cgPage{}
		e.call("GET", coreapi.ContentGuardsPath+"?name__startswith=comp&pulp_href__in="+url.QueryEscape(c2.PulpHref), nil, http.StatusOK, &page)
		if page.Count != 1 || page.Results[0].PulpHref != c2.PulpHref {
			t.Fatalf("href-filtered generic list %+v", page)
		}
		page = cgPage{}
		e.call("GET", cgHeaders+"?name=comp", nil, http.StatusOK, &page)
		if page.Count != 0 {
			t.Fatalf("header list by a composite's name %+v", page)
		}

		// Deleting a guard frees the distributions it protected and leaves
		// the composites that listed it.
		dist := e.distribute("guarded", h.PulpHref)
		e.call("DELETE", h.PulpHref, nil, http.StatusNoContent, nil)
		e.call("GET", h.PulpHref, nil, http.StatusNotFound, nil)
		e.call("DELETE", h.PulpHref, nil, http.StatusNotFound, nil)
		var guardID *string
		if err := s.QueryRow(context.Background(), `SELECT content_guard_id FROM distributions WHERE id = $1`, dist).Scan(&guardID); err != nil {
			t.Fatal(err)
		}
		if guardID != nil {
			t.Fatalf("distribution still guarded by %s", *guardID)
		}
		got = cgGuard{}
		e.call("GET", c.PulpHref, nil, http.StatusOK, &got)
		if !slices.Equal(got.Guards, []string{r.PulpHref}) {
			t.Fatalf("composite after a member's delete %q", got.Guards)
		}
		stored, err := contentguard.Get(context.Background(), s, cgID(c.PulpHref))
		if err != nil || !slices.Equal(stored.Settings.Guards, []string{cgID(r.PulpHref)}) {
			t.Fatalf("stored members %v (%v)", stored, err)
		}
	})
}

func TestContentGuardChecks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newCGEnv(t, s)
		h := e.create(cgHeaders, map[string]any{"name": "hdr", "header_name": "X-Token", "header_value": "s3cret"})
		jq := e.create(cgHeaders, map[string]any{"name": "jq", "header_name": "X-Identity", "header_value": "42", "jq_filter": `.identity["org-id"]`})
		r := e.create(cgRedirects, map[string]any{"name": "redir"})
		other := e.create(cgRedirects, map[string]any{"name": "other"})
		c := e.create(cgComposite, map[string]any{"name": "comp"})

		e.distribute("open", "")
		e.distribute("hdr", h.PulpHref)
		e.distribute("jq", jq.PulpHref)
		e.distribute("redir", r.PulpHref)
		e.distribute("comp", c.PulpHref)

		e.expect(cgContent+"open/", http.StatusOK, "")

		// Header guard: the value is base64 of header_value.
		e.expect(cgContent+"hdr/", http.StatusForbidden, "403: Access denied.")
		e.expect(cgContent+"hdr/", http.StatusForbidden, "Access denied.", "X-Token", b64("wrong"))
		e.expect(cgContent+"hdr/", http.StatusForbidden, "Access denied.", "X-Token", "s3cret") // not base64
		e.expect(cgContent+"hdr/", http.StatusForbidden, "Access denied.", "X-Token", b64("s3cret2"))
		e.expect(cgContent+"hdr/", http.StatusOK, "", "X-Token", b64("s3cret"))
		e.expect(cgContent+"hdr/", http.StatusOK, "", "x-token", b64("s3cret"))
		// The guard protects everything below the base path.
		e.expect(cgContent+"hdr/missing.iso", http.StatusForbidden, "Access denied.")
		e.expect(cgContent+"hdr/missing.iso", http.StatusNotFound, "", "X-Token", b64("s3cret"))

		// jq_filter picks a string out of base64-encoded JSON.
		e.expect(cgContent+"jq/", http.StatusOK, "", "X-Identity", b64(`{"identity": {"org-id": "42"}}`))
		e.expect(cgContent+"jq/", http.StatusForbidden, "Access denied.", "X-Identity", b64(`{"identity": {"org-id": 42}}`))
		e.expect(cgContent+"jq/", http.StatusForbidden, "Access denied.", "X-Identity", b64(`{"identity": {"org": "42"}}`))
		e.expect(cgContent+"jq/", http.StatusForbidden, "Access denied.", "X-Identity", b64(`["42"]`))
		e.expect(cgContent+"jq/", http.StatusForbidden, "Access denied.", "X-Identity", b64(`not json`))

		// Content redirect guard: only URLs the API signed pass.
		e.expect(cgContent+"redir/", http.StatusForbidden, "403: Access not authenticated")
		var signed coreapi.ContentRedirectSignResponse
		e.call("POST", r.PulpHref+"sign/", map[string]any{"url": "redir/"}, http.StatusOK, &signed)
		if !strings.HasPrefix(signed.URL, e.URL+cgContent+"redir/?expires=") || !strings.Contains(signed.URL, "&validate_token=") {
			t.Fatalf("signed URL %q", signed.URL)
		}
		if d := time.Until(signed.Expires); d < 59*time.Minute || d > time.Hour {
			t.Fatalf("default expiry in %v", d)
		}
		e.expect(signed.URL, http.StatusOK, "")
		u, _ := url.Parse(signed.URL)
		q := u.Query()
		// Tampering with the path, the expiry, the token or the query fails.
		e.expect(strings.Replace(signed.URL, "/redir/", "/redir/x", 1), http.StatusForbidden, "Access not authenticated")
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set("expires", "99999999999")
		e.expect(cgContent+"redir/?"+q2.Encode(), http.StatusForbidden, "Access not authenticated")
		tok := q.Get("validate_token")
		flipped := tok[:len(tok)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", tok[len(tok)-1])+1)%16])
		e.expect(cgContent+"redir/?expires="+q.Get("expires")+"&validate_token="+flipped, http.StatusForbidden, "Access not authenticated")
		e.expect(signed.URL+"&extra=1", http.StatusForbidden, "Access not authenticated")
		e.expect(cgContent+"redir/?expires="+q.Get("expires"), http.StatusForbidden, "Access not authenticated")
		// Parameter order does not matter; the signature covers their set.
		e.expect(cgContent+"redir/?validate_token="+url.QueryEscape(tok)+"&expires="+q.Get("expires"), http.StatusOK, "")
		// A URL signed by another guard, or one that expired, fails.
		var foreign coreapi.ContentRedirectSignResponse
		e.call("POST", other.PulpHref+"sign/", map[string]any{"url": cgContent + "redir/"}, http.StatusOK, &foreign)
		e.expect(foreign.URL, http.StatusForbidden, "Access not authenticated")
		g, err := contentguard.Get(context.Background(), s, cgID(r.PulpHref))
		if err != nil {
			t.Fatal(err)
		}
		expired, err := contentguard.SignURL(g.Settings.SharedSecret, e.URL+cgContent+"redir/", time.Now().Add(-2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		e.expect(expired, http.StatusForbidden, "403: Authentication expired")
		live, err := contentguard.SignURL(g.Settings.SharedSecret, e.URL+cgContent+"redir/", time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		e.expect(live, http.StatusOK, "")
		// Signing a file keeps its path; expires_in sets the lifetime.
		var file coreapi.ContentRedirectSignResponse
		e.call("POST", r.PulpHref+"sign/", map[string]any{"url": e.URL + cgContent + "redir/a%20b.iso", "expires_in": 60}, http.StatusOK, &file)
		if d := time.Until(file.Expires); d < 55*time.Second || d > time.Minute {
			t.Fatalf("expires_in 60 expires in %v", d)
		}
		e.expect(file.URL, http.StatusNotFound, "") // passes the guard; no such file
		e.bad("POST", r.PulpHref+"sign/", map[string]any{"url": "/elsewhere/x"}, "url", "below the content path prefix")
		e.bad("POST", r.PulpHref+"sign/", map[string]any{"url": "ftp://h/pulp/content/x"}, "url", "valid URL")
		e.bad("POST", r.PulpHref+"sign/", map[string]any{"url": "x", "expires_in": 0}, "expires_in", "greater than or equal to 1")
		e.bad("POST", r.PulpHref+"sign/", map[string]any{}, "url", "required")
		e.call("POST", cgRedirects+cgID(h.PulpHref)+"/sign/", map[string]any{"url": "x"}, http.StatusNotFound, nil)

		// Composite: empty permits; otherwise any member's permission.
		e.expect(cgContent+"comp/", http.StatusOK, "")
		e.call("PATCH", c.PulpHref, map[string]any{"guards": []string{r.PulpHref, h.PulpHref}}, http.StatusOK, nil)
		code, body := e.fetch(cgContent + "comp/")
		if code != http.StatusForbidden || !strings.Contains(body, "Access forbidden. Refusals:") ||
			!strings.Contains(body, r.PulpHref) || !strings.Contains(body, h.PulpHref) {
			t.Fatalf("composite refusal %d %q", code, body)
		}
		e.expect(cgContent+"comp/", http.StatusOK, "", "X-Token", b64("s3cret"))
		var viaComp coreapi.ContentRedirectSignResponse
		e.call("POST", r.PulpHref+"sign/", map[string]any{"url": "comp/"}, http.StatusOK, &viaComp)
		e.expect(viaComp.URL, http.StatusOK, "")

		// A guard pith cannot evaluate refuses everything.
		now := store.Now()
		rbac := store.NewID()
		if _, err := s.Exec(context.Background(), `INSERT INTO content_guards (id, created, last_updated, pulp_type, name) VALUES ($1, $2, $2, 'core.rbac', 'rbac')`, rbac, now); err != nil {
			t.Fatal(err)
		}
		e.distribute("rbac", "/pulp/api/v3/contentguards/core/rbac/"+rbac+"/")
		e.expect(cgContent+"rbac/", http.StatusForbidden, "core.rbac cannot be checked")

		// Once its guard is deleted, a distribution is open.
		e.call("DELETE", h.PulpHref, nil, http.StatusNoContent, nil)
		e.expect(cgContent+"hdr/", http.StatusOK, "")
	})
}

// A composite that (through rows written behind the API's back) contains
// itself refuses instead of recursing forever.
func TestContentGuardCompositeCycle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newCGEnv(t, s)
		a := e.create(cgComposite, map[string]any{"name": "a"})
		b := e.create(cgComposite, map[string]any{"name": "b", "guards": []string{a.PulpHref}})
		if _, err := s.Exec(context.Background(), `UPDATE content_guards SET settings = $1 WHERE id = $2`,
			`{"guards":["`+cgID(b.PulpHref)+`"]}`, cgID(a.PulpHref)); err != nil {
			t.Fatal(err)
		}
		e.distribute("loop", a.PulpHref)
		e.expect(cgContent+"loop/", http.StatusForbidden, "contains itself")
	})
}

func TestHideGuardedDistributions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		e := newCGEnv(t, s)
		e.Content.HideGuarded = true // before any request reads it
		h := e.create(cgHeaders, map[string]any{"name": "hdr", "header_name": "X-Token", "header_value": "s3cret"})
		e.distribute("pub/open", "")
		e.distribute("pub/guarded", h.PulpHref)
		_, body := e.fetch(cgContent + "pub/")
		if strings.Contains(body, "guarded/") || !strings.Contains(body, "open/") {
			t.Fatalf("listing with guarded distributions hidden: %s", body)
		}
		// Hidden from listings, still served to permitted clients.
		e.expect(cgContent+"pub/guarded/", http.StatusOK, "", "X-Token", b64("s3cret"))
	})
}
