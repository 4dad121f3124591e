// Package storagetest is the conformance suite for storage.Backend
// implementations. Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Backend { return newTestBackend(t) })
//	}
//
// Optional capabilities (storage.LocalFiler, storage.Walker, storage.Usager,
// storage.TempPather) are exercised when the backend has them.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pith-project/pith/internal/digest"
	"github.com/pith-project/pith/internal/storage"
)

// Run runs the conformance suite. newBackend must return a new, empty
// backend on each call and arrange its cleanup with t.Cleanup. Run must not
// be called from a parallel test: one subtest measures allocations and
// needs the process to itself.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	// Sequential first, while no parallel subtest allocates.
	t.Run("LargeStreamNotBuffered", func(t *testing.T) { testLargeStream(t, newBackend(t)) })

	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, b storage.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"Empty", testEmpty},
		{"DigestsWhileWriting", testDigestsWhileWriting},
		{"OpenAtOffset", testOpenAtOffset},
		{"SizeMismatch", testSizeMismatch},
		{"DigestMismatch", testDigestMismatch},
		{"UnsupportedAlgorithm", testUnsupportedAlgorithm},
		{"Cancel", testCancel},
		{"WriterEndsAtCommit", testWriterEndsAtCommit},
		{"CreateCanceledContext", testCreateCanceledContext},
		{"CommitCanceledContext", testCommitCanceledContext},
		{"AlreadyPresent", testAlreadyPresent},
		{"ConcurrentSameContent", testConcurrentSameContent},
		{"DeleteRacesCommitInSameDirectory", testDeleteRacesCommit},
		{"Delete", testDelete},
		{"Missing", testMissing},
		{"InvalidNames", testInvalidNames},
		{"RedirectURL", testRedirectURL},
		{"LocalFiler", testLocalFiler},
		{"TempPather", testTempPather},
		{"Walker", testWalker},
		{"Usager", testUsager},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

