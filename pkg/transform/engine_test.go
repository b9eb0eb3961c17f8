package transform_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/transform"
)

func TestDedupeKeys(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	for _, tc := range []struct {
		name, event, body, want string
	}{
		{"incoming message", "incoming-message", "MessageSid=SM1&From=%2B1555&To=%2B1666&Body=hi", "tw-SM1.message.incoming"},
		{"message queued", "message-status", "MessageSid=SM1&MessageStatus=queued", "tw-SM1.message.status.queued"},
		{"message sent", "message-status", "MessageSid=SM1&MessageStatus=sent&SmsStatus=sent", "tw-SM1.message.status.sent"},
		{"message delivered via SmsStatus only", "message-status", "MessageSid=SM1&SmsStatus=delivered", "tw-SM1.message.status.delivered"},
		{"call status without sequence", "call-status", "CallSid=CA4&CallStatus=completed", "tw-CA4.call.status.completed"},
		{"call status with sequence", "call-status", "CallSid=CA4&CallStatus=ringing&SequenceNumber=0", "tw-CA4.call.status.ringing.0"},
		{"recording", "recording-status", "RecordingSid=RE1&CallSid=CA4&RecordingStatus=completed", "tw-RE1.recording.status.completed"},
		{"verification form", "verification-status", "VerificationSid=VE1&Status=approved", "tw-VE1.verification.status.approved"},
		{"conference recording", "recording-status", "RecordingSid=RE2&ConferenceSid=CF1&RecordingStatus=completed", "tw-RE2.recording.status.completed"},
		{"conversations message added", "conversation-event", "EventType=onMessageAdded&ConversationSid=CH1&MessageSid=IM1", "tw-IM1.conversation.message.added"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs, err := e.Transform(tc.event, "application/x-www-form-urlencoded", []byte(tc.body), cardTime)
			if err != nil {
				t.Fatal(err)
			}
			if got := rs[0].DedupeKey; got != tc.want {
				t.Errorf("DedupeKey = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStatusTransitionsAreDistinctEvents(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	keys := map[string]bool{}
	for _, st := range []string{"queued", "sent", "delivered", "delivered"} {
		rs, err := e.Transform("message-status", "", []byte("MessageSid=SM9&MessageStatus="+st), cardTime)
		if err != nil {
			t.Fatal(err)
		}
		keys[rs[0].DedupeKey] = true
	}
	if len(keys) != 3 {
		t.Errorf("queued, sent, delivered, delivered gave %d keys, want 3: %v", len(keys), keys)
	}
}

func TestCloudEventsArrayGivesOneEventEach(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	body := `[{"id":"EZ1","type":"com.twilio.accountsecurity.verify.verification.pending","data":{"verification_sid":"VE1","verification_status":"PENDING"}},
	          {"id":"EZ2","type":"com.twilio.accountsecurity.verify.verification.approved","data":{"verification_sid":"VE1","verification_status":"APPROVED"}}]`
	rs, err := e.Transform("verification-status", "application/json; charset=utf-8", []byte(body), cardTime)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("got %d events, want 2", len(rs))
	}
	// Each key ends with the CloudEvent id (discriminators are lower-cased).
	if rs[0].DedupeKey != "tw-VE1.verification.status.pending.ez1" || rs[1].DedupeKey != "tw-VE1.verification.status.approved.ez2" {
		t.Errorf("keys = %q, %q", rs[0].DedupeKey, rs[1].DedupeKey)
	}
}

// TestUnknownParametersAreKept: a parameter no rule maps never fails the
// request and gets no field of its own; it reaches the warehouse in the
// twilio object, untouched (issue 25: nothing Twilio sends is lost).
func TestUnknownParametersAreKept(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	rs, err := e.Transform("message-status", "", []byte("MessageSid=SM1&MessageStatus=sent&BrandNewTwilioField=x&AddOns=%7B%22status%22%3A%22successful%22%7D"), cardTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rs[0].Event.Payload {
		if f.Name == "twilio" {
			continue
		}
		b, _ := json.Marshal(f.Value)
		if contains(string(b), "BrandNew") || contains(string(b), "successful") {
			t.Errorf("unknown parameter leaked into field %s: %s", f.Name, b)
		}
	}
	tw, _ := rs[0].Event.Payload.Get("twilio")
	m, _ := tw.(map[string]any)
	if m["BrandNewTwilioField"] != "x" || m["AddOns"] != `{"status":"successful"}` {
		t.Errorf("twilio = %#v, want the unknown parameters as sent", tw)
	}
}

func TestEmptyErrorCodeIsAbsent(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	rs, err := e.Transform("message-status", "", []byte("MessageSid=SM1&MessageStatus=delivered&ErrorCode="), cardTime)
	if err != nil {
		t.Fatalf("ErrorCode= must not fail the integer conversion: %v", err)
	}
	if _, ok := rs[0].Event.Payload.Get("error_code"); ok {
		t.Error("empty ErrorCode produced an error_code field")
	}
}

func TestRuleErrors(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	for _, tc := range []struct {
		name, event, ctype, body, reason string
	}{
		{"missing required", "message-status", "", "MessageStatus=sent", transform.ReasonMissingRequired},
		{"bad integer", "call-status", "", "CallSid=CA1&CallStatus=completed&CallDuration=long", transform.ReasonBadConversion},
		{"bad time", "call-status", "", "CallSid=CA1&CallStatus=completed&Timestamp=yesterday", transform.ReasonBadConversion},
		{"undecodable form", "message-status", "", "MessageSid=%zz", transform.ReasonUndecodableBody},
		{"undecodable json", "verification-status", "application/json", "[{", transform.ReasonUndecodableBody},
		{"json scalar element", "verification-status", "application/json", "[1]", transform.ReasonUndecodableBody},
		{"unknown event", "unknown", "", "Foo=bar", transform.ReasonUnknownEvent},
		{"unsupported content type", "message-status", "text/plain", "hi", transform.ReasonUnsupportedContent},
		{"conversations event no rule maps", "conversation-event", "", "EventType=onUserAdded&ChatServiceSid=IS1&ConversationSid=CH1", transform.ReasonNoMatchingRule},
		{"cloudevent of an unmapped type", "event-streams", "application/json", `[{"specversion":"1.0","id":"EZ1","type":"com.twilio.studio.flow.started","data":{}}]`, transform.ReasonNoMatchingRule},
		{"media count lies", "incoming-message", "", "MessageSid=MM1&From=a&To=b&NumMedia=2&MediaUrl0=x", transform.ReasonBadConversion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.Transform(tc.event, tc.ctype, []byte(tc.body), cardTime)
			if err == nil {
				t.Fatal("Transform succeeded, want an error")
			}
			if got := transform.ReasonOf(err); got != tc.reason {
				t.Errorf("ReasonOf(%v) = %q, want %q", err, got, tc.reason)
			}
			var re *transform.RuleError
			if !errors.As(err, &re) {
				t.Errorf("error %T is not a *RuleError", err)
			}
		})
	}
	if _, err := e.FromForm("unknown", url.Values{}, cardTime); !errors.Is(err, transform.ErrUnknownEvent) {
		t.Errorf("unknown event error %v is not ErrUnknownEvent", err)
	}
}

func TestClockAndReceivedTime(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	received := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("X", 3600))
	rs, err := e.Transform("message-status", "", []byte("MessageSid=SM1&MessageStatus=sent"), received)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rs[0].Event.Timestamp, "2026-01-02T02:04:05.6Z"; got != want {
		t.Errorf("timestamp = %q, want %q (UTC, RFC 3339)", got, want)
	}
	if v, _ := rs[0].Event.Payload.Get("processed_at"); v != "2026-06-24T10:00:00Z" {
		t.Errorf("processed_at = %v, want the injected clock", v)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestCloudEventPicksItsRuleWhateverTheURL: a sink at one family's URL
// still transforms another family's CloudEvent by its type.
func TestCloudEventPicksItsRuleWhateverTheURL(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	body := `[{"specversion":"1.0","id":"EZ9","type":"com.twilio.messaging.message.sent","data":{"messageSid":"SM9","messageStatus":"SENT"}}]`
	rs, err := e.Transform("verification-status", "application/json", []byte(body), cardTime)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rs[0].DedupeKey, "tw-SM9.message.status.sent"; got != want {
		t.Errorf("DedupeKey = %q, want %q", got, want)
	}
}
