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
