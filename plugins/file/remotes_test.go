package file

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/coreapi"
	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/download"
	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// createRemote creates a remote from body (a map, merged over a name and
// url) and returns it.
func (e *testEnv) createRemote(body map[string]any) FileRemoteResponse {
	e.t.Helper()
	b := map[string]any{"name": "r", "url": "https://example.com/PULP_MANIFEST"}
	for k, v := range body {
		b[k] = v
	}
	var r FileRemoteResponse
	e.call("POST", RemotesPath, b, http.StatusCreated, &r)
	return r
}

func (e *testEnv) readRemote(href string) FileRemoteResponse {
	e.t.Helper()
	var r FileRemoteResponse
	e.call("GET", href, nil, http.StatusOK, &r)
	return r
}

func hidden(r FileRemoteResponse) map[string]bool {
	m := map[string]bool{}
	for _, h := range r.HiddenFields {
		m[h.Name] = h.IsSet
	}
	return m
}

func TestRemoteCreateDefaults(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		before := time.Now().Add(-time.Second)
		r := e.createRemote(map[string]any{"name": "plain"})
		id := strings.TrimSuffix(strings.TrimPrefix(r.PulpHref, RemotesPath), "/")
		if !store.ValidID(id) || r.PRN != "prn:file.fileremote:"+id {
			t.Fatalf("href %q prn %q", r.PulpHref, r.PRN)
		}
		if r.PulpCreated.Before(before) || !r.PulpLastUpdated.Equal(r.PulpCreated) {
			t.Fatalf("timestamps %v %v", r.PulpCreated, r.PulpLastUpdated)
		}
		want := coreapi.RemoteResponse{
			Base: r.Base, Name: "plain", URL: "https://example.com/PULP_MANIFEST", PulpLabels: map[string]string{},
			Policy: "immediate", TLSValidation: true, Headers: []map[string]string{},
			HiddenFields: []coreapi.HiddenField{hf("client_key", false), hf("proxy_username", false), hf("proxy_password", false), hf("username", false), hf("password", false)},
		}
		if diff := cmp.Diff(want, r.RemoteResponse); diff != "" {
			t.Fatalf("created remote (-want +got):\n%s", diff)
		}
		if got := e.readRemote(r.PulpHref); !cmp.Equal(got, r) {
			t.Fatalf("read differs from create:\n%s", cmp.Diff(r, got))
		}
		// Every field Pulp shows is there, nulls included.
		_, raw := e.do("GET", r.PulpHref, nil)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		wantKeys := []string{"ca_cert", "client_cert", "connect_timeout", "download_concurrency", "headers", "hidden_fields", "max_retries",
			"name", "policy", "prn", "proxy_url", "pulp_created", "pulp_href", "pulp_labels", "pulp_last_updated", "rate_limit",
			"sock_connect_timeout", "sock_read_timeout", "tls_validation", "total_timeout", "url"}
		if !slices.Equal(keys, wantKeys) {
			t.Fatalf("fields %v, want %v", keys, wantKeys)
		}
		if code, _ := e.do("GET", RemotesPath+store.NewID()+"/", nil); code != http.StatusNotFound {
			t.Fatalf("missing remote: %d", code)
		}
		if code, _ := e.do("GET", RemotesPath+"not-a-uuid/", nil); code != http.StatusNotFound {
			t.Fatalf("bad id: %d", code)
		}
	})
}

func TestRemoteCreateAllFields(t *testing.T) {
	t.Parallel()
	pki := newRemoteTestPKI(t)
	eachEnv(t, func(t *testing.T, e *testEnv) {
		r := e.createRemote(map[string]any{
			"name": "  full  ", "url": " https://example.com/repo/PULP_MANIFEST ", "policy": "on_demand",
			"ca_cert": "commentary before\n" + pki.caPEM + "trailing words\n", "client_cert": pki.clientCertPEM, "client_key": pki.clientKeyPEM,
			"tls_validation": false, "proxy_url": "http://proxy.example:3128", "proxy_username": "pu", "proxy_password": " pp ",
			"username": "user", "password": "secret pass", "max_retries": 0, "total_timeout": 12.5, "connect_timeout": 0,
			"sock_connect_timeout": 3, "sock_read_timeout": 4.25, "headers": []map[string]string{{"X-One": "1"}, {"User-Agent": "extra"}},
			"download_concurrency": 4, "rate_limit": 9, "pulp_labels": map[string]string{"env": "prod", "a b.c-d": "x,y"},
		})
		f := func(v float64) *float64 { return &v }
		n := func(v int64) *int64 { return &v }
		s := func(v string) *string { return &v }
		want := coreapi.RemoteResponse{
			Base: r.Base, Name: "full", URL: "https://example.com/repo/PULP_MANIFEST", Policy: "on_demand",
			PulpLabels: map[string]string{"env": "prod", "a b.c-d": "x,y"},
			// Only the certificate blocks are kept.
			CACert: s(pki.caPEM), ClientCert: s(pki.clientCertPEM), TLSValidation: false, ProxyURL: s("http://proxy.example:3128"),
			MaxRetries: n(0), TotalTimeout: f(12.5), ConnectTimeout: f(0), SockConnectTimeout: f(3), SockReadTimeout: f(4.25),
			Headers:             []map[string]string{{"X-One": "1"}, {"User-Agent": "extra"}},
			DownloadConcurrency: n(4), RateLimit: n(9),
			HiddenFields: []coreapi.HiddenField{hf("client_key", true), hf("proxy_username", true), hf("proxy_password", true), hf("username", true), hf("password", true)},
		}
		if diff := cmp.Diff(want, r.RemoteResponse); diff != "" {
			t.Fatalf("created remote (-want +got):\n%s", diff)
		}
		// The secrets are stored (passwords exactly as given) but never shown.
		row, err := e.Store.GetRemote(t.Context(), r.PulpHref[len(RemotesPath):len(r.PulpHref)-1])
		if err != nil {
			t.Fatal(err)
		}
		if *row.ProxyPassword != " pp " || *row.Password != "secret pass" || *row.Username != "user" || *row.ClientKey != strings.TrimSpace(pki.clientKeyPEM) {
			t.Fatalf("stored secrets %q %q %q", *row.ProxyPassword, *row.Password, *row.Username)
		}
		for _, path := range []string{r.PulpHref, RemotesPath, coreapi.RemotesPath, RemotesPath + "?name=full"} {
			_, body := e.do("GET", path, nil)
			for _, secret := range []string{"secret pass", `"pu"`, " pp ", `"user"`, "PRIVATE KEY", `"client_key":`, `"password":`, `"username":`} {
				if bytes.Contains(body, []byte(secret)) {
					t.Errorf("GET %s shows %s: %s", path, secret, body)
				}
			}
		}
	})
}

