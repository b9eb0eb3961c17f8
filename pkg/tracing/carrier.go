package tracing

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// propagator writes and reads the W3C Trace Context headers, zen.HeaderTraceparent
// and zen.HeaderTracestate (TestPropagatorFields holds the two names equal).
var propagator = propagation.TraceContext{}

// HeaderCarrier carries the trace context in a NATS message's headers. NATS
// header names are case-sensitive: the context is stored under the
// lowercase W3C names, as HTTP/2 sends them.
type HeaderCarrier nats.Header

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string { return nats.Header(c).Get(key) }

// Set replaces the values of key.
func (c HeaderCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context of ctx's span into to. Off, it writes
// nothing (and reads nothing of ctx).
func (t *Tracer) Inject(ctx context.Context, to propagation.TextMapCarrier) {
	if t.On() {
		propagator.Inject(ctx, to)
	}
}
