package ingester_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/streams"
)

// A captured, validly signed request replayed with another X-Twilio-Event
// (and a fresh idempotency token, so JetStream's duplicate window does not
// catch it) is stored as what its signed path and parameters say, never as
// an event of the header's type. (The replay is a second raw copy of the
// same callback; the transformer gives it the same tw- dedupe key, so the
// warehouse receives one event.)
func TestXTwilioEventCannotRetype(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	const body = "AccountSid=" + accountA + "&MessageSid=SM77&MessageStatus=delivered"
	for i, tc := range []struct{ path, header string }{
		{"/webhooks/twilio/message-status", ""},                 // the capture
		{"/webhooks/twilio/message-status", "incoming-message"}, // replays
		{"/webhooks/twilio/message-status", "call-status"},
		{"/webhooks/twilio", "incoming-message"}, // resolved by the signed parameters
		{"/webhooks/twilio", "verification-status"},
	} {
		hdr := map[string]string{"I-Twilio-Idempotency-Token": fmt.Sprintf("fresh-%d", i)}
		if tc.header != "" {
			hdr["X-Twilio-Event"] = tc.header
		}
		code, answerBody := e.postForm(tc.path, body, authToken, hdr)
		if code != 200 || answerBody != "" {
			t.Errorf("%s with X-Twilio-Event %q: %d %q, want 200 and the empty answer of a status callback (not TwiML)", tc.path, tc.header, code, answerBody)
		}
	}
	s, err := e.js.Stream(context.Background(), streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != 1 || info.State.Subjects["twilio.raw.message-status"] != 5 {
		t.Errorf("TWILIO_RAW subjects = %v, want only twilio.raw.message-status (5)", info.State.Subjects)
	}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get("X-Twilio-Event"); got != "message-status" {
			t.Errorf("raw message %d stored with X-Twilio-Event %q, want message-status", seq, got)
		}
	}
}

// Twilio sends no X-Twilio-Event, and may call /webhooks/twilio: every
// fixture posted that way is stored under its family's subject.
func TestFixturesResolveWithoutHeaderOrPath(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, fx := range loadFixtures(t) {
		body, _ := fx.Bytes()
		var code int
		if fx.IsJSON() {
			code, _ = e.postJSON("/webhooks/twilio", string(body), authToken)
		} else {
			code, _ = e.postForm("/webhooks/twilio", string(body), authToken, map[string]string{"I-Twilio-Idempotency-Token": "tok-" + fx.Name})
		}
		if code != 200 {
			t.Fatalf("%s: status %d", fx.Name, code)
		}
		if m := e.lastRaw("twilio.raw." + fx.Event()); string(m.Data) != string(body) {
			t.Errorf("%s: not the last message on twilio.raw.%s: resolved to another event", fx.Name, fx.Event())
		}
	}
}
