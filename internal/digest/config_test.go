package digest

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// configure sets the checksum set for one test and restores the default.
func configure(t *testing.T, algs ...string) {
	t.Helper()
	if err := Configure(algs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Configure(Allowed); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfigureDefault(t *testing.T) {
	if got := Configured(); !slices.Equal(got, Allowed) {
		t.Fatalf("default Configured() = %v, want %v", got, Allowed)
	}
	got := NewHasher().Sum()
	if got.SHA224 == "" || got.SHA384 == "" || got.SHA512 == "" || got.SHA256 == "" {
		t.Fatalf("default hasher left a digest empty: %+v", got)
	}
}

func TestConfigureRejects(t *testing.T) {
	for _, algs := range [][]string{
		{},
		{SHA512},
		{SHA224, SHA384, SHA512},
		{SHA256, MD5},
		{SHA256, SHA1},
		{SHA256, "sha3-256"},
		{"SHA256"},
	} {
		if err := Configure(algs); err == nil {
			t.Errorf("Configure(%v) succeeded", algs)
		}
	}
	// A rejected configuration changes nothing.
	if got := Configured(); !slices.Equal(got, Allowed) {
		t.Fatalf("Configured() = %v after rejected calls", got)
	}
}

func TestConfigureSHA256Only(t *testing.T) {
	configure(t, SHA256)
	if got := Configured(); !slices.Equal(got, []string{SHA256}) {
		t.Fatalf("Configured() = %v", got)
	}
	data := randBytes(1<<20+5, 3)
	h := NewHasher()
	if h.parallel {
		t.Error("a single digest is hashed on two goroutines")
	}
	h.Write(data)
	want := refDigests(data)
	if got := h.Sum(); got != (Digests{SHA256: want.SHA256}) {
		t.Fatalf("Sum = %+v, want only sha256 %s", got, want.SHA256)
	}
	for _, alg := range []string{SHA224, SHA384, SHA512, MD5, SHA1} {
		if IsAllowed(alg) || !IsForbidden(alg) {
			t.Errorf("%s: IsAllowed = %v, IsForbidden = %v; want forbidden", alg, IsAllowed(alg), IsForbidden(alg))
		}
	}
	// An expectation only in algorithms that are not configured cannot be
	// checked, so it is refused rather than silently passed.
	err := Expect{Size: UnknownSize, Digests: map[string]string{SHA512: want.SHA512, SHA384: want.SHA384}}.Validate()
	wantUnsupported(t, err, SHA384, true)
	if !strings.Contains(err.Error(), "allowed: sha256.") {
		t.Errorf("error %q does not list the configured checksums", err)
	}
	// Beside a configured one, an unconfigured digest is ignored (as Pulp
	// does), so digests recorded under a wider configuration still work —
	// even a wrong one, since it is not computed.
	other := refDigests([]byte("other"))
	e := Expect{Size: int64(len(data)), Digests: map[string]string{SHA256: want.SHA256, SHA512: other.SHA512}}
	noErr(t, e.Validate())
	noErr(t, e.Verify(int64(len(data)), h.Sum()))
	e.Digests[SHA256] = other.SHA256
	wantDigest(t, e.Verify(int64(len(data)), h.Sum()), SHA256, other.SHA256, want.SHA256)
	// md5 stays forbidden whatever accompanies it.
	wantUnsupported(t, Expect{Digests: map[string]string{SHA256: want.SHA256, MD5: strings.Repeat("0", 32)}}.Validate(), MD5, true)
	// A verifying reader works on the configured digest alone.
	r := NewVerifyingReader(strings.NewReader("abc"), Expect{Size: 3, Digests: map[string]string{SHA256: refDigests([]byte("abc")).SHA256}})
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("read: %v", err)
	}
	if d, err := r.Digests(); err != nil || d.SHA512 != "" || d.SHA256 == "" {
		t.Fatalf("Digests = %+v, %v", d, err)
	}
}

func TestConfigureTwoDigestsParallel(t *testing.T) {
	configure(t, SHA512, SHA256) // order does not matter
	if got := Configured(); !slices.Equal(got, []string{SHA256, SHA512}) {
		t.Fatalf("Configured() = %v", got)
	}
	data := randBytes(3<<20+11, 4)
	ref := refDigests(data)
	for _, parallel := range []bool{true, false} {
		h := NewHasher()
		h.parallel = h.parallel && parallel
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 256<<10)
			h.Write(rest[:n])
			rest = rest[n:]
		}
		if got := h.Sum(); got != (Digests{SHA256: ref.SHA256, SHA512: ref.SHA512}) {
			t.Errorf("parallel=%v: Sum = %+v", parallel, got)
		}
	}
	if !IsAllowed(SHA512) || IsForbidden(SHA512) || IsAllowed(SHA384) {
		t.Error("IsAllowed does not follow the configuration")
	}
}

// BenchmarkHasherConfigured compares the checksum sets one may configure,
// in 256 KiB writes (the downloader's buffer).
func BenchmarkHasherConfigured(b *testing.B) {
	buf := randBytes(256<<10, 9)
	for _, algs := range [][]string{
		{SHA256},
		{SHA256, SHA512},
		{SHA224, SHA256, SHA384, SHA512},
	} {
		b.Run(strings.Join(algs, ","), func(b *testing.B) {
			if err := Configure(algs); err != nil {
				b.Fatal(err)
			}
			defer Configure(Allowed)
			h := NewHasher()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				h.Write(buf)
			}
		})
	}
}
