package ingester

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
)

// The Twilio webhook events the ingester can resolve (DESIGN.md "Event types").
const (
	EventIncomingMessage    = "incoming-message"
	EventMessageStatus      = "message-status"
	EventIncomingCall       = "incoming-call"
	EventCallStatus         = "call-status"
	EventRecordingStatus    = "recording-status"
	EventVerificationStatus = "verification-status"
	// EventStreams is an Event Streams sink: CloudEvents of any family,
	// each transformed by its own type.
	EventStreams = "event-streams"
	// EventConversation is a Conversations post-event webhook.
	EventConversation = "conversation-event"
	EventUnknown      = "unknown"
)

var knownEvents = map[string]bool{
	EventIncomingMessage: true, EventMessageStatus: true, EventIncomingCall: true,
	EventCallStatus: true, EventRecordingStatus: true, EventVerificationStatus: true,
	EventStreams: true, EventConversation: true,
}

// verifyEventPrefix begins the CloudEvent types of Verify (Event Streams):
// verification status (….verify.verification.<status>) and the delivery of
// each send-code attempt (….verify.message.<status>), both rules of
// verification-status.
const verifyEventPrefix = "com.twilio.accountsecurity.verify."

// Resolve returns the Twilio event of a request from what its signature
// covers: the last path segment when it names a known event (the path is
// part of the signed URL); else inferred from the signed parameters or
// CloudEvents; else EventUnknown (stored, then dead-lettered by the
// transformer, never dropped). The X-Twilio-Event header is not an input:
// it is unsigned and real Twilio never sends it, so a replayed request with
// another header would otherwise be stored as an event of another type.
func Resolve(pathEvent string, params url.Values, jsonBody []byte, known map[string]bool) string {
	if known == nil {
		known = knownEvents
	}
	if p := strings.ToLower(pathEvent); known[p] {
		return p
	}
	if jsonBody != nil {
		return inferJSON(jsonBody)
	}
	return inferForm(params)
}

func inferJSON(body []byte) string {
	var items []struct {
		Type string `json:"type"`
	}
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] == '{' {
		b = append(append([]byte{'['}, b...), ']')
	}
	if err := json.Unmarshal(b, &items); err != nil || len(items) == 0 {
		return EventUnknown
	}
	switch t := items[0].Type; {
	case strings.HasPrefix(t, verifyEventPrefix):
		return EventVerificationStatus
	case strings.HasPrefix(t, "com.twilio.messaging.") || strings.HasPrefix(t, "com.twilio.voice."):
		return EventStreams
	}
	return EventUnknown
}

// inferForm recognises each family by the parameters Twilio documents for it.
func inferForm(p url.Values) string {
	has := func(k string) bool { return p.Get(k) != "" }
	switch {
	// Conversations names its event (onMessageAdded...) and carries a
	// MessageSid and Body too: checked first, or it is taken for an SMS.
	case has("EventType") && (has("ConversationSid") || has("ChatServiceSid")):
		return EventConversation
	case has("RecordingSid") && has("RecordingStatus"):
		return EventRecordingStatus
	case has("VerificationSid") || (has("ServiceSid") && strings.HasPrefix(p.Get("Sid"), "VE")):
		return EventVerificationStatus
	case has("MessageSid") || has("SmsSid") || has("SmsMessageSid"):
		status := strings.ToLower(p.Get("MessageStatus"))
		if status == "" {
			status = strings.ToLower(p.Get("SmsStatus"))
		}
		if status == "received" || (status == "" && (has("Body") || has("NumMedia"))) {
			return EventIncomingMessage
		}
		if status != "" {
			return EventMessageStatus
		}
	case has("CallSid"):
		if has("CallbackSource") || has("SequenceNumber") || has("CallDuration") {
			return EventCallStatus
		}
		switch strings.ToLower(p.Get("CallStatus")) {
		case "ringing", "":
			return EventIncomingCall
		default:
			return EventCallStatus
		}
	}
	return EventUnknown
}
