package ingester

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publish stores m in JetStream and returns once the stream has
// acknowledged it (stored, or a duplicate of a stored message), or with why
// not.
//
// It is the protocol of jetstream.PublishMsg (a request on the stream's
// subject whose reply is the PubAck) with three costs of the hot path taken
// out: the requests of concurrent handlers leave in one write
// (natsconn.Requests), the reply timer is pooled instead of a
// context.WithTimeout per request, and a success ack is recognised without
// encoding/json (which was a third of the library call's CPU). Every reply
// that is not a plain success ack is decoded as the library decodes it, and
// a "no responders" (no stream leader for a moment) goes to the library,
// which retries it; Nats-Msg-Id makes that second publish a duplicate if the
// first was stored after all.
func (s *Service) publish(m *nats.Msg) error {
	resp, err := s.requests.Do(m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
		defer cancel()
		_, err = s.js.PublishMsg(ctx, m)
		return err
	case err != nil:
		return err
	}
	return checkPubAck(resp.Data)
}

// pubAckReply is how jetstream.PublishMsg decodes a reply.
type pubAckReply struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	*jetstream.PubAck
}

// checkPubAck returns nil for a JetStream success ack and otherwise the
// error jetstream.PublishMsg returns for the same reply. A reply in the
// exact form nats-server writes its success acks is recognised by isPubAck;
// anything else is decoded as the library decodes it.
func checkPubAck(data []byte) error {
	if isPubAck(data) {
		return nil
	}
	return decodePubAck(data)
}

// decodePubAck is jetstream.PublishMsg's decoding of a reply (nats.go
// v1.55.0, jetstream/publish.go), with its errors.
func decodePubAck(data []byte) error {
	var ack pubAckReply
	if err := json.Unmarshal(data, &ack); err != nil {
		return jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return fmt.Errorf("nats: %w", ack.Error)
	}
	if ack.PubAck == nil || ack.Stream == "" {
		return jetstream.ErrInvalidJSAck
	}
	return nil
}

// isPubAck reports whether data is a success ack exactly as nats-server
// writes one from its template (server/stream.go):
//
//	{"stream":"<name>",["domain":"<domain>",]"seq":<n>}
//	{"stream":"<name>",["domain":"<domain>",]"seq":<n>,"duplicate": true}
//
// Only those forms are accepted, so whatever it accepts the library's
// decoding accepts too (FuzzIsPubAck).
func isPubAck(data []byte) bool {
	rest, ok := bytes.CutPrefix(data, []byte(`{"stream":"`))
	if !ok {
		return false
	}
	if rest, ok = cutName(rest, false); !ok {
		return false
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"domain":"`)); found {
		if rest, ok = cutName(r, true); !ok {
			return false
		}
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"seq":`)); !ok {
		return false
	}
	n := 0
	for n < len(rest) && n < 19 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || (rest[0] == '0' && n > 1) { // JSON has no leading zeros
		return false
	}
	rest = rest[n:]
	return string(rest) == "}" || string(rest) == `,"duplicate": true}`
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
