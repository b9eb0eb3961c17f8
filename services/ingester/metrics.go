package ingester

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zen-twilio/zen/pkg/buildinfo"
)

type metrics struct {
	requests   *prometheus.CounterVec
	latency    prometheus.Histogram
	publish    prometheus.Histogram
	signatures *prometheus.CounterVec
	stored     map[string]prometheus.Counter // requests{event, code="200"} of each known event, looked up once
}

// request counts one answered request.
func (m *metrics) request(event string, code int) {
	if c, ok := m.stored[event]; ok && code == http.StatusOK {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(event, strconv.Itoa(code)).Inc()
}

// The status codes a request can get before its event is resolved (event
// "none") and after (a known event, or "unknown"): their series start at 0,
// so a panel or a rate() shows 0 rather than "No data" (issue 27).
var (
	unresolvedCodes = []string{"400", "403", "405", "413", "415", "503"}
	resolvedCodes   = []string{"200", "503"}
)

// newMetrics registers the ingester's metrics; events are the events whose
// stored requests are counted without a label lookup. Every known label set
// starts at 0: the signature failure reasons, and the codes above for the
// events the package defines.
func newMetrics(reg prometheus.Registerer, inflight func() float64, events map[string]bool) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_ingester_requests_total",
			Help: "Webhook requests by resolved Twilio event and HTTP status code.",
		}, []string{"event", "code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "zen_ingester_request_seconds", Help: "Time from request start to answer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "zen_ingester_publish_seconds", Help: "Time for JetStream to acknowledge a raw request.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_ingester_signature_failures_total",
			Help: "Requests rejected with 403, by reason (missing_signature, invalid_signature, unknown_account).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{reasonMissingSignature, reasonInvalidSignature, reasonUnknownAccount} {
		m.signatures.WithLabelValues(reason) // at 0 from the start, for rate() and alerts
	}
	m.stored = make(map[string]prometheus.Counter, len(events))
	for ev := range events {
		m.stored[ev] = m.requests.WithLabelValues(ev, "200")
	}
	for ev := range events {
		for _, code := range resolvedCodes {
			m.requests.WithLabelValues(ev, code)
		}
	}
	for _, code := range resolvedCodes {
		m.requests.WithLabelValues(EventUnknown, code)
	}
	for _, code := range unresolvedCodes {
		m.requests.WithLabelValues("none", code) // outcome.event before resolution
	}
	reg.MustRegister(buildinfo.Collector("ingester"), m.requests, m.latency, m.publish, m.signatures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zen_ingester_in_flight", Help: "Requests being published now."}, inflight))
	return m
}
