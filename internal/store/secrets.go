package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Remote secrets (username, password, proxy credentials, client key) are
// encrypted at rest with AES-256-GCM, as Pulp encrypts them with its
// database fields key: a copy of the database alone does not give away
// anyone's upstream credentials.

const secretPrefix = "pith:enc:v1:"

// ErrSecretKey is returned (wrapped) for an encrypted value that cannot
// be decrypted: no key is configured, or it is the wrong one.
var ErrSecretKey = errors.New("cannot decrypt a stored secret: missing or wrong database encryption key")

// SetEncryptionKey makes the store encrypt remote secrets with key (32
// bytes). Without a key they are stored as given.
func (s *Store) SetEncryptionKey(key []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("store: encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("store: encryption key: %w", err)
	}
	s.aead = aead
	return nil
}

// LoadOrCreateKey reads a base64 key file, creating it with a new random
// key (mode 0600) if it does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKey(path) // another process made it first
		}
		if err != nil {
			return nil, fmt.Errorf("store: create key file: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("store: write key file: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read key file: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("store: key file %s: want 32 bytes in base64", path)
	}
	return key, nil
}

// sealPtr encrypts a secret for storage; nil and "" stay as they are.
func (s *Store) sealPtr(p *string) (*string, error) {
	if p == nil || *p == "" || s.aead == nil {
		return p, nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := secretPrefix + base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(*p), nil))
	return &out, nil
}

// openPtr decrypts a stored secret. Values stored before encryption was
// configured are returned as they are.
func (s *Store) openPtr(p *string) (*string, error) {
	if p == nil || !strings.HasPrefix(*p, secretPrefix) {
		return p, nil
	}
	if s.aead == nil {
		return nil, ErrSecretKey
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(*p, secretPrefix))
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, ErrSecretKey
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], nil)
	if err != nil {
		return nil, ErrSecretKey
	}
	out := string(plain)
	return &out, nil
}

// remoteSecrets lists a remote's encrypted fields.
func remoteSecrets(r *Remote) []**string {
	return []**string{&r.Username, &r.Password, &r.ProxyUsername, &r.ProxyPassword, &r.ClientKey}
}

// sealRemote returns the column values of r with its secrets encrypted.
func (s *Store) sealRemote(r *Remote) ([]any, error) {
	c := *r
	for _, f := range remoteSecrets(&c) {
		v, err := s.sealPtr(*f)
		if err != nil {
			return nil, fmt.Errorf("store: encrypt remote secret: %w", err)
		}
		*f = v
	}
	return c.values(), nil
}

// openRemote decrypts r's secrets in place.
func (s *Store) openRemote(r *Remote) error {
	for _, f := range remoteSecrets(r) {
		v, err := s.openPtr(*f)
		if err != nil {
			return fmt.Errorf("store: remote %s: %w", r.Name, err)
		}
		*f = v
	}
	return nil
}
