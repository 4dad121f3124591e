package digest

import (
	"slices"
	"strings"
)

// UnknownSize as Expect.Size means the size is not checked.
const UnknownSize int64 = -1

// Expect describes what a stream is supposed to contain.
type Expect struct {
	// Size is the expected byte count. Any negative value (use
	// UnknownSize) means unknown. Note that the zero Expect therefore
	// expects an empty stream.
	Size int64
	// Digests maps algorithm names to expected hex digests (either case).
	// Empty values are ignored, as Pulp ignores unset checksum fields.
	Digests map[string]string
}

// Validate checks that every expected digest names a supported algorithm
// and is well-formed. It returns *UnsupportedAlgorithmError or
// *InvalidDigestError. Callers can use it to reject a request before any
// bytes are transferred.
//
// As in Pulp, a digest of a supported algorithm that is not configured
// (see [Configure]) is ignored when a configured one is expected too, so
// data recorded under a wider configuration stays usable; an expectation
// whose digests are all unconfigured is refused, as nothing could check it.
func (e Expect) Validate() error {
	var unconfigured string
	checked := false
	for alg, want := range e.Digests {
		if want == "" {
			continue
		}
		if !slices.Contains(Allowed, alg) {
			return &UnsupportedAlgorithmError{Algorithm: alg, Forbidden: IsForbidden(alg)}
		}
		if !ValidHex(alg, want) {
			return &InvalidDigestError{Algorithm: alg, Value: want}
		}
		if IsAllowed(alg) {
			checked = true
		} else if unconfigured == "" || alg < unconfigured {
			unconfigured = alg
		}
	}
	if unconfigured != "" && !checked {
		return &UnsupportedAlgorithmError{Algorithm: unconfigured, Forbidden: true}
	}
	return nil
}

// Verify checks size and got against the expectation. The size is checked
// first, then the configured digests in the order of Allowed, so the error
// is deterministic. It returns *SizeMismatchError, *DigestMismatchError, or an
// error from Validate.
func (e Expect) Verify(size int64, got Digests) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if e.Size >= 0 && size != e.Size {
		return &SizeMismatchError{Expected: e.Size, Actual: size}
	}
	for _, alg := range Allowed {
		want := e.Digests[alg]
		if want == "" || !IsAllowed(alg) {
			continue
		}
		if have := got.Get(alg); !strings.EqualFold(want, have) {
			return &DigestMismatchError{Algorithm: alg, Expected: strings.ToLower(want), Actual: have}
		}
	}
	return nil
}
