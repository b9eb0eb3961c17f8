package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
	"github.com/zen-twilio/zen/services/forwarder"
)

// A target that is down longer than the schedule gets a dead letter; once it
// is back, `zen replay dlq` delivers the event exactly once, and repeating
// the replay changes nothing. `zen replay event` is acked without a POST
// unless --force.
func TestReplayDeadLetterAfterTargetRecovers(t *testing.T) {
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var up atomic.Bool
	var mu sync.Mutex
	posts := map[string]int{}
	wh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		posts[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer wh.Close()
	count := func(key string) int { mu.Lock(); defer mu.Unlock(); return posts[key] }

	cfg := forwarder.DefaultConfig()
	cfg.PackageDir = filepath.Join(testRoot(t), "packages", "transforms", "twilio", "v1")
	cfg.Lookup = envconf.MapLookup(map[string]string{"COMMS_WAREHOUSE_URL": wh.URL, "COMMS_WAREHOUSE_TOKEN": "test-token-not-a-secret"})
	cfg.Conn, cfg.DisableOps, cfg.StreamsApply = srv.Conn(t), true, false
	cfg.Consumer.MaxDeliver, cfg.Consumer.AckWait = 2, 5*time.Second
	cfg.Retry = worker.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2}
	cfg.HTTPTimeout = time.Second
	fw, err := forwarder.New(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fw.Run(runCtx) }()
	defer func() { stop(); <-done }()

	key := "tw-SMREPLAY.message.status.delivered"
	ev, _ := json.Marshal(zen.Event{Destination: "x", EventType: "message.status", Timestamp: "2026-06-24T10:00:00Z",
		Payload: zen.Payload{{Name: "message_sid", Value: "SMREPLAY"}}})
	m := nats.NewMsg(streams.EventSubject("message.status"))
	m.Data = ev
	m.Header.Set(zen.HeaderMsgID, key)
	m.Header.Set(zen.HeaderDedupeKey, key)
	m.Header.Set(zen.HeaderEventType, "message.status")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}

	cli := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, append(args, "--nats-url", srv.URL), &out, &errOut); code != 0 {
			t.Fatalf("zen %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	natstest.CheckFor(t, 20*time.Second, func() error {
		if out := cli("replay", "dlq", "--list", "--stage", "forwarder"); !strings.Contains(out, "http_503") {
			return fmt.Errorf("no http_503 dead letter yet:\n%s", out)
		}
		return nil
	})

	up.Store(true)
	out := cli("replay", "dlq", "--stage", "forwarder")
	if !strings.Contains(out, "replayed 1 dead letters") {
		t.Errorf("replay dlq printed:\n%s", out)
	}
	natstest.CheckFor(t, 20*time.Second, func() error {
		if n := count(key); n != 1 {
			return fmt.Errorf("%d POSTs", n)
		}
		return nil
	})
	if out := cli("replay", "dlq"); !strings.Contains(out, "replayed 0 dead letters") {
		t.Errorf("second replay printed:\n%s", out)
	}

	// The event's stream sequence is 1; the replayed copy is 2.
	cli("replay", "event", "1")
	waitForwarderIdle(t, srv)
	if n := count(key); n != 1 {
		t.Errorf("%d POSTs after replay event without --force, want 1", n)
	}
	out = cli("replay", "event", "1", "--force", "--package", cfg.PackageDir)
	if !strings.Contains(out, "forgot the delivery") {
		t.Errorf("replay event --force printed:\n%s", out)
	}
	natstest.CheckFor(t, 20*time.Second, func() error {
		if n := count(key); n != 2 {
			return fmt.Errorf("%d POSTs after --force, want 2", n)
		}
		return nil
	})
}

