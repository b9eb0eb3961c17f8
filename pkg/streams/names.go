// Package streams declares, as data, every JetStream object of the pipeline:
// the stream, consumer and key-value bucket names of DESIGN.md, the subject
// builders, and the configurations built from a [Config]. [Apply] creates or
// updates them idempotently; services call it at start-up and `zen streams
// apply` calls it for operators. No other package builds a StreamConfig.
package streams

import (
	"strings"
)

// Stream, bucket and consumer names (DESIGN.md "JetStream objects").
const (
	StreamRaw      = "TWILIO_RAW"
	StreamEvents   = "ZEN_EVENTS"
	StreamDLQ      = "ZEN_DLQ"
	StreamAttempts = "ZEN_ATTEMPTS"

	BucketDedupe = "zen_dedupe"

	ConsumerTransformer = "transformer"
	// ConsumerForwarderPrefix + target name is a forwarder's durable.
	ConsumerForwarderPrefix = "forwarder-"
)

// Subject roots. Each stream captures its root followed by ".>".
const (
	RawRoot      = "twilio.raw"
	EventsRoot   = "zen.events"
	DLQRoot      = "zen.dlq"
	AttemptsRoot = "zen.attempts"
)

// Stage names used in dead-letter subjects and the Zen-Stage header.
const (
	StageTransformer = "transformer"
	StageForwarder   = "forwarder"
)

// RawSubject returns the subject of a raw request of the given Twilio event,
// e.g. "twilio.raw.message-status".
func RawSubject(twilioEvent string) string { return RawRoot + "." + Token(twilioEvent) }

// EventSubject returns the subject of a Zen event type, e.g.
// "zen.events.message.status". The type's dots are kept: they make
// "zen.events.message.>" select every message event.
func EventSubject(eventType string) string { return EventsRoot + "." + dotted(eventType) }

// DLQSubject returns "zen.dlq.<stage>.<name>", where name is a reason code
// (transformer) or a target name (forwarder).
func DLQSubject(stage, name string) string { return DLQRoot + "." + Token(stage) + "." + Token(name) }

// AttemptsSubject returns "zen.attempts.<target>".
func AttemptsSubject(target string) string { return AttemptsRoot + "." + Token(target) }

// ForwarderConsumer returns the durable name of a target's forwarder.
func ForwarderConsumer(target string) string { return ConsumerForwarderPrefix + Token(target) }

// Token makes s safe as one subject token (and as a consumer name): every
// character other than letters, digits, '-' and '_' becomes '_'. An empty
// string becomes "_".
func Token(s string) string {
	if s == "" {
		return "_"
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !tokenByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// dotted sanitises each dot-separated token of s.
func dotted(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = Token(p)
	}
	return strings.Join(parts, ".")
}

// KVKey makes a dedupe key safe for the KV bucket: letters, digits and
// "-_=/." are kept (dots separate tokens, as in DESIGN.md's keys); anything
// else, and empty tokens, become '_'.
func KVKey(target, dedupeKey string) string {
	var b strings.Builder
	b.Grow(len(target) + 1 + len(dedupeKey))
	b.WriteString(Token(target))
	b.WriteByte('.')
	prevDot := true
	for i := 0; i < len(dedupeKey); i++ {
		c := dedupeKey[i]
		switch {
		case c == '.':
			if prevDot {
				b.WriteByte('_')
			}
			b.WriteByte('.')
			prevDot = true
			continue
		case tokenByte(c) || c == '=' || c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
		prevDot = false
	}
	if prevDot {
		b.WriteByte('_')
	}
	return b.String()
}
