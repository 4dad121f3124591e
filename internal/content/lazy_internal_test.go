package content

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pith-project/pith/internal/lazy"
)

// A fetch refused because the process is shutting down is a 503 with
// Retry-After, which clients and load balancers retry elsewhere; other
// errors pass through.
func TestLazyClosingIs503(t *testing.T) {
	rec := httptest.NewRecorder()
	err := lazyClosing(rec, fmt.Errorf("serve: %w", lazy.ErrClosed))
	var he *httpError
	if !errors.As(err, &he) || he.code != http.StatusServiceUnavailable {
		t.Fatalf("lazyClosing(ErrClosed) = %v, want a 503", err)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	other := errors.New("boom")
	if got := lazyClosing(httptest.NewRecorder(), other); got != other {
		t.Fatalf("lazyClosing(other) = %v", got)
	}
}
