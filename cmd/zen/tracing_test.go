package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/twiliosig"
	"github.com/zen-twilio/zen/pkg/zen"
	"github.com/zen-twilio/zen/services/forwarder"
	"github.com/zen-twilio/zen/services/ingester"
	"github.com/zen-twilio/zen/services/transformer"
)

// pipeline is the three stages in-process, as `zen dev` runs them, against
// a real JetStream server and a loopback warehouse.
type pipeline struct {
	srv       *natstest.Server
	ingester  string // http://host:port
	warehouse *warehouse
	stop      func() // stops the stages and waits for their Run; also at the test's end
}

const tracePublicURL = "https://hooks.example.com"

// startPipeline configures every stage from env (over the shipped defaults),
// gives them tp when it is not nil, and runs them until the test ends.
func startPipeline(t *testing.T, env map[string]string, tp trace.TracerProvider, wh *warehouse) *pipeline {
	t.Helper()
	srv := natstest.Run(t)
	natstest.ApplyStreams(t, srv.JetStream(t), streams.DefaultConfig())
	whSrv := httptest.NewServer(wh)
	t.Cleanup(whSrv.Close)
	vars := map[string]string{
		"TWILIO_AUTH_TOKEN": "trace-token-not-a-secret", "PUBLIC_URL": tracePublicURL, "LISTEN_ADDR": "127.0.0.1:0",
		"PACKAGE_DIR":         filepath.Join(testRoot(t), "packages", "transforms", "twilio", "v1"),
		"COMMS_WAREHOUSE_URL": whSrv.URL + "/events", "COMMS_WAREHOUSE_TOKEN": "wh-token-not-a-secret",
	}
	for k, v := range env {
		vars[k] = v
	}
	lookup := envconf.MapLookup(vars)
	icfg, err := ingester.ConfigFromEnv(lookup)
	if err != nil {
		t.Fatal(err)
	}
	tcfg, err := transformer.ConfigFromEnv(lookup)
	if err != nil {
		t.Fatal(err)
	}
	fcfg, err := forwarder.ConfigFromEnv(lookup)
	if err != nil {
		t.Fatal(err)
	}
	icfg.Conn, tcfg.Conn, fcfg.Conn = srv.Conn(t), srv.Conn(t), srv.Conn(t)
	tcfg.DisableOps, fcfg.DisableOps = true, true
	if tp != nil {
		icfg.Tracing.Provider, tcfg.Tracing.Provider, fcfg.Tracing.Provider = tp, tp, tp
	}
	ctx, cancel := context.WithCancel(context.Background())
	ing, err := ingester.New(ctx, icfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transformer.New(ctx, tcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := forwarder.New(ctx, fcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{ing.Run, tr.Run, fw.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	return &pipeline{srv: srv, ingester: "http://" + ing.Addr().String(), warehouse: wh, stop: stop}
}

// send POSTs one signed message-status callback of sid, with header h, and
// returns its Zen-Request-Id.
func (p *pipeline) send(t *testing.T, sid string, h http.Header) string {
	t.Helper()
	const path = "/webhooks/twilio/message-status"
	form := url.Values{"MessageSid": {sid}, "MessageStatus": {"delivered"}, "AccountSid": {"AC00000000000000000000000000000001"},
		"To": {"+15558675310"}, "From": {"+15017122661"}, "ApiVersion": {"2010-04-01"}}
	req, _ := http.NewRequest(http.MethodPost, p.ingester+path, strings.NewReader(form.Encode()))
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(zen.HeaderTwilioSignature, twiliosig.Sign(tracePublicURL+path, form, "trace-token-not-a-secret"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingester answered %d", resp.StatusCode)
	}
	return resp.Header.Get(zen.HeaderRequestID)
}

// warehouse records the headers of every POST; its first fail answers are
// 503s.
type warehouse struct {
	mu      sync.Mutex
	fail    int
	headers []http.Header
}

func (w *warehouse) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.headers = append(w.headers, r.Header.Clone())
	if len(w.headers) <= w.fail {
		rw.WriteHeader(http.StatusServiceUnavailable)
	}
}

func (w *warehouse) received() []http.Header {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]http.Header(nil), w.headers...)
}

// attrs returns a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// byName waits until the recorder holds want ended spans and returns them
// by name.
func byName(t *testing.T, rec *tracetest.SpanRecorder, want int) map[string][]sdktrace.ReadOnlySpan {
	t.Helper()
	out := map[string][]sdktrace.ReadOnlySpan{}
	natstest.CheckFor(t, 20*time.Second, func() error {
		spans := rec.Ended()
		if len(spans) < want {
			return fmt.Errorf("%d spans ended, want %d", len(spans), want)
		}
		clear(out)
		for _, s := range spans {
			out[s.Name()] = append(out[s.Name()], s)
		}
		return nil
	})
	return out
}

// One webhook is one trace: the ingester's span is the root, the
// transformer's its child, each delivery attempt a child of the
// transformer's (the first answered 503, the redelivery 200), and each POST
// carries the traceparent of its attempt's span. No attribute holds a phone
// number.
func TestOneWebhookIsOneTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	p := startPipeline(t, nil, tp, &warehouse{fail: 1})
	const sid = "SM00000000000000000000000000000042"
	reqID := p.send(t, sid, nil)

	spans := byName(t, rec, 4)
	if got := len(spans[tracing.SpanReceive]) + len(spans[tracing.SpanTransform]) + len(spans[tracing.SpanDeliver]); got != 4 {
		t.Fatalf("spans %v, want 1 %s, 1 %s, 2 %s", spans, tracing.SpanReceive, tracing.SpanTransform, tracing.SpanDeliver)
	}
	recv, tran := spans[tracing.SpanReceive][0], spans[tracing.SpanTransform][0]
	traceID := recv.SpanContext().TraceID()
	if recv.Parent().IsValid() {
		t.Errorf("%s has parent %s, want none (the webhook starts the trace)", recv.Name(), recv.Parent().SpanID())
	}
	if got, want := tran.Parent().SpanID(), recv.SpanContext().SpanID(); got != want {
		t.Errorf("%s parent = %s, want %s's %s", tran.Name(), got, recv.Name(), want)
	}
	deliveries := spans[tracing.SpanDeliver]
	for _, d := range deliveries {
		if got, want := d.Parent().SpanID(), tran.SpanContext().SpanID(); got != want {
			t.Errorf("%s parent = %s, want %s's %s", d.Name(), got, tran.Name(), want)
		}
	}
	for _, s := range rec.Ended() {
		if got := s.SpanContext().TraceID(); got != traceID {
			t.Errorf("%s in trace %s, want %s", s.Name(), got, traceID)
		}
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); strings.Contains(v, "5558675310") || strings.Contains(v, "5017122661") {
				t.Errorf("%s attribute %s = %q holds a phone number", s.Name(), kv.Key, v)
			}
		}
	}

	ra, ta := attrs(recv), attrs(tran)
	for _, c := range []struct {
		name      string
		got, want string
	}{
		{"receive sid", ra[tracing.AttrSid].AsString(), sid},
		{"receive request id", ra[tracing.AttrRequestID].AsString(), reqID},
		{"receive twilio event", ra[tracing.AttrTwilioEvent].AsString(), "message-status"},
		{"receive status", ra[tracing.AttrHTTPStatus].Emit(), "200"},
		{"receive raw seq", ra[tracing.AttrRawSeq].Emit(), "1"},
		{"transform raw seq", ta[tracing.AttrRawSeq].Emit(), "1"},
		{"transform dedupe key", ta[tracing.AttrDedupeKey].Emit(), `["tw-` + sid + `.message.status.delivered"]`},
		{"transform event type", ta[tracing.AttrEventType].Emit(), `["message.status"]`},
		{"transform outcome", ta[tracing.AttrOutcome].AsString(), "ack"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}

	// The attempts, in order, and the traceparent each POST carried.
	posts := p.warehouse.received()
	if len(posts) != 2 {
		t.Fatalf("warehouse received %d POSTs, want 2 (a 503, then its redelivery)", len(posts))
	}
	attempts := map[int64]sdktrace.ReadOnlySpan{}
	for _, d := range deliveries {
		attempts[attrs(d)[tracing.AttrAttempt].AsInt64()] = d
	}
	for i, want := range []struct {
		status  int64
		outcome string
	}{{503, "retry"}, {200, "ack"}} {
		d, ok := attempts[int64(i+1)]
		if !ok {
			t.Fatalf("no %s span of attempt %d (have %v)", tracing.SpanDeliver, i+1, attempts)
		}
		da := attrs(d)
		if got := da[tracing.AttrHTTPStatus].AsInt64(); got != want.status {
			t.Errorf("attempt %d status = %d, want %d", i+1, got, want.status)
		}
		if got := da[tracing.AttrOutcome].AsString(); got != want.outcome {
			t.Errorf("attempt %d outcome = %q, want %q", i+1, got, want.outcome)
		}
		if got, want := da[tracing.AttrDedupeKey].AsString(), "tw-"+sid+".message.status.delivered"; got != want {
			t.Errorf("attempt %d dedupe key = %q, want %q", i+1, got, want)
		}
		wantTP := fmt.Sprintf("00-%s-%s-01", traceID, d.SpanContext().SpanID())
		if got := posts[i].Get(zen.HeaderTraceparent); got != wantTP {
			t.Errorf("POST %d traceparent = %q, want %q (its attempt's span)", i+1, got, wantTP)
		}
	}
}

