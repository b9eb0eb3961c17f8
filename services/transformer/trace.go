package transformer

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
)

// tracingScope is the instrumentation scope of the transformer's spans.
const tracingScope = "github.com/zen-twilio/zen/services/transformer"

// startSpan starts the span of raw message m (tracing.SpanTransform), a
// child of the ingester's span whose context m's headers carry; each
// redelivery is a span of its own. The returned context carries it.
func (s *Service) startSpan(ctx context.Context, m jetstream.Msg) (context.Context, trace.Span) {
	ctx, span := s.tracer.Start(ctx, tracing.HeaderCarrier(m.Headers()), tracing.SpanTransform, trace.SpanKindConsumer)
	if span.IsRecording() {
		span.SetAttributes(tracing.AttrRequestID.String(m.Headers().Get(zen.HeaderRequestID)))
		if meta, err := worker.Metadata(ctx, m); err == nil {
			span.SetAttributes(tracing.AttrRawSeq.Int64(int64(meta.Sequence.Stream)), tracing.AttrAttempt.Int64(int64(meta.NumDelivered)))
		}
	}
	return ctx, span
}

// tracePrepared records the events a raw message became.
func tracePrepared(span trace.Span, p prepared) {
	if !span.IsRecording() {
		return
	}
	types, keys := make([]string, len(p.events)), make([]string, len(p.events))
	for i, m := range p.events {
		types[i], keys[i] = m.Header.Get(zen.HeaderEventType), m.Header.Get(zen.HeaderDedupeKey)
	}
	span.SetAttributes(tracing.AttrTwilioEvent.String(p.event), tracing.AttrEventType.StringSlice(types), tracing.AttrDedupeKey.StringSlice(keys))
}
