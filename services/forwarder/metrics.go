package forwarder

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zen-twilio/zen/pkg/buildinfo"
)

type metrics struct {
	attempts      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	dedupeHits    *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	inFlight      *prometheus.GaugeVec
	recordsFailed prometheus.Counter
	// dedupeRecordsFailed counts delivered events whose zen_dedupe entry
	// was not stored.
	dedupeRecordsFailed prometheus.Counter
	// circuitState is each target's breaker: 0 closed, 1 half-open, 2 open.
	circuitState   *prometheus.GaugeVec
	circuitChanges *prometheus.CounterVec
	rateLimitWait  *prometheus.CounterVec
	filtered       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_forwarder_attempts_total", Help: "Delivery attempts by target and class: 2xx, 3xx, 4xx, 5xx, error, duplicate.",
		}, []string{"target", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "zen_forwarder_delivery_seconds", Help: "Time of one POST to a target.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"target"}),
		dedupeHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_forwarder_dedupe_hits_total", Help: "Events acked without a POST because their key was already delivered.",
		}, []string{"target"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_forwarder_dead_letters_total", Help: "Events dead-lettered, by target and reason.",
		}, []string{"target", "reason"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "zen_forwarder_in_flight", Help: "POSTs in flight, by target.",
		}, []string{"target"}),
		recordsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zen_forwarder_attempt_records_failed_total", Help: "Attempt records that could not be published.",
		}),
		dedupeRecordsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zen_forwarder_dedupe_records_failed_total", Help: "Delivered events whose zen_dedupe entry could not be stored (a later copy could be POSTed again).",
		}),
		circuitState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "zen_forwarder_circuit_state", Help: "Each target's circuit breaker: 0 closed, 1 half-open, 2 open (no POSTs; its consumer is paused).",
		}, []string{"target"}),
		circuitChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_forwarder_circuit_transitions_total", Help: "Circuit breaker transitions, by target and the state entered.",
		}, []string{"target", "to"}),
		rateLimitWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_forwarder_rate_limit_wait_seconds_total", Help: "Time deliveries waited for the target's rate limit.",
		}, []string{"target"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_forwarder_filtered_total", Help: "Events acked without a POST because no flow's filter to the target matched them.",
		}, []string{"target"}),
	}
	reg.MustRegister(buildinfo.Collector("forwarder"), m.attempts, m.latency, m.dedupeHits, m.deadLetters, m.inFlight, m.recordsFailed, m.dedupeRecordsFailed,
		m.circuitState, m.circuitChanges, m.rateLimitWait, m.filtered)
	return m
}

// commonStatuses are the target answers whose reasons (http_<status>)
// start at 0 with the others, as a retry or a dead letter by the target's
// retry policy.
var commonStatuses = []int{400, 401, 403, 404, 408, 409, 410, 413, 422, 429, 500, 502, 503, 504}

// targetReasons returns the reasons the handler of a target with the
// given retry policy returns with Retry and with DeadLetter.
func targetReasons(retryable func(status int) bool) (retry, deadLetter []string) {
	retry = []string{ReasonNetworkError, ReasonTimeout, ReasonDedupeUnavailable, ReasonStopping}
	deadLetter = []string{ReasonNoMetadata, ReasonNoDedupeKey, ReasonUndecodableEvent}
	for _, st := range commonStatuses {
		if reason := "http_" + strconv.Itoa(st); retryable(st) {
			retry = append(retry, reason)
		} else {
			deadLetter = append(deadLetter, reason)
		}
	}
	return retry, deadLetter
}

// startTarget starts the target's series at 0, so its panels show 0 rather
// than "No data" before its first event (issue 27): the events acked
// without a POST, and its dead letters by every reason it can give (a
// retry reason too: the last delivery dead-letters it).
func (m *metrics) startTarget(target string, retry, deadLetter []string) {
	m.dedupeHits.WithLabelValues(target)
	m.filtered.WithLabelValues(target)
	for _, r := range append(append([]string(nil), retry...), deadLetter...) {
		m.deadLetters.WithLabelValues(target, r)
	}
}
