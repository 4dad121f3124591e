package digest

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func refDigests(b []byte) Digests {
	s224 := sha256.Sum224(b)
	s256 := sha256.Sum256(b)
	s384 := sha512.Sum384(b)
	s512 := sha512.Sum512(b)
	return Digests{
		SHA224: hex.EncodeToString(s224[:]),
		SHA256: hex.EncodeToString(s256[:]),
		SHA384: hex.EncodeToString(s384[:]),
		SHA512: hex.EncodeToString(s512[:]),
	}
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		alg                string
		allowed, forbidden bool
		hexLen             int
	}{
		{"sha224", true, false, 56},
		{"sha256", true, false, 64},
		{"sha384", true, false, 96},
		{"sha512", true, false, 128},
		{"md5", false, true, 32},
		{"sha1", false, true, 40},
		{"SHA256", false, false, 0},
		{"crc32", false, false, 0},
		{"", false, false, 0},
	} {
		if got := IsAllowed(tc.alg); got != tc.allowed {
			t.Errorf("IsAllowed(%q) = %v", tc.alg, got)
		}
		if got := IsForbidden(tc.alg); got != tc.forbidden {
			t.Errorf("IsForbidden(%q) = %v", tc.alg, got)
		}
		if got := HexLen(tc.alg); got != tc.hexLen {
			t.Errorf("HexLen(%q) = %d, want %d", tc.alg, got, tc.hexLen)
		}
	}
	want := []string{"sha256", "sha512", "sha384", "sha224"}
	if strings.Join(Allowed, ",") != strings.Join(want, ",") {
		t.Errorf("Allowed = %v, want %v", Allowed, want)
	}
	for _, alg := range Allowed {
		if !IsAllowed(alg) {
			t.Errorf("Allowed contains %q which IsAllowed rejects", alg)
		}
	}
}

func TestValidHex(t *testing.T) {
	d := refDigests([]byte("x"))
	for _, alg := range Allowed {
		v := d.Get(alg)
		if !ValidHex(alg, v) {
			t.Errorf("ValidHex(%s, real digest) = false", alg)
		}
		if !ValidHex(alg, strings.ToUpper(v)) {
			t.Errorf("ValidHex(%s, upper-case digest) = false", alg)
		}
		if ValidHex(alg, v[1:]) || ValidHex(alg, v+"0") {
			t.Errorf("ValidHex(%s) accepted a wrong length", alg)
		}
		if ValidHex(alg, "g"+v[1:]) || ValidHex(alg, " "+v[1:]) {
			t.Errorf("ValidHex(%s) accepted a non-hex character", alg)
		}
	}
	if !ValidHex("md5", strings.Repeat("a", 32)) {
		t.Error("ValidHex(md5) rejects a well-formed md5")
	}
	if ValidHex("crc32", "deadbeef") || ValidHex("", "") {
		t.Error("ValidHex accepted an unknown algorithm")
	}
}

func TestDigestsGetMap(t *testing.T) {
	d := Digests{SHA224: "a", SHA256: "b", SHA384: "c", SHA512: "d"}
	for alg, want := range map[string]string{"sha224": "a", "sha256": "b", "sha384": "c", "sha512": "d", "md5": "", "x": ""} {
		if got := d.Get(alg); got != want {
			t.Errorf("Get(%q) = %q, want %q", alg, got, want)
		}
	}
	m := d.Map()
	if len(m) != 4 || m["sha224"] != "a" || m["sha256"] != "b" || m["sha384"] != "c" || m["sha512"] != "d" {
		t.Errorf("Map() = %v", m)
	}
	if m := (Digests{SHA256: "b"}).Map(); len(m) != 1 || m["sha256"] != "b" {
		t.Errorf("Map() of partial digests = %v, want only sha256", m)
	}
}

