package download

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestOpenReturnsBeforeBodyCompletes(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Content-Length", "10")
		w.Write([]byte("first"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte("-last"))
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	d := newTestDownloader(t, Config{})
	resp, err := d.Open(t.Context(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The server is still blocked: the headers arrived on their own.
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"abc"` || resp.ContentLength != 10 {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first part %q, %v", buf, err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "-last" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

func TestOpenClientErrorIsNotRetried(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) }}
	srv := httptest.NewServer(c)
	defer srv.Close()
	d := newTestDownloader(t, Config{})
	_, err := d.Open(t.Context(), srv.URL, nil)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 403 || he.Retryable() {
		t.Fatalf("err = %v", err)
	}
	if c.n.Load() != 1 {
		t.Errorf("requests = %d", c.n.Load())
	}
}

func TestOpenRetriesBeforeResponse(t *testing.T) {
	c := &counter{h: func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	d := newTestDownloader(t, Config{})
	resp, err := d.Open(t.Context(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c.n.Load() != 2 {
		t.Errorf("requests = %d, want 2", c.n.Load())
	}
}

func TestOpenPassesRangeAndRemoteHeaders(t *testing.T) {
	content := randomBytes(t, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Remote") != "yes" {
			http.Error(w, "remote header missing", http.StatusBadRequest)
			return
		}
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(content))
	}))
	defer srv.Close()
	d := newTestDownloader(t, Config{Headers: []map[string]string{{"X-Remote": "yes"}}})
	resp, err := d.Open(t.Context(), srv.URL, http.Header{"Range": {"bytes=100-199"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, content[100:200]) {
		t.Errorf("status %d, %d bytes", resp.StatusCode, len(b))
	}
}

func TestOpenHoldsSlotUntilClose(t *testing.T) {
	c := &counter{h: func(_ int, w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) }}
	srv := httptest.NewServer(c)
	defer srv.Close()
	d := newTestDownloader(t, Config{DownloadConcurrency: 1})

	first, err := d.Open(t.Context(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := d.Open(ctx, srv.URL, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Open with the only slot taken: %v", err)
	}
	if c.n.Load() != 1 {
		t.Errorf("requests = %d, want 1", c.n.Load())
	}
	first.Body.Close()
	first.Body.Close() // idempotent: must not free a second slot
	second, err := d.Open(t.Context(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Body.Close()
	if len(d.slots) != 1 {
		t.Errorf("slots in use = %d, want 1", len(d.slots))
	}
}

// The content app closes the upstream body when its client goes away,
// while another goroutine is blocked reading it.
func TestOpenCloseWhileReading(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("x"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	d := newTestDownloader(t, Config{SockReadTimeout: 30, DownloadConcurrency: 1})
	resp, err := d.Open(t.Context(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	resp.Body.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read of a closed, incomplete body succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
	if len(d.slots) != 0 {
		t.Errorf("slot not released")
	}
}
