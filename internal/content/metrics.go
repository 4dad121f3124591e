package content

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the content app's per-distribution metrics. Requests that
// match no distribution (listings of partial base paths, 404s) are
// labelled "-".
type Metrics struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	dists    sync.Map // base path → *distMetrics
}

// NewMetrics registers the metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pith_content_requests_total",
			Help: "Content app requests by distribution base path and status class (2xx…5xx, or aborted)."},
			[]string{"distribution", "status"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pith_content_response_bytes_total",
			Help: "Response body bytes sent by the content app, by distribution base path."}, []string{"distribution"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pith_content_request_duration_seconds",
			Help:    "Time from request to the end of the response, by distribution base path.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}},
			[]string{"distribution"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.bytes, m.latency)
	}
	return m
}

// recorder notes what a response was, without hiding the writer's
// optional interfaces: ReadFrom keeps sendfile, Unwrap keeps
// http.ResponseController (flush, deadlines).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	dist   string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if isKept(src) {
		// A small file: pread into a pooled buffer and one write
		// (files.go).
		n, err = copyTo(struct{ io.Writer }{r.ResponseWriter}, src)
	} else if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// distMetrics are one distribution's series, looked up once: the vector
// lookups hash the label values on every call.
type distMetrics struct {
	status  [7]prometheus.Counter // 0: aborted, 1-5: 1xx-5xx, 6: other
	bytes   prometheus.Counter
	latency prometheus.Observer
}

var statusNames = [7]string{"aborted", "1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func (m *Metrics) of(dist string) *distMetrics {
	if d, ok := m.dists.Load(dist); ok {
		return d.(*distMetrics)
	}
	d := &distMetrics{bytes: m.bytes.WithLabelValues(dist), latency: m.latency.WithLabelValues(dist)}
	for i, s := range statusNames {
		d.status[i] = m.requests.WithLabelValues(dist, s)
	}
	v, _ := m.dists.LoadOrStore(dist, d)
	return v.(*distMetrics)
}

// observe records one finished (or aborted) request.
func (m *Metrics) observe(r *recorder, start time.Time, aborted bool) {
	if m == nil {
		return
	}
	dist := r.dist
	if dist == "" {
		dist = "-"
	}
	d := m.of(dist)
	status := 0
	if !aborted {
		code := r.status
		if code == 0 {
			code = http.StatusOK
		}
		status = code / 100
		if status < 1 || status > 5 {
			status = 6
		}
	}
	d.status[status].Inc()
	d.bytes.Add(float64(r.bytes))
	d.latency.Observe(time.Since(start).Seconds())
}

// ccWriter replaces the Cache-Control of a response it does not build
// itself (lazy content, written by internal/lazy) with a distribution's.
type ccWriter struct {
	http.ResponseWriter
	cc   string
	done bool
}

// withCacheControl returns w, or w replacing Cache-Control with cc when cc
// is set.
func withCacheControl(w http.ResponseWriter, cc string) http.ResponseWriter {
	if cc == "" {
		return w
	}
	return &ccWriter{ResponseWriter: w, cc: cc}
}

func (c *ccWriter) set() {
	if !c.done {
		c.done = true
		c.ResponseWriter.Header()["Cache-Control"] = []string{c.cc}
	}
}

func (c *ccWriter) WriteHeader(code int) {
	c.set()
	c.ResponseWriter.WriteHeader(code)
}

func (c *ccWriter) Write(p []byte) (int, error) {
	c.set()
	return c.ResponseWriter.Write(p)
}

func (c *ccWriter) ReadFrom(src io.Reader) (int64, error) {
	c.set()
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{c.ResponseWriter}, src)
}

func (c *ccWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// FlushError sets the header before http.ResponseController flushes it.
func (c *ccWriter) FlushError() error {
	c.set()
	return http.NewResponseController(c.ResponseWriter).Flush()
}
