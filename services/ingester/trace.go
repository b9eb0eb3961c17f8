package ingester

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/zen-twilio/zen/pkg/tracing"
)

// tracingScope is the instrumentation scope of the ingester's spans.
const tracingScope = "github.com/zen-twilio/zen/services/ingester"

// startSpan starts the request's span (tracing.SpanReceive), continuing the
// traceparent the request carries when a proxy or client sent one; the
// returned request carries the span. Off, r is returned as it is.
func (s *Service) startSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx, span := s.tracer.Start(r.Context(), propagation.HeaderCarrier(r.Header), tracing.SpanReceive, trace.SpanKindServer)
	if s.tracer.On() {
		r = r.WithContext(ctx)
	}
	return r, span
}

// endSpan records how the request ended and ends its span. A 5xx is an
// error; a rejection (4xx) is the client's, as the HTTP conventions have it.
func endSpan(span trace.Span, reqID string, out *outcome, code int) {
	if span.IsRecording() {
		span.SetAttributes(tracing.AttrRequestID.String(reqID), tracing.AttrTwilioEvent.String(out.event), tracing.AttrHTTPStatus.Int(code))
		if out.reason != "" {
			span.SetAttributes(tracing.AttrReason.String(out.reason))
		}
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
	}
	span.End()
}

// sidParams name a request's primary Twilio resource, in the order that
// picks it: a recording's callback names its call too.
var sidParams = []string{"RecordingSid", "MessageSid", "CallSid", "VerificationSid", "ConversationSid"}

// traceSid records the request's primary Sid on its span; signed parameters
// only, and never another (phone numbers and bodies stay out of traces).
func (s *Service) traceSid(ctx context.Context, params url.Values) {
	if !s.tracer.On() {
		return
	}
	for _, k := range sidParams {
		if v := params.Get(k); v != "" {
			trace.SpanFromContext(ctx).SetAttributes(tracing.AttrSid.String(v[:min(len(v), 64)]))
			return
		}
	}
}

// traceStored records where TWILIO_RAW stored the request, from its PubAck
// (or the PubAck's encoding, reply).
func (s *Service) traceStored(ctx context.Context, ack *jetstream.PubAck, reply []byte) {
	if !s.tracer.On() {
		return
	}
	if ack == nil {
		ack = &jetstream.PubAck{}
		if json.Unmarshal(reply, ack) != nil {
			return
		}
	}
	trace.SpanFromContext(ctx).SetAttributes(tracing.AttrRawSeq.Int64(int64(ack.Sequence)), tracing.AttrDuplicate.Bool(ack.Duplicate))
}