// Bench measures commit throughput of 4 KiB and 64 MiB artifacts, written
// in 32 KiB pieces as io.Copy would, and of 4 KiB artifacts committed
// concurrently. Every iteration stores new content.
func Bench(b *testing.B, newBackend func(b *testing.B) storage.Backend) {
	for _, size := range []int{4 << 10, 64 << 20} {
		b.Run(fmt.Sprintf("size=%s", byteSize(size)), func(b *testing.B) {
			ctx := context.Background()
			be := newBackend(b)
			chunk := randBytes(min(size, 32<<10), 42)
			var seq uint64
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				seq++
				binaryPut(chunk, seq) // unique content per iteration
				w, err := be.Create(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for left := size; left > 0; left -= len(chunk) {
					if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := w.Commit(ctx, digest.Expect{Size: int64(size)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("size=4KiB/parallel=8xGOMAXPROCS", func(b *testing.B) { benchParallel(b, newBackend(b)) })
}

// benchParallel measures 4 KiB commits from many goroutines at once, as a
// sync with high download concurrency does; per-commit latency (fsync on a
// filesystem) overlaps.
func benchParallel(b *testing.B, be storage.Backend) {
	const size = 4 << 10
	ctx := context.Background()
	var seq atomic.Uint64
	b.SetBytes(size)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		chunk := randBytes(size, seq.Add(1)<<32)
		for pb.Next() {
			binaryPut(chunk, seq.Add(1))
			w, err := be.Create(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			w.Write(chunk)
			if _, err := w.Commit(ctx, digest.Expect{Size: size}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

func binaryPut(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// ---- helpers ----

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// ref computes the expected digests with the standard library directly.
func ref(data []byte) digest.Digests {
	s224 := sha256.Sum224(data)
	s256 := sha256.Sum256(data)
	s384 := sha512.Sum384(data)
	s512 := sha512.Sum512(data)
	return digest.Digests{
		SHA224: hex.EncodeToString(s224[:]),
		SHA256: hex.EncodeToString(s256[:]),
		SHA384: hex.EncodeToString(s384[:]),
		SHA512: hex.EncodeToString(s512[:]),
	}
}

func expectAll(data []byte) digest.Expect {
	return digest.Expect{Size: int64(len(data)), Digests: ref(data).Map()}
}

// writeAll writes data in uneven pieces.
func writeAll(t *testing.T, w storage.Writer, data []byte) {
	t.Helper()
	for i, n := 0, 1; i < len(data); n = n*3 + 7 {
		end := min(i+n, len(data))
		m, err := w.Write(data[i:end])
		if err != nil || m != end-i {
			t.Fatalf("Write(%d bytes) = %d, %v", end-i, m, err)
		}
		i = end
	}
}

func put(t *testing.T, b storage.Backend, data []byte) storage.Committed {
	t.Helper()
	ctx := t.Context()
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { w.Cancel(context.Background()) })
	writeAll(t, w, data)
	c, err := w.Commit(ctx, expectAll(data))
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return c
}

func read(t *testing.T, b storage.Backend, name string, offset int64) []byte {
	t.Helper()
	r, err := b.Open(t.Context(), name, offset)
	if err != nil {
		t.Fatalf("Open(%s, %d): %v", name, offset, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return got
}

func assertContent(t *testing.T, b storage.Backend, name string, want []byte) {
	t.Helper()
	if got := read(t, b, name, 0); !bytes.Equal(got, want) {
		t.Fatalf("%s: read %d bytes that differ from the %d written", name, len(got), len(want))
	}
	info, err := b.Stat(t.Context(), name)
	if err != nil {
		t.Fatalf("Stat(%s): %v", name, err)
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("Stat(%s).Size = %d, want %d", name, info.Size, len(want))
	}
}

func assertAbsent(t *testing.T, b storage.Backend, name string) {
	t.Helper()
	if _, err := b.Stat(t.Context(), name); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("Stat(%s) = %v, want ErrNotExist", name, err)
	}
	if r, err := b.Open(t.Context(), name, 0); !errors.Is(err, storage.ErrNotExist) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("Open(%s) = %v, want ErrNotExist", name, err)
	}
}

// assertTempGone checks, where the writer exposes its temp file, that it
// has been removed.
func assertTempGone(t *testing.T, w storage.Writer) {
	t.Helper()
	if tp, ok := w.(storage.TempPather); ok {
		if _, err := os.Lstat(tp.TempPath()); !errors.Is(err, iofs.ErrNotExist) {
			t.Fatalf("temp file %s still exists (%v)", tp.TempPath(), err)
		}
	}
}

// failCommit writes data, commits with e and checks that the commit fails
// with an error of type E, leaving nothing behind.
func failCommit[E error](t *testing.T, b storage.Backend, data []byte, e digest.Expect) E {
	t.Helper()
	ctx := t.Context()
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	writeAll(t, w, data)
	_, err = w.Commit(ctx, e)
	te, ok := errors.AsType[E](err)
	if !ok {
		t.Fatalf("Commit = %v, want %T", err, *new(E))
	}
	assertAbsent(t, b, storage.ArtifactName(ref(data).SHA256))
	assertTempGone(t, w)
	if _, err := w.Write([]byte("x")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Write after failed Commit = %v, want ErrClosed", err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel after failed Commit: %v", err)
	}
	return te
}

// ---- tests ----

func testRoundTrip(t *testing.T, b storage.Backend) {
	data := randBytes(300_001, 1)
	want := ref(data)
	before := time.Now()
	c := put(t, b, data)
	if c.Name != storage.ArtifactName(want.SHA256) {
		t.Fatalf("Committed.Name = %q, want %q", c.Name, storage.ArtifactName(want.SHA256))
	}
	if c.Size != int64(len(data)) || c.Digests != want || c.Existed {
		t.Fatalf("Committed = %+v, want size %d, digests %+v, not existed", c, len(data), want)
	}
	assertContent(t, b, c.Name, data)
	info, err := b.Stat(t.Context(), c.Name)
	if err != nil {
		t.Fatal(err)
	}
	// Loose: clocks of remote stores may differ a little.
	if info.ModTime.Before(before.Add(-time.Hour)) || info.ModTime.After(time.Now().Add(time.Hour)) {
		t.Errorf("ModTime = %v, want about now", info.ModTime)
	}
}

func testEmpty(t *testing.T, b storage.Backend) {
	c := put(t, b, nil)
	if c.Digests != ref(nil) || c.Size != 0 {
		t.Fatalf("Committed = %+v", c)
	}
	assertContent(t, b, c.Name, nil)
}

func testDigestsWhileWriting(t *testing.T, b storage.Backend) {
	data := randBytes(200_000, 2)
	w, err := b.Create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel(context.Background())
	if w.Size() != 0 || w.Digests() != ref(nil) {
		t.Fatalf("fresh writer: size %d, digests %+v", w.Size(), w.Digests())
	}
	writeAll(t, w, data[:123_456])
	if w.Size() != 123_456 || w.Digests() != ref(data[:123_456]) {
		t.Fatalf("mid-write: size %d, digests %+v", w.Size(), w.Digests())
	}
	writeAll(t, w, data[123_456:])
	if w.Size() != int64(len(data)) || w.Digests() != ref(data) {
		t.Fatalf("after writing: size %d, digests %+v", w.Size(), w.Digests())
	}
	c, err := w.Commit(t.Context(), digest.Expect{Size: digest.UnknownSize})
	if err != nil {
		t.Fatal(err)
	}
	if c.Digests != ref(data) {
		t.Fatalf("Committed.Digests = %+v, want %+v", c.Digests, ref(data))
	}
}

func testOpenAtOffset(t *testing.T, b storage.Backend) {
	data := randBytes(100_000, 3)
	c := put(t, b, data)
	for _, off := range []int64{0, 1, 4095, 4096, 50_000, 99_999, 100_000} {
		if got := read(t, b, c.Name, off); !bytes.Equal(got, data[off:]) {
			t.Errorf("Open at %d: got %d bytes, want the %d from that offset", off, len(got), len(data)-int(off))
		}
	}
	for _, off := range []int64{-1, 100_001, 1 << 40} {
		r, err := b.Open(t.Context(), c.Name, off)
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, storage.ErrInvalidOffset) {
			t.Errorf("Open at %d = %v, want ErrInvalidOffset", off, err)
		}
	}
}

func testSizeMismatch(t *testing.T, b storage.Backend) {
	data := randBytes(10_000, 4)
	for _, size := range []int64{0, 9_999, 10_001} {
		e := expectAll(data)
		e.Size = size
		se := failCommit[*digest.SizeMismatchError](t, b, data, e)
		if se.Expected != size || se.Actual != int64(len(data)) {
			t.Errorf("SizeMismatchError = %+v, want expected %d actual %d", se, size, len(data))
		}
	}
}

func testDigestMismatch(t *testing.T, b storage.Backend) {
	data := randBytes(10_000, 5)
	other := ref([]byte("other"))
	for _, alg := range digest.Allowed {
		e := expectAll(data)
		e.Digests[alg] = other.Get(alg)
		de := failCommit[*digest.DigestMismatchError](t, b, data, e)
		if *de != (digest.DigestMismatchError{Algorithm: alg, Expected: other.Get(alg), Actual: ref(data).Get(alg)}) {
			t.Errorf("DigestMismatchError = %+v, want %s mismatch", de, alg)
		}
	}
}

func testUnsupportedAlgorithm(t *testing.T, b storage.Backend) {
	data := randBytes(1000, 6)
	for alg, v := range map[string]string{"md5": strings.Repeat("0", 32), "sha1": strings.Repeat("0", 40), "crc32": "00000000"} {
		e := expectAll(data)
		e.Digests[alg] = v
		ue := failCommit[*digest.UnsupportedAlgorithmError](t, b, data, e)
		if ue.Algorithm != alg {
			t.Errorf("UnsupportedAlgorithmError = %+v, want %s", ue, alg)
		}
	}
}

func testCancel(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	data := randBytes(50_000, 7)
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, data)
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	assertAbsent(t, b, storage.ArtifactName(ref(data).SHA256))
	assertTempGone(t, w)
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("second Cancel: %v", err)
	}
	if _, err := w.Write(data); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Write after Cancel = %v, want ErrClosed", err)
	}
	if _, err := w.Commit(ctx, expectAll(data)); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Commit after Cancel = %v, want ErrClosed", err)
	}
	assertAbsent(t, b, storage.ArtifactName(ref(data).SHA256))
}

func testWriterEndsAtCommit(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	data := randBytes(5000, 8)
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, data)
	c, err := w.Commit(ctx, expectAll(data))
	if err != nil {
		t.Fatal(err)
	}
	assertTempGone(t, w)
	if _, err := w.Write([]byte("more")); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Write after Commit = %v, want ErrClosed", err)
	}
	if _, err := w.Commit(ctx, expectAll(data)); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("second Commit = %v, want ErrClosed", err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel after Commit: %v", err)
	}
	assertContent(t, b, c.Name, data)
}

func testCreateCanceledContext(t *testing.T, b storage.Backend) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w, err := b.Create(ctx)
	if err == nil {
		w.Cancel(context.Background())
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with cancelled context = %v, want context.Canceled", err)
	}
}

func testCommitCanceledContext(t *testing.T, b storage.Backend) {
	data := randBytes(5000, 9)
	w, err := b.Create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, data)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := w.Commit(ctx, expectAll(data)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with cancelled context = %v, want context.Canceled", err)
	}
	assertAbsent(t, b, storage.ArtifactName(ref(data).SHA256))
	assertTempGone(t, w)
}

func testAlreadyPresent(t *testing.T, b storage.Backend) {
	data := randBytes(70_000, 10)
	first := put(t, b, data)
	if first.Existed {
		t.Fatal("first commit reports Existed")
	}
	ctx := t.Context()
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, data)
	second, err := w.Commit(ctx, expectAll(data))
	if err != nil {
		t.Fatalf("second Commit of the same content: %v", err)
	}
	if !second.Existed || second.Name != first.Name || second.Digests != first.Digests || second.Size != first.Size {
		t.Fatalf("second Commit = %+v, want %+v with Existed", second, first)
	}
	assertTempGone(t, w)
	assertContent(t, b, first.Name, data)
}

