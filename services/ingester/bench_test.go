package ingester

import (
	"net/url"
	"testing"

	"github.com/zen-twilio/zen/pkg/twiliosig"
)

// BenchmarkRequestPath is the ingester's CPU work per request without NATS:
// parse the form, verify the signature, resolve the event, compute the
// de-duplication id.
func BenchmarkRequestPath(b *testing.B) {
	const u = "https://hooks.example.com/webhooks/twilio/message-status"
	body := "SmsSid=SM00000000000000000000000000000002&SmsStatus=delivered&MessageStatus=delivered&To=%2B15558675310&MessagingServiceSid=MG00000000000000000000000000000001&MessageSid=SM00000000000000000000000000000002&AccountSid=AC00000000000000000000000000000001&From=%2B15017122661&ApiVersion=2010-04-01"
	form, _ := url.ParseQuery(body)
	sig := twiliosig.Sign(u, form, "bench-token")
	v, _ := twiliosig.NewVerifier([]string{"bench-token"})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		params, err := url.ParseQuery(body)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.VerifyForm(u, params, sig); err != nil {
			b.Fatal(err)
		}
		if ev := Resolve("message-status", params, nil, nil); ev != EventMessageStatus {
			b.Fatal(ev)
		}
		_ = msgID("", u, params, nil)
	}
}

func TestResolveTable(t *testing.T) {
	t.Parallel()
	q := func(s string) url.Values { v, _ := url.ParseQuery(s); return v }
	for _, tc := range []struct {
		name, path string
		params     url.Values
		json       string
		want       string
	}{
		{"path", "verification-status", nil, "", EventVerificationStatus},
		{"unknown path falls back to inference", "bogus", q("CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed"), "", EventRecordingStatus},
		{"infer sms", "", q("MessageSid=SM1&SmsStatus=received&Body=x"), "", EventIncomingMessage},
		{"infer mms", "", q("MessageSid=MM1&NumMedia=1&MediaUrl0=u"), "", EventIncomingMessage},
		{"infer message status", "", q("MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003"), "", EventMessageStatus},
		{"infer incoming call", "", q("CallSid=CA1&CallStatus=ringing"), "", EventIncomingCall},
		{"infer call status", "", q("CallSid=CA1&CallStatus=in-progress&CallbackSource=call-progress-events"), "", EventCallStatus},
		{"infer call completed", "", q("CallSid=CA1&CallStatus=completed"), "", EventCallStatus},
		{"infer recording", "", q("CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed"), "", EventRecordingStatus},
		{"infer verification form", "", q("VerificationSid=VE1&Status=approved"), "", EventVerificationStatus},
		{"infer verify cloudevents", "", nil, `[{"type":"com.twilio.accountsecurity.verify.verification.approved"}]`, EventVerificationStatus},
		{"infer verify message cloudevents", "", nil, `[{"type":"com.twilio.accountsecurity.verify.message.delivered"}]`, EventVerificationStatus},
		// Issue 25: Event Streams messaging and voice CloudEvents, and
		// Conversations webhooks (which carry MessageSid and Body too).
		{"infer messaging cloudevents", "", nil, `[{"type":"com.twilio.messaging.message.sent"}]`, EventStreams},
		{"infer voice cloudevents", "", nil, `[{"type":"com.twilio.voice.status-callback.call.completed"}]`, EventStreams},
		{"path event-streams", "event-streams", nil, `[{"type":"com.twilio.messaging.message.sent"}]`, EventStreams},
		{"infer conversations message", "", q("EventType=onMessageAdded&ConversationSid=CH1&MessageSid=IM1&Body=hi&Author=ana"), "", EventConversation},
		{"path conversation-event", "conversation-event", q("EventType=onConversationAdded&ConversationSid=CH1"), "", EventConversation},
		{"other cloudevent", "", nil, `[{"type":"com.twilio.studio.flow.started"}]`, EventUnknown},
		{"nothing known", "", q("Foo=bar"), "", EventUnknown},
	} {
		var js []byte
		if tc.json != "" {
			js = []byte(tc.json)
		}
		if got := Resolve(tc.path, tc.params, js, nil); got != tc.want {
			t.Errorf("%s: Resolve = %q, want %q", tc.name, got, tc.want)
		}
	}
}
