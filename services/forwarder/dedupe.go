package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/streams"
)

// The dedupe bucket (zen_dedupe) holds one entry per target and dedupe key,
// written once the target answered 2xx:
//
//	delivered:<ZEN_EVENTS seq>:<unix ms>
//
// Before a POST the forwarder reads the entry (a read, not a write: with R3
// streams a write is a replicated raft commit, so the hot path costs one
// write per event, not two); a delivered key is acked without a POST.
//
// The entry is published without waiting for its acknowledgement, in the
// same write as the attempt record and the ack of the event (they leave in
// that order on one connection, so the server stores the entry before it
// sees the ack). Waiting would change nothing: an entry that could not be
// stored never held the ack back (the event was delivered); it is counted
// (zen_forwarder_dedupe_records_failed_total) and logged when its
// acknowledgement reports the failure.
//
// Where a duplicate can still reach the target, and only there:
//   - a forwarder that dies after the target's 2xx but before writing the
//     entry: the message is redelivered and POSTed again;
//   - a target that commits but answers after FORWARDER_HTTP_TIMEOUT looks
//     like a failure and gets the event again on the next attempt;
//   - two copies of one event delivered at the same moment. ZEN_EVENTS drops
//     a second copy stored within its duplicate window (Nats-Msg-Id is the
//     dedupe key), so copies arrive minutes apart (a replay, a raw message
//     redelivered after the window), never together in practice.
//
// All are the at-least-once edge of any HTTP delivery. The Idempotency-Key
// header (the same dedupe key on every attempt) lets the target drop the
// second copy; `make e2e` counts and explains each one.
type dedupe struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
}

// isDelivered reports whether key is recorded as delivered. Entries of an
// older scheme ("pending:<seq>") count as not delivered.
func (d *dedupe) isDelivered(ctx context.Context, key string) (bool, error) {
	e, err := d.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	return strings.HasPrefix(string(e.Value()), "delivered:"), nil
}

// markDelivered records that message seq delivered key; it does not wait
// for the acknowledgement (see above). The error is a publish that could not
// even be sent.
func (d *dedupe) markDelivered(key string, seq uint64, at time.Time) error {
	m := nats.NewMsg(dedupeSubjectPrefix + key)
	m.Data = fmt.Appendf(nil, "delivered:%d:%d", seq, at.UnixMilli())
	_, err := d.js.PublishMsgAsync(m)
	return err
}

// dedupeSubjectPrefix is where the bucket stores a key: what
// jetstream.KeyValue.Put publishes to (the services use no JetStream domain
// or API prefix).
const dedupeSubjectPrefix = "$KV." + streams.BucketDedupe + "."

// dedupeKeyOf returns the bucket key of an entry's subject ("" for any other
// subject).
func dedupeKeyOf(subject string) string {
	if key, ok := strings.CutPrefix(subject, dedupeSubjectPrefix); ok {
		return key
	}
	return ""
}
