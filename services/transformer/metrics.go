package transformer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events           *prometheus.CounterVec
	transformSeconds prometheus.Histogram
	duplicates       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zen_transformer_events_total",
			Help: "Events by type (Twilio event for failures) and outcome: published, retry, dead_letter.",
		}, []string{"type", "outcome"}),
		transformSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "zen_transformer_transform_seconds", Help: "Time to apply the rules to one raw request.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 16),
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zen_transformer_duplicates_total", Help: "Event publishes JetStream recognised as duplicates (a retried request).",
		}),
	}
	reg.MustRegister(m.events, m.transformSeconds, m.duplicates)
	return m
}
