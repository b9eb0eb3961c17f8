package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
)

// TestClusterSurvivesLeaderRestart proves the cluster harness: R3 streams
// keep accepting publishes while their leader is stopped and restarted.
func TestClusterSurvivesLeaderRestart(t *testing.T) {
	t.Parallel()
	c := natstest.RunCluster(t, 3)
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := streams.DefaultConfig()
	cfg.Replicas = 3
	natstest.CheckFor(t, 30*time.Second, func() error { return streams.Apply(ctx, js, cfg) })

	s, err := js.Stream(ctx, streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	leader := s.CachedInfo().Cluster.Leader
	idx := c.Index(leader)
	if idx < 0 {
		t.Fatalf("leader %q is not a node of the cluster", leader)
	}
	c.Stop(idx)
	published := 0
	natstest.CheckFor(t, 60*time.Second, func() error {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		if _, err := js.Publish(pctx, streams.RawSubject("message-status"), []byte("x")); err != nil {
			return err
		}
		published++
		return nil
	})
	c.Start(t, idx)
	c.WaitReady(t, 60*time.Second)
	natstest.CheckFor(t, 60*time.Second, func() error {
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != uint64(published) {
			t.Fatalf("TWILIO_RAW has %d messages, want %d", info.State.Msgs, published)
		}
		return nil
	})
}
