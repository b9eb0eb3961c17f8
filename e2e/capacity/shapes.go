package main

import (
	"log"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/transform"
	"github.com/zen-twilio/zen/pkg/zen"
)

// shapeFixture is the most frequent callback, a message status.
const shapeFixture = "fixtures/twilio/message_status_delivered.json"

// shape is a stored message of the pipeline's real size: a body and the
// headers the stage that stores it sets.
type shape struct {
	subject string
	data    []byte
	header  nats.Header
}

// copy returns the message with its own Nats-Msg-Id (a real one is about
// as long: the ingester's is a 64-hex digest, the transformer's the dedupe key).
func (s shape) copy(msgID string) *nats.Msg {
	m := nats.NewMsg(s.subject)
	m.Data = s.data
	for k, v := range s.header {
		m.Header[k] = v
	}
	m.Header.Set(zen.HeaderMsgID, msgID)
	return m
}

// realShapes returns a raw request as the ingester stores it (the
// fixture's body and the evidence headers of services/ingester/handler.go)
// and the event the shipped package makes of it, with the headers of
// services/transformer/handle.go (the carried request headers included).
// The sizes follow the rules: after a rule change, re-run `make capacity`.
func realShapes() (raw, event shape) {
	f, err := fixture.Load(shapeFixture)
	if err != nil {
		log.Fatal(err)
	}
	body, err := f.Bytes()
	if err != nil {
		log.Fatal(err)
	}
	received := time.Date(2026, 12, 5, 12, 0, 0, 123456789, time.UTC)
	req := nats.Header{}
	req.Set(zen.HeaderContentType, f.ContentType())
	req.Set(zen.HeaderTwilioSignature, "bm90LWEtcmVhbC1zaWduYXR1cmUtLS0=")
	req.Set(zen.HeaderTwilioEvent, f.Event())
	req.Set(zen.HeaderIdempotencyToken, f.Headers["i-twilio-idempotency-token"])
	req.Set(zen.HeaderRequestID, "0123456789abcdef0123456789abcdef")
	req.Set(zen.HeaderReceivedAt, received.Format(time.RFC3339Nano))
	req.Set(zen.HeaderRequestURL, "https://zen.example.com/webhooks/twilio/"+f.Event())
	req.Set("Zen-Request-Method", "POST")
	raw = shape{subject: streams.RawSubject(f.Event()), data: body, header: req}

	p, err := pack.LoadWith(filepath.Join("packages", "transforms", "twilio", "v1"), envconf.MapLookup(nil), pack.Options{AllowMissingEnv: true})
	if err != nil {
		log.Fatal(err)
	}
	e, err := transform.New(p)
	if err != nil {
		log.Fatal(err)
	}
	results, err := e.Transform(f.Event(), f.ContentType(), body, received)
	if err != nil {
		log.Fatal(err)
	}
	r := results[0]
	data, err := r.Event.AppendJSON(nil)
	if err != nil {
		log.Fatal(err)
	}
	h := nats.Header{}
	for k, v := range req {
		if k != zen.HeaderContentType && k != zen.HeaderTwilioSignature {
			h[k] = v
		}
	}
	h.Set(zen.HeaderDedupeKey, r.DedupeKey)
	h.Set(zen.HeaderEventType, r.Event.EventType)
	h.Set(zen.HeaderPriority, "1")
	h.Set(zen.HeaderRawSeq, "123456789")
	h.Set(zen.HeaderContentType, "application/json")
	event = shape{subject: streams.EventSubject(r.Event.EventType), data: data, header: h}
	log.Printf("real shapes: raw request %d B body + %d headers, event %d B body + %d headers", len(body), len(req), len(data), len(h))
	return raw, event
}
