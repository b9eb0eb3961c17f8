package forwarder

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zen-twilio/zen/pkg/worker"
)

// Dead-letter headers describing the target's answer.
const (
	HeaderHTTPStatus = "Zen-Http-Status"
	HeaderHTTPBody   = "Zen-Http-Body"
)

// Reasons of the forwarder's retries and dead letters besides a target's
// answer (http_<status>); each is a subject token of zen.dlq.forwarder.
const (
	ReasonNetworkError      = "network_error"      // no answer: connection refused, reset, TLS
	ReasonTimeout           = "timeout"            // no answer within the target's timeout
	ReasonNoMetadata        = "no_metadata"        // a message without JetStream metadata
	ReasonNoDedupeKey       = "no_dedupe_key"      // an event without Zen-Dedupe-Key or Nats-Msg-Id
	ReasonUndecodableEvent  = "undecodable_event"  // an event body that is not a Zen event
	ReasonDedupeUnavailable = "dedupe_unavailable" // zen_dedupe could not be read
	ReasonStopping          = "stopping"           // the forwarder stopped while the circuit was open
)

// snippetLen is how much of a failing response the dead letter keeps.
const snippetLen = 512

// Classify turns the result of one POST into the worker's outcome:
//
//	2xx                              → Ack
//	network error, timeout           → Retry on the schedule
//	a status retryable reports       → Retry, after Retry-After when sent (capped at maxRetryAfter);
//	                                   by default 408, 429 and 5xx (pack.DefaultRetryStatuses)
//	3xx                              → DeadLetter (redirects of a POST are not followed: the target's URL is wrong)
//	any other status                 → DeadLetter at once, with the status and the first bytes of the body
//
// It is pure: the clock is passed in for HTTP-date Retry-After values.
func Classify(status int, err error, retryAfter string, body []byte, now time.Time, maxRetryAfter time.Duration, retryable func(int) bool) worker.Outcome {
	if err != nil {
		reason := ReasonNetworkError
		if isTimeout(err) {
			reason = ReasonTimeout
		}
		return worker.Retry(0, reason, err)
	}
	reason := "http_" + strconv.Itoa(status)
	switch {
	case status >= 200 && status < 300:
		return worker.Ack()
	case retryable(status):
		return worker.Retry(ParseRetryAfter(retryAfter, now, maxRetryAfter), reason, fmt.Errorf("target answered %d", status))
	default:
		msg := "target answered %d"
		if status >= 300 && status < 400 {
			msg = "target answered %d (redirects are not followed for POSTs; fix the target URL)"
		}
		return worker.DeadLetter(reason, fmt.Errorf(msg, status)).WithHeaders(map[string]string{
			HeaderHTTPStatus: strconv.Itoa(status),
			HeaderHTTPBody:   headerSafe(body, snippetLen),
		})
	}
}

// ParseRetryAfter reads delay-seconds or an HTTP-date; 0 when absent or
// invalid (the schedule applies), capped at max when max > 0.
func ParseRetryAfter(v string, now time.Time, max time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d <= 0 {
			return 0
		}
	} else {
		return 0
	}
	if max > 0 && d > max {
		return max
	}
	return d
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// headerSafe returns at most n bytes of b as a single header line.
func headerSafe(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	s := strings.ToValidUTF8(string(b), "?")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
