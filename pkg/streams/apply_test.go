package streams_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
)

func TestApplyIsIdempotentAndSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg := streams.DefaultConfig()
	for i := 0; i < 2; i++ {
		if err := streams.Apply(ctx, js, cfg); err != nil {
			t.Fatalf("Apply #%d: %v", i+1, err)
		}
	}
	routes := []streams.Route{{Target: "communications-warehouse", EventTypes: []string{"message.incoming", "call.status"}}}
	for i := 0; i < 2; i++ {
		if err := streams.ApplyConsumers(ctx, js, streams.DefaultTransformerSettings(), streams.DefaultForwarderSettings(), routes); err != nil {
			t.Fatalf("ApplyConsumers #%d: %v", i+1, err)
		}
	}
	if err := streams.Check(ctx, js); err != nil {
		t.Fatalf("Check after Apply: %v", err)
	}

	raw, err := js.Stream(ctx, streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := raw.CachedInfo().Config.Duplicates, 10*time.Minute; got != want {
		t.Errorf("TWILIO_RAW duplicate window = %v, want %v", got, want)
	}
	cons, err := js.Consumer(ctx, streams.StreamEvents, "forwarder-communications-warehouse")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(cons.CachedInfo().Config.FilterSubjects, ","), "zen.events.message.incoming,zen.events.call.status"; got != want {
		t.Errorf("forwarder filter = %q, want %q", got, want)
	}

	// A changed setting converges on the next Apply.
	cfg.RawMaxAge = 48 * time.Hour
	if err := streams.Apply(ctx, js, cfg); err != nil {
		t.Fatalf("Apply with new retention: %v", err)
	}
	info, err := raw.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.Config.MaxAge, 48*time.Hour; got != want {
		t.Errorf("TWILIO_RAW MaxAge after update = %v, want %v", got, want)
	}

	// Streams live in the file store: a restarted server still has them.
	if _, err := js.Publish(ctx, streams.RawSubject("message-status"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	js2 := srv.JetStream(t)
	natstest.CheckFor(t, 10*time.Second, func() error { return streams.Check(ctx, js2) })
	s, err := js2.Stream(ctx, streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != 1 {
		t.Errorf("TWILIO_RAW messages after restart = %d, want 1", got)
	}
}

func TestCheckNamesMissingStreams(t *testing.T) {
	t.Parallel()
	js := natstest.Run(t).JetStream(t)
	err := streams.Check(context.Background(), js)
	if err == nil {
		t.Fatal("Check on an empty server = nil, want errors")
	}
	for _, name := range []string{"TWILIO_RAW", "ZEN_EVENTS", "ZEN_DLQ", "ZEN_ATTEMPTS"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Check error %q does not name %s", err, name)
		}
	}
	var _ jetstream.JetStream = js
}

func TestSubjectsAndKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, got, want string }{
		{"raw", streams.RawSubject("message-status"), "twilio.raw.message-status"},
		{"raw unsafe", streams.RawSubject("a.b*c"), "twilio.raw.a_b_c"},
		{"event", streams.EventSubject("message.status"), "zen.events.message.status"},
		{"dlq", streams.DLQSubject("transformer", "missing_required"), "zen.dlq.transformer.missing_required"},
		{"attempts", streams.AttemptsSubject("communications-warehouse"), "zen.attempts.communications-warehouse"},
		{"kv key", streams.KVKey("wh", "tw-SM123.message.status.delivered"), "wh.tw-SM123.message.status.delivered"},
		{"kv key unsafe", streams.KVKey("wh", "tw-a b..c*"), "wh.tw-a_b._.c_"},
		{"kv key trailing dot", streams.KVKey("wh", "tw-x."), "wh.tw-x._"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestConfigFromEnvListsEveryProblem(t *testing.T) {
	t.Parallel()
	r := envconf.New(envconf.MapLookup(map[string]string{
		"STREAM_REPLICAS": "2", "RAW_MAX_AGE": "soon", "DEDUPE_TTL": "-1h",
	}))
	streams.ConfigFromEnv(r)
	err := r.Err()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, v := range []string{"`STREAM_REPLICAS`", "`RAW_MAX_AGE`", "`DEDUPE_TTL`"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error %q does not name %s", err, v)
		}
	}
}