func testConcurrentSameContent(t *testing.T, b storage.Backend) {
	const writers = 8
	data := randBytes(1<<20, 11)
	ctx := t.Context()
	results := make([]storage.Committed, writers)
	errs := make([]error, writers)
	ws := make([]storage.Writer, writers)
	for i := range ws {
		w, err := b.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Cancel(context.Background())
		ws[i] = w
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			<-start
			for off := 0; off < len(data); off += 64 << 10 {
				if _, err := w.Write(data[off : off+64<<10]); err != nil {
					errs[i] = err
					return
				}
				runtime.Gosched() // interleave the writers
			}
			results[i], errs[i] = w.Commit(ctx, expectAll(data))
		})
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i := range ws {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if results[i].Name != storage.ArtifactName(ref(data).SHA256) {
			t.Fatalf("writer %d committed %q", i, results[i].Name)
		}
		if !results[i].Existed {
			fresh++
		}
		assertTempGone(t, ws[i])
	}
	if fresh == 0 {
		t.Error("every concurrent commit reports Existed; at least one stored it")
	}
	assertContent(t, b, results[0].Name, data)
}

// samePrefixPair returns two contents whose artifacts share a directory
// (the first two hex digits of sha256), so a delete that prunes the empty
// directory races a commit into it.
func samePrefixPair() (a, b []byte) {
	a = []byte("pith-0")
	pa := ref(a).SHA256[:2]
	for i := 1; ; i++ {
		b = fmt.Appendf(nil, "pith-%d", i)
		if s := sha256.Sum256(b); hex.EncodeToString(s[:1]) == pa {
			return a, b
		}
	}
}

