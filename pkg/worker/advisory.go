package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ReasonUnacked is the dead-letter reason of a message whose last delivery
// was neither acknowledged nor terminated (its worker crashed or hung).
const ReasonUnacked = "max_deliveries_unacked"

// streamReader is what the watcher needs beyond publishing: the connection
// for the advisory subscription and the stream to read the message back.
type streamReader interface {
	Publisher
	Conn() *nats.Conn
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

var _ streamReader = (jetstream.JetStream)(nil)

// maxDeliverAdvisory is JetStream's io.nats.jetstream.advisory.v1.max_deliver.
type maxDeliverAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// WatchMaxDeliveries dead-letters messages that ran out of deliveries without
// an outcome. The worker dead-letters a message itself on its last delivery;
// but when that delivery dies with its process, JetStream only stops
// delivering it and publishes a MAX_DELIVERIES advisory. The watcher reads
// such a message back from its stream and stores it as a dead letter with
// reason [ReasonUnacked], so a crash loop never strands a message unseen.
//
// Every replica watches; dead letters carry Nats-Msg-Id stream:consumer:seq,
// so the copies collapse into one. An advisory published while no replica
// runs is not seen (the message stays in its stream, visible as a gap in
// the consumer's ack floor). It returns when ctx ends.
func WatchMaxDeliveries(ctx context.Context, js streamReader, stream, consumer, stage string,
	dlqSubject func(reason string) string, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	subj := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", stream, consumer)
	ch := make(chan *nats.Msg, 64)
	sub, err := js.Conn().ChanSubscribe(subj, ch)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", subj, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			var adv maxDeliverAdvisory
			if err := json.Unmarshal(m.Data, &adv); err != nil {
				log.Warn("max deliveries advisory: decode", zap.Error(err))
				continue
			}
			if err := deadLetterBySeq(ctx, js, adv, stage, dlqSubject); err != nil {
				log.Error("max deliveries advisory: message not dead-lettered", zap.Uint64("stream_seq", adv.StreamSeq), zap.Error(err))
				continue
			}
			log.Warn("dead-lettered a message whose last delivery was never acknowledged",
				zap.String("stream", adv.Stream), zap.Uint64("stream_seq", adv.StreamSeq), zap.Uint64("deliveries", adv.Deliveries))
		}
	}
}

func deadLetterBySeq(ctx context.Context, js streamReader, adv maxDeliverAdvisory, stage string, dlqSubject func(string) string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, adv.Stream)
	if err != nil {
		return err
	}
	raw, err := s.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return fmt.Errorf("get %s seq %d: %w", adv.Stream, adv.StreamSeq, err)
	}
	dl := BuildDeadLetter(raw.Subject, raw.Header, raw.Data, DeadLetterInfo{
		Subject:    dlqSubject(ReasonUnacked),
		Stage:      stage,
		Reason:     ReasonUnacked,
		Err:        fmt.Errorf("delivered %d times without an acknowledgement (worker crashed or hung)", adv.Deliveries),
		Stream:     adv.Stream,
		Consumer:   adv.Consumer,
		StreamSeq:  adv.StreamSeq,
		Deliveries: adv.Deliveries,
	})
	_, err = js.PublishMsg(ctx, dl)
	return err
}
