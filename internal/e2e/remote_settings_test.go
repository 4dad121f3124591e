package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// forwardProxy is a plain-HTTP forward proxy that requires basic proxy
// credentials and counts what it forwarded.
func forwardProxy(t *testing.T, user, pass string) (*httptest.Server, *atomic.Int64) {
	var forwarded atomic.Int64
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != want {
			w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		out, _ := http.NewRequest(r.Method, r.URL.String(), nil)
		out.Header = r.Header.Clone()
		out.Header.Del("Proxy-Authorization")
		res, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		forwarded.Add(1)
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, &forwarded
}

func TestSyncThroughProxyWithHeaders(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := basicFiles()
		var sawHeader atomic.Int64
		up := newUpstream(t, files)
		inner := up.Config.Handler
		up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Mirror-Token") == "s3cret" {
				sawHeader.Add(1)
			}
			inner.ServeHTTP(w, r)
		})
		proxy, forwarded := forwardProxy(t, "pu", "pp")
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "repo"})
		// Without proxy credentials the task fails and says why.
		bad := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "noauth", "url": up.URL + "/repo/PULP_MANIFEST", "proxy_url": proxy.URL})
		task := p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"remote": bad["pulp_href"]}), "failed")
		if !strings.Contains(fmt.Sprint(task["error"]), "Proxy Authentication Required") {
			t.Fatalf("missing proxy auth: %v", task["error"])
		}
		good := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{
			"name": "viaproxy", "url": up.URL + "/repo/PULP_MANIFEST", "proxy_url": proxy.URL,
			"proxy_username": "pu", "proxy_password": "pp", "headers": []map[string]string{{"X-Mirror-Token": "s3cret"}},
		})
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"remote": good["pulp_href"]}), "completed")
		if n := forwarded.Load(); n != 4 {
			t.Fatalf("proxy forwarded %d requests, want 4 (manifest and 3 files)", n)
		}
		if n := sawHeader.Load(); n != 4 {
			t.Fatalf("remote headers arrived on %d requests, want 4", n)
		}
	})
}

func TestSyncOverMutualTLS(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := basicFiles()
		up := newUpstream(t, files)
		handler := up.Config.Handler
		srv := httptest.NewUnstartedServer(handler)
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
		srv.StartTLS()
		defer srv.Close()
		caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
		// The test server's own certificate and key double as the client's.
		certPEM := caPEM
		keyDER, err := x509.MarshalPKCS8PrivateKey(srv.TLS.Certificates[0].PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "repo"})
		noClient := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "nocert", "url": srv.URL + "/repo/PULP_MANIFEST", "ca_cert": caPEM, "max_retries": 1})
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"remote": noClient["pulp_href"]}), "failed")
		withClient := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "cert", "url": srv.URL + "/repo/PULP_MANIFEST",
			"ca_cert": "leading text\n" + caPEM, "client_cert": certPEM, "client_key": keyPEM})
		if withClient["client_key"] != nil {
			t.Fatal("client_key is returned")
		}
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"remote": withClient["pulp_href"]}), "completed")
		insecure := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "insecure", "url": srv.URL + "/repo/PULP_MANIFEST",
			"tls_validation": false, "client_cert": certPEM, "client_key": keyPEM})
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{"remote": insecure["pulp_href"], "optimize": false}), "completed")
	})
}

func TestCanceledSyncLeavesNothing(t *testing.T) {
	backends(t, func(t *testing.T, p *instance) {
		files := map[string][]byte{}
		for i := 0; i < 40; i++ {
			files[fmt.Sprintf("f%02d.bin", i)] = randBytes(2000)
		}
		up := newUpstream(t, files)
		inner := up.Config.Handler
		up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "PULP_MANIFEST") {
				time.Sleep(150 * time.Millisecond) // slow files
			}
			inner.ServeHTTP(w, r)
		})
		remote := p.create("/pulp/api/v3/remotes/file/file/", map[string]any{"name": "slow", "url": up.URL + "/repo/PULP_MANIFEST", "download_concurrency": 2})
		repo := p.create("/pulp/api/v3/repositories/file/file/", map[string]any{"name": "repo", "remote": remote["pulp_href"]})
		r := p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{})
		href := r.json(t)["task"].(string)
		p.waitState(href, "running")
		for up.total() < 5 {
			time.Sleep(20 * time.Millisecond)
		}
		start := time.Now()
		p.patchJSON(href, map[string]any{"state": "canceled"})
		p.waitState(href, "canceled")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("cancel took %s", d)
		}
		got := p.get(repo["pulp_href"].(string)).json(t)
		if !strings.HasSuffix(got["latest_version_href"].(string), "/versions/0/") {
			t.Fatalf("canceled sync made a version: %v", got["latest_version_href"])
		}
		time.Sleep(300 * time.Millisecond) // in-flight downloads unwind
		if tmp := filesUnder(t, filepath.Join(p.dataDir, "media", "tmp")); len(tmp) != 0 {
			t.Fatalf("temp files left: %v", tmp)
		}
		// The repository is usable again: a full sync works.
		up.Config.Handler = inner
		p.mustTask(p.postJSON(repo["pulp_href"].(string)+"sync/", map[string]any{}), "completed")
		if n := p.get("/pulp/api/v3/content/file/files/?repository_version=" + repo["pulp_href"].(string) + "versions/1/").json(t)["count"].(float64); n != 40 {
			t.Fatalf("after re-sync: %v units", n)
		}
	})
}
