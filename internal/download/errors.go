package download

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pith-project/pith/internal/digest"
)

var (
	// ErrUnsupportedScheme is returned for URLs other than http, https and
	// file.
	ErrUnsupportedScheme = errors.New("unsupported URL scheme")
	// ErrPathNotAllowed is returned for file:// URLs outside the allowed
	// import paths.
	ErrPathNotAllowed = errors.New("path is not below an allowed import path")
	// ErrTooManyRedirects is returned when a response would need an 11th
	// redirect.
	ErrTooManyRedirects = errors.New("too many redirects")
)

// HTTPError is a non-2xx response, from the upstream server or from a proxy
// refusing a CONNECT.
type HTTPError struct {
	URL        string
	StatusCode int
	Status     string        // for example "404 Not Found"
	RetryAfter time.Duration // from a Retry-After header; 0 if none
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s: %s", e.URL, e.Status)
}

// Retryable reports whether the status is worth retrying: 429 and 5xx.
func (e *HTTPError) Retryable() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500 && e.StatusCode <= 599
}

func newHTTPError(u *url.URL, resp *http.Response) *HTTPError {
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	return &HTTPError{
		URL:        redact(u),
		StatusCode: resp.StatusCode,
		Status:     status,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// TimeoutError reports that an attempt exceeded the total timeout or that
// the upstream stalled for longer than the sock_read timeout.
type TimeoutError struct {
	Kind  string // "total" or "sock_read"
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s timeout (%s) exceeded", e.Kind, e.After)
}

// Timeout makes TimeoutError a net.Error-style timeout.
func (e *TimeoutError) Timeout() bool { return true }

// ReadError wraps a failure while reading a response body: a dropped
// connection, a truncated body or a stalled upstream.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "reading body: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// requestError marks a failure of the HTTP exchange before a response
// arrived: connection refused or reset, a closed connection, an HTTP/2
// stream error. Such failures are transient unless classified otherwise.
type requestError struct{ err error }

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func unwrapRequestError(err error) error {
	if re, ok := err.(*requestError); ok {
		return re.err
	}
	return err
}

// DestError wraps a failure to create or write the destination. It is
// never retried: the upstream is not at fault.
type DestError struct{ Err error }

func (e *DestError) Error() string { return "destination: " + e.Err.Error() }
func (e *DestError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is worth another attempt: connection
// failures, truncated or stalled bodies, timeouts, 429 and 5xx, and size or
// digest mismatches. Cancellation, other HTTP statuses, TLS certificate
// failures, destination and local file errors are not.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var (
		te  *TimeoutError
		de  *DestError
		he  *HTTPError
		sme *digest.SizeMismatchError
		dme *digest.DigestMismatchError
	)
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &de):
		return false
	case errors.As(err, &he):
		return he.Retryable()
	case errors.As(err, &sme), errors.As(err, &dme):
		return true
	case isTLSFailure(err):
		// Pulp retries these, but a certificate that fails to verify fails
		// the same way every time; retrying only delays the error.
		return false
	case errors.Is(err, ErrPathNotAllowed), errors.Is(err, ErrUnsupportedScheme), errors.Is(err, ErrTooManyRedirects):
		return false
	case errors.Is(err, context.Canceled):
		return false
	}
	var (
		re *ReadError
		qe *requestError
	)
	if errors.As(err, &re) || errors.As(err, &qe) {
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func isTLSFailure(err error) bool {
	// A TLS alert from the peer (for example "certificate required")
	// comes as an OpError; the alert type itself is unexported.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		return true
	}
	var (
		cve  *tls.CertificateVerificationError
		uae  x509.UnknownAuthorityError
		hne  x509.HostnameError
		cie  x509.CertificateInvalidError
		ae   tls.AlertError
		rhe  tls.RecordHeaderError
		echo *tls.ECHRejectionError
	)
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) ||
		errors.As(err, &cie) || errors.As(err, &ae) || errors.As(err, &rhe) || errors.As(err, &echo)
}
