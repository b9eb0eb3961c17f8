package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/zen"
)

// The header names pkg/zen declares are the ones the propagator writes.
func TestPropagatorFields(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff([]string{zen.HeaderTraceparent, zen.HeaderTracestate}, propagator.Fields()); diff != "" {
		t.Errorf("propagator fields mismatch (-want, +got):\n%s", diff)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "nothing set is off", want: Config{ServiceName: "zen-x", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{name: "base endpoint gets the traces path",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
			want: Config{Endpoint: "http://collector:4318/v1/traces", ServiceName: "zen-x", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{name: "traces endpoint is used as is and wins",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://otlp.example.com/api/traces"},
			want: Config{Endpoint: "https://otlp.example.com/api/traces", ServiceName: "zen-x", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{name: "service name and sampler",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "hooks",
				"OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			want: Config{Endpoint: "http://c:4318/v1/traces", ServiceName: "hooks", Sampler: "parentbased_traceidratio", SamplerArg: 0.25}},
		{name: "disabled wins over an endpoint",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
			want: Config{ServiceName: "zen-x", Sampler: "parentbased_always_on", SamplerArg: 1}},
		{name: "endpoint without scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
			wantErr: "env var `OTEL_EXPORTER_OTLP_ENDPOINT` must be an http(s) URL"},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			wantErr: "env var `OTEL_EXPORTER_OTLP_PROTOCOL` must be http/protobuf"},
		{name: "unknown sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"},
			wantErr: "env var `OTEL_TRACES_SAMPLER` must be one of"},
		{name: "ratio above 1", env: map[string]string{"OTEL_TRACES_SAMPLER_ARG": "2"},
			wantErr: "env var `OTEL_TRACES_SAMPLER_ARG` must be a ratio from 0 to 1"},
		{name: "disabled not a bool", env: map[string]string{"OTEL_SDK_DISABLED": "yes please"},
			wantErr: "env var `OTEL_SDK_DISABLED` must be true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := envconf.New(envconf.MapLookup(tc.env))
			got := ConfigFromEnv(r, "zen-x")
			err := r.Err()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b trace.TracerProvider) bool { return a == b })); diff != "" {
				t.Errorf("config mismatch (-want, +got):\n%s", diff)
			}
		})
	}
}

// Off, a Tracer reads no trace header, writes none and allocates nothing.
// Not parallel: AllocsPerRun.
func TestOffTracerDoesNothing(t *testing.T) {
	tr, err := New(context.Background(), Config{}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.On() {
		t.Fatal("a Tracer without endpoint is on")
	}
	in := nats.Header{zen.HeaderTraceparent: {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	out := nats.Header{}
	allocs := testing.AllocsPerRun(100, func() {
		ctx, span := tr.Start(context.Background(), HeaderCarrier(in), SpanTransform, trace.SpanKindConsumer)
		if span.IsRecording() {
			t.Error("off span records")
		}
		tr.Inject(ctx, HeaderCarrier(out))
		span.End()
	})
	if allocs != 0 {
		t.Errorf("off Start+Inject+End allocates %v times, want 0", allocs)
	}
	if len(out) != 0 {
		t.Errorf("off Tracer wrote headers %v", out)
	}
	if err := tr.Close(); err != nil {
		t.Error(err)
	}
}

// A span started from the headers another span injected is its child, in
// the same trace.
func TestHeaderCarrierContinuesTheTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr, err := New(context.Background(), Config{Provider: tp}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, first := tr.Start(context.Background(), nil, SpanReceive, trace.SpanKindServer)
	h := nats.Header{}
	tr.Inject(ctx, HeaderCarrier(h))
	first.End()
	if got := h.Get(zen.HeaderTraceparent); !strings.Contains(got, first.SpanContext().TraceID().String()) {
		t.Fatalf("traceparent = %q, want the trace id %s", got, first.SpanContext().TraceID())
	}
	_, second := tr.Start(context.Background(), HeaderCarrier(h), SpanTransform, trace.SpanKindConsumer)
	second.End()
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2", len(spans))
	}
	if got, want := spans[1].Parent().SpanID(), spans[0].SpanContext().SpanID(); got != want {
		t.Errorf("parent of %s = %s, want %s", spans[1].Name(), got, want)
	}
	if got, want := spans[1].SpanContext().TraceID(), spans[0].SpanContext().TraceID(); got != want {
		t.Errorf("trace id = %s, want %s", got, want)
	}
}

// With an endpoint, spans are POSTed as OTLP/HTTP protobuf to it, with the
// service name, and Shutdown flushes them.
func TestExportsToTheEndpoint(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []*collectortrace.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("export to %s as %s, want /v1/traces as application/x-protobuf", r.URL.Path, r.Header.Get("Content-Type"))
		}
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			t.Errorf("decode export: %v", err)
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()

	r := envconf.New(envconf.MapLookup(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}))
	cfg := ConfigFromEnv(r, "zen-test")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	tr, err := New(context.Background(), cfg, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Start(context.Background(), nil, SpanDeliver, trace.SpanKindClient)
	span.SetAttributes(AttrAttempt.Int(1))
	span.End()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	var names, services []string
	for _, req := range got {
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					services = append(services, kv.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
	}
	if diff := cmp.Diff([]string{SpanDeliver}, names); diff != "" {
		t.Errorf("exported spans mismatch (-want, +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"zen-test"}, services); diff != "" {
		t.Errorf("service.name mismatch (-want, +got):\n%s", diff)
	}
}

// A collector that is down blocks no stage: ending spans does not wait for
// the export (beyond the queue they are dropped), and Close gives up after
// FlushTimeout.
func TestDeadCollectorBlocksNothing(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := Config{Endpoint: "http://" + addr + "/v1/traces", ServiceName: "zen-test", Sampler: defaultSampler, SamplerArg: 1}
	tr, err := New(context.Background(), cfg, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 10000 {
		_, span := tr.Start(context.Background(), nil, SpanReceive, trace.SpanKindServer)
		span.End()
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("10000 spans took %s with the collector down", took)
	}
	start = time.Now()
	err = tr.Close()
	if took := time.Since(start); took > FlushTimeout+2*time.Second {
		t.Errorf("Close took %s, want at most FlushTimeout (%s)", took, FlushTimeout)
	}
	t.Logf("Close with the collector down: %v", err)
}
