package tracing

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/zen-twilio/zen/pkg/zen"
)

// BenchmarkStage is what tracing adds to one message of a stage: continue
// the trace from the headers, start a span, write its context into the next
// message's headers, end it. "off" is the shipped default; "on" records to
// through the SDK's batcher to an exporter that drops them (the export runs
// in the batcher's goroutine).
func BenchmarkStage(b *testing.B) {
	in := nats.Header{zen.HeaderTraceparent: {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	on, _ := New(context.Background(), Config{Provider: tp}, "bench", nil)
	for _, bc := range []struct {
		name string
		tr   *Tracer
	}{{"off", &Tracer{}}, {"on", on}} {
		b.Run(bc.name, func(b *testing.B) {
			out := nats.Header{}
			b.ReportAllocs()
			for b.Loop() {
				clear(out)
				ctx, span := bc.tr.Start(context.Background(), HeaderCarrier(in), SpanTransform, trace.SpanKindConsumer)
				if span.IsRecording() {
					span.SetAttributes(AttrRawSeq.Int64(1), AttrDedupeKey.String("tw-SM1.message.status.delivered"))
				}
				bc.tr.Inject(ctx, HeaderCarrier(out))
				span.End()
			}
		})
	}
}
