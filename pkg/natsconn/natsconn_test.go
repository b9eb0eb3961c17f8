package natsconn

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
)

// observed is what a connection subscribed to ">" saw: every subject and
// reply subject that crossed the server.
type observed struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func (o *observed) add(m *nats.Msg) { o.mu.Lock(); o.msgs = append(o.msgs, m); o.mu.Unlock() }

func (o *observed) all() []*nats.Msg {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*nats.Msg(nil), o.msgs...)
}

// Every reply subject of a connection made by Settings.Connect starts with
// its inbox prefix: JetStream API requests, a synchronous and an
// asynchronous publish acknowledgement, a Requests publish, and a pull
// (its MSG.NEXT request and the delivery). Nothing travels on _INBOX. This
// is what lets auth.conf give each service user its own prefix only.
func TestConnectUsesTheInboxPrefix(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	var seen observed
	obs := srv.Conn(t)
	if _, err := obs.Subscribe(">", seen.add); err != nil {
		t.Fatal(err)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}

	s := DefaultSettings("ingester")
	s.URL = srv.URL
	nc, err := s.Connect("zen-test", zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	prefix := InboxPrefix("ingester") + "."
	exerciseInboxes(t, nc)

	natstest.CheckFor(t, 10*time.Second, func() error {
		var pull, delivery bool
		for _, m := range seen.all() {
			pull = pull || strings.HasPrefix(m.Subject, "$JS.API.CONSUMER.MSG.NEXT.INBOX.")
			// A delivery keeps its stream subject; it goes to the pull
			// request's reply subject, checked below.
			delivery = delivery || strings.HasPrefix(m.Reply, "$JS.ACK.INBOX.")
		}
		if !pull || !delivery {
			return fmt.Errorf("pull request seen %v, delivery seen %v", pull, delivery)
		}
		return nil
	})
	replies := 0
	for _, m := range seen.all() {
		if strings.HasPrefix(m.Subject, nats.InboxPrefix) || strings.HasPrefix(m.Reply, nats.InboxPrefix) {
			t.Errorf("%s (reply %q) uses nats.go's default inbox", m.Subject, m.Reply)
		}
		if strings.HasPrefix(m.Subject, "$JS.API.") || (strings.HasPrefix(m.Subject, "inbox.") && !strings.HasPrefix(m.Reply, "$JS.ACK.")) {
			replies++
			if !strings.HasPrefix(m.Reply, prefix) {
				t.Errorf("request %s replies to %q, want the prefix %s", m.Subject, m.Reply, prefix)
			}
		}
	}
	if replies < 6 {
		t.Errorf("saw %d requests, want at least 6 (stream create, 3 publishes, consumer create, pull)", replies)
	}
}

// exerciseInboxes makes, on nc, each kind of request a service makes.
func exerciseInboxes(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "INBOX", Subjects: []string{"inbox.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "inbox.sync", []byte("a")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	fut, err := js.PublishAsync("inbox.async", []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-fut.Ok():
	case err := <-fut.Err():
		t.Fatalf("async publish: %v", err)
	case <-ctx.Done():
		t.Fatal("async publish: no ack")
	}
	r := startRequests(t, nc, 5*time.Second)
	if _, err := r.Do(&nats.Msg{Subject: "inbox.requests", Data: []byte("c")}); err != nil {
		t.Fatalf("Requests.Do: %v", err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "pull", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.Ack(); err != nil {
			t.Errorf("ack: %v", err)
		}
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
}

// NATS_INBOX_PREFIX overrides the service's default; a value that is not a
// literal subject prefix is refused, naming the variable.
func TestSettingsFromEnvInboxPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value, want string
		fails             bool
	}{
		{name: "unset: the service's own", want: "_INBOX_forwarder"},
		{name: "set", value: "_INBOX_forwarder_blue", want: "_INBOX_forwarder_blue"},
		{name: "several tokens", value: "_I.forwarder", want: "_I.forwarder"},
		{name: "wildcard", value: "_INBOX_*", fails: true},
		{name: "full wildcard", value: "_INBOX.>", fails: true},
		{name: "trailing dot", value: "_INBOX_forwarder.", fails: true},
		{name: "empty token", value: "_I..forwarder", fails: true},
		{name: "space", value: "_INBOX forwarder", fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			if tc.value != "" {
				env["NATS_INBOX_PREFIX"] = tc.value
			}
			r := envconf.New(envconf.MapLookup(env))
			s := SettingsFromEnv(r, DefaultSettings("forwarder"))
			if err := r.Err(); (err != nil) != tc.fails {
				t.Fatalf("err = %v, want failure %v", err, tc.fails)
			} else if err != nil {
				if !strings.Contains(err.Error(), "NATS_INBOX_PREFIX") {
					t.Errorf("error %q does not name NATS_INBOX_PREFIX", err)
				}
				return
			}
			if s.InboxPrefix != tc.want {
				t.Errorf("InboxPrefix = %q, want %q", s.InboxPrefix, tc.want)
			}
			if s.URL != nats.DefaultURL {
				t.Errorf("URL = %q, want the default %q", s.URL, nats.DefaultURL)
			}
		})
	}
}
