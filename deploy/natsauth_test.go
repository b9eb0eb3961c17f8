package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
	"github.com/zen-twilio/zen/services/forwarder"
	"github.com/zen-twilio/zen/services/ingester"
	"github.com/zen-twilio/zen/services/transformer"
)

// jobSettings are the stream and consumer settings the prod Job applies,
// with one replica (the live server is a single node).
func jobSettings(t *testing.T) (streams.Config, streams.ConsumerSettings, streams.ConsumerSettings) {
	t.Helper()
	r := mustRender(t, "prod")
	job := one[*jobT](t, r, "zen-streams-apply")
	rd := envconf.New(lookupFor(r.env(t, job.Spec.Template.Spec.Containers[0]), map[string]string{"STREAM_REPLICAS": "1"}))
	cfg := streams.ConfigFromEnv(rd)
	ts := streams.ConsumerSettingsFromEnv(rd, "TRANSFORMER_", streams.DefaultTransformerSettings())
	fs := streams.ConsumerSettingsFromEnv(rd, "FORWARDER_", streams.DefaultForwarderSettings())
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg, ts, fs
}

// inboxUsers are the users whose inboxes are private: each may subscribe
// to its own inbox prefix only (issue 24). admin keeps _INBOX.
var inboxUsers = []string{"provisioner", "ingester", "transformer", "forwarder"}

// inboxPrefixes returns the inbox prefix each user connects with in the
// prod overlay: a stage's is what its own ConfigFromEnv reads from its
// rendered environment (the prefix its Settings.Connect uses); the
// provisioner's is read as `zen streams apply` reads it (cmd/zen/streams.go
// natsOptions; a main package cannot be imported) from the Job's.
func inboxPrefixes(t *testing.T) map[string]string {
	t.Helper()
	r := mustRender(t, "prod")
	env := func(stage string) envconf.Lookup {
		_, c := r.stage(t, stage)
		return lookupFor(r.env(t, c), nil)
	}
	ic, err := ingester.ConfigFromEnv(env("ingester"))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := transformer.ConfigFromEnv(env("transformer"))
	if err != nil {
		t.Fatal(err)
	}
	fc, err := forwarder.ConfigFromEnv(env("forwarder"))
	if err != nil {
		t.Fatal(err)
	}
	job := one[*jobT](t, r, "zen-streams-apply")
	jr := envconf.New(lookupFor(r.env(t, job.Spec.Template.Spec.Containers[0]), nil))
	prov := natsconn.InboxPrefixFromEnv(jr, natsconn.InboxPrefix("provisioner"))
	if err := jr.Err(); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"ingester": ic.NATS.InboxPrefix, "transformer": tc.NATS.InboxPrefix,
		"forwarder": fc.NATS.InboxPrefix, "provisioner": prov}
}

// stageCapacity is the capacity check a stage runs at start, as its
// rendered environment declares it.
func stageCapacity(t *testing.T, stage string) streams.Capacity {
	t.Helper()
	r := mustRender(t, "prod")
	_, c := r.stage(t, stage)
	rd := envconf.New(lookupFor(r.env(t, c), nil))
	capacity := streams.CapacityFromEnv(rd)
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	if capacity.Limits.MaxStore != 0 {
		t.Fatalf("%s declares NATS_MAX_STORE: the check would not ask the server, and this test would prove nothing", stage)
	}
	return capacity
}

