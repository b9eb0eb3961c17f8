package forwarder

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zen-twilio/zen/pkg/httpserve"
)

// prometheusWrap labels one target's worker metrics with target=<name>, so
// the workers of several targets share one registry.
func prometheusWrap(ops *httpserve.Ops, target string) prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{"target": target}, ops.Registry)
}
