package digest

import (
	"errors"
	"io"
)

// ErrIncomplete is returned by VerifyingReader.Digests before the stream has
// been read to its end.
var ErrIncomplete = errors.New("digest: stream not read to EOF")

// VerifyingReader hashes the bytes read through it and checks them against
// an Expect. Where the underlying reader reports io.EOF, a VerifyingReader
// reports the verification error instead if the stream did not match, so a
// reader that stops at the first error never sees a corrupt stream end
// cleanly. Reading past an expected size fails at once rather than at EOF,
// so an oversized stream is not read to its end. Errors are sticky.
type VerifyingReader struct {
	r      io.Reader
	expect Expect
	h      *Hasher
	err    error // sticky: io.EOF after a verified end, or the failure
	sum    Digests
}

// NewVerifyingReader returns a reader of r that verifies e. If e is invalid
// (see Expect.Validate) the first Read returns that error.
func NewVerifyingReader(r io.Reader, e Expect) *VerifyingReader {
	v := &VerifyingReader{r: r, expect: e, h: NewHasher()}
	v.err = e.Validate()
	return v
}

// Read implements io.Reader.
func (v *VerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if n > 0 {
		v.h.Write(p[:n])
		if v.expect.Size >= 0 && v.h.Size() > v.expect.Size {
			// Actual is a lower bound here; the rest is not read.
			v.err = &SizeMismatchError{Expected: v.expect.Size, Actual: v.h.Size()}
			return n, v.err
		}
	}
	switch {
	case err == io.EOF:
		v.sum = v.h.Sum()
		if verr := v.expect.Verify(v.h.Size(), v.sum); verr != nil {
			v.err = verr
		} else {
			v.err = io.EOF
		}
		return n, v.err
	case err != nil:
		v.err = err
	}
	return n, err
}

// Size returns the number of bytes read so far.
func (v *VerifyingReader) Size() int64 { return v.h.Size() }

// Digests returns the digests of the whole stream once it has been read to
// EOF and verified. Before that it returns ErrIncomplete, and after a failed
// verification or a read error it returns that error.
func (v *VerifyingReader) Digests() (Digests, error) {
	switch v.err {
	case io.EOF:
		return v.sum, nil
	case nil:
		return Digests{}, ErrIncomplete
	}
	return Digests{}, v.err
}
