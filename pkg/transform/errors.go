package transform

import (
	"errors"
	"fmt"
)

// Reason codes of a request that can never be transformed. Each is a NATS
// subject token: the transformer dead-letters on zen.dlq.transformer.<reason>.
const (
	ReasonMissingRequired    = "missing_required"
	ReasonBadConversion      = "bad_conversion"
	ReasonUndecodableBody    = "undecodable_body"
	ReasonUnknownEvent       = "unknown_event"
	ReasonUnsupportedContent = "unsupported_content_type"
	ReasonNoMatchingRule     = "no_matching_rule"
	// ReasonInternal is the reason of an error the engine did not classify.
	ReasonInternal = "transform_error"
)

// ErrUnknownEvent: no rule for the request's Twilio event (including a
// request stored as "unknown" because its event could not be resolved).
var ErrUnknownEvent = errors.New("no rule for this Twilio event")

// ErrNoMatchingRule: the Twilio event has rules, but the match of none of
// them holds for the request (e.g. a Conversations EventType no rule maps).
var ErrNoMatchingRule = errors.New("no rule of this Twilio event matches the request")

// RuleError is a request that a rule cannot turn into an event. Its Reason
// becomes the dead-letter subject and Zen-Reason; Error() becomes Zen-Error.
// It never carries parameter values (they may be personal data).
type RuleError struct {
	Rule   string // Twilio event of the rule, e.g. "message-status"
	Field  string // output field or parameter at fault
	Reason string // one of the Reason* codes
	Err    error
}

func (e *RuleError) Error() string {
	s := e.Reason
	if e.Rule != "" {
		s = fmt.Sprintf("rule %s: %s", e.Rule, s)
	}
	if e.Field != "" {
		s += " " + e.Field
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *RuleError) Unwrap() error { return e.Err }

// ReasonOf returns the reason code for any error the engine returns.
func ReasonOf(err error) string {
	var re *RuleError
	if errors.As(err, &re) {
		return re.Reason
	}
	if errors.Is(err, ErrUnknownEvent) {
		return ReasonUnknownEvent
	}
	return ReasonInternal
}
