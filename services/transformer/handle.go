package transformer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/transform"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
)

// ReasonPublish is the retry reason when an event publish is not acknowledged.
const ReasonPublish = "publish_failed"

// handleBatch transforms raw requests that arrived together. A request that
// can never be transformed is dead-lettered; one whose events could not all
// be stored is retried (the events already stored dedupe by Nats-Msg-Id on
// the retry); only a request whose every event was acknowledged is acked.
// The events of the whole batch are published before waiting for any
// acknowledgement, so they leave in one write.
func (s *Service) handleBatch(ctx context.Context, msgs []jetstream.Msg) []worker.Outcome {
	outs := make([]worker.Outcome, len(msgs))
	type pending struct {
		i     int
		p     prepared
		acked int     // events stored
		errs  []error // why the others were not
		types []string
		span  trace.Span
	}
	var waiting []*pending
	events := 0
	for i, m := range msgs {
		mctx, span := s.startSpan(ctx, m)
		p, out, ok := s.prepare(mctx, m)
		if !ok {
			outs[i] = out
			tracing.EndOutcome(span, out)
			continue
		}
		tracePrepared(span, p)
		waiting = append(waiting, &pending{i: i, p: p, span: span})
		events += len(p.events)
	}
	if len(waiting) == 0 {
		return outs
	}
	type ack struct {
		w   *pending
		dup bool
		err error
	}
	acks := make(chan ack, events) // a callback never blocks
	sent := 0
	for _, w := range waiting {
		for _, em := range w.p.events {
			if err := s.requests.PublishAsync(em, func(dup bool, err error) { acks <- ack{w, dup, err} }); err != nil {
				w.errs = append(w.errs, err)
				break
			}
			sent++
			w.types = append(w.types, em.Header.Get(zen.HeaderEventType))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
collect:
	for range sent {
		select {
		case a := <-acks:
			if a.err != nil {
				a.w.errs = append(a.w.errs, a.err)
				continue
			}
			if a.dup {
				s.metrics.duplicates.Inc()
			}
			a.w.acked++
		case <-ctx.Done():
			break collect
		}
	}
	for _, w := range waiting {
		if w.acked < len(w.p.events) && len(w.errs) == 0 {
			w.errs = append(w.errs, ctx.Err()) // acks still awaited
		}
		if err := errors.Join(w.errs...); err != nil {
			s.log.Warn("event publish not acknowledged; will retry", zap.Uint64("raw_seq", w.p.rawSeq), zap.Error(err))
			s.metrics.events.WithLabelValues(w.p.event, "retry").Inc()
			outs[w.i] = worker.Retry(0, ReasonPublish, err)
			tracing.EndOutcome(w.span, outs[w.i])
			continue
		}
		for _, t := range w.types {
			s.metrics.events.WithLabelValues(t, "published").Inc()
		}
		outs[w.i] = worker.Ack()
		tracing.EndOutcome(w.span, outs[w.i])
	}
	return outs
}

// prepared is a raw request turned into the event messages to publish.
type prepared struct {
	rawSeq uint64
	event  string // the Twilio event
	events []*nats.Msg
}

// prepare transforms one raw request into its event messages; when it
// cannot, it returns the request's outcome and false.
func (s *Service) prepare(ctx context.Context, m jetstream.Msg) (prepared, worker.Outcome, bool) {
	meta, err := worker.Metadata(ctx, m)
	if err != nil {
		return prepared{}, worker.DeadLetter(transform.ReasonInternal, err), false
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
		return prepared{}, worker.DeadLetter(reason, err), false
	}

	p := prepared{rawSeq: meta.Sequence.Stream, event: event, events: make([]*nats.Msg, len(results))}
	for i, r := range results {
		body, err := r.Event.AppendJSON(make([]byte, 0, 512))
		if err != nil {
			return prepared{}, worker.DeadLetter(transform.ReasonInternal, fmt.Errorf("encode event: %w", err)), false
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
		s.tracer.Inject(ctx, tracing.HeaderCarrier(out.Header)) // before the request's own
		carryRequestHeaders(out.Header, h)
		p.events[i] = out
	}
	return p, worker.Outcome{}, true
}

// carryRequestHeaders copies the raw request's stored headers onto its
// event, for the flows' request filters (path, query, headers) and for
// tracing an event back to its request: all but JetStream's own, the body's
// Content-Type (the event's is JSON) and the signature (checked already),
// and none the event has set itself.
func carryRequestHeaders(event, raw nats.Header) {
	for k, vs := range raw {
		if strings.HasPrefix(k, "Nats-") || k == zen.HeaderContentType || k == zen.HeaderTwilioSignature {
			continue
		}
		if _, set := event[k]; !set {
			event[k] = vs
		}
	}
}
