package forwarder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
	"github.com/zen-twilio/zen/services/forwarder"
)

// BenchmarkDeliver is the forwarder's cost per event (claim, POST to a
// loopback target, record the attempt, ack): b.N events are published,
// then a forwarder drains them. ns/op is per event, NATS server included.
func BenchmarkDeliver(b *testing.B) {
	srv := natstest.Run(b)
	js := srv.JetStream(b)
	natstest.ApplyStreams(b, js, streams.DefaultConfig())
	ctx := context.Background()
	var got atomic.Int64
	wh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer wh.Close()
	ev := zen.Event{Destination: target, EventType: "message.status", Timestamp: "2026-06-24T10:00:00Z",
		Payload: zen.Payload{{Name: "message_sid", Value: "SM1"}, {Name: "message_status", Value: "delivered"},
			{Name: "account_sid", Value: "AC00000000000000000000000000000001"}, {Name: "processed_at", Value: "2026-06-24T10:00:00Z"}}}
	body, _ := json.Marshal(ev)
	for i := range b.N {
		key := fmt.Sprintf("tw-SM%032d.message.status.delivered", i)
		m := nats.NewMsg(streams.EventSubject("message.status"))
		m.Data = body
		m.Header.Set(zen.HeaderMsgID, key)
		m.Header.Set(zen.HeaderDedupeKey, key)
		m.Header.Set(zen.HeaderEventType, "message.status")
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()

	cfg := forwarder.DefaultConfig()
	cfg.PackageDir = filepath.Join("..", "..", "packages", "transforms", "twilio", "v1")
	cfg.Lookup = envconf.MapLookup(map[string]string{"COMMS_WAREHOUSE_URL": wh.URL, "COMMS_WAREHOUSE_TOKEN": testToken})
	cfg.Conn, cfg.DisableOps, cfg.StreamsApply = srv.Conn(b), true, false
	svc, err := forwarder.New(ctx, cfg, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	for got.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	stop()
	<-done
}
