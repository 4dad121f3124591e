// Package api is pith's REST framework: a route table that registers
// handlers and generates the OpenAPI document, Pulp-shaped errors,
// pagination and filters, basic authentication, correlation ids, request
// logs and metrics. Endpoints live in other packages and register here.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Root is the API prefix.
const Root = "/pulp/api/v3/"

// Authenticator checks basic-auth credentials.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (bool, error)
}

// Options configure a Server.
type Options struct {
	Auth     Authenticator
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// SpoolDir receives uploaded files while a request is handled; it should
	// be on the same filesystem as artifact storage.
	SpoolDir string
	// Info is merged into the document's info object (versions etc.).
	Info map[string]any
}

// Server routes API requests.
type Server struct {
	opts   Options
	mux    *http.ServeMux
	routes []*Route
	log    *slog.Logger
	// exact holds the few paths without a trailing slash (docs/api.json).
	exact map[string]bool

	docOnce sync.Once
	doc     []byte

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New returns an empty Server; register routes, then serve.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), log: opts.Logger, exact: map[string]bool{}}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pith_api_requests_total", Help: "API requests by operation and status code.",
	}, []string{"operation", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pith_api_request_duration_seconds", Help: "API request latency by operation.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"operation"})
	if opts.Registry != nil {
		opts.Registry.MustRegister(s.requests, s.duration)
	}
	s.mux.HandleFunc(Root, s.fallback)
	s.mux.HandleFunc("GET "+Root+"{$}", s.root)
	return s
}

// root answers the API root as Django REST framework's router does: every
// top-level collection by name, with its absolute URL. Like Pulp's root
// view it needs no authentication, and it is not in the document.
func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	correlationID(w, r)
	c := &Ctx{Context: r.Context(), R: r}
	out := map[string]string{}
	for _, rt := range s.routes {
		if !rt.List || rt.Method != http.MethodGet || strings.Contains(rt.Path, "{") {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(rt.Path, Root), "/")
		out[name] = c.AbsoluteURL(rt.Path)
	}
	writeJSON(w, http.StatusOK, out)
}

// Register adds routes. It panics on conflicting patterns, at start-up.
func (s *Server) Register(routes ...*Route) {
	for _, rt := range routes {
		if rt.Status == 0 {
			rt.Status = http.StatusOK
		}
		s.routes = append(s.routes, rt)
		if !strings.HasSuffix(rt.Path, "/") {
			s.exact[rt.Path] = true
		}
		s.mux.Handle(rt.muxPattern(), s.wrap(rt))
	}
}

// Routes returns the registered routes.
func (s *Server) Routes() []*Route { return s.routes }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every API path ends in a slash; send the rest to fallback, which
	// answers like Django's APPEND_SLASH (301) instead of the mux's 307.
	if !strings.HasSuffix(r.URL.Path, "/") && !s.exact[r.URL.Path] {
		s.fallback(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// fallback answers paths no route matched: a redirect to the slashed path
// (Django's APPEND_SLASH), a 405 for a known path, or a JSON 404.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	cid := correlationID(w, r)
	if !strings.HasSuffix(r.URL.Path, "/") {
		probe := r.Clone(r.Context())
		probe.URL.Path += "/"
		if _, p := s.mux.Handler(probe); p != Root && p != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			u := *r.URL
			u.Path += "/"
			http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
			return
		}
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != Root && p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"detail": fmt.Sprintf("Method %q not allowed.", r.Method)})
	} else {
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not found."})
	}
	s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", http.StatusNotFound, "cid", cid)
}

// correlationID echoes the client's Correlation-ID or makes one. Like
// Pulp (django-guid), only a GUID is echoed; anything else is replaced, so
// logs never carry client-chosen text, and clients that check the echo
// (pulp-cli) learn that theirs was refused.
func correlationID(w http.ResponseWriter, r *http.Request) string {
	cid := r.Header.Get("Correlation-Id")
	if _, err := uuid.Parse(cid); err != nil {
		var b [16]byte
		_, _ = rand.Read(b[:])
		cid = hex.EncodeToString(b[:])
	}
	// Spelled as Pulp spells it: Header().Set would send "Correlation-Id",
	// and scripts grep for the exact name.
	w.Header()["Correlation-ID"] = []string{cid}
	return cid
}

type ctxKey int

const cidKey ctxKey = 1

