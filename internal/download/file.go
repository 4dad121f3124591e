package download

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/pith-project/pith/internal/digest"
)

// below returns p relative to base if p lies strictly below base.
func below(base, p string) (string, bool) {
	rel, err := filepath.Rel(base, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return rel, true
}

// openLocal opens the regular file a file:// URL names, if it lies below an
// allowed import path once symlinks are resolved.
func (d *Downloader) openLocal(u *url.URL) (*os.File, os.FileInfo, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, nil, fmt.Errorf("file URL with host %q: %w", u.Host, ErrPathNotAllowed)
	}
	if !filepath.IsAbs(u.Path) {
		return nil, nil, fmt.Errorf("file URL path %q is not absolute: %w", u.Path, ErrPathNotAllowed)
	}
	p := filepath.Clean(u.Path)
	// Check the path as written before touching the file system, so that
	// errors do not reveal what exists outside the allowed paths.
	lexical := false
	for _, a := range d.allowed {
		if _, ok := below(a.asGiven, p); ok {
			lexical = true
		} else if _, ok := below(a.resolved, p); ok {
			lexical = true
		}
	}
	if !lexical {
		return nil, nil, ErrPathNotAllowed
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range d.allowed {
		rel, ok := below(a.resolved, real)
		if !ok {
			continue
		}
		// Opening through os.Root keeps a symlink swapped in after the
		// check from leading outside the allowed directory.
		root, err := os.OpenRoot(a.resolved)
		if err != nil {
			return nil, nil, err
		}
		f, err := root.Open(rel)
		root.Close()
		if err != nil {
			return nil, nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			return nil, nil, fmt.Errorf("%s is not a regular file", real)
		}
		return f, fi, nil
	}
	return nil, nil, ErrPathNotAllowed
}

// downloadFile copies a local file in one attempt: local read errors do not
// go away by retrying.
func (d *Downloader) downloadFile(ctx context.Context, u *url.URL, expect digest.Expect, newDest func() (Dest, error)) (Result, error) {
	fail := func(err error) (Result, error) {
		return Result{}, fmt.Errorf("download %s: %w", redact(u), err)
	}
	release, err := d.acquire(ctx, false)
	if err != nil {
		return fail(err)
	}
	defer release()
	f, fi, err := d.openLocal(u)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if expect.Size >= 0 && fi.Size() != expect.Size {
		return fail(&digest.SizeMismatchError{Expected: expect.Size, Actual: fi.Size()})
	}
	dst, err := newDest()
	if err != nil {
		return fail(&DestError{Err: err})
	}
	size, sums, err := copyVerify(dst, ctxReader{ctx, f}, expect)
	if err != nil {
		if cerr := dst.Cancel(context.WithoutCancel(ctx)); cerr != nil {
			d.log.WarnContext(ctx, "download: cancel destination", "url", redact(u), "error", cerr)
		}
		return fail(err)
	}
	return Result{URL: u.String(), Size: size, Digests: sums, Attempts: 1, Dest: dst}, nil
}

// ctxReader stops a local copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// openFile synthesizes a 200 response for a local file.
func (d *Downloader) openFile(ctx context.Context, u *url.URL) (*http.Response, error) {
	release, err := d.acquire(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", redact(u), err)
	}
	f, fi, err := d.openLocal(u)
	if err != nil {
		release()
		return nil, fmt.Errorf("download %s: %w", redact(u), err)
	}
	h := http.Header{}
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: fi.Size(),
		Body:          &fileBody{File: f, release: release},
	}, nil
}

type fileBody struct {
	*os.File
	release func()
	once    sync.Once
}

func (b *fileBody) Close() error {
	err := os.ErrClosed
	b.once.Do(func() {
		err = b.File.Close()
		b.release()
	})
	return err
}
