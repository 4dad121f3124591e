package api

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

// Pulp echoes only GUIDs as Correlation-ID (anything else is replaced,
// which pulp-cli reports as a mismatch), under exactly that name.
func TestCorrelationIDIsAGUID(t *testing.T) {
	s, _ := newTestServer(t)
	fresh := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for sent, echoed := range map[string]bool{
		"deadbeefdeadbeefdeadbeefdeadbeef":     true,
		"0f5b2d9e-6d7a-4c8e-9d43-2a5e1c3b7f10": true,
		"deadbeefdeadbeefdeadbeefdeadxxxx":     false,
		"abc123":                               false,
		"with spaces and \"quotes\"":           false,
		"":                                     false,
	} {
		req := httptest.NewRequest("GET", Root+"status/", nil)
		if sent != "" {
			req.Header.Set("Correlation-Id", sent)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		//lint:ignore SA1008 the server spells the header as Pulp does, and this checks that spelling
		got := rec.Header()["Correlation-ID"]
		if len(got) != 1 {
			t.Fatalf("%q: response header map %v lacks Correlation-ID", sent, rec.Header())
		}
		if echoed && got[0] != sent {
			t.Errorf("%q: echoed %q", sent, got[0])
		}
		if !echoed && (got[0] == sent || !fresh.MatchString(got[0])) {
			t.Errorf("%q: answered %q, want a fresh GUID", sent, got[0])
		}
		if rec.Code != http.StatusOK {
			t.Errorf("%q: status %d", sent, rec.Code)
		}
	}
}
