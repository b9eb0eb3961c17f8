package forwarder

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
)

// tracingScope is the instrumentation scope of the forwarder's spans.
const tracingScope = "github.com/zen-twilio/zen/services/forwarder"

// traced gives each delivery attempt of next to target a span
// (tracing.SpanDeliver), a child of the transformer's span whose context the
// event's headers carry: a redelivery is another span of the same trace,
// with its attempt number. The POST sends the span's traceparent. Off, next
// is returned as it is.
func (s *Service) traced(target string, next worker.Handler) worker.Handler {
	if !s.tracer.On() {
		return next
	}
	return func(ctx context.Context, m jetstream.Msg) worker.Outcome {
		h := m.Headers()
		ctx, span := s.tracer.Start(ctx, tracing.HeaderCarrier(h), tracing.SpanDeliver, trace.SpanKindClient)
		if span.IsRecording() {
			key := h.Get(zen.HeaderDedupeKey)
			if key == "" {
				key = h.Get(zen.HeaderMsgID)
			}
			span.SetAttributes(tracing.AttrTarget.String(target), tracing.AttrEventType.String(h.Get(zen.HeaderEventType)),
				tracing.AttrDedupeKey.String(key), tracing.AttrRequestID.String(h.Get(zen.HeaderRequestID)))
			if meta, err := worker.Metadata(ctx, m); err == nil {
				span.SetAttributes(tracing.AttrEventSeq.Int64(int64(meta.Sequence.Stream)), tracing.AttrAttempt.Int64(int64(meta.NumDelivered)))
			}
		}
		out := next(ctx, m)
		tracing.EndOutcome(span, out)
		return out
	}
}

// traceStatus records the target's answer on the attempt's span.
func (d *deliverer) traceStatus(ctx context.Context, status int) {
	if d.tracer.On() {
		trace.SpanFromContext(ctx).SetAttributes(tracing.AttrHTTPStatus.Int(status))
	}
}
