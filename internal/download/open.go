package download

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Open sends one GET (plus hdr, for example Range) and returns the 2xx
// response as soon as its headers arrive, for streaming to a client. Failures
// before the response (connection, TLS, timeouts, 429 and 5xx) are retried
// like Download's; nothing is retried once the response is returned. Any
// other status is an *HTTPError. The concurrency slot is held until the
// body is closed, which the caller must do. file:// URLs get a synthesized
// 200 response.
func (d *Downloader) Open(ctx context.Context, rawURL string, hdr http.Header) (*http.Response, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		return d.openFile(ctx, u)
	}
	for attempt := 1; ; attempt++ {
		resp, err := d.openOnce(ctx, u, hdr)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("download %s: %w", redact(u), context.Cause(ctx))
		}
		if attempt > d.maxRetries || !IsRetryable(err) {
			return nil, fmt.Errorf("download %s: %w", redact(u), err)
		}
		if err := d.wait(ctx, u, attempt, err); err != nil {
			return nil, fmt.Errorf("download %s: %w", redact(u), err)
		}
	}
}

func (d *Downloader) openOnce(ctx context.Context, u *url.URL, hdr http.Header) (*http.Response, error) {
	release, err := d.acquire(ctx, true)
	if err != nil {
		return nil, err
	}
	resp, err := d.do(ctx, u, hdr)
	if err != nil {
		release()
		return nil, err
	}
	resp.Body.(*body).onClose = release
	return resp, nil
}