func testDeleteRacesCommit(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	a, bb := samePrefixPair()
	nameA, nameB := storage.ArtifactName(ref(a).SHA256), storage.ArtifactName(ref(bb).SHA256)
	for range 20 {
		put(t, b, a)
		w, err := b.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, bb)
		var wg sync.WaitGroup
		var delErr, comErr error
		wg.Go(func() { delErr = b.Delete(ctx, nameA) })
		wg.Go(func() { _, comErr = w.Commit(ctx, expectAll(bb)) })
		wg.Wait()
		if delErr != nil || comErr != nil {
			t.Fatalf("Delete = %v, Commit = %v", delErr, comErr)
		}
		assertAbsent(t, b, nameA)
		assertContent(t, b, nameB, bb)
		if err := b.Delete(ctx, nameB); err != nil {
			t.Fatal(err)
		}
	}
}

func testDelete(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	data := randBytes(1000, 12)
	keep := randBytes(1000, 13)
	c := put(t, b, data)
	k := put(t, b, keep)
	if err := b.Delete(ctx, c.Name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertAbsent(t, b, c.Name)
	if err := b.Delete(ctx, c.Name); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := b.Delete(ctx, storage.ArtifactName(ref([]byte("never stored")).SHA256)); err != nil {
		t.Fatalf("Delete of a never-stored name: %v", err)
	}
	assertContent(t, b, k.Name, keep)
	// Content-addressed storage accepts the same content again.
	c2 := put(t, b, data)
	if c2.Existed {
		t.Error("re-stored artifact reports Existed after Delete")
	}
	assertContent(t, b, c.Name, data)
}

func testMissing(t *testing.T, b storage.Backend) {
	name := storage.ArtifactName(ref([]byte("missing")).SHA256)
	assertAbsent(t, b, name)
	_, err := b.Stat(t.Context(), name)
	if !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("Stat = %v, want it to match fs.ErrNotExist too", err)
	}
	assertAbsent(t, b, "artifact/not/stored/here")
}

