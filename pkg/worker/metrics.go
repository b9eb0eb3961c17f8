package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	outcomes      *prometheus.CounterVec
	handleSeconds prometheus.Histogram
	redeliveries  prometheus.Counter
	inFlight      prometheus.Gauge
	acked         prometheus.Counter // outcomes{outcome="ack"}, bound once
	batchSize     prometheus.Histogram
}

// Reasons the worker itself gives (besides its handler's).
const (
	reasonPanic          = "panic"
	reasonDLQUnavailable = "dlq_unavailable"
)

// newMetrics registers the worker's metrics on reg (nil: unregistered).
// The outcomes of the known reasons start at 0: ack, the worker's own
// retries, and retry and dead_letter of the handler's reasons.
func newMetrics(reg prometheus.Registerer, stage string, retryReasons, deadLetterReasons []string) (*metrics, error) {
	labels := prometheus.Labels{"stage": stage}
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_worker_messages_total", ConstLabels: labels,
			Help: "Messages handled, by outcome (ack, retry, dead_letter) and reason.",
		}, []string{"outcome", "reason"}),
		handleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "zen_worker_handle_seconds", ConstLabels: labels,
			Help:    "Time to handle one message, from delivery to decision.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zen_worker_redeliveries_total", ConstLabels: labels,
			Help: "Messages delivered more than once (retries and ack-wait expiries).",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "zen_worker_in_flight", ConstLabels: labels,
			Help: "Messages being handled now.",
		}),
	}
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "zen_worker_batch_size", ConstLabels: labels,
		Help:    "Messages per batch (stages that handle messages in batches).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
	})
	m.acked = m.outcomes.WithLabelValues("ack", "")
	for _, r := range append([]string{reasonPanic}, retryReasons...) {
		m.outcomes.WithLabelValues("retry", r)
		m.outcomes.WithLabelValues("dead_letter", r)
	}
	m.outcomes.WithLabelValues("retry", reasonDLQUnavailable)
	for _, r := range deadLetterReasons {
		m.outcomes.WithLabelValues("dead_letter", r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.outcomes, m.handleSeconds, m.redeliveries, m.inFlight, m.batchSize} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