func TestRemoteUpdate(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		r := e.createRemote(map[string]any{
			"name": "up", "policy": "on_demand", "download_concurrency": 3, "proxy_url": "http://proxy:3128",
			"proxy_username": "pu", "proxy_password": "pp", "username": "u", "password": "p",
			"pulp_labels": map[string]string{"keep": "me"}, "headers": []map[string]string{{"X-A": "1"}},
		})

		// PATCH one field: a task changes it, the rest stays.
		task := e.async("PATCH", r.PulpHref, map[string]any{"url": "https://other.example/PULP_MANIFEST"})
		if task.Name != coreapi.GeneralUpdateTask || !slices.Contains(task.Reserved, r.PRN) {
			t.Fatalf("update task %s reserved %v", task.Name, task.Reserved)
		}
		got := e.readRemote(r.PulpHref)
		want := r
		want.URL = "https://other.example/PULP_MANIFEST"
		want.PulpLastUpdated = got.PulpLastUpdated
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("after PATCH url (-want +got):\n%s", diff)
		}
		if !got.PulpLastUpdated.After(r.PulpLastUpdated) {
			t.Fatalf("pulp_last_updated not advanced")
		}

		// A PATCH that changes nothing answers 200 with the remote.
		var same FileRemoteResponse
		e.call("PATCH", r.PulpHref, map[string]any{"url": "https://other.example/PULP_MANIFEST", "policy": "on_demand", "pulp_labels": map[string]string{"keep": "me"}}, http.StatusOK, &same)
		if !cmp.Equal(same, got) {
			t.Fatalf("unchanged PATCH answered:\n%s", cmp.Diff(got, same))
		}
		e.call("PATCH", r.PulpHref, map[string]any{}, http.StatusOK, &same)

		// null clears nullable fields, secrets included.
		e.async("PATCH", r.PulpHref, map[string]any{"download_concurrency": nil, "proxy_url": nil, "proxy_username": nil, "proxy_password": nil, "password": nil})
		got = e.readRemote(r.PulpHref)
		if got.DownloadConcurrency != nil || got.ProxyURL != nil {
			t.Fatalf("nulls not applied: %+v", got)
		}
		if h := hidden(got); h["proxy_username"] || h["proxy_password"] || h["password"] || !h["username"] {
			t.Fatalf("hidden fields after clearing: %v", got.HiddenFields)
		}

		// PUT needs name and url, resets policy to its default and leaves
		// other absent fields alone (DRF's full update).
		code, body := e.do("PUT", r.PulpHref, map[string]any{"name": "up"})
		if code != http.StatusBadRequest || !strings.Contains(string(body), `"url":["This field is required."]`) {
			t.Fatalf("PUT without url: %d %s", code, body)
		}
		e.async("PUT", r.PulpHref, map[string]any{"name": "renamed", "url": "https://third.example/m"})
		got = e.readRemote(r.PulpHref)
		if got.Name != "renamed" || got.URL != "https://third.example/m" || got.Policy != "immediate" ||
			got.PulpLabels["keep"] != "me" || len(got.Headers) != 1 || !hidden(got)["username"] {
			t.Fatalf("after PUT: %+v", got)
		}

		// Labels and headers are replaced as a whole.
		e.async("PATCH", r.PulpHref, map[string]any{"pulp_labels": map[string]string{}, "headers": []any{}})
		got = e.readRemote(r.PulpHref)
		if len(got.PulpLabels) != 0 || len(got.Headers) != 0 {
			t.Fatalf("labels/headers not cleared: %v %v", got.PulpLabels, got.Headers)
		}

		// Form bodies work too (pulp-glue falls back to them).
		req, _ := http.NewRequest("PATCH", e.URL+r.PulpHref, strings.NewReader(url.Values{"tls_validation": {"false"}, "rate_limit": {"5"}}.Encode()))
		req.SetBasicAuth(testUser, testPassword)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ar api.AsyncResponse
		json.NewDecoder(resp.Body).Decode(&ar)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || e.waitTask(ar.Task).State != "completed" {
			t.Fatalf("form PATCH: %d", resp.StatusCode)
		}
		got = e.readRemote(r.PulpHref)
		if got.TLSValidation || got.RateLimit == nil || *got.RateLimit != 5 {
			t.Fatalf("after form PATCH: %+v", got)
		}

		if code, _ := e.do("PATCH", RemotesPath+store.NewID()+"/", map[string]any{"url": "https://x"}); code != http.StatusNotFound {
			t.Fatalf("PATCH of a missing remote: %d", code)
		}
	})
}

