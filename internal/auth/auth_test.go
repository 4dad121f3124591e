package auth

import (
	"context"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

func TestAdminAndAuthenticate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		gen, _, err := EnsureAdmin(ctx, s, "")
		if err != nil || len(gen) < 16 {
			t.Fatalf("first start generates a password: %q, %v", gen, err)
		}
		if again, _, err := EnsureAdmin(ctx, s, ""); err != nil || again != "" {
			t.Fatalf("second start must not generate again: %q, %v", again, err)
		}
		a := New(s)
		for _, tc := range []struct {
			user, pass string
			ok         bool
		}{{"admin", gen, true}, {"admin", gen, true}, {"admin", "wrong", false}, {"nobody", gen, false}} {
			ok, err := a.Authenticate(ctx, tc.user, tc.pass)
			if err != nil || ok != tc.ok {
				t.Errorf("Authenticate(%s, %s) = %v, %v; want %v", tc.user, tc.pass, ok, err, tc.ok)
			}
		}
		// A reset invalidates the cached verification of the old password.
		if err := SetPassword(ctx, s, "admin", "new-secret"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := a.Authenticate(ctx, "admin", gen); ok {
			t.Error("old password still accepted after reset")
		}
		if ok, _ := a.Authenticate(ctx, "admin", "new-secret"); !ok {
			t.Error("new password rejected")
		}
		// Later starts do not apply PITH_ADMIN_PASSWORD, so a reset stays;
		// a differing one is reported as stale.
		if gen, stale, err := EnsureAdmin(ctx, s, "from-env"); err != nil || gen != "" || !stale {
			t.Fatalf("restart with another env password: %q %v %v", gen, stale, err)
		}
		if ok, _ := a.Authenticate(ctx, "admin", "from-env"); ok {
			t.Error("PITH_ADMIN_PASSWORD applied after the first start")
		}
		if ok, _ := a.Authenticate(ctx, "admin", "new-secret"); !ok {
			t.Error("reset password undone by a restart")
		}
		if _, stale, err := EnsureAdmin(ctx, s, "new-secret"); err != nil || stale {
			t.Fatalf("restart with the current password: %v %v", stale, err)
		}
	})
}

// A first start with PITH_ADMIN_PASSWORD uses it and prints nothing.
func TestFirstStartWithEnvPassword(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		gen, stale, err := EnsureAdmin(t.Context(), s, "chosen")
		if err != nil || gen != "" || stale {
			t.Fatalf("first start: %q %v %v", gen, stale, err)
		}
		if ok, _ := New(s).Authenticate(t.Context(), "admin", "chosen"); !ok {
			t.Fatal("chosen password rejected")
		}
	})
}
