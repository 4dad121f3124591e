// Package digest computes and verifies Pulp's artifact checksums.
//
// Pulp stores the digests its ALLOWED_CONTENT_CHECKSUMS setting lists for
// every artifact, by default sha224, sha256, sha384 and sha512; pith's
// equivalent is [Configure] (sha256 is always required, md5 and sha1 are
// known but never allowed). A [Hasher] computes the configured digests and
// the byte count in a single pass, [Expect] describes what a stream is
// supposed to contain, and
// [VerifyingReader] checks a stream against an Expect as it is read, so that
// nothing reading to EOF can mistake corrupt data for good data.
package digest

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// Algorithm names, as Pulp spells them in API fields and settings.
const (
	MD5    = "md5"
	SHA1   = "sha1"
	SHA224 = "sha224"
	SHA256 = "sha256"
	SHA384 = "sha384"
	SHA512 = "sha512"
)

// Allowed lists the algorithms an artifact may carry when configured, in
// the order Pulp prefers them when looking up an existing artifact by
// checksum. [Configured] says which of them this process computes.
var Allowed = []string{SHA256, SHA512, SHA384, SHA224}

// Forbidden lists the algorithms that are recognised but never accepted.
var Forbidden = []string{MD5, SHA1}

// configured is the process-wide checksum set, in the order of Allowed. It
// is global, like Pulp's setting, because every hasher in the process
// (storage, downloads, uploads, repair) must agree on what an artifact
// carries.
var configured atomic.Pointer[[]string]

func init() { configured.Store(&Allowed) }

// Configure sets which checksums artifacts carry, Pulp's
// ALLOWED_CONTENT_CHECKSUMS: a subset of Allowed that includes sha256.
// Hashers made afterwards compute only these, expected digests of other
// algorithms are rejected as forbidden, and the digests not configured stay
// empty. Call it at startup, before anything is hashed.
func Configure(algs []string) error {
	var set []string
	for _, alg := range Allowed {
		if slices.Contains(algs, alg) {
			set = append(set, alg)
		}
	}
	for _, alg := range algs {
		if !slices.Contains(Allowed, alg) {
			return fmt.Errorf("digest: checksum %q is not supported; choose from %s", alg, strings.Join(Allowed, ", "))
		}
	}
	if !slices.Contains(set, SHA256) {
		return fmt.Errorf("digest: sha256 is required in the allowed checksums")
	}
	configured.Store(&set)
	return nil
}

// Configured returns the configured algorithms, in the order of Allowed.
func Configured() []string { return slices.Clone(*configured.Load()) }

// IsAllowed reports whether alg is one of the configured algorithms.
func IsAllowed(alg string) bool {
	return slices.Contains(*configured.Load(), alg)
}

// IsForbidden reports whether alg is a known algorithm that is not allowed
// (md5 and sha1 always; sha224, sha384 and sha512 when not configured).
func IsForbidden(alg string) bool {
	return HexLen(alg) > 0 && !IsAllowed(alg)
}

// HexLen returns the length of alg's digest in hex characters, or 0 if alg
// is not a known algorithm. Forbidden algorithms are known.
func HexLen(alg string) int {
	switch alg {
	case MD5:
		return 32
	case SHA1:
		return 40
	case SHA224:
		return 56
	case SHA256:
		return 64
	case SHA384:
		return 96
	case SHA512:
		return 128
	}
	return 0
}

// ValidHex reports whether s has the form of an alg digest: hex digits (of
// either case) of exactly the right length. It says nothing about whether
// alg is allowed.
func ValidHex(alg, s string) bool {
	n := HexLen(alg)
	if n == 0 || len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Digests holds the allowed digests of some bytes as lower-case hex. A field
// is empty when that digest is not known.
type Digests struct {
	SHA224 string
	SHA256 string
	SHA384 string
	SHA512 string
}

// Get returns the digest for alg, or "" if alg is not allowed or not set.
func (d Digests) Get(alg string) string {
	switch alg {
	case SHA224:
		return d.SHA224
	case SHA256:
		return d.SHA256
	case SHA384:
		return d.SHA384
	case SHA512:
		return d.SHA512
	}
	return ""
}

// Map returns the non-empty digests keyed by algorithm name.
func (d Digests) Map() map[string]string {
	m := make(map[string]string, 4)
	for _, alg := range Allowed {
		if v := d.Get(alg); v != "" {
			m[alg] = v
		}
	}
	return m
}

// allowedList is for error messages: the configured algorithms.
func allowedList() string {
	set := Configured()
	slices.Sort(set)
	return strings.Join(set, ", ")
}

// UnsupportedAlgorithmError reports an expected digest whose algorithm is
// unknown or forbidden.
type UnsupportedAlgorithmError struct {
	Algorithm string
	Forbidden bool // a known algorithm that is not allowed (md5, sha1)
}

func (e *UnsupportedAlgorithmError) Error() string {
	if e.Forbidden {
		return fmt.Sprintf("Checksum algorithm %q is forbidden; allowed: %s.", e.Algorithm, allowedList())
	}
	return fmt.Sprintf("Checksum algorithm %q is not supported; allowed: %s.", e.Algorithm, allowedList())
}

// InvalidDigestError reports an expected digest that is not well-formed hex
// of the right length for its algorithm.
type InvalidDigestError struct {
	Algorithm string
	Value     string
}

func (e *InvalidDigestError) Error() string {
	return fmt.Sprintf("Invalid %s checksum %q: want %d hex characters.", e.Algorithm, e.Value, HexLen(e.Algorithm))
}

// SizeMismatchError reports content whose size differs from the expected one.
type SizeMismatchError struct {
	Expected int64
	Actual   int64
}

func (e *SizeMismatchError) Error() string {
	return fmt.Sprintf("A file failed validation due to size. Expected %d bytes, got %d.", e.Expected, e.Actual)
}

// DigestMismatchError reports content whose digest differs from the expected
// one.
type DigestMismatchError struct {
	Algorithm string
	Expected  string
	Actual    string
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("A file failed validation due to checksum. Expected %s %s, got %s.", e.Algorithm, e.Expected, e.Actual)
}