// TestRemoteUpdateTaskRevalidates checks the task side of an update: it
// applies the change to the remote as it is when the task runs, and fails
// cleanly if the change has become invalid meanwhile.
func TestRemoteUpdateTaskRevalidates(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		a := e.createRemote(map[string]any{"name": "a"})
		e.createRemote(map[string]any{"name": "b"})
		id := a.PulpHref[len(RemotesPath) : len(a.PulpHref)-1]
		// Dispatch as the handler does, with changes the handler would
		// have refused had they been invalid when it looked.
		update := func(up remoteUpdate) testTask {
			t.Helper()
			tk, err := e.Core.DispatchUpdate(&api.Ctx{Context: t.Context()}, RemotePRNType, id, up, a.PRN)
			if err != nil {
				t.Fatal(err)
			}
			return e.waitTask(coreapi.TaskHref(tk.ID))
		}
		if tk := update(remoteUpdate{Fields: []string{"name"}, Body: FileRemote{Name: "b"}}); tk.State != "failed" ||
			!strings.Contains(fmt.Sprint(tk.Error["description"]), "unique") {
			t.Fatalf("rename onto a taken name: %s %v", tk.State, tk.Error)
		}
		if tk := update(remoteUpdate{Fields: []string{"proxy_username"}, Body: FileRemote{ProxyUsername: ptrTo("u")}}); tk.State != "failed" ||
			!strings.Contains(fmt.Sprint(tk.Error["description"]), "proxy") {
			t.Fatalf("proxy user without proxy: %s %v", tk.State, tk.Error)
		}
		if got := e.readRemote(a.PulpHref); !cmp.Equal(got, a) {
			t.Fatalf("failed updates changed the remote:\n%s", cmp.Diff(a, got))
		}
		if tk := update(remoteUpdate{Fields: []string{"url", "policy"}, Body: FileRemote{URL: "https://new.example/", Policy: "streamed"}}); tk.State != "completed" {
			t.Fatalf("valid update: %s %v", tk.State, tk.Error)
		}
		if got := e.readRemote(a.PulpHref); got.URL != "https://new.example/" || got.Policy != "streamed" {
			t.Fatalf("task update not applied: %+v", got)
		}
		// A full update (PUT) resets the policy it was not given.
		if tk := update(remoteUpdate{Put: true, Fields: []string{"name", "url"}, Body: FileRemote{Name: "a", URL: "https://new.example/"}}); tk.State != "completed" {
			t.Fatalf("put update: %s %v", tk.State, tk.Error)
		}
		if got := e.readRemote(a.PulpHref); got.Policy != "immediate" {
			t.Fatalf("PUT kept policy %s", got.Policy)
		}
	})
}

func ptrTo[T any](v T) *T { return &v }

func hf(name string, set bool) coreapi.HiddenField {
	return coreapi.HiddenField{Name: name, IsSet: set}
}

func TestRemoteValidation(t *testing.T) {
	t.Parallel()
	pki := newRemoteTestPKI(t)
	other := newRemoteTestPKI(t)
	eachEnv(t, func(t *testing.T, e *testEnv) {
		e.createRemote(map[string]any{"name": "taken"})
		cases := []struct {
			name  string
			body  map[string]any
			field string
			msg   string // substring of the message
		}{
			{"name missing", map[string]any{"name": nil, "url": "https://x"}, "name", "may not be null"},
			{"name blank", map[string]any{"name": "  "}, "name", "may not be blank"},
			{"name taken", map[string]any{"name": "taken"}, "name", "This field must be unique."},
			{"url blank", map[string]any{"url": ""}, "url", "may not be blank"},
			{"url with user and password", map[string]any{"url": "https://u:p@example.com/m"}, "url", "contains username or password"},
			{"url with user", map[string]any{"url": "https://u@example.com/m"}, "url", "contains username or password"},
			{"url scheme", map[string]any{"url": "ftp://example.com/m"}, "url", "scheme must be http, https or file"},
			{"url without host", map[string]any{"url": "https:///m"}, "url", "Enter a valid URL."},
			{"url unparsable", map[string]any{"url": "http://[::1"}, "url", "Enter a valid URL."},
			{"policy", map[string]any{"policy": "later"}, "policy", `"later" is not a valid choice.`},
			{"ca_cert garbage", map[string]any{"ca_cert": "not a certificate"}, "ca_cert", "Invalid ca_cert"},
			{"ca_cert only a key", map[string]any{"ca_cert": pki.clientKeyPEM}, "ca_cert", "Invalid ca_cert"},
			{"client_cert garbage", map[string]any{"client_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "client_cert", "Invalid client_cert"},
			{"client_key garbage", map[string]any{"client_key": "nope"}, "client_key", "no PEM private key"},
			{"client key pair mismatch", map[string]any{"client_cert": pki.clientCertPEM, "client_key": other.clientKeyPEM}, "non_field_errors", "do not form a key pair"},
			{"proxy_url credentials", map[string]any{"proxy_url": "http://u:p@proxy:3128"}, "proxy_url", "must not contain credentials"},
			{"proxy_url scheme", map[string]any{"proxy_url": "socks5://proxy:1080"}, "proxy_url", "http:// or https://"},
			{"proxy user without password", map[string]any{"proxy_url": "http://proxy:3128", "proxy_username": "u"}, "non_field_errors", "proxy username and password can only be specified together"},
			{"proxy password without user", map[string]any{"proxy_url": "http://proxy:3128", "proxy_password": "p"}, "non_field_errors", "proxy username and password can only be specified together"},
			{"proxy credentials without proxy", map[string]any{"proxy_username": "u", "proxy_password": "p"}, "non_field_errors", "proxy credentials cannot be specified without a proxy"},
			{"download_concurrency 0", map[string]any{"download_concurrency": 0}, "download_concurrency", "greater than or equal to 1"},
			{"download_concurrency float", map[string]any{"download_concurrency": 1.5}, "download_concurrency", "valid integer"},
			{"max_retries negative", map[string]any{"max_retries": -1}, "max_retries", "greater than or equal to 0"},
			{"rate_limit negative", map[string]any{"rate_limit": -1}, "rate_limit", "greater than or equal to 0"},
			{"total_timeout negative", map[string]any{"total_timeout": -0.5}, "total_timeout", "greater than or equal to 0"},
			{"connect_timeout negative", map[string]any{"connect_timeout": -1}, "connect_timeout", "greater than or equal to 0"},
			{"sock_connect_timeout text", map[string]any{"sock_connect_timeout": "soon"}, "sock_connect_timeout", "valid number"},
			{"sock_read_timeout negative", map[string]any{"sock_read_timeout": -2}, "sock_read_timeout", "greater than or equal to 0"},
			{"tls_validation text", map[string]any{"tls_validation": "perhaps"}, "tls_validation", "valid boolean"},
			{"headers two keys", map[string]any{"headers": []map[string]string{{"A": "1", "B": "2"}}}, "headers", "exactly one name: value pair"},
			{"headers empty object", map[string]any{"headers": []map[string]string{{}}}, "headers", "exactly one name: value pair"},
			{"headers bad name", map[string]any{"headers": []map[string]string{{"Bad Name": "x"}}}, "headers", "not a valid header name"},
			{"headers number value", map[string]any{"headers": []map[string]any{{"X": 1}}}, "headers", "must be a string"},
			{"headers line break", map[string]any{"headers": []map[string]string{{"X": "a\r\nInjected: yes"}}}, "headers", "control characters"},
			{"headers not a list", map[string]any{"headers": "X: y"}, "headers", "Expected a list"},
			{"headers null", map[string]any{"headers": nil}, "headers", "may not be null"},
			{"labels bad key", map[string]any{"pulp_labels": map[string]string{"@": "maia"}}, "pulp_labels", "contains invalid characters"},
			{"labels parenthesis", map[string]any{"pulp_labels": map[string]string{"arda": "eru(illuvatar)"}}, "pulp_labels", "contains value with parenthesis"},
			{"labels null", map[string]any{"pulp_labels": nil}, "pulp_labels", "may not be null"},
			{"unknown field", map[string]any{"colour": "blue"}, "colour", "Unexpected field"},
			{"read-only secret blank", map[string]any{"password": ""}, "password", "may not be blank"},
		}
		for _, tc := range cases {
			body := map[string]any{"name": "new", "url": "https://example.com/PULP_MANIFEST"}
			for k, v := range tc.body {
				body[k] = v
			}
			code, raw := e.do("POST", RemotesPath, body)
			var fe map[string][]string
			_ = json.Unmarshal(raw, &fe)
			if code != http.StatusBadRequest || !strings.Contains(strings.Join(fe[tc.field], " "), tc.msg) {
				t.Errorf("%s: %d %s; want 400 with %s: %q", tc.name, code, raw, tc.field, tc.msg)
			}
		}
		code, raw := e.do("POST", RemotesPath, map[string]any{})
		if code != http.StatusBadRequest || string(raw) != `{"name":["This field is required."],"url":["This field is required."]}` {
			t.Errorf("empty body: %d %s", code, raw)
		}
		var list api.PageResponse
		e.call("GET", RemotesPath, nil, http.StatusOK, &list)
		if list.Count != 1 {
			t.Fatalf("invalid requests created remotes: count %d", list.Count)
		}

		// Nullable fields accept null on create.
		e.createRemote(map[string]any{"name": "nulls", "ca_cert": nil, "download_concurrency": nil, "proxy_url": nil, "total_timeout": nil, "password": nil})

		// Updates are validated as a whole, before any task.
		r := e.createRemote(map[string]any{"name": "patched"})
		for _, tc := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"proxy_username": "u", "proxy_password": "p"}, "non_field_errors"},
			{map[string]any{"name": "taken"}, "name"},
			{map[string]any{"url": "https://u:p@x/"}, "url"},
			{map[string]any{"name": nil}, "name"},
			{map[string]any{"client_key": pki.clientKeyPEM, "client_cert": other.clientCertPEM}, "non_field_errors"},
		} {
			code, raw := e.do("PATCH", r.PulpHref, tc.body)
			var fe map[string][]string
			_ = json.Unmarshal(raw, &fe)
			if code != http.StatusBadRequest || len(fe[tc.field]) == 0 {
				t.Errorf("PATCH %v: %d %s, want 400 on %s", tc.body, code, raw, tc.field)
			}
		}
		// With a proxy already set, credentials alone are fine.
		e.async("PATCH", r.PulpHref, map[string]any{"proxy_url": "http://proxy:3128"})
		e.async("PATCH", r.PulpHref, map[string]any{"proxy_username": "u", "proxy_password": "p"})
		if h := hidden(e.readRemote(r.PulpHref)); !h["proxy_username"] || !h["proxy_password"] {
			t.Fatalf("proxy credentials not set: %v", h)
		}
		// Removing the proxy while credentials remain is refused.
		code, raw = e.do("PATCH", r.PulpHref, map[string]any{"proxy_url": nil})
		if code != http.StatusBadRequest || !strings.Contains(string(raw), "without a proxy") {
			t.Fatalf("clearing proxy_url under credentials: %d %s", code, raw)
		}
	})
}

