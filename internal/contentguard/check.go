package contentguard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pith-project/pith/internal/api"
	"github.com/pith-project/pith/internal/store"
)

// reasonDenied is Pulp's reason for every header guard refusal; the
// specific cause is logged at debug level only, so a client learns nothing
// about the guard's configuration.
const reasonDenied = "Access denied."

// Checker decides whether a request may read what a guard protects.
type Checker struct {
	Store *store.Store
	Log   *slog.Logger
	// Now is the clock for signed-URL expiry; nil means time.Now.
	Now func() time.Time
}

// Check is the content app's guard hook: "" permits r, anything else is
// the reason of a 403. A guard that no longer exists, or of a type pith
// cannot evaluate, refuses: failing closed is the only safe choice.
func (c *Checker) Check(ctx context.Context, guardID string, r *http.Request) (denied string, err error) {
	return c.check(ctx, guardID, r, map[string]bool{})
}

func (c *Checker) check(ctx context.Context, id string, r *http.Request, visiting map[string]bool) (string, error) {
	g, err := Get(ctx, c.Store, id)
	if errors.Is(err, store.ErrNotFound) {
		return "The content guard protecting this distribution no longer exists.", nil
	}
	if err != nil {
		return "", err
	}
	return c.permit(ctx, g, r, visiting)
}

func (c *Checker) permit(ctx context.Context, g *Guard, r *http.Request, visiting map[string]bool) (string, error) {
	switch g.PulpType {
	case TypeHeader:
		return c.permitHeader(g, r), nil
	case TypeContentRedirect:
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		return verifyURL(g.Settings.SharedSecret, r.URL.Path, r.URL.RawQuery, now()), nil
	case TypeComposite:
		return c.permitComposite(ctx, g, r, visiting)
	}
	return fmt.Sprintf("Content guards of type %s cannot be checked by this server.", g.PulpType), nil
}

// permitHeader is Pulp's HeaderContentGuard: the header's value, base64
// decoded (and passed through jq_filter if set), must equal header_value.
func (c *Checker) permitHeader(g *Guard, r *http.Request) string {
	deny := func(why string) string {
		c.log().Debug("content guard: access denied", "guard", g.Name, "reason", why)
		return reasonDenied
	}
	raw := r.Header.Get(g.Settings.HeaderName)
	if raw == "" {
		return deny(fmt.Sprintf("header %s is missing", g.Settings.HeaderName))
	}
	decoded, ok := decodeBase64(raw)
	if !ok {
		return deny("the header is not base64 encoded")
	}
	var got string
	if f := g.Settings.JQFilter; f != nil && *f != "" {
		steps, err := parseJQPath(*f)
		if err != nil {
			return deny("the guard's jq_filter is not supported")
		}
		var doc any
		dec := json.NewDecoder(bytes.NewReader(decoded))
		if err := dec.Decode(&doc); err != nil {
			return deny("the header is not JSON")
		}
		v, ok := applyJQPath(doc, steps)
		s, isString := v.(string)
		if !ok || !isString {
			return deny("the filter does not select a string")
		}
		got = s
	} else {
		if !utf8.Valid(decoded) {
			return deny("the header is not UTF-8")
		}
		got = string(decoded)
	}
	// Comparing digests keeps the time taken independent of where the
	// values differ and of the expected value's length.
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(g.Settings.HeaderValue))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return deny("wrong header value")
	}
	return ""
}

// decodeBase64 decodes like Python's b64decode: characters outside the
// alphabet are dropped, then the padded standard encoding must decode.
func decodeBase64(s string) ([]byte, bool) {
	clean := strings.Map(func(r rune) rune {
		if (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '+' || r == '/' || r == '=' {
			return r
		}
		return -1
	}, s)
	b, err := base64.StdEncoding.DecodeString(clean)
	return b, err == nil
}

// permitComposite is Pulp's CompositeContentGuard: an OR of its members,
// which permits when it has none. A member that is being checked further
// up (a cycle) refuses rather than recursing forever.
func (c *Checker) permitComposite(ctx context.Context, g *Guard, r *http.Request, visiting map[string]bool) (string, error) {
	if visiting[g.ID] {
		return "The content guard " + g.Name + " contains itself.", nil
	}
	visiting[g.ID] = true
	defer delete(visiting, g.ID)
	var refusals []string
	for _, id := range g.Settings.Guards {
		m, err := Get(ctx, c.Store, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile: no longer a member
		}
		if err != nil {
			return "", err
		}
		why, err := c.permit(ctx, m, r, visiting)
		if err != nil {
			return "", err
		}
		if why == "" {
			return "", nil
		}
		refusals = append(refusals, fmt.Sprintf("Guard: '%s', HREF: '%s', class: '%s', denial: [%s].", m.Name, Href(m.PulpType, m.ID), m.PulpType, why))
	}
	if len(refusals) == 0 {
		return "", nil
	}
	b, _ := json.Marshal(refusals)
	return "Access forbidden. Refusals: " + string(b), nil
}

func (c *Checker) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// Collection returns the API collection of a guard type:
// "core.header" → /pulp/api/v3/contentguards/core/header/.
func Collection(pulpType string) string {
	app, typ, _ := strings.Cut(pulpType, ".")
	return api.Root + "contentguards/" + app + "/" + typ + "/"
}

// Href returns the detail href of a guard.
func Href(pulpType, id string) string { return Collection(pulpType) + id + "/" }
