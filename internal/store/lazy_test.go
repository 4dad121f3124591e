package store_test

import (
	"testing"
	"time"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

// TestLazyLeaseUnlessStored: a lease is claimed when the bytes are not
// stored and nobody holds one; another owner's live lease is reported,
// with its spool once published; an expired one is taken over; the
// holder renews its own; and once the artifact is stored no lease is
// taken at all.
func TestLazyLeaseUnlessStored(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a := testArtifact("leased bytes")
		lease := func(owner string, expires int64) store.LazyLease {
			return store.LazyLease{SHA256: a.SHA256, Owner: owner, Size: a.Size, Expires: expires}
		}
		live := store.Micros(time.Now().Add(time.Minute))

		held, ok, stored, err := s.AcquireLazyLeaseUnlessStored(ctx, lease("p1", live))
		if err != nil || !ok || stored || held.Owner != "p1" {
			t.Fatalf("first claim: %+v ok=%v stored=%v %v", held, ok, stored, err)
		}
		held, ok, stored, err = s.AcquireLazyLeaseUnlessStored(ctx, lease("p2", live))
		if err != nil || ok || stored || held.Owner != "p1" || held.Spool != "" {
			t.Fatalf("claim while held: %+v ok=%v stored=%v %v", held, ok, stored, err)
		}
		pub := lease("p1", live)
		pub.Spool = "/spool/x"
		if err := s.UpdateLazyLease(ctx, pub); err != nil {
			t.Fatal(err)
		}
		held, ok, _, err = s.AcquireLazyLeaseUnlessStored(ctx, lease("p2", live))
		if err != nil || ok || held.Spool != "/spool/x" || held.Expires != live {
			t.Fatalf("claim while held and published: %+v ok=%v %v", held, ok, err)
		}
		// The holder renews its own lease.
		later := live + 1000
		if held, ok, _, err = s.AcquireLazyLeaseUnlessStored(ctx, lease("p1", later)); err != nil || !ok {
			t.Fatalf("renewal: %+v ok=%v %v", held, ok, err)
		}
		if l, err := s.GetLazyLease(ctx, a.SHA256); err != nil || l.Expires != later || l.Owner != "p1" {
			t.Fatalf("after renewal: %+v %v", l, err)
		}
		// An expired lease is taken over.
		if err := s.UpdateLazyLease(ctx, lease("p1", store.Micros(time.Now().Add(-time.Second)))); err != nil {
			t.Fatal(err)
		}
		if held, ok, _, err = s.AcquireLazyLeaseUnlessStored(ctx, lease("p2", live)); err != nil || !ok {
			t.Fatalf("takeover: %+v ok=%v %v", held, ok, err)
		}
		if l, err := s.GetLazyLease(ctx, a.SHA256); err != nil || l.Owner != "p2" || l.Spool != "" {
			t.Fatalf("after takeover: %+v %v", l, err)
		}
		if err := s.ReleaseLazyLease(ctx, a.SHA256, "p2"); err != nil {
			t.Fatal(err)
		}

		// Stored bytes: no lease, whoever asks.
		if _, _, err := s.InsertArtifact(ctx, nil, a); err != nil {
			t.Fatal(err)
		}
		held, ok, stored, err = s.AcquireLazyLeaseUnlessStored(ctx, lease("p3", live))
		if err != nil || ok || !stored {
			t.Fatalf("claim of stored bytes: %+v ok=%v stored=%v %v", held, ok, stored, err)
		}
		if _, err := s.GetLazyLease(ctx, a.SHA256); err == nil {
			t.Fatal("a lease was taken for stored bytes")
		}
		// The plain claim does not look.
		if _, ok, err := s.AcquireLazyLease(ctx, lease("p3", live)); err != nil || !ok {
			t.Fatalf("plain claim: ok=%v %v", ok, err)
		}
	})
}
