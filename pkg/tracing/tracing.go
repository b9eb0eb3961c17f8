// Package tracing is the OpenTelemetry tracing the three stages share: the
// provider built from the standard OTEL_* variables, the span names and
// attribute keys, and the W3C trace context carried in NATS message headers
// (HeaderCarrier), so one webhook is one trace from the ingester to the
// warehouse POST.
//
// Tracing is off unless an OTLP endpoint is configured. Off, a [Tracer]
// starts no span, reads no trace header and writes none: the hot paths pay
// a nil check (docs/configuration.md "Tracing").
//
// Spans leave through the OTLP/HTTP exporter (otlptracehttp), not gRPC:
// http/protobuf is the protocol the OpenTelemetry spec makes the SDKs'
// default, and each export is a plain HTTPS POST that passes proxies,
// ingresses and Kubernetes Services like the stages' other traffic, where a
// long-lived gRPC connection sticks to one collector replica. (Binary size is
// no reason either way: the exporters' protobuf types link most of gRPC.)
package tracing

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/worker"
)

// The span of each stage: one per webhook request, per raw message handled
// and per delivery attempt.
const (
	// SpanReceive is the ingester's: the webhook request until the raw
	// request is stored in TWILIO_RAW (or rejected).
	SpanReceive = "ingester.receive"
	// SpanTransform is the transformer's: a raw message until its events
	// are stored in ZEN_EVENTS (or it is retried or dead-lettered).
	SpanTransform = "transformer.transform"
	// SpanDeliver is the forwarder's: one delivery attempt of an event to a
	// target; a redelivery is another span of the same trace.
	SpanDeliver = "forwarder.deliver"
)

// Attribute keys of the spans. Identifiers and outcomes only: never a phone
// number, a message body or a token.
const (
	AttrRequestID   = attribute.Key("zen.request_id")   // Zen-Request-Id
	AttrTwilioEvent = attribute.Key("zen.twilio_event") // the resolved Twilio event
	AttrSid         = attribute.Key("zen.sid")          // the request's primary Twilio Sid
	AttrRawSeq      = attribute.Key("zen.raw_seq")      // the stream sequence in TWILIO_RAW
	AttrDuplicate   = attribute.Key("zen.duplicate")    // the stream had stored the message already
	AttrEventType   = attribute.Key("zen.event_type")   // Zen event type(s)
	AttrDedupeKey   = attribute.Key("zen.dedupe_key")   // dedupe key(s)
	AttrEventSeq    = attribute.Key("zen.event_seq")    // the stream sequence in ZEN_EVENTS
	AttrTarget      = attribute.Key("zen.target")       // the target delivered to
	AttrAttempt     = attribute.Key("zen.attempt")      // delivery count, 1 on the first
	AttrOutcome     = attribute.Key("zen.outcome")      // ack, retry, dead_letter
	AttrReason      = attribute.Key("zen.reason")       // why a retry or a dead letter
	// AttrHTTPStatus is the semantic-convention key of an HTTP answer.
	AttrHTTPStatus = semconv.HTTPResponseStatusCodeKey
)

// Config says where spans go. The zero value is off.
type Config struct {
	// Endpoint is the URL the spans are POSTed to, e.g.
	// http://otel-collector:4318/v1/traces; "" turns tracing off.
	Endpoint string
	// ServiceName is the resource's service.name.
	ServiceName string
	// Sampler is an OTEL_TRACES_SAMPLER value; SamplerArg its ratio.
	Sampler    string
	SamplerArg float64
	// Provider, when set, records the spans instead of an exporter (zen dev,
	// tests); the caller keeps ownership and shuts it down.
	Provider trace.TracerProvider
}

// Samplers accepted in OTEL_TRACES_SAMPLER (those of the OpenTelemetry spec
// the Go SDK implements).
var samplers = []string{"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
	"always_on", "always_off", "traceidratio"}

const defaultSampler = "parentbased_always_on"

