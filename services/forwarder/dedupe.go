package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The dedupe bucket (zen_dedupe) holds one entry per target and dedupe key:
//
//	pending:<ZEN_EVENTS seq>    a delivery of that stream message is in flight
//	delivered:<seq>:<unix ms>   the target answered 2xx
//
// A pending entry is a claim: only the stream message that made it may POST,
// so two copies of one event (published twice, or replayed) are never in
// flight at once. The claim is released when its message is dead-lettered.
//
// Where a duplicate can still reach the target, and only there:
//   - a forwarder that dies after the target's 2xx but before writing
//     "delivered" leaves its claim pending; the same message is redelivered,
//     sees its own claim and POSTs again;
//   - a target that commits but answers after FORWARDER_HTTP_TIMEOUT looks
//     like a failure and gets the event again on the next attempt.
//
// Both are the at-least-once edge of any HTTP delivery. The Idempotency-Key
// header (the same dedupe key on every attempt) lets the target drop the
// second copy; `make e2e` counts and explains each one.
type dedupe struct {
	kv jetstream.KeyValue
}

// claimState is what the bucket says about a key for a given message.
type claimState int

const (
	claimMine      claimState = iota // go ahead and deliver
	claimDelivered                   // already delivered: ack without POST
	claimOther                       // another copy is in flight: retry later
)

// claim records that message seq is delivering key, or reports who is.
// takeover (a replayed message) replaces another message's pending claim:
// a claim can outlive its message when that message was dead-lettered
// without the forwarder's say (its deliveries ran out in a crash loop).
func (d *dedupe) claim(ctx context.Context, key string, seq uint64, takeover bool) (claimState, error) {
	mine := "pending:" + strconv.FormatUint(seq, 10)
	_, err := d.kv.Create(ctx, key, []byte(mine))
	if err == nil {
		return claimMine, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("claim %s: %w", key, err)
	}
	e, err := d.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Released between Create and Get: try once more.
		if _, err := d.kv.Create(ctx, key, []byte(mine)); err == nil {
			return claimMine, nil
		}
		return claimOther, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read claim %s: %w", key, err)
	}
	v := string(e.Value())
	switch {
	case strings.HasPrefix(v, "delivered:"):
		return claimDelivered, nil
	case v == mine:
		return claimMine, nil
	case takeover:
		if _, err := d.kv.Update(ctx, key, []byte(mine), e.Revision()); err != nil {
			return claimOther, nil
		}
		return claimMine, nil
	default:
		return claimOther, nil
	}
}

// delivered marks key as delivered by message seq.
func (d *dedupe) delivered(ctx context.Context, key string, seq uint64, at time.Time) error {
	_, err := d.kv.Put(ctx, key, []byte(fmt.Sprintf("delivered:%d:%d", seq, at.UnixMilli())))
	return err
}

// release drops message seq's claim on key (after a dead letter), so a
// replay of the event can deliver it.
func (d *dedupe) release(ctx context.Context, key string, seq uint64) error {
	e, err := d.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if string(e.Value()) != "pending:"+strconv.FormatUint(seq, 10) {
		return nil
	}
	return d.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
}
