package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
)

// Route is one API operation. The same table registers the handler on the
// mux and generates the OpenAPI document, so the two cannot drift apart.
type Route struct {
	OperationID string
	Method      string
	// Path is the routable path with Go mux wildcards, e.g.
	// /pulp/api/v3/tasks/{pulp_id}/cancel/.
	Path string
	// Href names the href-style parameter that stands for everything up to
	// and including the last wildcard segment in the document, as Pulp's
	// schema does ({task_href}cancel/). Empty for collection paths.
	Href    string
	Tag     string
	Summary string
	// Public routes need no authentication (status, livez, docs).
	Public bool
	// Query lists the accepted query parameters (filters) for the document.
	Query []Param
	// Headers lists documented request headers (e.g. Content-Range).
	Headers []Param
	// Body is a pointer to a zero request struct; nil means no body.
	Body any
	// Partial marks PATCH semantics: nothing is required.
	Partial bool
	// Multipart marks bodies that carry files.
	Multipart bool
	// Response is a zero value of the response type (nil: no body).
	Response any
	// Status is the success status (default 200).
	Status int
	// AltStatus lists other success statuses the handler may answer with
	// (e.g. 200 for an update that changed nothing); clients match the
	// status against the document.
	AltStatus []int
	// List marks a paginated list of Response.
	List bool
	// Handle serves the operation and returns the body to encode.
	Handle func(c *Ctx) (any, error)
}

// Param is a documented query parameter.
type Param struct {
	Name        string
	Type        string // string, integer, number, boolean, array
	Format      string
	Description string
	Enum        []string
}

// specPath is the path used as the document key.
func (rt *Route) specPath() string {
	if rt.Href == "" {
		return rt.Path
	}
	i := strings.LastIndex(rt.Path, "}/")
	if i < 0 {
		return rt.Path
	}
	return "{" + rt.Href + "}" + rt.Path[i+2:]
}

// muxPattern is the ServeMux pattern; {$} anchors paths ending in a slash
// so a collection pattern does not swallow its subtree.
func (rt *Route) muxPattern() string {
	p := rt.Path
	if strings.HasSuffix(p, "/") {
		p += "{$}"
	}
	return rt.Method + " " + p
}

// Ctx is what a handler receives.
type Ctx struct {
	context.Context
	W     http.ResponseWriter
	R     *http.Request
	Route *Route
	// User is the authenticated user name ("" on public routes).
	User string
	// CID is the request's correlation id.
	CID    string
	values *Values
	body   any
	status int
	server *Server
}

// Body returns the decoded, validated request body (the Route's Body type).
func Body[T any](c *Ctx) *T {
	if b, ok := c.body.(*T); ok {
		return b
	}
	return new(T)
}

// Has reports whether the request body carried the named field, even null.
func (c *Ctx) Has(field string) bool { return c.values != nil && c.values.Has(field) }

// PathValue returns a path wildcard.
func (c *Ctx) PathValue(name string) string { return c.R.PathValue(name) }

// Query returns the query parameters.
func (c *Ctx) Query() url.Values { return c.R.URL.Query() }

// SetStatus overrides the route's success status for this response.
func (c *Ctx) SetStatus(code int) { c.status = code }

// Server returns the serving Server.
func (c *Ctx) Server() *Server { return c.server }

// AbsoluteURL turns a path into an absolute URL using the request's host,
// as DRF builds pagination links.
func (c *Ctx) AbsoluteURL(pathAndQuery string) string {
	scheme := "http"
	if c.R.TLS != nil || strings.EqualFold(c.R.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	host := c.R.Host
	if h := c.R.Header.Get("X-Forwarded-Host"); h != "" {
		host = h
	}
	return scheme + "://" + host + pathAndQuery
}

// AsyncResponse is the 202 body of an operation dispatched as a task.
type AsyncResponse struct {
	Task string `json:"task" api:"required"`
}

// SchemaName names the component as Pulp does.
func (AsyncResponse) SchemaName() string { return "AsyncOperationResponse" }

// TaskGroupResponse is the 202 body of an operation dispatching a group.
type TaskGroupResponse struct {
	TaskGroup string `json:"task_group" api:"required"`
}

// SchemaName names the component as Pulp does.
func (TaskGroupResponse) SchemaName() string { return "TaskGroupOperationResponse" }

// newBody allocates a fresh request body of the route's Body type.
func (rt *Route) newBody() any {
	t := reflect.TypeOf(rt.Body)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return reflect.New(t).Interface()
}

// filterFields applies fields/exclude_fields to an encoded object, keeping
// the remaining fields in the serializer's order (as Pulp does), not
// sorted as a decoded map would be.
func filterFields(obj json.RawMessage, include, exclude map[string]bool) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return obj
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return obj
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return obj
		}
		if (len(include) > 0 && !include[key]) || exclude[key] {
			continue
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}
