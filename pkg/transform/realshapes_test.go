package transform_test

import (
	"testing"

	"github.com/zen-twilio/zen/pkg/transform"
)

// The tests of this file are the seven defects of issue 25, each a shape
// Twilio really sends that today's rules lost or mislabelled.

func mustOne(t *testing.T, e *transform.Engine, event, ctype, body string) transform.Result {
	t.Helper()
	rs, err := e.Transform(event, ctype, []byte(body), cardTime)
	if err != nil {
		t.Fatalf("Transform(%s): %v", event, err)
	}
	if len(rs) != 1 {
		t.Fatalf("Transform(%s) = %d events, want 1", event, len(rs))
	}
	return rs[0]
}

func wantField(t *testing.T, r transform.Result, name string, want any) {
	t.Helper()
	got, ok := r.Event.Payload.Get(name)
	if !ok {
		t.Errorf("%s: payload has no %s", r.Event.EventType, name)
		return
	}
	if got != want {
		t.Errorf("%s: %s = %#v, want %#v", r.Event.EventType, name, got, want)
	}
}

// Defect 1: a Voice SDK / TwiML App call has To and Called empty.
func TestVoiceSDKCallWithEmptyTo(t *testing.T) {
	t.Parallel()
	r := mustOne(t, mustEngine(t), "incoming-call", "",
		"CallSid=CA1&AccountSid=AC1&ApplicationSid=AP1&CallStatus=ringing&Direction=inbound&From=client%3Aalice&Caller=client%3Aalice&To=&Called=")
	if got, want := r.DedupeKey, "tw-CA1.call.incoming"; got != want {
		t.Errorf("DedupeKey = %q, want %q", got, want)
	}
	wantField(t, r, "from_number", "client:alice")
	wantField(t, r, "application_sid", "AP1")
}

// Defect 2: a conference recording carries ConferenceSid and no CallSid.
func TestConferenceRecordingByRecordingSid(t *testing.T) {
	t.Parallel()
	r := mustOne(t, mustEngine(t), "recording-status", "",
		"AccountSid=AC1&ConferenceSid=CF1&RecordingSid=RE1&RecordingStatus=completed&RecordingSource=StartConferenceRecordingAPI&RecordingTrack=both&RecordingChannels=2")
	if got, want := r.DedupeKey, "tw-RE1.recording.status.completed"; got != want {
		t.Errorf("DedupeKey = %q, want %q", got, want)
	}
	wantField(t, r, "conference_sid", "CF1")
	wantField(t, r, "recording_track", "both")
}

// Defect 3: two Verify CloudEvents of one verification and status (a resend
// on another channel) are two events; a redelivered CloudEvent is one.
func TestVerifyCloudEventIdInDedupeKey(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	ev := func(id, channel string) string {
		return `{"specversion":"1.0","id":"` + id + `","type":"com.twilio.accountsecurity.verify.verification.pending","data":{"verification_sid":"VE1","verification_status":"PENDING",` +
			`"send_code_attempts":{"count":2,"attempts":[{"channel":"SMS","attempt_sid":"VL1"},{"channel":"` + channel + `","attempt_sid":"VL2"}]}}}`
	}
	rs, err := e.Transform("verification-status", "application/json", []byte("["+ev("EZ1", "SMS")+","+ev("EZ2", "WHATSAPP")+","+ev("EZ1", "SMS")+"]"), cardTime)
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].DedupeKey == rs[1].DedupeKey {
		t.Errorf("distinct CloudEvents collapse into key %q", rs[0].DedupeKey)
	}
	if rs[0].DedupeKey != rs[2].DedupeKey {
		t.Errorf("a redelivered CloudEvent has a new key: %q vs %q", rs[0].DedupeKey, rs[2].DedupeKey)
	}
	if got, want := rs[1].DedupeKey, "tw-VE1.verification.status.pending.ez2"; got != want {
		t.Errorf("DedupeKey = %q, want %q", got, want)
	}
	wantField(t, rs[1], "channel", "whatsapp")
	if v, ok := rs[1].Event.Payload.Get("send_code_attempts"); !ok || len(v.([]any)) != 2 {
		t.Errorf("send_code_attempts = %v, want both attempts", v)
	}
}

// Defect 4: WhatsApp content (location, buttons, profile, replies).
func TestWhatsAppContent(t *testing.T) {
	t.Parallel()
	r := mustOne(t, mustEngine(t), "incoming-message", "",
		"MessageSid=SM1&AccountSid=AC1&From=whatsapp%3A%2B1555&To=whatsapp%3A%2B1666&Body=&NumMedia=0&ProfileName=Ana&WaId=1555"+
			"&Latitude=52.52&Longitude=13.40&Address=Alexanderplatz&Label=Office&ButtonPayload=yes_1&ButtonText=Yes&OriginalRepliedMessageSid=SM0")
	for name, want := range map[string]string{"latitude": "52.52", "longitude": "13.40", "address": "Alexanderplatz", "label": "Office",
		"button_payload": "yes_1", "button_text": "Yes", "profile_name": "Ana", "wa_id": "1555", "original_replied_message_sid": "SM0"} {
		wantField(t, r, name, want)
	}
}

