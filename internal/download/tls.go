package download

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// CleanPEM returns only the CERTIFICATE blocks of s, re-encoded, the way
// Pulp keeps ca_cert and client_cert. It fails if s holds no certificate or
// a certificate that does not parse.
func CleanPEM(s string) (string, error) {
	var out bytes.Buffer
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return "", fmt.Errorf("invalid certificate: %w", err)
		}
		// Headers are dropped: a certificate block has none that matter.
		if err := pem.Encode(&out, &pem.Block{Type: b.Type, Bytes: b.Bytes}); err != nil {
			return "", err
		}
	}
	if out.Len() == 0 {
		return "", errors.New("no PEM certificate found")
	}
	return out.String(), nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pem, err := CleanPEM(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("ca_cert: %w", err)
		}
		// Pulp trusts the system CAs as well as the remote's.
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM([]byte(pem))
		c.RootCAs = pool
	}
	// As in Pulp, a client certificate is used only with its key.
	if cfg.ClientCert != "" && cfg.ClientKey != "" {
		pair, err := tls.X509KeyPair([]byte(cfg.ClientCert), []byte(cfg.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("client_cert/client_key: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	c.InsecureSkipVerify = cfg.InsecureSkipVerify
	return c, nil
}
