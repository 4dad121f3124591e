package download

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// forwardProxy is a minimal HTTP forward proxy with CONNECT tunnelling
// and optional basic proxy auth.
type forwardProxy struct {
	user, pass string
	forwarded  atomic.Int32 // plain requests forwarded
	tunnels    atomic.Int32 // CONNECTs accepted
	refused    atomic.Int32
	transport  *http.Transport
	mu         sync.Mutex // orders tunnel starts before the final Wait
	wg         sync.WaitGroup
}

func newForwardProxy(t *testing.T, user, pass string) (*forwardProxy, *httptest.Server) {
	p := &forwardProxy{user: user, pass: pass, transport: &http.Transport{}}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.transport.CloseIdleConnections()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.wg.Wait()
	})
	return p, srv
}

func (p *forwardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.user != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
		if r.Header.Get("Proxy-Authorization") != want {
			p.refused.Add(1)
			w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
			http.Error(w, "proxy auth required", http.StatusProxyAuthRequired)
			return
		}
	}
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "not a proxy request", http.StatusBadRequest)
		return
	}
	p.forwarded.Add(1)
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Authorization")
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (p *forwardProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	upstream, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, bw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	p.tunnels.Add(1)
	bw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	bw.Flush()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wg.Go(func() {
		io.Copy(upstream, conn)
		upstream.Close()
	})
	p.wg.Go(func() {
		io.Copy(conn, upstream)
		conn.Close()
	})
}

func TestProxy(t *testing.T) {
	content := []byte("through the proxy")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" {
			http.Error(w, "proxy credentials leaked upstream", http.StatusBadRequest)
			return
		}
		w.Write(content)
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	secure := httptest.NewTLSServer(handler)
	defer secure.Close()
	caPEM := certPEM(secure.Certificate())

	for _, target := range []struct {
		name string
		url  string
	}{{"http", plain.URL}, {"https", secure.URL}} {
		t.Run(target.name+"/no auth needed", func(t *testing.T) {
			p, psrv := newForwardProxy(t, "", "")
			d := newTestDownloader(t, Config{ProxyURL: psrv.URL, CACert: caPEM})
			if _, err := d.Download(t.Context(), target.url+"/f", expectOf(content), newDiscard); err != nil {
				t.Fatal(err)
			}
			if p.forwarded.Load()+p.tunnels.Load() != 1 {
				t.Errorf("proxy forwarded %d, tunnelled %d", p.forwarded.Load(), p.tunnels.Load())
			}
		})
		t.Run(target.name+"/missing credentials", func(t *testing.T) {
			p, psrv := newForwardProxy(t, "bob", "s3cret")
			d := newTestDownloader(t, Config{ProxyURL: psrv.URL, CACert: caPEM})
			_, err := d.Download(t.Context(), target.url+"/f", unknown, newDiscard)
			if err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
				t.Fatalf("err = %v, want Proxy Authentication Required", err)
			}
			if IsRetryable(err) || p.refused.Load() != 1 {
				t.Errorf("retryable=%v, proxy refused %d requests; a 407 is final", IsRetryable(err), p.refused.Load())
			}
		})
		t.Run(target.name+"/wrong credentials", func(t *testing.T) {
			_, psrv := newForwardProxy(t, "bob", "s3cret")
			d := newTestDownloader(t, Config{ProxyURL: psrv.URL, ProxyUsername: "bob", ProxyPassword: "nope", CACert: caPEM})
			_, err := d.Download(t.Context(), target.url+"/f", unknown, newDiscard)
			if err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), "nope") {
				t.Errorf("error leaks the proxy password: %v", err)
			}
		})
		t.Run(target.name+"/with credentials", func(t *testing.T) {
			p, psrv := newForwardProxy(t, "bob", "s3cret")
			d := newTestDownloader(t, Config{ProxyURL: psrv.URL, ProxyUsername: "bob", ProxyPassword: "s3cret", CACert: caPEM})
			if _, err := d.Download(t.Context(), target.url+"/f", expectOf(content), newDiscard); err != nil {
				t.Fatal(err)
			}
			if p.forwarded.Load()+p.tunnels.Load() != 1 || p.refused.Load() != 0 {
				t.Errorf("proxy forwarded %d, tunnelled %d, refused %d", p.forwarded.Load(), p.tunnels.Load(), p.refused.Load())
			}
		})
	}
}
