package forwarder

import (
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
)

// Attempt is one delivery attempt, published to zen.attempts.<target>: the
// evidence of what happened to each delivery (`nats stream view ZEN_ATTEMPTS`).
type Attempt struct {
	// EventID is "ZEN_EVENTS:<stream seq>".
	EventID   string `json:"event_id"`
	DedupeKey string `json:"dedupe_key"`
	Target    string `json:"target"`
	EventType string `json:"event_type,omitempty"`
	// Attempt is the delivery count of the event message (1 on the first).
	Attempt int `json:"attempt"`
	// Status is the HTTP status, 0 when no answer came.
	Status int `json:"status"`
	// Outcome: delivered, retry, dead_letter, duplicate.
	Outcome   string  `json:"outcome"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
	At        string  `json:"at"`
}

// recordAttempt publishes a without waiting: attempt records never hold up
// a delivery; a lost record is counted (zen_forwarder_attempt_records_failed_total).
func (s *Service) recordAttempt(a Attempt) {
	a.At = s.cfg.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(a)
	if err != nil {
		return
	}
	m := nats.NewMsg(streams.AttemptsSubject(a.Target))
	m.Data = b
	m.Header.Set(zen.HeaderDedupeKey, a.DedupeKey)
	m.Header.Set("Zen-Outcome", a.Outcome)
	if err := s.requests.PublishAsync(m, s.recordStored); err != nil {
		s.metrics.recordsFailed.Inc()
	}
}

// recordStored counts an attempt record the stream did not store.
func (s *Service) recordStored(_ bool, err error) {
	if err != nil {
		s.metrics.recordsFailed.Inc()
	}
}
