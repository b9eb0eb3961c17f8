package transformer_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/transformer"
)

// The transformer's retries follow its documented schedule (1 s doubling)
// with the shipped defaults against a real nats-server: with ZEN_EVENTS
// missing every event publish fails at once, and the consumer's NAK
// advisories come 1, 2 and 4 s apart. (With the consumer BackOff shipped
// before, the third came 32 s after the second.)
func TestShippedTransformerRetrySchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.js.DeleteStream(e.ctx, streams.StreamEvents); err != nil {
		t.Fatal(err)
	}
	nc := e.srv.Conn(t)
	var mu sync.Mutex
	var naks []time.Time
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED."+streams.StreamRaw+"."+streams.ConsumerTransformer, func(*nats.Msg) {
		mu.Lock()
		naks = append(naks, time.Now())
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e.start(func(c *transformer.Config) {
		d := transformer.DefaultConfig()
		d.Conn, d.PackageDir, d.Lookup, d.ListenAddr = c.Conn, filepath.Clean(c.PackageDir), c.Lookup, c.ListenAddr
		d.StreamsApply = false // ZEN_EVENTS stays missing
		*c = d
	})
	e.raw("message-status", "MessageSid=SMsched&MessageStatus=sent&AccountSid=AC1", "sched-1")
	var got []time.Time
	natstest.CheckFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got[:0], naks...)
		if len(got) < 4 {
			return fmt.Errorf("%d NAKs, want 4", len(got))
		}
		return nil
	})
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		gap := got[i+1].Sub(got[i])
		if gap < want-20*time.Millisecond || gap > want+900*time.Millisecond {
			t.Errorf("gap between NAK %d and %d = %s, want %s", i+1, i+2, gap.Round(time.Millisecond), want)
		}
	}
}
