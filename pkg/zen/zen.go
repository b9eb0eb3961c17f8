// Package zen holds the domain vocabulary shared by every stage of the
// pipeline: the Zen event that reaches the warehouse, the message header
// names of DESIGN.md, and the dead-letter reason codes.
//
// It has no dependencies beyond the standard library, so anything may import
// it. Names here are part of the public contract (operators type them into the
// nats CLI); change them only together with DESIGN.md and the README.
package zen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Header names carried by raw messages on TWILIO_RAW (the request's evidence).
const (
	HeaderContentType      = "Content-Type"
	HeaderTwilioSignature  = "X-Twilio-Signature"
	HeaderTwilioEvent      = "X-Twilio-Event"
	HeaderIdempotencyToken = "I-Twilio-Idempotency-Token"
	HeaderRequestID        = "Zen-Request-Id"
	HeaderReceivedAt       = "Zen-Received-At"
	HeaderRequestURL       = "Zen-Request-Url"
	// HeaderMsgID is JetStream's de-duplication header.
	HeaderMsgID = "Nats-Msg-Id"
)

// Header names carried by events on ZEN_EVENTS.
const (
	HeaderEventType = "Zen-Event-Type"
	HeaderPriority  = "Zen-Priority"
	HeaderRawSeq    = "Zen-Raw-Seq"
	// HeaderDedupeKey repeats Nats-Msg-Id under our own name so tools that
	// strip JetStream headers (replays) keep the key.
	HeaderDedupeKey = "Zen-Dedupe-Key"
)

// The W3C Trace Context headers (https://www.w3.org/TR/trace-context/),
// lowercase as the spec writes them. With tracing on, raw messages and events
// carry them and the forwarder sends traceparent to the target, so one
// webhook is one trace; pkg/tracing writes and reads them.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Header names added to dead letters on ZEN_DLQ.
const (
	HeaderError      = "Zen-Error"
	HeaderReason     = "Zen-Reason"
	HeaderStage      = "Zen-Stage"
	HeaderDeliveries = "Zen-Deliveries"
	HeaderOrigStream = "Zen-Original-Stream"
	HeaderOrigSubj   = "Zen-Original-Subject"
	HeaderOrigSeq    = "Zen-Original-Seq"
	HeaderTarget     = "Zen-Target"
	HeaderFailedAt   = "Zen-Failed-At"
)

// UnknownTwilioEvent is the Twilio event name of a validly signed request
// whose event could not be resolved. It is stored on twilio.raw.unknown and
// dead-lettered by the transformer (DESIGN.md "Event types").
const UnknownTwilioEvent = "unknown"

// DedupePrefix starts every dedupe key (DESIGN.md "Deduplication").
const DedupePrefix = "tw-"

// Event is the Zen event, the JSON body the warehouse receives. Field order
// follows the package card's golden exactly.
type Event struct {
	// Destination is the name of the target the event is delivered to.
	Destination string `json:"destination"`
	// EventType is the Zen event type, e.g. "message.incoming".
	EventType string `json:"event_type"`
	// Timestamp is when the ingester received the request (RFC 3339, UTC).
	Timestamp string `json:"timestamp"`
	// Payload holds the mapped fields, in the order the rule lists them.
	Payload Payload `json:"payload"`
}

// Field is one output field of a payload.
type Field struct {
	Name  string
	Value any
}

// Payload is an ordered JSON object: it marshals its fields in slice order,
// so an event reads the way its rule is written. It unmarshals from any JSON
// object, keeping the document's order.
type Payload []Field

// Get returns the value of the named field and whether it is present.
func (p Payload) Get(name string) (any, bool) {
	for _, f := range p {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// MarshalJSON implements [json.Marshaler], keeping field order.
func (p Payload) MarshalJSON() ([]byte, error) {
	return p.appendJSON(nil)
}

// AppendJSON appends the event's JSON to b: the bytes json.Marshal(e)
// produces (FuzzAppendJSON checks it against encoding/json), without
// reflection, and without encoding/json re-scanning the payload's output.
// The transformer encodes every event with it.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"destination":`...)
	b = appendString(b, e.Destination)
	b = append(b, `,"event_type":`...)
	b = appendString(b, e.EventType)
	b = append(b, `,"timestamp":`...)
	b = appendString(b, e.Timestamp)
	b = append(b, `,"payload":`...)
	b, err := e.Payload.appendJSON(b)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

func (p Payload) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	for i, f := range p {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.Name)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, f.Value); err != nil {
			return nil, fmt.Errorf("payload field %q: %w", f.Name, err)
		}
	}
	return append(b, '}'), nil
}

// appendValue encodes the values the rules produce (strings, integers,
// booleans) directly; anything else (a list) as encoding/json does.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendString(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case nil:
		return append(b, "null"...), nil
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, enc...), nil
}

// appendString appends s as a JSON string. A string of printable ASCII that
// encoding/json leaves as is (no quote, backslash, <, > or &) is copied;
// any other goes through encoding/json, so escaping is always its own.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// UnmarshalJSON implements [json.Unmarshaler], keeping the document's order.
// Nested values decode as json.Unmarshal decodes into any (numbers as
// json.Number, to keep integers exact).
func (p *Payload) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("payload: want a JSON object, got %v", tok)
	}
	out := Payload{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		out = append(out, Field{Name: kt.(string), Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	*p = out
	return nil
}
