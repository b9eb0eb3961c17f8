package ingester

import (
	"context"
	"errors"
	"net/textproto"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
)

// replyWith answers every request on subject with the next of replies,
// through a real NATS server: a stand-in for a stream whose acks the test
// chooses, so the library's own decoding is the oracle.
type replyWith struct {
	srv   *natstest.Server
	nc    *nats.Conn
	reply chan []byte
}

func newReplyWith(tb testing.TB, subject string) (*replyWith, *Service) {
	srv := natstest.Run(tb)
	r := &replyWith{srv: srv, nc: srv.Conn(tb), reply: make(chan []byte, 1)}
	sub, err := r.nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(<-r.reply) })
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := r.nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	nc := srv.Conn(tb)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return r, publishingService(tb, nc, js, 5*time.Second)
}

// publishingService is a Service that can publish (nothing else of it is
// set up).
func publishingService(tb testing.TB, nc *nats.Conn, js jetstream.JetStream, timeout time.Duration) *Service {
	r, err := natsconn.NewRequests(nc, timeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return &Service{nc: nc, js: js, cfg: Config{PublishTimeout: timeout}, requests: r}
}

// both publishes with the service's publish and with jetstream.PublishMsg,
// the stand-in answering each with ack, and returns the two errors.
func (r *replyWith) both(tb testing.TB, s *Service, subject string, ack []byte) (ours, lib error) {
	m := &nats.Msg{Subject: subject, Data: []byte("body"), Header: nats.Header{"Nats-Msg-Id": {"id"}}}
	r.reply <- ack
	ours = s.publish(context.Background(), m)
	r.reply <- ack
	_, lib = s.js.PublishMsg(context.Background(), m)
	return ours, lib
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Error() == b.Error()
}

// Every reply, whether natsconn.PubAck's fast check recognises it or not,
// ends as the library ends it: the same acceptance and the same error.
func TestPublishAgreesWithTheLibraryOnEveryReply(t *testing.T) {
	t.Parallel()
	const subj = "stand.in"
	r, s := newReplyWith(t, subj)
	for _, reply := range []string{
		`{"stream":"TWILIO_RAW","seq":1}`,
		`{"stream":"TWILIO_RAW","seq":0}`,
		`{"stream":"TWILIO_RAW","seq":00}`,
		`{"stream":"TWILIO_RAW","seq":01}`,
		`{"stream":"TWILIO_RAW","seq":18446744073709551615}`,
		`{"stream":"TWILIO_RAW","seq":7,"duplicate": true}`,
		`{"stream":"TWILIO_RAW","domain":"hub","seq":7}`,
		`{"stream":"TWILIO_RAW","domain":"","seq":7}`,
		`{"stream":"TWILIO_RAW","seq":7,"batch":"b1","count":3}`,
		`{"stream": "TWILIO_RAW", "seq": 7}`,
		`{"stream":"TWILIO_RAW","seq":7,"duplicate":true}`,
		`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"TWILIO_RAW","seq":0}`,
		`{"stream":"TWILIO_RAW","seq":0,"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}`,
		`{"stream":"TWILIO_RAW","seq":1,"Error":{"code":500,"description":"case-insensitive key"}}`,
		`{"stream":"","seq":1}`,
		`{"stream":"a\"b","seq":1}`,
		`{"stream":"TWILIO_RAW","seq":1`,
		`{"stream":"TWILIO_RAW","seq":}`,
		`{"seq":1}`,
		`+OK`,
		`null`,
		``,
	} {
		ours, lib := r.both(t, s, subj, []byte(reply))
		if !sameError(ours, lib) {
			t.Errorf("reply %s: publish = %v, jetstream.PublishMsg = %v", reply, ours, lib)
		}
		var apiErr *jetstream.APIError
		if errors.As(lib, &apiErr) && !errors.As(ours, &apiErr) {
			t.Errorf("reply %s: the stream's error %v is not a *jetstream.APIError in publish's error %v", reply, lib, ours)
		}
	}
}

// Against a real stream: a new message, its retry (a duplicate), a stream
// that refuses, and a subject no stream listens on.
func TestPublishAgainstARealStream(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	cfg := streams.DefaultConfig()
	natstest.ApplyStreams(t, js, cfg)
	nc := srv.Conn(t)
	sjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := publishingService(t, nc, sjs, 2*time.Second)

	msg := func(subject, id string) *nats.Msg {
		return &nats.Msg{Subject: subject, Data: []byte("MessageSid=SM1"), Header: nats.Header{"Nats-Msg-Id": {id}}}
	}
	subj := streams.RawSubject(EventMessageStatus)
	if err := s.publish(context.Background(), msg(subj, "h-1")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := s.publish(context.Background(), msg(subj, "h-1")); err != nil {
		t.Fatalf("publish of a duplicate: %v", err)
	}
	raw, err := js.Stream(ctx, streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := raw.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("TWILIO_RAW: %v messages (%v), want 1 (h-1 once)", info.State.Msgs, err)
	}

	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FULL", Subjects: []string{"full.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	if err := s.publish(context.Background(), msg("full.a", "f-1")); err != nil {
		t.Fatal(err)
	}
	err = s.publish(context.Background(), msg("full.a", "f-2"))
	_, lib := sjs.PublishMsg(ctx, msg("full.a", "f-3"))
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || !sameError(err, lib) {
		t.Errorf("a full stream: publish = %v, want the library's %v", err, lib)
	}

	start := time.Now()
	err = s.publish(context.Background(), msg("nostream.a", "n-1"))
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("no stream on the subject: %v, want %v", err, jetstream.ErrNoStreamResponse)
	}
	// The library retries "no responders" (a leader election) before giving up.
	if took := time.Since(start); took < 2*jetstream.DefaultPubRetryWait {
		t.Errorf("no stream: gave up after %s, before the library's %d retries", took, jetstream.DefaultPubRetryAttempts)
	}
}

// BenchmarkPublish: the request path's publish against the library call it
// replaces, in one run, over a real server with TWILIO_RAW's settings and
// the ingester's evidence headers. 32 publishers, as under load.
func BenchmarkPublish(b *testing.B) {
	srv := natstest.Run(b)
	natstest.ApplyStreams(b, srv.JetStream(b), streams.DefaultConfig())
	nc := srv.Conn(b)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	s := publishingService(b, nc, js, 5*time.Second)
	subj := streams.RawSubject(EventMessageStatus)
	var n atomic.Int64
	msg := func() *nats.Msg {
		i := n.Add(1)
		m := &nats.Msg{Subject: subj, Data: []byte("MessageSid=SM" + strconv.FormatInt(i, 10) + "&MessageStatus=delivered"), Header: make(nats.Header, 10)}
		m.Header.Set("Content-Type", ctForm)
		m.Header.Set("X-Twilio-Signature", "bm90IGEgcmVhbCBzaWduYXR1cmUh")
		m.Header.Set("X-Twilio-Event", EventMessageStatus)
		m.Header.Set("Zen-Request-Id", "0123456789abcdef0123456789abcdef")
		m.Header.Set("Zen-Received-At", "2026-11-28T17:00:00.123456789Z")
		m.Header.Set("Zen-Request-Url", "https://hooks.example.com/webhooks/twilio/message-status")
		m.Header.Set("Nats-Msg-Id", "h-"+strconv.FormatInt(i, 10))
		return m
	}
	for _, bc := range []struct {
		name string
		pub  func(*nats.Msg) error
	}{
		{"jetstream.PublishMsg", func(m *nats.Msg) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := js.PublishMsg(ctx, m)
			return err
		}},
		{"publish", func(m *nats.Msg) error { return s.publish(context.Background(), m) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := natstest.ProcessCPU(b)
			defer func() { b.ReportMetric(float64(natstest.ProcessCPU(b)-cpu0)/float64(b.N), "cpu-ns/op") }()
			b.SetParallelism(16) // 32 publishers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.pub(msg()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// The handler sets the evidence headers without canonicalising their keys,
// so Header.Get finds them only if they are canonical already.
func TestEvidenceHeaderKeysAreCanonical(t *testing.T) {
	t.Parallel()
	for _, k := range []string{zen.HeaderContentType, zen.HeaderTwilioSignature, zen.HeaderTwilioEvent, zen.HeaderIdempotencyToken,
		zen.HeaderRequestID, zen.HeaderReceivedAt, zen.HeaderRequestURL, HeaderRequestMethod, zen.HeaderMsgID} {
		if c := textproto.CanonicalMIMEHeaderKey(k); c != k {
			t.Errorf("header %q is not canonical (%q)", k, c)
		}
	}
}