func TestRemoteFileURLs(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		imp := e.ImportDir
		outside := t.TempDir()
		if err := os.WriteFile(filepath.Join(outside, "PULP_MANIFEST"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(imp, "link")); err != nil {
			t.Fatal(err)
		}
		sibling := imp + "2"
		if err := os.Mkdir(sibling, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(sibling) })
		for i, u := range []string{
			"file://" + imp + "/PULP_MANIFEST",
			"file://" + imp + "/sub/dir/PULP_MANIFEST", // need not exist yet
			"file://" + imp,
			"FILE://" + imp + "/PULP_MANIFEST",
			"file://localhost" + imp + "/PULP_MANIFEST",
		} {
			e.createRemote(map[string]any{"name": "ok" + string(rune('a'+i)), "url": u})
		}
		for _, tc := range []struct{ url, msg string }{
			{"file:///etc/passwd", "does not start with any of the allowed import paths"},
			{"file://" + imp + "/../PULP_MANIFEST", "does not start with any of the allowed import paths"},
			{"file://" + imp + "/link/PULP_MANIFEST", "does not start with any of the allowed import paths"},
			{"file://" + sibling + "/PULP_MANIFEST", "does not start with any of the allowed import paths"},
			{"file://relative/PULP_MANIFEST", "needs to be an absolute pathname"},
			{"file:relative", "needs to be an absolute pathname"},
		} {
			code, raw := e.do("POST", RemotesPath, map[string]any{"name": "bad", "url": tc.url})
			if code != http.StatusBadRequest || !strings.Contains(string(raw), tc.msg) {
				t.Errorf("%s: %d %s, want 400 %q", tc.url, code, raw, tc.msg)
			}
		}
		// Without allowed import paths, no file URL is accepted.
		saved := e.Deps.AllowedImportPaths
		e.Deps.AllowedImportPaths = nil
		code, raw := e.do("POST", RemotesPath, map[string]any{"name": "none", "url": "file://" + imp + "/PULP_MANIFEST"})
		e.Deps.AllowedImportPaths = saved
		if code != http.StatusBadRequest {
			t.Fatalf("file URL with no allowed paths: %d %s", code, raw)
		}
	})
}