// TestNATSPermissions starts a real nats-server with the auth.conf the prod
// overlay ships and proves, user by user, that each can do its job (the
// same JetStream calls the services and `zen streams apply` make) and
// cannot publish or subscribe where it must not.
func TestNATSPermissions(t *testing.T) {
	url := startNATS(t)
	// A denied request gets no answer, only an asynchronous error: keep the
	// wait for one short.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg, tset, fset := jobSettings(t)
	rts := routes(t)
	if len(rts) == 0 {
		t.Fatal("the package routes no events")
	}
	target := rts[0].Target

	t.Run("no anonymous or wrong-password clients", func(t *testing.T) {
		if nc, err := nats.Connect(url); err == nil {
			nc.Close()
			t.Errorf("anonymous connection accepted")
		}
		if nc, err := nats.Connect(url, nats.UserInfo("ingester", "wrong")); err == nil {
			nc.Close()
			t.Errorf("wrong password accepted")
		}
	})

	t.Run("provisioner applies streams, bucket and consumers", func(t *testing.T) {
		nc, _ := connectAs(t, url, "provisioner")
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // create, then update: `zen streams apply` is re-run
			if err := streams.Apply(ctx, js, cfg); err != nil {
				t.Fatalf("apply %d: streams.Apply as provisioner: %v", i, err)
			}
			if err := streams.ApplyConsumers(ctx, js, tset, fset, rts); err != nil {
				t.Fatalf("apply %d: streams.ApplyConsumers as provisioner: %v", i, err)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	var rawSeq uint64
	t.Run("ingester publishes raw requests", func(t *testing.T) {
		nc, _ := connectAs(t, url, "ingester")
		js, _ := jetstream.New(nc)
		m := nats.NewMsg(streams.RawSubject("incoming-message"))
		m.Header.Set(zen.HeaderMsgID, "deploy-test-1")
		m.Data = []byte("MessageSid=SM1&Body=hi")
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatalf("publish %s: %v", m.Subject, err)
		}
		rawSeq = ack.Sequence
		if err := streams.Check(ctx, js); err != nil {
			t.Errorf("/readyz's streams.Check: %v", err)
		}
		// streams.WarnCapacity at start: the account info ($JS.API.INFO).
		if _, err := streams.CheckCapacity(ctx, js, cfg, stageCapacity(t, "ingester")); err != nil {
			t.Errorf("start-up capacity check: %v", err)
		}
	})

	t.Run("transformer consumes raw, publishes events and its dead letters", func(t *testing.T) {
		nc, _ := connectAs(t, url, "transformer")
		admin, _ := connectAs(t, url, "admin")
		js, _ := jetstream.New(nc)
		// What transformer.Service.consumer does, STREAMS_APPLY=false or not.
		cons, err := js.CreateOrUpdateConsumer(ctx, streams.StreamRaw, streams.TransformerConsumer(tset))
		if err != nil {
			t.Fatalf("converge consumer %s: %v", streams.ConsumerTransformer, err)
		}
		if _, err := cons.Info(ctx); err != nil {
			t.Errorf("consumer info: %v", err)
		}
		msg := fetchOne(ctx, t, cons)
		if err := msg.InProgress(); err != nil {
			t.Errorf("in progress: %v", err)
		}
		ev := nats.NewMsg(streams.EventSubject("message.incoming"))
		ev.Header.Set(zen.HeaderMsgID, "tw-SM1.message.incoming")
		ev.Data = []byte(`{"event_type":"message.incoming"}`)
		if _, err := js.PublishMsg(ctx, ev); err != nil {
			t.Errorf("publish event: %v", err)
		}
		dl := nats.NewMsg(streams.DLQSubject(streams.StageTransformer, "unknown_event"))
		dl.Header.Set(zen.HeaderMsgID, "TWILIO_RAW:transformer:1")
		if _, err := js.PublishMsg(ctx, dl); err != nil {
			t.Errorf("publish dead letter: %v", err)
		}
		// The MAX_DELIVERIES watcher reads the raw message back.
		s, err := js.Stream(ctx, streams.StreamRaw)
		if err != nil {
			t.Fatalf("stream info: %v", err)
		}
		if _, err := s.GetMsg(ctx, rawSeq); err != nil {
			t.Errorf("get raw message %d: %v", rawSeq, err)
		}
		if err := msg.DoubleAck(ctx); err != nil {
			t.Errorf("ack: %v", err)
		}
		subscribeReceives(t, nc, admin, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.TWILIO_RAW.transformer")
		if err := streams.Check(ctx, js); err != nil {
			t.Errorf("/readyz's streams.Check: %v", err)
		}
		// streams.WarnCapacity at start: the account info ($JS.API.INFO).
		if _, err := streams.CheckCapacity(ctx, js, cfg, stageCapacity(t, "transformer")); err != nil {
			t.Errorf("start-up capacity check: %v", err)
		}
	})

	t.Run("forwarder consumes events, writes the dedupe bucket, attempts and its dead letters", func(t *testing.T) {
		nc, _ := connectAs(t, url, "forwarder")
		admin, _ := connectAs(t, url, "admin")
		js, _ := jetstream.New(nc)
		for _, rt := range rts {
			cc, err := streams.ForwarderConsumerConfig(rt.Target, rt.EventTypes, fset)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.CreateOrUpdateConsumer(ctx, streams.StreamEvents, cc); err != nil {
				t.Fatalf("converge consumer %s: %v", cc.Durable, err)
			}
		}
		cons, err := js.Consumer(ctx, streams.StreamEvents, streams.ForwarderConsumer(target))
		if err != nil {
			t.Fatalf("bind %s: %v", streams.ForwarderConsumer(target), err)
		}
		msg := fetchOne(ctx, t, cons)

		kv, err := js.KeyValue(ctx, streams.BucketDedupe)
		if err != nil {
			t.Fatalf("bind kv %s: %v", streams.BucketDedupe, err)
		}
		key := streams.KVKey(target, "tw-SM1.message.incoming")
		rev, err := kv.Create(ctx, key, []byte("pending:1"))
		if err != nil {
			t.Fatalf("kv create: %v", err)
		}
		if _, err := kv.Create(ctx, key, []byte("pending:2")); !errors.Is(err, jetstream.ErrKeyExists) {
			t.Errorf("second kv create = %v, want ErrKeyExists", err)
		}
		if e, err := kv.Get(ctx, key); err != nil || string(e.Value()) != "pending:1" {
			t.Errorf("kv get = %v, %v", e, err)
		}
		if rev, err = kv.Update(ctx, key, []byte("pending:3"), rev); err != nil {
			t.Errorf("kv update: %v", err)
		}
		if err := kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
			t.Errorf("kv delete: %v", err)
		}
		if _, err := kv.Create(ctx, key, []byte("pending:4")); err != nil { // over a delete marker
			t.Errorf("kv create after delete: %v", err)
		}
		if _, err := kv.Put(ctx, key, []byte("delivered:4:0")); err != nil {
			t.Errorf("kv put: %v", err)
		}

		att := nats.NewMsg(streams.AttemptsSubject(target))
		att.Data = []byte(`{"outcome":"delivered"}`)
		fut, err := js.PublishMsgAsync(att)
		if err != nil {
			t.Fatalf("publish attempt: %v", err)
		}
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			t.Errorf("attempt record: %v", err)
		case <-ctx.Done():
			t.Errorf("attempt record not acknowledged")
		}
		dl := nats.NewMsg(streams.DLQSubject(streams.StageForwarder, target))
		dl.Header.Set(zen.HeaderMsgID, "ZEN_EVENTS:forwarder:1")
		if _, err := js.PublishMsg(ctx, dl); err != nil {
			t.Errorf("publish dead letter: %v", err)
		}
		s, err := js.Stream(ctx, streams.StreamEvents)
		if err != nil {
			t.Fatalf("stream info: %v", err)
		}
		meta, _ := msg.Metadata()
		if _, err := s.GetMsg(ctx, meta.Sequence.Stream); err != nil {
			t.Errorf("get event back: %v", err)
		}
		if err := msg.DoubleAck(ctx); err != nil {
			t.Errorf("ack: %v", err)
		}
		subscribeReceives(t, nc, admin, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ZEN_EVENTS."+streams.ForwarderConsumer(target))
		if err := streams.Check(ctx, js); err != nil {
			t.Errorf("/readyz's streams.Check: %v", err)
		}
		if _, err := streams.CheckCapacity(ctx, js, cfg, stageCapacity(t, "forwarder")); err != nil {
			t.Errorf("start-up capacity check: %v", err)
		}
	})

	// What each user must not do. Publishing to a JetStream API subject is a
	// request to change or read something; subscribing to a stream's subjects
	// would read its messages without a consumer.
	denied := map[string][]string{
		"ingester": {
			"pub zen.events.message.incoming", "pub zen.dlq.transformer.x", "pub zen.attempts.x", "pub $KV.zen_dedupe.x",
			"pub $JS.API.STREAM.CREATE.EVIL", "pub $JS.API.STREAM.DELETE.TWILIO_RAW", "pub $JS.API.STREAM.PURGE.TWILIO_RAW",
			"pub $JS.API.STREAM.MSG.GET.TWILIO_RAW", "pub $JS.API.CONSUMER.CREATE.TWILIO_RAW.transformer",
			"pub $JS.API.CONSUMER.MSG.NEXT.TWILIO_RAW.transformer",
			"sub twilio.raw.>", "sub zen.events.>", "sub >",
		},
		"transformer": {
			"pub twilio.raw.incoming-message", "pub zen.attempts.x", "pub zen.dlq.forwarder.x", "pub $KV.zen_dedupe.x",
			"pub $JS.API.STREAM.DELETE.TWILIO_RAW", "pub $JS.API.STREAM.PURGE.ZEN_EVENTS", "pub $JS.API.STREAM.UPDATE.TWILIO_RAW",
			"pub $JS.API.STREAM.MSG.DELETE.TWILIO_RAW", "pub $JS.API.CONSUMER.DELETE.TWILIO_RAW.transformer",
			"pub $JS.API.CONSUMER.CREATE.TWILIO_RAW.other", "pub $JS.API.CONSUMER.CREATE.ZEN_EVENTS.forwarder-x",
			"pub $JS.API.CONSUMER.MSG.NEXT.ZEN_EVENTS." + streams.ForwarderConsumer(target),
			"pub $JS.API.DIRECT.GET.KV_zen_dedupe.$KV.zen_dedupe.x",
			"sub twilio.raw.>", "sub zen.events.>", "sub $JS.EVENT.ADVISORY.>",
		},
		"forwarder": {
			"pub twilio.raw.incoming-message", "pub zen.events.message.incoming", "pub zen.dlq.transformer.x",
			"pub $KV.other.x", "pub $JS.API.STREAM.DELETE.ZEN_EVENTS", "pub $JS.API.STREAM.PURGE.ZEN_DLQ",
			"pub $JS.API.STREAM.UPDATE.KV_zen_dedupe", "pub $JS.API.STREAM.MSG.GET.TWILIO_RAW",
			"pub $JS.API.CONSUMER.CREATE.TWILIO_RAW.transformer", "pub $JS.API.CONSUMER.MSG.NEXT.TWILIO_RAW.transformer",
			"pub $JS.API.CONSUMER.DELETE.ZEN_EVENTS." + streams.ForwarderConsumer(target),
			"sub zen.events.>", "sub $KV.zen_dedupe.>", "sub twilio.raw.>",
		},
		"provisioner": {
			"pub twilio.raw.incoming-message", "pub zen.events.message.incoming", "pub $KV.zen_dedupe.x",
			"pub $JS.API.STREAM.DELETE.TWILIO_RAW", "pub $JS.API.STREAM.PURGE.TWILIO_RAW", "pub $JS.API.STREAM.CREATE.EVIL",
			"pub $JS.API.STREAM.MSG.GET.TWILIO_RAW", "pub $JS.API.CONSUMER.MSG.NEXT.TWILIO_RAW.transformer",
			"pub $JS.API.CONSUMER.DELETE.TWILIO_RAW.transformer",
			"sub twilio.raw.>", "sub zen.events.>",
		},
	}
	// Replies and pull deliveries travel on inboxes: no user may read
	// another's, nor all of them (_INBOX.>, or any first token).
	inboxes := inboxPrefixes(t)
	for _, user := range inboxUsers {
		denied[user] = append(denied[user], "sub _INBOX.>", "sub _INBOX.*", "sub *.>", "sub *.*")
		for _, other := range inboxUsers {
			if other != user {
				denied[user] = append(denied[user], "sub "+inboxes[other]+".>", "sub "+inboxes[other]+".guessed")
			}
		}
	}
	for _, user := range []string{"ingester", "transformer", "forwarder", "provisioner"} {
		t.Run(user+" is denied", func(t *testing.T) {
			nc, log := connectAs(t, url, user)
			for _, op := range denied[user] {
				verb, subj, _ := strings.Cut(op, " ")
				var want string
				if verb == "pub" {
					if err := nc.Publish(subj, []byte("x")); err != nil {
						t.Fatalf("publish %s: %v", subj, err)
					}
					want = `permissions violation for publish to "` + subj + `"`
				} else {
					if _, err := nc.SubscribeSync(subj); err != nil {
						t.Fatalf("subscribe %s: %v", subj, err)
					}
					want = `permissions violation for subscription to "` + subj + `"`
				}
				if err := nc.Flush(); err != nil {
					t.Fatalf("flush: %v", err)
				}
				if err := log.waitFor(want, 5*time.Second); err != nil {
					t.Errorf("%s may %s %s: %v", user, verb, subj, err)
				}
			}
		})
	}

	t.Run("each user reads its own inbox, and only through it gets replies", func(t *testing.T) {
		admin, _ := connectAs(t, url, "admin")
		for _, user := range inboxUsers {
			if inboxes[user] == "" || inboxes[user] == strings.TrimSuffix(nats.InboxPrefix, ".") {
				t.Errorf("%s connects with inbox prefix %q: it must have its own", user, inboxes[user])
				continue
			}
			nc, _ := connectAs(t, url, user)
			subscribeReceives(t, nc, admin, inboxes[user]+".deploy-test")
		}
		// With nats.go's default prefix a service user's JetStream calls get
		// no reply: the permission, not the client's choice, keeps inboxes
		// private. The denied subscription is reported at once; the request
		// itself waits for its (short) context.
		for _, user := range inboxUsers {
			t.Run(user, func(t *testing.T) {
				t.Parallel()
				nc, log := connectInbox(t, url, user, "")
				js, _ := jetstream.New(nc)
				short, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if _, err := js.Stream(short, streams.StreamRaw); err == nil {
					t.Errorf("%s got a stream info reply on %s", user, nats.InboxPrefix)
				}
				if err := log.waitFor(`permissions violation for subscription to "`+nats.InboxPrefix, 5*time.Second); err != nil {
					t.Errorf("%s may subscribe to its replies on %s: %v", user, nats.InboxPrefix, err)
				}
			})
		}
	})

	t.Run("nothing was changed by the denied requests", func(t *testing.T) {
		admin, _ := connectAs(t, url, "admin")
		js, _ := jetstream.New(admin)
		names := js.StreamNames(ctx)
		var got []string
		for n := range names.Name() {
			got = append(got, n)
		}
		if err := names.Err(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 {
			t.Errorf("streams %v, want the four streams and KV_zen_dedupe", got)
		}
		for stream, want := range map[string]uint64{streams.StreamRaw: 1, streams.StreamEvents: 1, streams.StreamDLQ: 2} {
			s, err := js.Stream(ctx, stream)
			if err != nil {
				t.Errorf("stream %s: %v", stream, err)
				continue
			}
			if got := s.CachedInfo().State.Msgs; got != want {
				t.Errorf("stream %s holds %d messages, want %d (only the allowed publishes)", stream, got, want)
			}
		}
		if _, err := js.Consumer(ctx, streams.StreamRaw, streams.ConsumerTransformer); err != nil {
			t.Errorf("consumer transformer: %v", err)
		}
	})
}

// fetchOne pulls one message from cons (CONSUMER.MSG.NEXT), as the workers do.
func fetchOne(ctx context.Context, t *testing.T, cons jetstream.Consumer) jetstream.Msg {
	t.Helper()
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for m := range batch.Messages() {
		return m
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	t.Fatalf("fetch: no message")
	return nil
}

// subscribeReceives proves nc may subscribe to subj: the admin publishes a
// message there and nc's subscription receives it.
func subscribeReceives(t *testing.T, nc, admin *nats.Conn, subj string) {
	t.Helper()
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatalf("subscribe %s: %v", subj, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Publish(subj, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("subscription to %s received nothing: %v", subj, err)
	}
}
