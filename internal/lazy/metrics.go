package lazy

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests       *prometheus.CounterVec
	upstreamBytes  prometheus.Counter
	digestFailures prometheus.Counter
	inFlight       prometheus.Gauge
	cooldowns      prometheus.Counter
	rangeRequests  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pith_lazy_requests_total",
			Help: "Requests for content not stored locally, by result: hit (found stored after all), miss (led an upstream fetch), coalesced (joined a fetch in flight), failed (no source could deliver)."},
			[]string{"result"}),
		upstreamBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "pith_lazy_upstream_bytes_total",
			Help: "Bytes received from upstream sources for lazy content."}),
		digestFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "pith_lazy_digest_failures_total",
			Help: "Lazy fetches aborted because the bytes did not match the expected size or digest."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pith_lazy_fetches_in_flight",
			Help: "Lazy fetches in progress."}),
		cooldowns: prometheus.NewCounter(prometheus.CounterOpts{Name: "pith_lazy_cooldowns_total",
			Help: "Sources put in cooldown after sending wrong bytes."}),
		rangeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pith_lazy_upstream_range_requests_total",
			Help: "Upstream range requests for Range requests far ahead of a lazy fetch, by result: served (its 206 went to the client), ignored (the upstream answered 200), rejected (a 206 for other bytes than asked), failed (no response), superseded (the spool got there first, or the client left)."},
			[]string{"result"}),
	}
	for _, r := range []string{"hit", "miss", "coalesced", "failed"} {
		m.requests.WithLabelValues(r)
	}
	for _, r := range rangeResults {
		m.rangeRequests.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.upstreamBytes, m.digestFailures, m.inFlight, m.cooldowns, m.rangeRequests)
	}
	return m
}