func TestHasherKnownVectors(t *testing.T) {
	h := NewHasher()
	got := h.Sum()
	// Digests of the empty string (FIPS 180-4).
	if got.SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty sha256 = %s", got.SHA256)
	}
	if got.SHA224 != "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f" {
		t.Errorf("empty sha224 = %s", got.SHA224)
	}
	io.WriteString(h, "abc")
	got = h.Sum()
	if got.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("abc sha256 = %s", got.SHA256)
	}
	if got.SHA384 != "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7" {
		t.Errorf("abc sha384 = %s", got.SHA384)
	}
	if h.Size() != 3 {
		t.Errorf("Size = %d, want 3", h.Size())
	}
}

func TestHasherMatchesStdlib(t *testing.T) {
	data := randBytes(1<<20+7, 1)
	for _, parallel := range []bool{true, false} {
		for _, chunk := range []int{1, 1000, parallelMin - 1, parallelMin, 64 << 10, len(data)} {
			h := NewHasher()
			h.parallel = parallel
			// A short first write makes later chunks straddle block boundaries.
			rest := data
			h.Write(rest[:3])
			rest = rest[3:]
			for len(rest) > 0 {
				n := min(chunk, len(rest))
				if w, err := h.Write(rest[:n]); w != n || err != nil {
					t.Fatalf("Write = %d, %v", w, err)
				}
				rest = rest[n:]
			}
			if got, want := h.Sum(), refDigests(data); got != want {
				t.Errorf("parallel=%v chunk=%d: Sum = %+v, want %+v", parallel, chunk, got, want)
			}
			if h.Size() != int64(len(data)) {
				t.Errorf("Size = %d, want %d", h.Size(), len(data))
			}
		}
	}
}

func TestHasherSumMidStream(t *testing.T) {
	data := randBytes(100_000, 2)
	h := NewHasher()
	h.Write(data[:50_000])
	if got, want := h.Sum(), refDigests(data[:50_000]); got != want {
		t.Errorf("mid-stream Sum = %+v, want %+v", got, want)
	}
	h.Write(data[50_000:])
	if got, want := h.Sum(), refDigests(data); got != want {
		t.Errorf("Sum after mid-stream Sum = %+v, want %+v", got, want)
	}
}