// A traceparent on the webhook request (from a proxy that traces) is
// continued: the ingester's span is its child, in its trace.
func TestWebhookContinuesAnIncomingTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	p := startPipeline(t, nil, tp, &warehouse{})
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	p.send(t, "SM00000000000000000000000000000043", http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}})

	spans := byName(t, rec, 3)
	for _, s := range rec.Ended() {
		if got := s.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("%s in trace %s, want the incoming %s", s.Name(), got, traceID)
		}
	}
	if recv := spans[tracing.SpanReceive]; len(recv) != 1 || recv[0].Parent().SpanID().String() != parentID || !recv[0].Parent().IsRemote() {
		t.Errorf("%s spans %v, want one whose remote parent is %s", tracing.SpanReceive, recv, parentID)
	}
	natstest.CheckFor(t, 10*time.Second, func() error {
		if posts := p.warehouse.received(); len(posts) != 1 || !strings.Contains(posts[0].Get(zen.HeaderTraceparent), traceID) {
			return fmt.Errorf("warehouse POSTs %v, want one with a traceparent in trace %s", posts, traceID)
		}
		return nil
	})
}

// With the shipped configuration (no OTEL_* variable) the stages start and
// deliver, and no trace header is stored, published or sent, even when the
// webhook request carries one.
func TestTracingOffByDefault(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil, nil, &warehouse{})
	p.send(t, "SM00000000000000000000000000000044", http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	natstest.CheckFor(t, 20*time.Second, func() error {
		if n := len(p.warehouse.received()); n != 1 {
			return fmt.Errorf("warehouse received %d POSTs, want 1", n)
		}
		return nil
	})
	for _, h := range p.warehouse.received() {
		for _, k := range []string{zen.HeaderTraceparent, zen.HeaderTracestate} {
			if v := h.Get(k); v != "" {
				t.Errorf("POST carries %s: %q, want none with tracing off", k, v)
			}
		}
	}
	js := p.srv.JetStream(t)
	for _, stream := range []string{streams.StreamRaw, streams.StreamEvents} {
		st, err := js.Stream(context.Background(), stream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetLastMsgForSubject(context.Background(), ">")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{zen.HeaderTraceparent, zen.HeaderTracestate} {
			if v := m.Header.Get(k); v != "" {
				t.Errorf("%s message carries %s: %q, want none with tracing off", stream, k, v)
			}
		}
	}
}

// Configured by the variables alone, each stage exports its spans over
// OTLP/HTTP to the collector as its own service, and flushes them when it
// stops.
func TestStagesExportToTheCollector(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	services := map[string][]string{} // service.name → span names
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil || r.URL.Path != "/v1/traces" {
			t.Errorf("export to %s: %v", r.URL.Path, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.GetResourceSpans() {
			var name string
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					name = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					services[name] = append(services[name], s.GetName())
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()

	p := startPipeline(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}, nil, &warehouse{})
	p.send(t, "SM00000000000000000000000000000045", nil)
	natstest.CheckFor(t, 20*time.Second, func() error {
		if n := len(p.warehouse.received()); n != 1 {
			return fmt.Errorf("warehouse received %d POSTs, want 1", n)
		}
		return nil
	})
	p.stop()

	mu.Lock()
	defer mu.Unlock()
	want := map[string][]string{
		"zen-ingester": {tracing.SpanReceive}, "zen-transformer": {tracing.SpanTransform}, "zen-forwarder": {tracing.SpanDeliver},
	}
	if !reflect.DeepEqual(services, want) {
		t.Errorf("exported spans by service = %v, want %v", services, want)
	}
}
