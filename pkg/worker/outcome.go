// Package worker is the one consume loop of the pipeline's workers (the
// transformer and the forwarder). A [Handler] decides what happens to a
// message by returning an [Outcome]; the [Worker] alone carries it out:
// Ack, NakWithDelay, or publish-to-dead-letter-then-Term. Handlers never ack.
//
// The retry schedule is data computed from the message's delivery count
// ([Backoff]), never from process memory, so a restarted or different replica
// continues the same schedule (STYLE R8, R9).
package worker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Handler decides the fate of one message. It must not call Ack, Nak or Term;
// it may be called concurrently. ctx ends when the message's handling time is
// up or the worker is stopping.
type Handler func(ctx context.Context, m jetstream.Msg) Outcome

// BatchHandler decides the outcomes of several messages, one per message,
// in the order given.
type BatchHandler func(ctx context.Context, msgs []jetstream.Msg) []Outcome

// Middleware wraps a Handler with cross-cutting behaviour.
type Middleware func(Handler) Handler

// Kind is what the worker does with a message.
type Kind int

// The outcomes of handling a message.
const (
	KindAck Kind = iota
	KindRetry
	KindDeadLetter
)

func (k Kind) String() string {
	switch k {
	case KindAck:
		return "ack"
	case KindRetry:
		return "retry"
	case KindDeadLetter:
		return "dead_letter"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Outcome is a handler's decision.
type Outcome struct {
	Kind Kind
	// After is the redelivery delay of a Retry; 0 means the Backoff schedule.
	After time.Duration
	// Reason is a short code (a subject token) for a dead letter or retry.
	Reason string
	// Err explains a Retry or DeadLetter; it becomes the Zen-Error header.
	Err error
	// Headers are added to the dead letter (e.g. the target's HTTP status).
	Headers map[string]string
	// BeforeAck, on an Ack, runs right before the ack is sent, on the
	// connection's one acking goroutine (see AckAfter).
	BeforeAck func()
}

// Ack acknowledges the message: its work is done for good.
func Ack() Outcome { return Outcome{Kind: KindAck} }

// AckAfter acknowledges the message after publish has run: for records that
// must reach the server before the ack does (the forwarder's dedupe entry).
// publish runs on the goroutine that sends the acks of the handlers done at
// the same moment in one write, so it must not wait: publish asynchronously
// (natsconn.Requests.PublishAsync, like jetstream's PublishMsgAsync, waits
// only while too many acks are outstanding, and then every handler would
// wait too).
func AckAfter(publish func()) Outcome { return Outcome{Kind: KindAck, BeforeAck: publish} }

// Retry redelivers the message after the given delay (0: the schedule's
// next step). On the last allowed delivery it is dead-lettered instead.
func Retry(after time.Duration, reason string, err error) Outcome {
	return Outcome{Kind: KindRetry, After: after, Reason: reason, Err: err}
}

// DeadLetter publishes the message to the dead-letter stream with reason and
// err, then terminates it: it can never succeed.
func DeadLetter(reason string, err error) Outcome {
	return Outcome{Kind: KindDeadLetter, Reason: reason, Err: err}
}

// WithHeaders returns o with extra dead-letter headers.
func (o Outcome) WithHeaders(h map[string]string) Outcome {
	o.Headers = h
	return o
}

// Backoff is a redelivery schedule: exponential, or linear when Linear is
// set.
type Backoff struct {
	// Initial is the delay after the first delivery failed.
	Initial time.Duration
	// Max caps every delay.
	Max time.Duration
	// Multiplier grows the delay per delivery (>= 1; exponential only).
	Multiplier float64
	// Linear makes the delay grow by Initial per delivery: Initial×n.
	Linear bool
}

// DefaultBackoff is 1 s, doubling, capped at 5 min.
func DefaultBackoff() Backoff {
	return Backoff{Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2}
}

// Delay returns the delay before the next delivery of a message delivered
// numDelivered times (1 on its first delivery): Initial×Multiplier^(n-1),
// or Initial×n when Linear, capped at Max.
func (b Backoff) Delay(numDelivered uint64) time.Duration {
	if numDelivered < 1 {
		numDelivered = 1
	}
	m := b.Multiplier
	if m < 1 {
		m = 1
	}
	d := float64(b.Initial) * math.Pow(m, float64(numDelivered-1))
	if b.Linear {
		d = float64(b.Initial) * float64(numDelivered)
	}
	if b.Max > 0 && d > float64(b.Max) {
		return b.Max
	}
	if d > float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