var invalidNames = []string{
	"",
	".",
	"..",
	"/artifact/ab/cd",
	"../artifact",
	"artifact/../../etc/passwd",
	"artifact/./ab",
	"artifact//ab",
	"artifact/ab/",
	"artifact/a\x00b",
	`artifact\ab`,
	storage.ArtifactName("not-a-digest"),
}

func testInvalidNames(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	lf, _ := b.(storage.LocalFiler)
	for _, name := range invalidNames {
		if r, err := b.Open(ctx, name, 0); !errors.Is(err, storage.ErrInvalidName) {
			if err == nil {
				r.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := b.Stat(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := b.Delete(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := b.RedirectURL(ctx, name, storage.RedirectOptions{}); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("RedirectURL(%q) = %v, want ErrInvalidName", name, err)
		}
		if lf != nil {
			if f, err := lf.OpenFile(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
				if err == nil {
					f.Close()
				}
				t.Errorf("OpenFile(%q) = %v, want ErrInvalidName", name, err)
			}
		}
	}
}

func testRedirectURL(t *testing.T, b storage.Backend) {
	c := put(t, b, []byte("redirect me"))
	u, err := b.RedirectURL(t.Context(), c.Name, storage.RedirectOptions{Filename: "file.txt", ContentType: "text/plain", Expires: time.Minute})
	if err != nil {
		t.Fatalf("RedirectURL: %v", err)
	}
	if u == "" {
		return
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		t.Fatalf("RedirectURL = %q, want \"\" or an absolute http(s) URL", u)
	}
}

func testLocalFiler(t *testing.T, b storage.Backend) {
	lf, ok := b.(storage.LocalFiler)
	if !ok {
		t.Log("backend is not a storage.LocalFiler; nothing to check")
		return
	}
	data := randBytes(20_000, 14)
	c := put(t, b, data)
	f, err := lf.OpenFile(t.Context(), c.Name)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("OpenFile content differs (%v)", err)
	}
	if _, err := lf.OpenFile(t.Context(), storage.ArtifactName(ref(nil).SHA256)); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("OpenFile of a missing name = %v, want ErrNotExist", err)
	}
}

func testTempPather(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel(context.Background())
	tp, ok := w.(storage.TempPather)
	if !ok {
		t.Log("writer is not a storage.TempPather; nothing to check")
		return
	}
	data := randBytes(3*10_000, 15)
	writeAll(t, w, data[:10_000])
	f, err := os.Open(tp.TempPath())
	if err != nil {
		t.Fatalf("open TempPath: %v", err)
	}
	defer f.Close()
	// Each Write must be readable at once, with no Flush in between.
	for i := range 3 {
		if i > 0 {
			writeAll(t, w, data[i*10_000:(i+1)*10_000])
		}
		got := make([]byte, 10_000)
		if _, err := io.ReadFull(f, got); err != nil {
			t.Fatalf("tail piece %d: %v", i, err)
		}
		if !bytes.Equal(got, data[i*10_000:(i+1)*10_000]) {
			t.Fatalf("tail piece %d differs", i)
		}
	}
	if _, err := w.Commit(ctx, expectAll(data)); err != nil {
		t.Fatal(err)
	}
	assertTempGone(t, w)
}

func testWalker(t *testing.T, b storage.Backend) {
	wk, ok := b.(storage.Walker)
	if !ok {
		t.Log("backend is not a storage.Walker; nothing to check")
		return
	}
	ctx := t.Context()
	want := map[string]int64{}
	for i := range 3 {
		data := randBytes(1000*(i+1), uint64(100+i))
		want[put(t, b, data).Name] = int64(len(data))
	}
	// Data of a write in progress is never visited.
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel(context.Background())
	writeAll(t, w, []byte("in progress"))

	walk := func(prefix string) map[string]int64 {
		t.Helper()
		got := map[string]int64{}
		err := wk.Walk(ctx, prefix, func(name string, info storage.Info) error {
			got[name] = info.Size
			return nil
		})
		if err != nil {
			t.Fatalf("Walk(%q): %v", prefix, err)
		}
		return got
	}
	if got := walk(""); !mapsEqual(got, want) {
		t.Fatalf("Walk(\"\") = %v, want %v", got, want)
	}
	if got := walk("artifact/"); !mapsEqual(got, want) {
		t.Fatalf("Walk(artifact/) = %v, want %v", got, want)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range want {
			if !yield(n) {
				return
			}
		}
	})
	// A prefix that ends inside a file name filters on it.
	one := names[0]
	prefix := one[:len("artifact/xx/")+3]
	got := walk(prefix)
	if _, ok := got[one]; !ok {
		t.Fatalf("Walk(%q) = %v, missing %s", prefix, got, one)
	}
	for n := range got {
		if !strings.HasPrefix(n, prefix) {
			t.Fatalf("Walk(%q) visited %s", prefix, n)
		}
	}
	// A prefix ending inside a directory name filters on it too.
	prefix = one[:len("artifact/x")]
	for n := range walk(prefix) {
		if !strings.HasPrefix(n, prefix) {
			t.Fatalf("Walk(%q) visited %s", prefix, n)
		}
	}
	if got := walk("artifact/zz/no-such"); len(got) != 0 {
		t.Fatalf("Walk of an unmatched prefix = %v", got)
	}
	stop := errors.New("stop")
	calls := 0
	err = wk.Walk(ctx, "", func(string, storage.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk with failing fn = %v after %d calls, want stop after 1", err, calls)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testUsager(t *testing.T, b storage.Backend) {
	u, ok := b.(storage.Usager)
	if !ok {
		t.Log("backend is not a storage.Usager; nothing to check")
		return
	}
	usage, err := u.Usage(t.Context())
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if usage.Total <= 0 || usage.Free < 0 || usage.Used < 0 || usage.Free > usage.Total || usage.Used > usage.Total {
		t.Fatalf("Usage = %+v, want 0 <= Used, Free <= Total and Total > 0", usage)
	}
}

func testLargeStream(t *testing.T, b storage.Backend) {
	const (
		size  = 64 << 20
		chunk = 256 << 10
		limit = 16 << 20 // far below size: the data must not be held in memory
	)
	ctx := t.Context()
	buf := randBytes(chunk, 16)
	w, err := b.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel(context.Background())

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range size / chunk {
		binaryPut(buf, uint64(i))
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c, err := w.Commit(ctx, digest.Expect{Size: size})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit {
		t.Errorf("writing %d MiB allocated %d MiB; the backend buffers data in memory", size>>20, alloc>>20)
	}
	info, err := b.Stat(ctx, c.Name)
	if err != nil || info.Size != size {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, size)
	}
	// buf still holds the last piece.
	if got := read(t, b, c.Name, size-chunk); !bytes.Equal(got, buf) {
		t.Fatal("the last piece reads back differently")
	}
}