func waitForwarderIdle(t *testing.T, srv *natstest.Server) {
	t.Helper()
	js := srv.JetStream(t)
	natstest.CheckFor(t, 20*time.Second, func() error {
		c, err := js.Consumer(context.Background(), streams.StreamEvents, streams.ForwarderConsumer("communications-warehouse"))
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending+uint64(info.NumAckPending) != 0 {
			return fmt.Errorf("pending %d ack pending %d", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// deadLetter stores one dead letter shaped as the worker builds it.
func deadLetter(t *testing.T, js jetstream.JetStream, stage, name, origSubj, eventType, key string, seq uint64) {
	t.Helper()
	h := nats.Header{}
	if eventType != "" {
		h.Set(zen.HeaderEventType, eventType)
	}
	if key != "" {
		h.Set(zen.HeaderDedupeKey, key)
	}
	reason := name
	if stage == streams.StageForwarder {
		reason = "http_422"
		if strings.HasPrefix(key, "tw-CA") {
			reason = "http_503"
		}
	}
	m := worker.BuildDeadLetter(origSubj, h, []byte(`{}`), worker.DeadLetterInfo{
		Subject: streams.DLQSubject(stage, name), Stage: stage, Reason: reason, Err: fmt.Errorf("%s", reason),
		Stream: "ORIGIN", Consumer: stage, StreamSeq: seq, Deliveries: 5,
	})
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// Every filter of `zen replay` selects what it names, a flag that does not
// apply to the kind is refused with exit 2, and --dry-run and --list change
// nothing.
func TestReplayFlags(t *testing.T) {
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	const cw, an = "communications-warehouse", "analytics"
	fw := streams.StageForwarder
	// Six 422s to the warehouse, then (after `between`) one 503 to the
	// warehouse, one 422 to analytics and one transformer dead letter.
	for i := range 6 {
		deadLetter(t, js, fw, cw, "zen.events.message.status", "message.status", fmt.Sprintf("tw-SM%d.message.status.failed", i), uint64(i+1))
	}
	time.Sleep(20 * time.Millisecond)
	between := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(20 * time.Millisecond)
	deadLetter(t, js, fw, cw, "zen.events.call.status", "call.status", "tw-CA1.call.status.completed", 7)
	deadLetter(t, js, fw, an, "zen.events.message.status", "message.status", "tw-SM9.message.status.failed", 8)
	deadLetter(t, js, streams.StageTransformer, "missing_required", "twilio.raw.message-status", "", "", 9)

	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runZen(t, append(args, "--nats-url", srv.URL)...)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "raw", "--since", "1h", "--force"}, "--force does not apply to replay raw"},
		{[]string{"replay", "dlq", "--seq", "3"}, "--seq does not apply to replay dlq"},
		{[]string{"replay", "dlq", "--force", "--package", "x"}, "--force, --package does not apply"},
		{[]string{"replay", "event", "1", "--reason", "http_422"}, "--reason does not apply to replay event"},
		{[]string{"replay", "event", "1", "--dry-run"}, "--dry-run does not apply to replay event"},
		{[]string{"replay", "dlq", "--stage", "transformer", "--target", cw}, "--target names a forwarder target"},
		{[]string{"replay", "dlq", "--filter", "zen.dlq.>", "--stage", "forwarder"}, "--filter replaces --stage"},
		{[]string{"replay", "dlq", "--list", "--dry-run"}, "not both"},
		{[]string{"replay", "dlq", "--since", "10m", "--until", "1h"}, "--until is before --since"},
	} {
		code, _, errOut := cli(tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("zen %s: exit %d, stderr %q; want exit 2 saying %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}

	counts := []struct {
		args []string
		want int
	}{
		{[]string{"--reason", "http_422"}, 7},
		{[]string{"--reason", "http_422", "--target", cw}, 6},
		{[]string{"--target", an}, 1},
		{[]string{"--stage", "transformer"}, 1},
		{[]string{"--reason", "missing_required"}, 1},
		{[]string{"--event", "message.status"}, 7},
		{[]string{"--event", "call.status"}, 1},
		{[]string{"--event", "message-status"}, 1},
		{[]string{"--until", between}, 6},
		{[]string{"--since", between}, 3},
		{[]string{"--since", between, "--stage", "forwarder", "--reason", "http_422"}, 1},
		{[]string{"--reason", "http_422", "--limit", "2"}, 2},
		{[]string{"--reason", "http_404"}, 0},
	}
	for _, tc := range counts {
		args := append([]string{"replay", "dlq", "--list"}, tc.args...)
		code, out, errOut := cli(args...)
		if want := fmt.Sprintf("%d dead letters (listed only)", tc.want); code != 0 || !strings.Contains(out, want) {
			t.Errorf("zen %s: exit %d\n%s%s\nwant %q", strings.Join(args, " "), code, out, errOut, want)
		}
	}

	code, out, errOut := cli("replay", "dlq", "--reason", "http_422", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: 7 dead letters would be replayed (5 shown); nothing was sent") {
		t.Errorf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	if rows := strings.Count(out, "tw-SM"); rows != 5 {
		t.Errorf("dry run showed %d dead letters, want a sample of 5:\n%s", rows, out)
	}
	if !strings.Contains(out, "tw-SM0.message.status.failed") || !strings.Contains(out, "http_422") {
		t.Errorf("dry run does not show the dedupe key and the reason:\n%s", out)
	}
	stored := func() uint64 {
		t.Helper()
		s, err := js.Stream(context.Background(), streams.StreamDLQ)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	if n := stored(); n != 9 {
		t.Fatalf("ZEN_DLQ holds %d dead letters after --list and --dry-run, want all 9", n)
	}

	code, out, errOut = cli("replay", "dlq", "--target", an, "--reason", "http_422")
	if code != 0 || !strings.Contains(out, "replayed 1 dead letters") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	if n := stored(); n != 8 {
		t.Errorf("ZEN_DLQ holds %d dead letters after replaying one, want 8", n)
	}
	ev, err := js.Stream(context.Background(), streams.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ev.GetLastMsgForSubject(context.Background(), "zen.events.message.status")
	if err != nil {
		t.Fatal(err)
	}
	if k := got.Header.Get(zen.HeaderDedupeKey); k != "tw-SM9.message.status.failed" {
		t.Errorf("replayed event has dedupe key %q, want the analytics dead letter's", k)
	}
}

// `zen replay raw` states its exactly-once limit (issue 22): how long
// zen_dedupe remembers a delivery, and how many of the requests replayed
// were stored longer ago than that.
func TestReplayRawStatesTheDedupeLimit(t *testing.T) {
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	ctx := context.Background()
	for _, event := range []string{"message-status", "verification-status"} {
		m := nats.NewMsg(streams.RawSubject(event))
		m.Data = []byte("AccountSid=AC1")
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	saved := lookupEnv
	lookupEnv = envconf.MapLookup(map[string]string{"DEDUPE_TTL": "1s", "DEDUPE_LONG_TTL": "1h"})
	defer func() { lookupEnv = saved }()
	time.Sleep(1100 * time.Millisecond) // the message-status request is now older than DEDUPE_TTL
	code, out, errs := runZen(t, "replay", "raw", "--since", "1h", "--list", "--nats-url", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	want := "exactly-once limit: zen_dedupe remembers a delivery for DEDUPE_TTL=1s (verification.status: DEDUPE_LONG_TTL=1h0m0s); 1 of these 2 requests were stored longer ago"
	if !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}
