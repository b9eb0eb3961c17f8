package transformer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
	"github.com/zen-twilio/zen/services/transformer"
)

var cardTime = time.Date(2026, 6, 24, 10, 0, 0, 0, time.UTC)

var testEnv = envconf.MapLookup(map[string]string{
	"COMMS_WAREHOUSE_URL":   "http://127.0.0.1:9/events",
	"COMMS_WAREHOUSE_TOKEN": "test-token-not-a-secret",
})

func repoRoot(tb testing.TB) string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			tb.Fatal("no go.work")
		}
	}
}

type env struct {
	t   *testing.T
	srv *natstest.Server
	js  jetstream.JetStream
	ctx context.Context
	// log is the services' logger (default: the test's).
	log *zap.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, srv: srv, js: js, ctx: ctx}
}

// running is one transformer; stop cancels it and waits for Run to return.
type running struct {
	svc  *transformer.Service
	nc   *nats.Conn
	stop func() error
}

func (e *env) start(mod func(*transformer.Config)) *running {
	e.t.Helper()
	cfg := transformer.DefaultConfig()
	cfg.PackageDir = filepath.Join(repoRoot(e.t), "packages", "transforms", "twilio", "v1")
	cfg.Lookup = testEnv
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.StreamsApply = false
	cfg.Consumer.AckWait = 2 * time.Second
	cfg.Consumer.MaxDeliver = 5
	cfg.PublishTimeout = time.Second
	cfg.Retry = worker.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2}
	cfg.Now = func() time.Time { return cardTime }
	nc := e.srv.Conn(e.t)
	cfg.Conn = nc
	if mod != nil {
		mod(&cfg)
	}
	log := e.log
	if log == nil {
		log = zaptest.NewLogger(e.t)
	}
	svc, err := transformer.New(context.Background(), cfg, log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	e.t.Cleanup(func() { _ = stop() })
	return &running{svc: svc, nc: nc, stop: stop}
}

// raw publishes a raw request the way the ingester stores it.
func (e *env) raw(event, body, msgID string) {
	e.t.Helper()
	m := nats.NewMsg(streams.RawSubject(event))
	m.Data = []byte(body)
	m.Header.Set(zen.HeaderContentType, "application/x-www-form-urlencoded")
	m.Header.Set(zen.HeaderTwilioEvent, event)
	m.Header.Set(zen.HeaderReceivedAt, cardTime.Format(time.RFC3339Nano))
	m.Header.Set(zen.HeaderRequestID, "req-"+msgID)
	m.Header.Set(zen.HeaderMsgID, msgID)
	if _, err := e.js.PublishMsg(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) streamMsgs(name string) []*jetstream.RawStreamMsg {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(e.ctx, seq)
		if err == nil {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) eventKeys() []string {
	var keys []string
	for _, m := range e.streamMsgs(streams.StreamEvents) {
		keys = append(keys, m.Header.Get(zen.HeaderMsgID))
	}
	sort.Strings(keys)
	return keys
}

// drained waits until the transformer consumer has acked (or terminated)
// every message of TWILIO_RAW.
func (e *env) drained(timeout time.Duration) {
	e.t.Helper()
	natstest.CheckFor(e.t, timeout, func() error {
		return natstest.Drained(e.ctx, e.js, streams.StreamRaw, streams.ConsumerTransformer)
	})
}

func TestTransitionsAreKeptAndRetriesCollapse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(nil)
	for i, st := range []string{"queued", "sent", "delivered"} {
		e.raw("message-status", "MessageSid=SM1&MessageStatus="+st, fmt.Sprintf("m%d", i))
	}
	for i, st := range []string{"initiated", "ringing", "in-progress", "completed"} {
		e.raw("call-status", fmt.Sprintf("CallSid=CA1&CallStatus=%s&SequenceNumber=%d", st, i), fmt.Sprintf("c%d", i))
	}
	// A retried callback stored twice in TWILIO_RAW (different msg ids: e.g.
	// outside the raw duplicate window) still becomes one event.
	e.raw("message-status", "MessageSid=SM1&MessageStatus=delivered", "m2-retry")
	e.raw("message-status", "MessageStatus=delivered&MessageSid=SM1", "m2-retry-reordered")
	e.drained(20 * time.Second)
	want := []string{
		"tw-CA1.call.status.completed.3", "tw-CA1.call.status.in-progress.2", "tw-CA1.call.status.initiated.0", "tw-CA1.call.status.ringing.1",
		"tw-SM1.message.status.delivered", "tw-SM1.message.status.queued", "tw-SM1.message.status.sent",
	}
	if got := e.eventKeys(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ZEN_EVENTS keys:\n got %v\nwant %v", got, want)
	}
	// Raw messages are transformed concurrently: find a message.status
	// event rather than rely on the order they were stored in.
	ev := &jetstream.RawStreamMsg{}
	for _, m := range e.streamMsgs(streams.StreamEvents) {
		if m.Header.Get(zen.HeaderEventType) == "message.status" {
			ev = m
			break
		}
	}
	for _, h := range []string{zen.HeaderEventType, zen.HeaderPriority, zen.HeaderRawSeq, zen.HeaderDedupeKey, zen.HeaderRequestID} {
		if ev.Header.Get(h) == "" {
			t.Errorf("event lacks header %s", h)
		}
	}
	if got := ev.Header.Get(zen.HeaderPriority); got != "75" {
		t.Errorf("message.status priority = %s, want 75", got)
	}
	var body zen.Event
	if err := json.Unmarshal(ev.Data, &body); err != nil || body.Destination != "communications-warehouse" || body.EventType != "message.status" {
		t.Errorf("event body %s (%v)", ev.Data, err)
	}
}

func TestPoisonIsDeadLetteredWithEvidence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(nil)
	cases := map[string]struct{ event, body string }{
		"missing_required": {"message-status", "MessageStatus=sent"},
		"bad_conversion":   {"call-status", "CallSid=CA1&CallStatus=completed&CallDuration=forever"},
		"undecodable_body": {"message-status", "MessageSid=%zz"},
		"unknown_event":    {"unknown", "Foo=bar"},
	}
	for reason, c := range cases {
		e.raw(c.event, c.body, "poison-"+reason)
	}
	e.drained(20 * time.Second)
	dl := e.streamMsgs(streams.StreamDLQ)
	if len(dl) != len(cases) {
		t.Fatalf("DLQ has %d messages, want %d", len(dl), len(cases))
	}
	for _, m := range dl {
		reason := m.Header.Get(zen.HeaderReason)
		c, ok := cases[reason]
		if !ok {
			t.Errorf("unexpected reason %q", reason)
			continue
		}
		if m.Subject != "zen.dlq.transformer."+reason {
			t.Errorf("%s: subject %s", reason, m.Subject)
		}
		if string(m.Data) != c.body {
			t.Errorf("%s: body %q, want the original %q", reason, m.Data, c.body)
		}
		for _, h := range []string{zen.HeaderError, zen.HeaderStage, zen.HeaderDeliveries, zen.HeaderRequestID, zen.HeaderTwilioEvent, zen.HeaderOrigSubj} {
			if m.Header.Get(h) == "" {
				t.Errorf("%s: dead letter lacks %s", reason, h)
			}
		}
		if m.Header.Get(zen.HeaderDeliveries) != "1" {
			t.Errorf("%s: dead-lettered after %s deliveries, want at once (1)", reason, m.Header.Get(zen.HeaderDeliveries))
		}
	}
	if n := len(e.eventKeys()); n != 0 {
		t.Errorf("poison produced %d events", n)
	}
}

func TestTransientFailureIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.js.DeleteStream(e.ctx, streams.StreamEvents); err != nil {
		t.Fatal(err)
	}
	e.start(nil)
	e.raw("message-status", "MessageSid=SM5&MessageStatus=sent", "t1")
	// The event cannot be stored: the raw message must stay unacked.
	time.Sleep(500 * time.Millisecond) // let a few deliveries fail
	c, _ := e.js.Consumer(e.ctx, streams.StreamRaw, streams.ConsumerTransformer)
	info, _ := c.Info(e.ctx)
	if info.AckFloor.Stream != 0 {
		t.Fatalf("raw message acked although its event was never stored")
	}
	if len(e.streamMsgs(streams.StreamDLQ)) != 0 {
		t.Fatal("a transient failure was dead-lettered")
	}
	natstest.ApplyStreams(t, e.js, streams.DefaultConfig())
	e.drained(20 * time.Second)
	if got := e.eventKeys(); len(got) != 1 || got[0] != "tw-SM5.message.status.sent" {
		t.Errorf("after recovery ZEN_EVENTS = %v", got)
	}
}

// TestKilledReplicaLosesNothing: two transformers share the consumer; one is
// killed (its connection cut) mid-batch. Its unacked messages go to the
// other after AckWait; every request becomes exactly one event.
func TestKilledReplicaLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 400
	a := e.start(func(c *transformer.Config) { c.Concurrency = 8 })
	b := e.start(func(c *transformer.Config) { c.Concurrency = 8 })
	for i := 0; i < n; i++ {
		e.raw("message-status", fmt.Sprintf("MessageSid=SM%04d&MessageStatus=delivered", i), fmt.Sprintf("k%d", i))
	}
	natstest.CheckFor(t, 20*time.Second, func() error {
		if got := len(e.streamMsgs(streams.StreamEvents)); got < n/4 {
			return fmt.Errorf("%d events so far", got)
		}
		return nil
	})
	a.nc.Close() // the crash: no drain, no acks for what it holds
	_ = a.stop()
	e.drained(60 * time.Second)
	keys := e.eventKeys()
	seen := map[string]int{}
	for _, k := range keys {
		seen[k]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct events, want %d", len(seen), n)
	}
	if len(keys) != n {
		t.Errorf("ZEN_EVENTS holds %d messages for %d distinct keys: duplicates", len(keys), len(seen))
	}
	if err := b.stop(); err != nil {
		t.Errorf("surviving replica Run = %v", err)
	}
}

func TestOpsEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil)
	base := "http://" + r.svc.Addr().String()
	natstest.CheckFor(t, 5*time.Second, func() error {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			resp, err := http.Get(base + p)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: %d", p, resp.StatusCode)
			}
		}
		return nil
	})
	e.raw("message-status", "MessageSid=SM1&MessageStatus=sent", "x")
	e.drained(10 * time.Second)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, want := range []string{`zen_transformer_events_total{outcome="published",type="message.status"} 1`, "zen_worker_messages_total", "zen_transformer_transform_seconds"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}
