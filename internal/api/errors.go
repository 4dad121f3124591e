package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/pith-project/pith/internal/store"
)

// Error is an HTTP error with a JSON body in Pulp's shape.
type Error struct {
	Status int
	Body   any
}

func (e *Error) Error() string {
	b, _ := json.Marshal(e.Body)
	return fmt.Sprintf("%d %s", e.Status, b)
}

// Detail returns an error whose body is {"detail": msg}.
func Detail(status int, msg string) *Error {
	return &Error{Status: status, Body: map[string]string{"detail": msg}}
}

// NotFound is Pulp's 404 body.
func NotFound() *Error { return Detail(http.StatusNotFound, "Not found.") }

// FieldErrors is a 400 body: field name → messages, as DRF renders it.
type FieldErrors map[string][]string

func (f FieldErrors) Error() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(k + ": " + strings.Join(f[k], " "))
	}
	return b.String()
}

// Add appends a message for a field.
func (f FieldErrors) Add(field, msg string) { f[field] = append(f[field], msg) }

// FieldError is a one-field 400.
func FieldError(field, msg string) FieldErrors { return FieldErrors{field: {msg}} }

// NonFieldError is a 400 not tied to one field.
func NonFieldError(msg string) FieldErrors { return FieldErrors{"non_field_errors": {msg}} }

// statusOf maps an error to a status code and a response body.
func statusOf(err error) (int, any) {
	var e *Error
	if errors.As(err, &e) {
		return e.Status, e.Body
	}
	var fe FieldErrors
	if errors.As(err, &fe) {
		return http.StatusBadRequest, fe
	}
	if errors.Is(err, store.ErrNotFound) {
		return http.StatusNotFound, map[string]string{"detail": "Not found."}
	}
	return http.StatusInternalServerError, map[string]string{"detail": "Internal server error."}
}
