package natsconn

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// PubAck checks the reply to a JetStream publish: nil for a success ack
// (duplicate reports that the stream had the message already), otherwise
// the error jetstream.PublishMsg returns for the same reply. A reply in the
// exact form nats-server writes its success acks is recognised without
// encoding/json (which was a third of the library call's CPU); anything
// else is decoded as the library decodes it.
func PubAck(data []byte) (duplicate bool, err error) {
	if ok, dup := isPubAck(data); ok {
		return dup, nil
	}
	return decodePubAck(data)
}

// pubAckReply is how jetstream.PublishMsg decodes a reply.
type pubAckReply struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	*jetstream.PubAck
}

// decodePubAck is jetstream.PublishMsg's decoding of a reply (nats.go
// v1.55.0, jetstream/publish.go), with its errors.
func decodePubAck(data []byte) (duplicate bool, err error) {
	var ack pubAckReply
	if err := json.Unmarshal(data, &ack); err != nil {
		return false, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return false, fmt.Errorf("nats: %w", ack.Error)
	}
	if ack.PubAck == nil || ack.Stream == "" {
		return false, jetstream.ErrInvalidJSAck
	}
	return ack.Duplicate, nil
}

// isPubAck reports whether data is a success ack exactly as nats-server
// writes one from its template (server/stream.go), and whether it is the
// ack of a duplicate:
//
//	{"stream":"<name>",["domain":"<domain>",]"seq":<n>}
//	{"stream":"<name>",["domain":"<domain>",]"seq":<n>,"duplicate": true}
//
// Only those forms are accepted, so whatever it accepts the library's
// decoding accepts too, with the same duplicate flag (FuzzPubAck).
func isPubAck(data []byte) (ok, duplicate bool) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"stream":"`))
	if !ok {
		return false, false
	}
	if rest, ok = cutName(rest, false); !ok {
		return false, false
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"domain":"`)); found {
		if rest, ok = cutName(r, true); !ok {
			return false, false
		}
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"seq":`)); !ok {
		return false, false
	}
	n := 0
	for n < len(rest) && n < 19 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || (rest[0] == '0' && n > 1) { // JSON has no leading zeros
		return false, false
	}
	switch string(rest[n:]) {
	case "}":
		return true, false
	case `,"duplicate": true}`:
		return true, true
	}
	return false, false
}

// cutName cuts a JSON string's plain content and its closing quote: printable
// ASCII without quote or backslash (the names nats-server allows), empty only
// when allowEmpty.
func cutName(b []byte, allowEmpty bool) ([]byte, bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return b[i+1:], i > 0 || allowEmpty
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
	}
	return nil, false
}