func TestExpectVerify(t *testing.T) {
	data := []byte("hello, pulp")
	good := refDigests(data)
	other := refDigests([]byte("something else"))
	size := int64(len(data))

	for _, tc := range []struct {
		name   string
		expect Expect
		check  func(t *testing.T, err error)
	}{
		{"nothing expected", Expect{Size: UnknownSize}, noErr},
		{"any negative size is unknown", Expect{Size: -42}, noErr},
		{"size only", Expect{Size: size}, noErr},
		{"all digests", Expect{Size: size, Digests: good.Map()}, noErr},
		{"upper-case expected", Expect{Size: -1, Digests: map[string]string{"sha256": strings.ToUpper(good.SHA256)}}, noErr},
		{"empty value ignored", Expect{Size: -1, Digests: map[string]string{"sha256": "", "md5": ""}}, noErr},
		{"zero Expect means empty", Expect{}, func(t *testing.T, err error) {
			wantSize(t, err, 0, size)
		}},
		{"size mismatch", Expect{Size: size + 1, Digests: good.Map()}, func(t *testing.T, err error) {
			wantSize(t, err, size+1, size)
		}},
		{"size checked before digests", Expect{Size: 1, Digests: other.Map()}, func(t *testing.T, err error) {
			wantSize(t, err, 1, size)
		}},
		{"sha512 mismatch", Expect{Size: -1, Digests: map[string]string{"sha512": other.SHA512, "sha224": good.SHA224}}, func(t *testing.T, err error) {
			wantDigest(t, err, "sha512", other.SHA512, good.SHA512)
		}},
		{"sha224 mismatch", Expect{Size: -1, Digests: map[string]string{"sha224": other.SHA224}}, func(t *testing.T, err error) {
			wantDigest(t, err, "sha224", other.SHA224, good.SHA224)
		}},
		{"sha256 reported first", Expect{Size: -1, Digests: other.Map()}, func(t *testing.T, err error) {
			wantDigest(t, err, "sha256", other.SHA256, good.SHA256)
		}},
		{"mismatch reports lower-case expected", Expect{Size: -1, Digests: map[string]string{"sha384": strings.ToUpper(other.SHA384)}}, func(t *testing.T, err error) {
			wantDigest(t, err, "sha384", other.SHA384, good.SHA384)
		}},
		{"forbidden md5", Expect{Size: -1, Digests: map[string]string{"md5": strings.Repeat("0", 32)}}, func(t *testing.T, err error) {
			wantUnsupported(t, err, "md5", true)
		}},
		{"forbidden sha1", Expect{Size: size, Digests: map[string]string{"sha1": strings.Repeat("0", 40), "sha256": good.SHA256}}, func(t *testing.T, err error) {
			wantUnsupported(t, err, "sha1", true)
		}},
		{"unknown algorithm", Expect{Size: -1, Digests: map[string]string{"crc32": "deadbeef"}}, func(t *testing.T, err error) {
			wantUnsupported(t, err, "crc32", false)
		}},
		{"malformed hex", Expect{Size: -1, Digests: map[string]string{"sha256": good.SHA256[:63] + "z"}}, func(t *testing.T, err error) {
			var ie *InvalidDigestError
			if !errors.As(err, &ie) || ie.Algorithm != "sha256" {
				t.Fatalf("err = %v, want *InvalidDigestError for sha256", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, tc.expect.Verify(size, good))
		})
	}
}

func TestErrorMessages(t *testing.T) {
	de := (&DigestMismatchError{Algorithm: "sha256", Expected: "aa", Actual: "bb"}).Error()
	if !strings.HasPrefix(de, "A file failed validation due to checksum.") || !strings.Contains(de, "aa") || !strings.Contains(de, "bb") {
		t.Errorf("DigestMismatchError = %q", de)
	}
	se := (&SizeMismatchError{Expected: 10, Actual: 12}).Error()
	if !strings.HasPrefix(se, "A file failed validation due to size.") || !strings.Contains(se, "10") || !strings.Contains(se, "12") {
		t.Errorf("SizeMismatchError = %q", se)
	}
	ue := (&UnsupportedAlgorithmError{Algorithm: "md5", Forbidden: true}).Error()
	if !strings.Contains(ue, "md5") || !strings.Contains(ue, "forbidden") {
		t.Errorf("UnsupportedAlgorithmError = %q", ue)
	}
}

func TestVerifyingReaderGood(t *testing.T) {
	data := randBytes(300_000, 3)
	want := refDigests(data)
	e := Expect{Size: int64(len(data)), Digests: want.Map()}
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"plain":    func(r io.Reader) io.Reader { return r },
		"one-byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+EOF": iotest.DataErrReader,
	} {
		t.Run(name, func(t *testing.T) {
			v := NewVerifyingReader(wrap(bytes.NewReader(data[:20_000])), Expect{Size: 20_000, Digests: refDigests(data[:20_000]).Map()})
			got, err := io.ReadAll(v)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			if !bytes.Equal(got, data[:20_000]) {
				t.Fatal("bytes changed in transit")
			}
		})
	}
	if err := iotest.TestReader(NewVerifyingReader(bytes.NewReader(data), e), data); err != nil {
		t.Fatalf("iotest.TestReader: %v", err)
	}
	v := NewVerifyingReader(bytes.NewReader(data), e)
	if _, err := v.Digests(); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Digests before reading = %v, want ErrIncomplete", err)
	}
	if _, err := io.Copy(io.Discard, v); err != nil {
		t.Fatal(err)
	}
	got, err := v.Digests()
	if err != nil || got != want {
		t.Fatalf("Digests = %+v, %v; want %+v", got, err, want)
	}
	if v.Size() != int64(len(data)) {
		t.Errorf("Size = %d", v.Size())
	}
	if n, err := v.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want 0, EOF", n, err)
	}
}