// CorrelationID returns the correlation id carried by ctx, if any.
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(cidKey).(string)
	return s
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (s *Server) wrap(rt *Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cid := correlationID(w, r)
		sw := &statusWriter{ResponseWriter: w}
		ctx := context.WithValue(r.Context(), cidKey, cid)
		c := &Ctx{Context: ctx, W: sw, R: r.WithContext(ctx), Route: rt, CID: cid, server: s}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic in handler", "operation", rt.OperationID, "panic", p, "cid", cid)
				if sw.code == 0 {
					writeJSON(sw, http.StatusInternalServerError, map[string]string{"detail": "Internal server error."})
				}
			}
			c.values.cleanup()
			d := time.Since(start)
			s.requests.WithLabelValues(rt.OperationID, strconv.Itoa(sw.code)).Inc()
			s.duration.WithLabelValues(rt.OperationID).Observe(d.Seconds())
			s.log.Info("request", "method", r.Method, "path", r.URL.Path, "operation", rt.OperationID,
				"status", sw.code, "bytes", sw.bytes, "duration_ms", float64(d.Microseconds())/1000, "user", c.User, "cid", cid)
		}()
		if !rt.Public {
			user, ok := s.authenticate(ctx, sw, r)
			if !ok {
				return
			}
			c.User = user
		}
		if err := s.serve(c); err != nil {
			code, body := statusOf(err)
			if code >= 500 {
				s.log.Error("handler failed", "operation", rt.OperationID, "err", err, "cid", cid)
			}
			writeJSON(sw, code, body)
		}
	})
}

func (s *Server) authenticate(ctx context.Context, w http.ResponseWriter, r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	deny := func(msg string) (string, bool) {
		w.Header().Set("WWW-Authenticate", `Basic realm="api"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"detail": msg})
		return "", false
	}
	if !ok {
		return deny("Authentication credentials were not provided.")
	}
	if s.opts.Auth == nil {
		return deny("Invalid username/password.")
	}
	valid, err := s.opts.Auth.Authenticate(ctx, user, pass)
	if err != nil {
		s.log.Error("authentication failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"detail": "Authentication backend unavailable."})
		return "", false
	}
	if !valid {
		return deny("Invalid username/password.")
	}
	return user, true
}

func (s *Server) serve(c *Ctx) error {
	rt := c.Route
	if rt.Body != nil {
		v, err := readBody(c.R, s.opts.SpoolDir)
		if err != nil {
			return err
		}
		c.values = v
		b := rt.newBody()
		if fe := decodeInto(v, b, rt.Partial); fe != nil {
			return fe
		}
		c.body = b
	}
	out, err := rt.Handle(c)
	if err != nil {
		return err
	}
	code := rt.Status
	if c.status != 0 {
		code = c.status
	}
	if out == nil {
		c.W.WriteHeader(code)
		return nil
	}
	if raw, ok := out.(rawResponse); ok {
		c.W.Header().Set("Content-Type", raw.contentType)
		c.W.WriteHeader(code)
		_, err := c.W.Write(raw.body)
		return err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("api: encode response: %w", err)
	}
	if c.R.Method == http.MethodGet {
		b = applyFieldSelection(c, b)
	}
	c.W.Header().Set("Content-Type", "application/json")
	c.W.WriteHeader(code)
	_, err = c.W.Write(b)
	return err
}

// applyFieldSelection honours fields/exclude_fields on reads and on each
// result of a list page.
func applyFieldSelection(c *Ctx, b []byte) []byte {
	q := c.R.URL.Query()
	include := splitSet(q["fields"])
	exclude := splitSet(q["exclude_fields"])
	if len(include) == 0 && len(exclude) == 0 {
		return b
	}
	if !c.Route.List {
		return filterFields(b, include, exclude)
	}
	var page struct {
		Count    int64             `json:"count"`
		Next     *string           `json:"next"`
		Previous *string           `json:"previous"`
		Results  []json.RawMessage `json:"results"`
	}
	if json.Unmarshal(b, &page) != nil {
		return b
	}
	for i, r := range page.Results {
		page.Results[i] = filterFields(r, include, exclude)
	}
	out, _ := json.Marshal(page)
	return out
}

func splitSet(vals []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				m[f] = true
			}
		}
	}
	return m
}

type rawResponse struct {
	contentType string
	body        []byte
}

// Raw returns a response written as-is with the given content type.
func Raw(contentType string, body []byte) any { return rawResponse{contentType, body} }

func writeJSON(w http.ResponseWriter, code int, body any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"detail":"Internal server error."}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(bytes.TrimRight(buf.Bytes(), "\n"))
}

// ErrUnauthorized is returned by authenticators for a bad password.
var ErrUnauthorized = errors.New("unauthorized")