func TestRemoteDelete(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		r := e.createRemote(map[string]any{"name": "doomed"})
		keep := e.createRemote(map[string]any{"name": "kept"})
		id := r.PulpHref[len(RemotesPath) : len(r.PulpHref)-1]
		repoID := store.NewID()
		if _, err := e.Store.Exec(t.Context(), `INSERT INTO repositories (id, created, last_updated, pulp_type, name, next_version, remote_id) VALUES ($1, 1, 1, 'file.file', 'repo', 1, $2)`, repoID, id); err != nil {
			t.Fatal(err)
		}
		task := e.async("DELETE", r.PulpHref, nil)
		if task.Name != coreapi.GeneralDeleteTask || !slices.Contains(task.Reserved, r.PRN) {
			t.Fatalf("delete task %s reserved %v", task.Name, task.Reserved)
		}
		if code, _ := e.do("GET", r.PulpHref, nil); code != http.StatusNotFound {
			t.Fatalf("GET after delete: %d", code)
		}
		if code, _ := e.do("DELETE", r.PulpHref, nil); code != http.StatusNotFound {
			t.Fatalf("second DELETE: %d", code)
		}
		var remoteID *string
		if err := e.Store.QueryRow(t.Context(), `SELECT remote_id FROM repositories WHERE id = $1`, repoID).Scan(&remoteID); err != nil || remoteID != nil {
			t.Fatalf("repository still names the deleted remote: %v %v", remoteID, err)
		}
		var list api.PageResponse
		e.call("GET", RemotesPath, nil, http.StatusOK, &list)
		if list.Count != 1 {
			t.Fatalf("count after delete = %d", list.Count)
		}
		e.readRemote(keep.PulpHref)
	})
}

// TestRemoteDeleteIsDeferred checks that deletes go to a worker while
// updates run at once: with no worker running, the delete waits and the
// update completes inline.
func TestRemoteDeleteIsDeferred(t *testing.T) {
	t.Parallel()
	e := newTestEnvWorkers(t, storetest.Open(t, storetest.Backends()[0]), 0)
	r := e.createRemote(map[string]any{"name": "later"})
	e.async("PATCH", r.PulpHref, map[string]any{"policy": "on_demand"})
	var ar api.AsyncResponse
	e.call("DELETE", r.PulpHref, nil, http.StatusAccepted, &ar)
	var tk testTask
	e.call("GET", ar.Task, nil, http.StatusOK, &tk)
	if tk.State != "waiting" {
		t.Fatalf("delete task %s with no worker running, want waiting", tk.State)
	}
	e.readRemote(r.PulpHref)
	if err := e.Tasks.RunWorkers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if done := e.waitTask(ar.Task); done.State != "completed" {
		t.Fatalf("delete ended %s: %v", done.State, done.Error)
	}
	if code, _ := e.do("GET", r.PulpHref, nil); code != http.StatusNotFound {
		t.Fatalf("GET after delete: %d", code)
	}
}

func TestRemoteList(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		var made []FileRemoteResponse
		for _, b := range []map[string]any{
			{"name": "alpha", "url": "https://a.example/m", "pulp_labels": map[string]string{"env": "prod", "tier": "1"}},
			{"name": "beta", "url": "https://b.example/m", "policy": "on_demand", "pulp_labels": map[string]string{"env": "staging"}},
			{"name": "Gamma_1", "url": "https://c.example/m", "policy": "streamed", "pulp_labels": map[string]string{"env": "", "signed": "a,b"}},
			{"name": "delta", "url": "https://a.example/m"},
		} {
			made = append(made, e.createRemote(b))
		}
		names := func(q string) []string {
			t.Helper()
			var page struct {
				Count   int64                `json:"count"`
				Next    *string              `json:"next"`
				Results []FileRemoteResponse `json:"results"`
			}
			e.call("GET", RemotesPath+"?"+q, nil, http.StatusOK, &page)
			var out []string
			for _, r := range page.Results {
				out = append(out, r.Name)
			}
			if int(page.Count) != len(out) && !strings.Contains(q, "limit") {
				t.Errorf("%s: count %d for %d results", q, page.Count, len(out))
			}
			return out
		}
		mid := made[1].PulpCreated.Format(time.RFC3339Nano)
		for q, want := range map[string][]string{
			"":                                               {"delta", "Gamma_1", "beta", "alpha"}, // newest first
			"ordering=name":                                  {"Gamma_1", "alpha", "beta", "delta"},
			"ordering=-name":                                 {"delta", "beta", "alpha", "Gamma_1"},
			"ordering=policy,name":                           {"alpha", "delta", "beta", "Gamma_1"},
			"name=beta":                                      {"beta"},
			"name__iexact=gamma_1":                           {"Gamma_1"},
			"name__contains=a_":                              {"Gamma_1"},
			"name__icontains=GAM":                            {"Gamma_1"},
			"name__startswith=d":                             {"delta"},
			"name__in=alpha,delta,nope":                      {"delta", "alpha"},
			"name__regex=^[ab]":                              {"beta", "alpha"},
			"url=https://a.example/m":                        {"delta", "alpha"},
			"policy=on_demand":                               {"beta"},
			"policy__in=streamed,on_demand":                  {"Gamma_1", "beta"},
			"pulp_label_select=env":                          {"Gamma_1", "beta", "alpha"},
			"pulp_label_select=!env":                         {"delta"},
			"pulp_label_select=env=prod":                     {"alpha"},
			"pulp_label_select=env=":                         {"Gamma_1"},
			"pulp_label_select=env!=prod":                    {"Gamma_1", "beta"},
			"pulp_label_select=env~STAG":                     {"beta"},
			"pulp_label_select=env,tier=1":                   {"alpha"},
			`pulp_label_select=signed=a\,b`:                  {"Gamma_1"},
			"pulp_created__gt=" + url.QueryEscape(mid):       {"delta", "Gamma_1"},
			"pulp_last_updated__lte=" + url.QueryEscape(mid): {"beta", "alpha"},
			"pulp_href__in=" + made[0].PulpHref + "," + made[3].PRN:                     {"delta", "alpha"},
			"pulp_id__in=" + made[2].PulpHref[len(RemotesPath):len(made[2].PulpHref)-1]: {"Gamma_1"},
			"limit=2&offset=1&ordering=name":                                            {"alpha", "beta"},
		} {
			if got := names(q); !slices.Equal(got, want) {
				t.Errorf("?%s: %v, want %v", q, got, want)
			}
		}
		for _, q := range []string{"pulp_label_select=", "pulp_label_select=!env=prod", "ordering=password", "ordering=username", "pulp_created__gt=yesterday", "name__regex=("} {
			if code, body := e.do("GET", RemotesPath+"?"+q, nil); code != http.StatusBadRequest {
				t.Errorf("?%s: %d %s, want 400", q, code, body)
			}
		}
		// Secrets cannot be probed through filters either.
		if code, _ := e.do("GET", RemotesPath+"?password=x", nil); code != http.StatusOK {
			t.Errorf("unknown filter: %d", code)
		}
		var page api.PageResponse
		e.call("GET", RemotesPath+"?limit=1", nil, http.StatusOK, &page)
		if page.Count != 4 || page.Next == nil || !strings.Contains(*page.Next, "offset=1") {
			t.Fatalf("page: count %d next %v", page.Count, page.Next)
		}
	})
}

