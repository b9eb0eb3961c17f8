package transformer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/transform"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
)

// ReasonPublish is the retry reason when an event publish is not acknowledged.
const ReasonPublish = "publish_failed"

// handle transforms one raw request. A request that can never be
// transformed is dead-lettered; one whose events could not all be stored is
// retried (the events already stored dedupe by Nats-Msg-Id on the retry);
// only a request whose every event was acknowledged is acked.
func (s *Service) handle(ctx context.Context, m jetstream.Msg) worker.Outcome {
	meta, err := worker.Metadata(ctx, m)
	if err != nil {
		return worker.DeadLetter(transform.ReasonInternal, err)
	}
	h := m.Headers()
	event := h.Get(zen.HeaderTwilioEvent)
	if event == "" {
		event = m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:]
	}
	received, err := time.Parse(time.RFC3339Nano, h.Get(zen.HeaderReceivedAt))
	if err != nil {
		received = meta.Timestamp
	}

	start := time.Now()
	results, err := s.engine.Transform(event, h.Get(zen.HeaderContentType), m.Data(), received)
	s.metrics.transformSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		reason := transform.ReasonOf(err)
		s.metrics.events.WithLabelValues(event, "dead_letter").Inc()
		return worker.DeadLetter(reason, err)
	}

	msgs := make([]*nats.Msg, len(results))
	for i, r := range results {
		body, err := json.Marshal(r.Event)
		if err != nil {
			return worker.DeadLetter(transform.ReasonInternal, fmt.Errorf("encode event: %w", err))
		}
		out := &nats.Msg{Subject: streams.EventSubject(r.Event.EventType), Data: body, Header: make(nats.Header, 9)}
		out.Header.Set(zen.HeaderMsgID, r.DedupeKey)
		out.Header.Set(zen.HeaderDedupeKey, r.DedupeKey)
		out.Header.Set(zen.HeaderEventType, r.Event.EventType)
		out.Header.Set(zen.HeaderPriority, strconv.Itoa(r.Priority))
		out.Header.Set(zen.HeaderRawSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
		out.Header.Set(zen.HeaderContentType, "application/json")
		if v := h.Get(zen.HeaderRequestID); v != "" {
			out.Header.Set(zen.HeaderRequestID, v)
		}
		out.Header.Set(zen.HeaderReceivedAt, received.UTC().Format(time.RFC3339Nano))
		msgs[i] = out
	}
	if err := s.publish(ctx, msgs); err != nil {
		s.log.Warn("event publish not acknowledged; will retry", zap.Uint64("raw_seq", meta.Sequence.Stream), zap.Error(err))
		s.metrics.events.WithLabelValues(event, "retry").Inc()
		return worker.Retry(0, ReasonPublish, err)
	}
	for _, r := range results {
		s.metrics.events.WithLabelValues(r.Event.EventType, "published").Inc()
	}
	return worker.Ack()
}

// publish stores every event and waits for all acknowledgements.
func (s *Service) publish(ctx context.Context, msgs []*nats.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	if len(msgs) == 1 {
		ack, err := s.js.PublishMsg(ctx, msgs[0])
		if err == nil && ack.Duplicate {
			s.metrics.duplicates.Inc()
		}
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	var errs []error
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				s.metrics.duplicates.Inc()
			}
		case err := <-f.Err():
			errs = append(errs, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}
