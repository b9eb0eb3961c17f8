package ingester

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/natsconn"
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
// encoding/json (natsconn.PubAck). Every reply that is not a plain success
// ack is decoded as the library decodes it, and a "no responders" (no
// stream leader for a moment) goes to the library, which retries it;
// Nats-Msg-Id makes that second publish a duplicate if the first was stored
// after all.
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
	_, err = natsconn.PubAck(resp.Data)
	return err
}