func TestRemoteLabelActions(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		r := e.createRemote(map[string]any{"name": "lab", "pulp_labels": map[string]string{"a": "1"}})
		e.createRemote(map[string]any{"name": "other"})
		var set api.SetLabelResponse
		e.call("POST", r.PulpHref+"set_label/", map[string]any{"key": "env", "value": "prod,eu"}, http.StatusCreated, &set)
		if set.Key != "env" || set.Value == nil || *set.Value != "prod,eu" {
			t.Fatalf("set_label answered %+v", set)
		}
		e.call("POST", r.PulpHref+"set_label/", map[string]any{"key": "blank", "value": ""}, http.StatusCreated, nil)
		got := e.readRemote(r.PulpHref)
		if !cmp.Equal(got.PulpLabels, map[string]string{"a": "1", "env": "prod,eu", "blank": ""}) {
			t.Fatalf("labels after set: %v", got.PulpLabels)
		}
		if !got.PulpLastUpdated.After(r.PulpLastUpdated) {
			t.Fatal("set_label did not advance pulp_last_updated")
		}
		var page struct {
			Results []FileRemoteResponse `json:"results"`
		}
		e.call("GET", RemotesPath+"?pulp_label_select="+url.QueryEscape(`env=prod\,eu,blank=`), nil, http.StatusOK, &page)
		if len(page.Results) != 1 || page.Results[0].Name != "lab" {
			t.Fatalf("select after set_label: %+v", page.Results)
		}

		var unset api.UnsetLabelResponse
		e.call("POST", r.PulpHref+"unset_label/", map[string]any{"key": "a"}, http.StatusCreated, &unset)
		if unset.Key != "a" || unset.Value == nil || *unset.Value != "1" {
			t.Fatalf("unset_label answered %+v", unset)
		}
		code, raw := e.do("POST", r.PulpHref+"unset_label/", map[string]any{"key": "a"})
		if code != http.StatusBadRequest || string(raw) != `{"key":["Label 'a' is not set on the object."]}` {
			t.Fatalf("unset of a missing label: %d %s", code, raw)
		}
		code, raw = e.do("POST", r.PulpHref+"set_label/", map[string]any{"key": "no/slash", "value": "x"})
		if code != http.StatusBadRequest || !strings.Contains(string(raw), "non_field_errors") {
			t.Fatalf("bad key: %d %s", code, raw)
		}
		if got := e.readRemote(r.PulpHref); !cmp.Equal(got.PulpLabels, map[string]string{"env": "prod,eu", "blank": ""}) {
			t.Fatalf("labels after unset: %v", got.PulpLabels)
		}
		if code, _ := e.do("POST", RemotesPath+store.NewID()+"/set_label/", map[string]any{"key": "k", "value": "v"}); code != http.StatusNotFound {
			t.Fatalf("set_label on a missing remote: %d", code)
		}

		// Concurrent label changes and updates lose nothing.
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := "k" + string(rune('a'+i))
				if code, b := e.do("POST", r.PulpHref+"set_label/", map[string]any{"key": key, "value": "v"}); code != http.StatusCreated {
					t.Errorf("concurrent set_label: %d %s", code, b)
				}
			}()
		}
		wg.Wait()
		if n := len(e.readRemote(r.PulpHref).PulpLabels); n != 8 {
			t.Fatalf("%d labels after concurrent set_label, want 8", n)
		}
	})
}

func TestGenericRemotesList(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *testEnv) {
		a := e.createRemote(map[string]any{"name": "one", "pulp_labels": map[string]string{"env": "prod"}, "username": "u"})
		e.createRemote(map[string]any{"name": "two"})
		var page struct {
			Count   int64                           `json:"count"`
			Results []coreapi.GenericRemoteResponse `json:"results"`
		}
		e.call("GET", coreapi.RemotesPath, nil, http.StatusOK, &page)
		if page.Count != 2 || len(page.Results) != 2 {
			t.Fatalf("generic list: %+v", page)
		}
		if got := page.Results[1]; got.PulpHref != a.PulpHref || got.PRN != a.PRN || !cmp.Equal(got.RemoteResponse, a.RemoteResponse) {
			t.Fatalf("generic entry differs from the typed one:\n%s", cmp.Diff(a.RemoteResponse, got.RemoteResponse))
		}
		for q, want := range map[string]int64{
			"name=one": 1, "name__startswith=t": 1, "pulp_label_select=env=prod": 1, "pulp_type=file.file": 2,
			"pulp_type__in=file.git": 0, "pulp_href__in=" + a.PulpHref: 1, "prn__in=" + a.PRN: 1,
		} {
			e.call("GET", coreapi.RemotesPath+"?"+q, nil, http.StatusOK, &page)
			if page.Count != want {
				t.Errorf("?%s: count %d, want %d", q, page.Count, want)
			}
		}
		if code, _ := e.do("GET", coreapi.RemotesPath+"?pulp_href__in=/pulp/api/v3/tasks/x/", nil); code != http.StatusBadRequest {
			t.Errorf("foreign href: %d, want 400", code)
		}
	})
}

