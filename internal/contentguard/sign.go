package contentguard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Query parameters of a preauthenticated URL, as Pulp names them.
const (
	ParamExpires = "expires"
	ParamToken   = "validate_token"
)

// DefaultExpiry is how long a signed URL stays valid unless asked
// otherwise: Pulp's ContentRedirectContentGuard.EXPIRETIME.
const DefaultExpiry = time.Hour

// Pulp's reasons for refusing a redirect URL.
const (
	reasonExpired          = "Authentication expired"
	reasonNotAuthenticated = "Access not authenticated"
)

// SignURL returns rawURL with the expires and validate_token parameters
// of Pulp's preauthenticate_url added, signed with the guard's hex secret.
// The token is "<hex salt>:<hex MAC>"; the MAC is HMAC-SHA256 over the
// salt, the URL's path, "?" and its query (expires included, canonically
// ordered). Pulp hashes salt, path, query and secret with plain SHA-256;
// the secret never leaves the server, so only pith checks what pith signs,
// and the HMAC construction is the sounder one.
func SignURL(secret, rawURL string, expires time.Time) (string, error) {
	key, err := hex.DecodeString(secret)
	if err != nil || len(key) == 0 {
		return "", errors.New("sign url: the guard has no valid secret")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("sign url: %w", err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("sign url: query: %w", err)
	}
	q.Del(ParamToken)
	q.Set(ParamExpires, strconv.FormatInt(expires.Unix(), 10))
	salt := make([]byte, 32)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails
	mac := urlMAC(key, salt, u.Path, q.Encode())
	// The token goes last, where Pulp puts it.
	u.RawQuery = q.Encode() + "&" + ParamToken + "=" + hex.EncodeToString(salt) + ":" + hex.EncodeToString(mac)
	u.Fragment = ""
	return u.String(), nil
}

// urlMAC is the signature of a path and canonical query under key.
func urlMAC(key, salt []byte, path, query string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(salt)
	m.Write([]byte(path))
	m.Write([]byte("?"))
	m.Write([]byte(query))
	return m.Sum(nil)
}

// verifyURL checks a request's path and raw query against the secret: a
// well-formed token whose MAC matches, and an expiry not passed at now. It
// returns Pulp's reason for a refusal, or "".
func verifyURL(secret, path, rawQuery string, now time.Time) string {
	key, err := hex.DecodeString(secret)
	if err != nil || len(key) == 0 {
		return reasonNotAuthenticated
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil || len(q[ParamExpires]) != 1 || len(q[ParamToken]) != 1 {
		return reasonNotAuthenticated
	}
	expires, err := strconv.ParseInt(q.Get(ParamExpires), 10, 64)
	if err != nil {
		return reasonNotAuthenticated
	}
	if now.Unix() > expires {
		return reasonExpired
	}
	hexSalt, hexMAC, ok := strings.Cut(q.Get(ParamToken), ":")
	if !ok {
		return reasonNotAuthenticated
	}
	salt, err1 := hex.DecodeString(hexSalt)
	mac, err2 := hex.DecodeString(hexMAC)
	if err1 != nil || err2 != nil {
		return reasonNotAuthenticated
	}
	q.Del(ParamToken)
	if !hmac.Equal(mac, urlMAC(key, salt, path, q.Encode())) {
		return reasonNotAuthenticated
	}
	return ""
}