// Defect 5: real parameters that never reached the warehouse.
func TestDocumentedParametersReachTheEvent(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	in := mustOne(t, e, "incoming-message", "", "MessageSid=SM1&AccountSid=AC1&From=%2B1&To=%2B2&Body=hi")
	wantField(t, in, "account_sid", "AC1")
	st := mustOne(t, e, "message-status", "", "MessageSid=SM1&MessageStatus=delivered&RawDlrDoneDate=2606241000&ChannelToAddress=%2B1666&ChannelPrefix=whatsapp&EventType=DELIVERED&ChannelStatusMessage=ok")
	for name, want := range map[string]string{"raw_dlr_done_date": "2606241000", "channel_to_address": "+1666", "channel_prefix": "whatsapp", "event_type": "DELIVERED", "channel_status_message": "ok"} {
		wantField(t, st, name, want)
	}
	call := mustOne(t, e, "call-status", "", "CallSid=CA1&CallStatus=completed&SipResponseCode=200&StirVerstat=TN-Validation-Passed-A&AnsweredBy=human&Duration=2&CallDuration=73&FromCity=BERLIN&ToState=CA")
	wantField(t, call, "sip_response_code", int64(200))
	wantField(t, call, "stir_verstat", "TN-Validation-Passed-A")
	wantField(t, call, "answered_by", "human")
	wantField(t, call, "call_duration_minutes", int64(2))
	wantField(t, call, "call_duration_seconds", int64(73))
	wantField(t, call, "caller_city", "BERLIN")
	wantField(t, call, "callee_state", "CA")
	// Nothing is lost: every parameter travels in the twilio object.
	tw, ok := call.Event.Payload.Get("twilio")
	if m, isMap := tw.(map[string]any); !ok || !isMap || m["SipResponseCode"] != "200" {
		t.Errorf("twilio = %#v, want every parameter", tw)
	}
}

// Defect 6: Verify's message-status CloudEvents have their own type and status.
func TestVerifyMessageStatusEvents(t *testing.T) {
	t.Parallel()
	body := `[{"specversion":"1.0","id":"EZ1","type":"com.twilio.accountsecurity.verify.message.sent","data":{"verification_sid":"VE1","attempt_sid":"VL1","message_status":"SENT","channel":"SMS"}},
	          {"specversion":"1.0","id":"EZ2","type":"com.twilio.accountsecurity.verify.message.delivered","data":{"verification_sid":"VE1","attempt_sid":"VL1","message_status":"DELIVERED","channel":"SMS"}}]`
	rs, err := mustEngine(t).Transform("verification-status", "application/json", []byte(body), cardTime)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].DedupeKey == rs[1].DedupeKey {
		t.Fatalf("got %d events with keys %v, want 2 distinct", len(rs), rs)
	}
	for i, want := range []string{"sent", "delivered"} {
		if got := rs[i].Event.EventType; got != "verification.message.status" {
			t.Errorf("event %d type = %q, want verification.message.status", i, got)
		}
		wantField(t, rs[i], "message_status", want)
	}
}

// Defect 7: Event Streams messaging and voice status CloudEvents, in one
// mixed batch, give the classic callback's event and key; Conversations
// post-event webhooks are their own family.
func TestEventStreamsAndConversations(t *testing.T) {
	t.Parallel()
	e := mustEngine(t)
	body := `[{"specversion":"1.0","id":"EZa","type":"com.twilio.messaging.message.delivered","data":{"messageSid":"SM1","messageStatus":"DELIVERED","to":"+1666","from":"+1555","accountSid":"AC1"}},
	          {"specversion":"1.0","id":"EZb","type":"com.twilio.voice.status-callback.call.completed","data":{"sid":"CA1","request":{"method":"POST","parameters":{"CallSid":"CA1","CallStatus":"completed","SequenceNumber":"3","CallDuration":"73"}}}}]`
	rs, err := e.Transform("event-streams", "application/json", []byte(body), cardTime)
	if err != nil {
		t.Fatal(err)
	}
	classicMsg := mustOne(t, e, "message-status", "", "MessageSid=SM1&MessageStatus=delivered")
	classicCall := mustOne(t, e, "call-status", "", "CallSid=CA1&CallStatus=completed&SequenceNumber=3")
	if len(rs) != 2 {
		t.Fatalf("got %d events, want 2", len(rs))
	}
	for i, want := range []transform.Result{classicMsg, classicCall} {
		if rs[i].Event.EventType != want.Event.EventType || rs[i].DedupeKey != want.DedupeKey {
			t.Errorf("CloudEvent %d = %s %s, want the classic callback's %s %s", i, rs[i].Event.EventType, rs[i].DedupeKey, want.Event.EventType, want.DedupeKey)
		}
	}
	conv := mustOne(t, e, "conversation-event", "",
		"EventType=onMessageAdded&AccountSid=AC1&ChatServiceSid=IS1&ConversationSid=CH1&MessageSid=IM1&ParticipantSid=MB1&Author=ana&Body=hi&Index=0&Source=SMS")
	if got, want := conv.Event.EventType, "conversation.message.added"; got != want {
		t.Errorf("Conversations onMessageAdded = %q, want %q", got, want)
	}
	if got, want := conv.DedupeKey, "tw-IM1.conversation.message.added"; got != want {
		t.Errorf("DedupeKey = %q, want %q", got, want)
	}
}