func TestRemoteDocument(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, storetest.Open(t, storetest.Backends()[0]))
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required   []string `json:"required"`
				Properties map[string]struct {
					WriteOnly bool `json:"writeOnly"`
					ReadOnly  bool `json:"readOnly"`
					Nullable  bool `json:"nullable"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(e.API.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	// The document must be valid OpenAPI once Pulp's href-style path keys
	// ({file_file_remote_href}…), its one deliberate deviation, are made
	// routable.
	var generic map[string]any
	json.Unmarshal(e.API.Document(), &generic)
	paths := generic["paths"].(map[string]any)
	for k, v := range paths {
		if strings.HasPrefix(k, "{") {
			delete(paths, k)
			paths["/"+k[1:strings.IndexByte(k, '}')]+"/"+k] = v
		}
	}
	fixed, _ := json.Marshal(generic)
	loaded, err := openapi3.NewLoader().LoadFromData(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Validate(t.Context()); err != nil {
		t.Fatalf("invalid OpenAPI: %v", err)
	}
	ops := map[string]string{}
	for path, methods := range doc.Paths {
		for m, raw := range methods {
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			json.Unmarshal(raw, &op)
			var codes []string
			for c := range op.Responses {
				codes = append(codes, c)
			}
			slices.Sort(codes)
			ops[op.OperationID] = strings.ToUpper(m) + " " + path + " " + strings.Join(codes, ",")
		}
	}
	for op, want := range map[string]string{
		"remotes_list":                     "GET /pulp/api/v3/remotes/ 200",
		"remotes_file_file_list":           "GET /pulp/api/v3/remotes/file/file/ 200",
		"remotes_file_file_create":         "POST /pulp/api/v3/remotes/file/file/ 201",
		"remotes_file_file_read":           "GET {file_file_remote_href} 200",
		"remotes_file_file_update":         "PUT {file_file_remote_href} 200,202",
		"remotes_file_file_partial_update": "PATCH {file_file_remote_href} 200,202",
		"remotes_file_file_delete":         "DELETE {file_file_remote_href} 202",
		"remotes_file_file_set_label":      "POST {file_file_remote_href}set_label/ 201",
		"remotes_file_file_unset_label":    "POST {file_file_remote_href}unset_label/ 201",
	} {
		if ops[op] != want {
			t.Errorf("%s: %q, want %q", op, ops[op], want)
		}
	}
	req := doc.Components.Schemas["file.FileRemote"]
	if !slices.Equal(req.Required, []string{"name", "url"}) {
		t.Errorf("file.FileRemote required %v", req.Required)
	}
	for _, f := range []string{"client_key", "proxy_username", "proxy_password", "username", "password"} {
		if p := req.Properties[f]; !p.WriteOnly || !p.Nullable {
			t.Errorf("file.FileRemote.%s: %+v, want write-only and nullable", f, p)
		}
		if _, ok := doc.Components.Schemas["file.FileRemoteResponse"].Properties[f]; ok {
			t.Errorf("response schema shows %s", f)
		}
	}
	if _, ok := doc.Components.Schemas["Patchedfile.FileRemote"]; !ok {
		t.Error("no Patchedfile.FileRemote schema")
	}
	if len(doc.Components.Schemas["Patchedfile.FileRemote"].Required) != 0 {
		t.Error("PATCH schema has required fields")
	}
	for _, name := range []string{"file.FileRemoteResponse", "GenericRemoteResponse", "SetLabel", "UnsetLabel", "SetLabelResponse", "UnsetLabelResponse"} {
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("no %s schema", name)
		}
	}
}

func TestDownloadConfig(t *testing.T) {
	t.Parallel()
	if got := DownloadConfig(&store.Remote{TLSValidation: true}, nil); !cmp.Equal(got, download.Config{}) {
		t.Fatalf("empty remote: %+v, want the zero config (all defaults)", got)
	}
	r := &store.Remote{
		CACert: ptrTo("ca"), ClientCert: ptrTo("cc"), ClientKey: ptrTo("ck"), TLSValidation: false,
		ProxyURL: ptrTo("http://p"), ProxyUsername: ptrTo("pu"), ProxyPassword: ptrTo("pp"), Username: ptrTo("u"), Password: ptrTo("p"),
		DownloadConcurrency: ptrTo[int64](3), MaxRetries: ptrTo[int64](0), RateLimit: ptrTo[int64](7),
		TotalTimeout: ptrTo(1.5), ConnectTimeout: ptrTo(2.5), SockConnectTimeout: ptrTo(3.5), SockReadTimeout: ptrTo(4.5),
		Headers: []map[string]string{{"X": "1"}},
	}
	want := download.Config{
		CACert: "ca", ClientCert: "cc", ClientKey: "ck", InsecureSkipVerify: true, ProxyURL: "http://p", ProxyUsername: "pu",
		ProxyPassword: "pp", Username: "u", Password: "p", Headers: []map[string]string{{"X": "1"}}, DownloadConcurrency: 3,
		RateLimit: 7, MaxRetries: 0, TotalTimeout: 1.5, ConnectTimeout: 2.5, SockConnectTimeout: 3.5, SockReadTimeout: 4.5,
		AllowedImportPaths: []string{"/srv"},
	}
	if got := DownloadConfig(r, []string{"/srv"}); !cmp.Equal(got, want) {
		t.Fatalf("config (-want +got):\n%s", cmp.Diff(want, got))
	}
}

// TestRemoteSettingsAct creates remotes through the API and downloads
// with the configuration built from the stored rows, against loopback
// servers that check what the settings promise: headers and basic auth
// on every request, trust in ca_cert, tls_validation, mutual TLS, an
// authenticating proxy and file URLs.
func TestRemoteSettingsAct(t *testing.T) {
	t.Parallel()
	pki := newRemoteTestPKI(t)
	e := newTestEnv(t, storetest.Open(t, storetest.Backends()[0]))
	ctx := t.Context()
	fetch := func(r FileRemoteResponse, target string) (string, error) {
		t.Helper()
		row, err := e.Deps.LookupRemote(ctx, r.PulpHref)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DownloadConfig(row, e.Deps.AllowedImportPaths)
		cfg.BackoffBase, cfg.BackoffMax = time.Millisecond, time.Millisecond
		dl, err := download.New(cfg)
		if err != nil {
			return "", err
		}
		defer dl.Close()
		var buf remoteTestDest
		_, err = dl.Download(ctx, target, digest.Expect{Size: digest.UnknownSize}, func() (download.Dest, error) {
			buf.Reset()
			return &buf, nil
		})
		return buf.String(), err
	}
	seq := 0
	remote := func(body map[string]any) FileRemoteResponse {
		seq++
		body["name"] = "settings" + string(rune('a'+seq))
		return e.createRemote(body)
	}

	t.Run("headers and basic auth", func(t *testing.T) {
		var mu sync.Mutex
		var seen []http.Header
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			seen = append(seen, req.Header.Clone())
			mu.Unlock()
			w.Write([]byte("hello"))
		}))
		defer srv.Close()
		r := remote(map[string]any{"url": srv.URL + "/PULP_MANIFEST", "username": "alice", "password": "s3cret",
			"headers": []map[string]string{{"X-Pith-Token": "abc"}, {"User-Agent": "custom/1"}}})
		for range 2 {
			if body, err := fetch(r, srv.URL+"/a"); err != nil || body != "hello" {
				t.Fatalf("download: %q %v", body, err)
			}
		}
		wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
		for _, h := range seen {
			if h.Get("X-Pith-Token") != "abc" || h.Get("Authorization") != wantAuth || !strings.Contains(h.Get("User-Agent"), "custom/1") {
				t.Fatalf("request headers %v", h)
			}
		}
	})

	tlsServer := func(clientAuth bool) *httptest.Server {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Write([]byte("secure"))
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.serverTLS}}
		if clientAuth {
			srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
			srv.TLS.ClientCAs = pki.pool
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}

	t.Run("ca_cert and tls_validation", func(t *testing.T) {
		srv := tlsServer(false)
		if _, err := fetch(remote(map[string]any{"url": srv.URL + "/m"}), srv.URL+"/f"); err == nil {
			t.Fatal("untrusted certificate accepted with validation on")
		}
		if body, err := fetch(remote(map[string]any{"url": srv.URL + "/m", "ca_cert": pki.caPEM}), srv.URL+"/f"); err != nil || body != "secure" {
			t.Fatalf("with ca_cert: %q %v", body, err)
		}
		if body, err := fetch(remote(map[string]any{"url": srv.URL + "/m", "tls_validation": false}), srv.URL+"/f"); err != nil || body != "secure" {
			t.Fatalf("without validation: %q %v", body, err)
		}
	})

	t.Run("mutual TLS", func(t *testing.T) {
		srv := tlsServer(true)
		if _, err := fetch(remote(map[string]any{"url": srv.URL + "/m", "ca_cert": pki.caPEM}), srv.URL+"/f"); err == nil {
			t.Fatal("server requiring a client certificate accepted none")
		}
		r := remote(map[string]any{"url": srv.URL + "/m", "ca_cert": pki.caPEM, "client_cert": pki.clientCertPEM, "client_key": pki.clientKeyPEM})
		if body, err := fetch(r, srv.URL+"/f"); err != nil || body != "secure" {
			t.Fatalf("with client certificate: %q %v", body, err)
		}
		// An EC key in SEC 1 form works as well.
		r = remote(map[string]any{"url": srv.URL + "/m", "ca_cert": pki.caPEM, "client_cert": pki.clientCertPEM, "client_key": pki.clientKeyEC})
		if body, err := fetch(r, srv.URL+"/f"); err != nil || body != "secure" {
			t.Fatalf("with SEC 1 client key: %q %v", body, err)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("pu:pp"))
		var proxied []string
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Header.Get("Proxy-Authorization") != wantAuth {
				w.WriteHeader(http.StatusProxyAuthRequired)
				return
			}
			proxied = append(proxied, req.URL.String())
			w.Write([]byte("via proxy"))
		}))
		defer proxy.Close()
		target := "http://upstream.invalid/file"
		r := remote(map[string]any{"url": "http://upstream.invalid/PULP_MANIFEST", "proxy_url": proxy.URL, "proxy_username": "pu", "proxy_password": "pp"})
		if body, err := fetch(r, target); err != nil || body != "via proxy" || !slices.Equal(proxied, []string{target}) {
			t.Fatalf("through proxy: %q %v %v", body, err, proxied)
		}
		r = remote(map[string]any{"url": "http://upstream.invalid/PULP_MANIFEST", "proxy_url": proxy.URL})
		if _, err := fetch(r, target); err == nil || !strings.Contains(err.Error(), "407") {
			t.Fatalf("proxy without credentials: %v, want a 407 error", err)
		}
	})

	t.Run("file URLs", func(t *testing.T) {
		p := filepath.Join(e.ImportDir, "data.txt")
		if err := os.WriteFile(p, []byte("local"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := remote(map[string]any{"url": "file://" + e.ImportDir + "/PULP_MANIFEST"})
		if body, err := fetch(r, "file://"+p); err != nil || body != "local" {
			t.Fatalf("file URL: %q %v", body, err)
		}
		if _, err := fetch(r, "file:///etc/hostname"); err == nil {
			t.Fatal("file URL outside the allowed paths was read")
		}
	})
}

type remoteTestDest struct{ bytes.Buffer }

func (*remoteTestDest) Cancel(context.Context) error { return nil }

// remoteTestPKI is a CA with a server certificate for 127.0.0.1 and a
// client certificate, all PEM-encoded.
type remoteTestPKI struct {
	caPEM, clientCertPEM, clientKeyPEM, clientKeyEC string
	serverTLS                                       tls.Certificate
	pool                                            *x509.CertPool
}

func newRemoteTestPKI(t testing.TB) *remoteTestPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	sign := func(tmpl, parent *x509.Certificate, pub, priv any) (*x509.Certificate, string) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	keyPEM := func(k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	p := &remoteTestPKI{pool: x509.NewCertPool()}
	caKey := key()
	caTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "pith test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	ca, caPEM := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	p.caPEM = caPEM
	p.pool.AddCert(ca)

	srvKey := key()
	_, srvPEM := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &srvKey.PublicKey, caKey)
	var err error
	if p.serverTLS, err = tls.X509KeyPair([]byte(srvPEM), []byte(keyPEM(srvKey))); err != nil {
		t.Fatal(err)
	}

	cliKey := key()
	_, p.clientCertPEM = sign(&x509.Certificate{Subject: pkix.Name{CommonName: "pith client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &cliKey.PublicKey, caKey)
	p.clientKeyPEM = keyPEM(cliKey)
	ecDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.clientKeyEC = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
	return p
}