func TestVerifyingReaderCorrupt(t *testing.T) {
	data := randBytes(100_000, 4)
	good := refDigests(data)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1

	v := NewVerifyingReader(bytes.NewReader(bad), Expect{Size: int64(len(data)), Digests: map[string]string{"sha512": good.SHA512}})
	_, err := io.ReadAll(v)
	wantDigest(t, err, "sha512", good.SHA512, refDigests(bad).SHA512)
	if _, derr := v.Digests(); derr != err {
		t.Errorf("Digests after mismatch = %v, want the mismatch error", derr)
	}
	if _, again := v.Read(make([]byte, 1)); again != err {
		t.Errorf("error not sticky: %v", again)
	}
}

func TestVerifyingReaderShort(t *testing.T) {
	data := randBytes(1000, 5)
	v := NewVerifyingReader(bytes.NewReader(data[:999]), Expect{Size: 1000})
	_, err := io.ReadAll(v)
	wantSize(t, err, 1000, 999)
}

// countingReader is an endless stream that counts the bytes handed out.
type countingReader struct{ n int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func TestVerifyingReaderOversizedStopsEarly(t *testing.T) {
	src := &countingReader{}
	v := NewVerifyingReader(src, Expect{Size: 10_000})
	_, err := io.Copy(io.Discard, v)
	var se *SizeMismatchError
	if !errors.As(err, &se) || se.Expected != 10_000 || se.Actual <= 10_000 {
		t.Fatalf("err = %v, want size mismatch with Actual > 10000", err)
	}
	if src.n > 10_000+64<<10 {
		t.Errorf("read %d bytes from an endless source; should stop just past the expected size", src.n)
	}
}

func TestVerifyingReaderPassesErrors(t *testing.T) {
	boom := errors.New("boom")
	v := NewVerifyingReader(iotest.ErrReader(boom), Expect{Size: -1})
	if _, err := io.ReadAll(v); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if _, err := v.Digests(); !errors.Is(err, boom) {
		t.Fatalf("Digests err = %v, want boom", err)
	}
}

func TestVerifyingReaderInvalidExpect(t *testing.T) {
	src := &countingReader{}
	v := NewVerifyingReader(src, Expect{Size: -1, Digests: map[string]string{"md5": strings.Repeat("0", 32)}})
	_, err := v.Read(make([]byte, 10))
	wantUnsupported(t, err, "md5", true)
	if src.n != 0 {
		t.Error("read from the source despite an invalid expectation")
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantSize(t *testing.T, err error, expected, actual int64) {
	t.Helper()
	var se *SizeMismatchError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *SizeMismatchError", err)
	}
	if se.Expected != expected || se.Actual != actual {
		t.Fatalf("size mismatch = %+v, want expected %d actual %d", se, expected, actual)
	}
}

func wantDigest(t *testing.T, err error, alg, expected, actual string) {
	t.Helper()
	var de *DigestMismatchError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *DigestMismatchError", err)
	}
	if *de != (DigestMismatchError{Algorithm: alg, Expected: expected, Actual: actual}) {
		t.Fatalf("digest mismatch = %+v, want %s expected %s actual %s", de, alg, expected, actual)
	}
}

func wantUnsupported(t *testing.T, err error, alg string, forbidden bool) {
	t.Helper()
	var ue *UnsupportedAlgorithmError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnsupportedAlgorithmError", err)
	}
	if ue.Algorithm != alg || ue.Forbidden != forbidden {
		t.Fatalf("unsupported = %+v, want %s forbidden=%v", ue, alg, forbidden)
	}
}

func BenchmarkHasher(b *testing.B) {
	for _, bc := range []struct {
		name     string
		size     int
		parallel bool
	}{
		{"write=4KiB", 4 << 10, true},
		{"write=32KiB", 32 << 10, true},
		{"write=32KiB/sequential", 32 << 10, false},
		{"write=1MiB", 1 << 20, true},
		{"write=1MiB/sequential", 1 << 20, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := randBytes(bc.size, 9)
			h := NewHasher()
			h.parallel = h.parallel && bc.parallel
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				h.Write(buf)
			}
		})
	}
}