// ConfigFromEnv reads the standard variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// (used as is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces), the protocol
// (http/protobuf only), OTEL_SERVICE_NAME (default service),
// OTEL_TRACES_SAMPLER and _ARG, and OTEL_SDK_DISABLED. Problems are recorded
// on r. The exporter's other OTEL_EXPORTER_OTLP_* variables (headers,
// timeout, compression, certificates) are read by the exporter itself.
func ConfigFromEnv(r *envconf.Reader, service string) Config {
	c := Config{ServiceName: r.String("OTEL_SERVICE_NAME", service), Sampler: defaultSampler, SamplerArg: 1}
	c.Endpoint = endpointFromEnv(r)
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if p := r.String(name, "http/protobuf"); p != "http/protobuf" {
			r.Fail(name, "must be http/protobuf (the OTLP/HTTP exporter; gRPC is not built in), got %q", p)
		}
	}
	c.Sampler = strings.ToLower(r.String("OTEL_TRACES_SAMPLER", c.Sampler))
	if !slices.Contains(samplers, c.Sampler) {
		r.Fail("OTEL_TRACES_SAMPLER", "must be one of %s, got %q", strings.Join(samplers, ", "), c.Sampler)
	}
	if v := r.String("OTEL_TRACES_SAMPLER_ARG", ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			r.Fail("OTEL_TRACES_SAMPLER_ARG", "must be a ratio from 0 to 1, got %q", v)
		} else {
			c.SamplerArg = f
		}
	}
	if r.Bool("OTEL_SDK_DISABLED", false) {
		c.Endpoint = ""
	}
	return c
}

// endpointFromEnv returns the traces URL, "" when neither variable is set.
func endpointFromEnv(r *envconf.Reader) string {
	name, u := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", r.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	base := r.String("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	if u == "" && base != "" {
		name, u = "OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimRight(base, "/")+"/v1/traces"
	}
	if u == "" {
		return ""
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		r.Fail(name, "must be an http(s) URL, e.g. http://otel-collector:4318, got %q", u)
		return ""
	}
	return u
}

// sampler is the SDK sampler of c.Sampler.
func (c Config) sampler() sdktrace.Sampler {
	ratio := sdktrace.TraceIDRatioBased(c.SamplerArg)
	switch c.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return ratio
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(ratio)
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

// Tracer starts the spans of one stage. A nil or off Tracer starts none. It
// is safe for concurrent use.
type Tracer struct {
	tracer   trace.Tracer // nil when off
	shutdown func(context.Context) error
}

// New returns the Tracer of cfg for the instrumentation scope (the stage's
// package path): off without an endpoint or provider; else spans batched
// (at most 2048 queued, then dropped) to the OTLP/HTTP endpoint. Nothing is
// dialled before the first export, so a collector that is down never stops
// a stage; export failures are logged on log.
func New(ctx context.Context, cfg Config, scope string, log *zap.Logger) (*Tracer, error) {
	switch {
	case cfg.Provider != nil:
		return &Tracer{tracer: cfg.Provider.Tracer(scope)}, nil
	case cfg.Endpoint == "":
		return &Tracer{}, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(cfg.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if log != nil {
		// Process-wide: the SDK reports failed exports there.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", zap.Error(err)) }))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(cfg.sampler()))
	return &Tracer{tracer: tp.Tracer(scope), shutdown: tp.Shutdown}, nil
}

// On reports whether t records spans.
func (t *Tracer) On() bool { return t != nil && t.tracer != nil }

// Start starts a span of kind in the trace whose context from carries (a
// new trace when it carries none or from is nil). Off, it returns ctx and a
// span that records nothing, reading nothing.
func (t *Tracer) Start(ctx context.Context, from propagation.TextMapCarrier, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if !t.On() {
		return ctx, noop.Span{}
	}
	if from != nil {
		ctx = propagator.Extract(ctx, from)
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind))
}

// FlushTimeout bounds Close's export of the last spans.
const FlushTimeout = 5 * time.Second

// Close exports the spans still queued, within FlushTimeout, and stops the
// exporter; call it once, at the end of the stage's Run. It does nothing for
// an off Tracer or a caller's Provider.
func (t *Tracer) Close() error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
	defer cancel()
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush spans: %w", err)
	}
	return nil
}

// EndOutcome records a worker's outcome on span and ends it: a retry or a
// dead letter is an error, with its reason.
func EndOutcome(span trace.Span, out worker.Outcome) {
	if span.IsRecording() {
		span.SetAttributes(AttrOutcome.String(out.Kind.String()))
		if out.Kind != worker.KindAck {
			span.SetAttributes(AttrReason.String(out.Reason))
			span.SetStatus(codes.Error, out.Reason)
		}
	}
	span.End()
}
