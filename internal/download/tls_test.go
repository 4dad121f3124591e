package download

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pith test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue returns a leaf certificate and key as PEM plus a tls.Certificate.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	pair, err = tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// countConns counts accepted TCP connections, to see retries that never
// reach the HTTP handler.
func countConns(srv *httptest.Server) *atomic.Int32 {
	var n atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func TestTLSValidation(t *testing.T) {
	content := []byte("secret bytes")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(content) }))
	conns := countConns(srv)
	srv.StartTLS()
	defer srv.Close()

	t.Run("untrusted fails without retry", func(t *testing.T) {
		d := newTestDownloader(t, Config{})
		_, err := d.Download(t.Context(), srv.URL, unknown, newDiscard)
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("err = %v", err)
		}
		if IsRetryable(err) || conns.Load() != 1 {
			t.Errorf("retryable=%v conns=%d; a certificate failure is final", IsRetryable(err), conns.Load())
		}
	})
	t.Run("ca_cert", func(t *testing.T) {
		// Surrounding text, as pasted by users, is ignored.
		ca := "my CA:\n" + certPEM(srv.Certificate()) + "\ntrailer\n"
		d := newTestDownloader(t, Config{CACert: ca})
		if _, err := d.Download(t.Context(), srv.URL, expectOf(content), newDiscard); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("tls_validation off", func(t *testing.T) {
		d := newTestDownloader(t, Config{InsecureSkipVerify: true})
		if _, err := d.Download(t.Context(), srv.URL, expectOf(content), newDiscard); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	_, _, serverPair := ca.issue(t, "server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey, _ := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	var peer atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	srv.StartTLS()
	defer srv.Close()

	t.Run("without client cert", func(t *testing.T) {
		d := newTestDownloader(t, Config{CACert: ca.pem, MaxRetries: 1})
		_, err := d.Download(t.Context(), srv.URL, unknown, newDiscard)
		if err == nil {
			t.Fatal("server requiring a client certificate accepted none")
		}
		if IsRetryable(err) {
			t.Errorf("rejected client certificate reported retryable: %v", err)
		}
	})
	t.Run("with client cert", func(t *testing.T) {
		d := newTestDownloader(t, Config{CACert: ca.pem, ClientCert: clientCert, ClientKey: clientKey})
		if _, err := d.Download(t.Context(), srv.URL, unknown, newDiscard); err != nil {
			t.Fatal(err)
		}
		if peer.Load() != "client" {
			t.Errorf("server saw client %v", peer.Load())
		}
	})
}

func TestCleanPEM(t *testing.T) {
	ca := newTestCA(t)
	leaf, key, _ := ca.issue(t, "leaf", x509.ExtKeyUsageServerAuth)

	got, err := CleanPEM("Bag Attributes: junk\n" + leaf + "some text\n" + key + ca.pem + "end\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != leaf+ca.pem {
		t.Errorf("CleanPEM kept:\n%s", got)
	}
	if _, err := CleanPEM(key); err == nil {
		t.Error("a key alone was accepted as a certificate")
	}
	if _, err := CleanPEM("hello"); err == nil {
		t.Error("text without PEM accepted")
	}
	bad := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}))
	if _, err := CleanPEM(bad); err == nil {
		t.Error("unparsable certificate accepted")
	}
}
