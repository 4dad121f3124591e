// Package auth checks API credentials against the users table and manages
// the admin account.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pith-project/pith/internal/store"
)

// cacheTTL bounds how long a verified password is trusted without bcrypt;
// bcrypt costs tens of milliseconds, too much for every API call.
const cacheTTL = 5 * time.Minute

// Authenticator verifies basic-auth credentials.
type Authenticator struct {
	store *store.Store

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	hash    string
	expires time.Time
}

// New returns an Authenticator over s.
func New(s *store.Store) *Authenticator {
	return &Authenticator{store: s, cache: map[[32]byte]cached{}}
}

// Authenticate reports whether the password is the user's.
func (a *Authenticator) Authenticate(ctx context.Context, username, password string) (bool, error) {
	u, err := a.store.GetUser(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	key := sha256.Sum256([]byte(username + "\x00" + password))
	a.mu.Lock()
	c, ok := a.cache[key]
	a.mu.Unlock()
	// The cached entry is only valid for the hash it was verified against,
	// so a password reset takes effect at once.
	if ok && c.hash == u.PasswordHash && time.Now().Before(c.expires) {
		return true, nil
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return false, nil
	}
	a.mu.Lock()
	if len(a.cache) > 10000 {
		clear(a.cache)
	}
	a.cache[key] = cached{hash: u.PasswordHash, expires: time.Now().Add(cacheTTL)}
	a.mu.Unlock()
	return true, nil
}

// SetPassword creates or updates a superuser's password.
func SetPassword(ctx context.Context, s *store.Store, username, password string) error {
	if password == "" {
		return fmt.Errorf("auth: empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("auth: hash password: %w", err)
	}
	_, err = s.SetUserPassword(ctx, username, string(h), true)
	return err
}

// EnsureAdmin makes sure user admin exists. On first start it gets
// envPassword, or a random password that is returned so the caller can
// print it once. Once admin exists envPassword is not applied: the password
// changes only through pith admin reset-password, so a restart never undoes
// a reset. stale reports that envPassword was given but is not admin's
// password, so the caller can say it was ignored.
func EnsureAdmin(ctx context.Context, s *store.Store, envPassword string) (generated string, stale bool, err error) {
	u, err := s.GetUser(ctx, "admin")
	if err == nil {
		if envPassword != "" && bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(envPassword)) != nil {
			return "", true, nil
		}
		return "", false, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", false, err
	}
	pw := envPassword
	if pw == "" {
		generated = RandomPassword()
		pw = generated
	}
	return generated, false, SetPassword(ctx, s, "admin", pw)
}

// RandomPassword returns a new random password.
func RandomPassword() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
