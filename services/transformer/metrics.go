package transformer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zen-twilio/zen/pkg/buildinfo"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/transform"
	"github.com/zen-twilio/zen/pkg/zen"
)

type metrics struct {
	events           *prometheus.CounterVec
	transformSeconds prometheus.Histogram
	duplicates       prometheus.Counter
}

// deadLetterReasons are the reasons a raw request is dead-lettered with
// (transform.ReasonOf).
var deadLetterReasons = []string{
	transform.ReasonMissingRequired, transform.ReasonBadConversion, transform.ReasonUndecodableBody,
	transform.ReasonUnknownEvent, transform.ReasonUnsupportedContent, transform.ReasonNoMatchingRule,
	transform.ReasonInternal,
}

// newMetrics registers the transformer's metrics. The series the package's
// rules can produce start at 0 (issue 27): published per Zen event type,
// retry and dead_letter per Twilio event (and dead_letter for "unknown").
func newMetrics(reg prometheus.Registerer, rules []pack.Rule) *metrics {
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
	for _, r := range rules {
		m.events.WithLabelValues(r.EventType, "published")
		m.events.WithLabelValues(r.TwilioEvent, "retry")
		m.events.WithLabelValues(r.TwilioEvent, "dead_letter")
	}
	m.events.WithLabelValues(zen.UnknownTwilioEvent, "dead_letter")
	reg.MustRegister(buildinfo.Collector("transformer"), m.events, m.transformSeconds, m.duplicates)
	return m
}
