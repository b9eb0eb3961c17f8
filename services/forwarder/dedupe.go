package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// markDelivered records that message seq delivered key.
func (d *dedupe) markDelivered(ctx context.Context, key string, seq uint64, at time.Time) error {
	_, err := d.kv.Put(ctx, key, fmt.Appendf(nil, "delivered:%d:%d", seq, at.UnixMilli()))
	return err
}
