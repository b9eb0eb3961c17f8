package ingester

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/tracing"
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
//
// The trace context of ctx's span, if any, goes into m's headers and the
// stream sequence onto the span.
func (s *Service) publish(ctx context.Context, m *nats.Msg) error {
	s.tracer.Inject(ctx, tracing.HeaderCarrier(m.Header))
	resp, err := s.requests.Do(m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		pctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
		defer cancel()
		ack, err := s.js.PublishMsg(pctx, m)
		if err == nil {
			s.traceStored(ctx, ack, nil)
		}
		return err
	case err != nil:
		return err
	}
	if _, err = natsconn.PubAck(resp.Data); err == nil {
		s.traceStored(ctx, nil, resp.Data)
	}
	return err
}
