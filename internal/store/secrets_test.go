package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pith-project/pith/internal/store"
	"github.com/pith-project/pith/internal/store/storetest"
)

func TestRemoteSecretsEncryptedAtRest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		key, err := store.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetEncryptionKey(key); err != nil {
			t.Fatal(err)
		}
		str := func(v string) *string { return &v }
		r := &store.Remote{PulpType: "file.file", Name: "secret", URL: "http://x/PULP_MANIFEST", Policy: "immediate",
			Username: str("alice"), Password: str("hunter2"), ProxyUsername: str("pu"), ProxyPassword: str("pp"),
			ClientKey: str("-----BEGIN PRIVATE KEY-----"), Headers: []map[string]string{}, Labels: map[string]string{}}
		if err := s.InsertRemote(ctx, nil, r); err != nil {
			t.Fatal(err)
		}
		// What the database holds gives nothing away.
		var user, pass, ppass, ckey string
		if err := s.QueryRow(ctx, `SELECT username, password, proxy_password, client_key FROM remotes WHERE id = $1`, r.ID).
			Scan(&user, &pass, &ppass, &ckey); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{user, pass, ppass, ckey} {
			if !strings.HasPrefix(v, "pith:enc:v1:") || strings.Contains(v, "hunter2") || strings.Contains(v, "alice") {
				t.Fatalf("stored in the clear: %q", v)
			}
		}
		got, err := s.GetRemote(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Password != "hunter2" || *got.Username != "alice" || *got.ProxyPassword != "pp" || *got.ClientKey != "-----BEGIN PRIVATE KEY-----" {
			t.Fatalf("decrypted %+v", got)
		}
		// Updates stay encrypted; a cleared secret stays cleared.
		if _, err := s.ModifyRemote(ctx, r.ID, func(r *store.Remote) error { r.Password = str("new"); r.ProxyPassword = nil; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.QueryRow(ctx, `SELECT password FROM remotes WHERE id = $1`, r.ID).Scan(&pass); err != nil || !strings.HasPrefix(pass, "pith:enc:v1:") {
			t.Fatalf("updated password stored as %q (%v)", pass, err)
		}
		if got, _ := s.GetRemote(ctx, r.ID); *got.Password != "new" || got.ProxyPassword != nil {
			t.Fatalf("after update: %+v", got)
		}
		// A value stored before encryption was configured still reads.
		if _, err := s.Exec(ctx, `UPDATE remotes SET username = 'legacy' WHERE id = $1`, r.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetRemote(ctx, r.ID); *got.Username != "legacy" {
			t.Fatalf("legacy plain value: %v", *got.Username)
		}
		// The wrong key is an error, never garbage credentials.
		other, _ := store.LoadOrCreateKey(filepath.Join(t.TempDir(), "other"))
		if err := s.SetEncryptionKey(other); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRemote(ctx, r.ID); !errors.Is(err, store.ErrSecretKey) {
			t.Fatalf("wrong key: %v", err)
		}
	})
}

func TestLoadOrCreateKeyIsStable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	a, err := store.LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.LoadOrCreateKey(p)
	if err != nil || string(a) != string(b) || len(a) != 32 {
		t.Fatalf("key changed or bad: %v", err)
	}
}
