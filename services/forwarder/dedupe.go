package forwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natsconn"
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
// The entry is published without waiting for its acknowledgement, with the
// attempt record, right before the ack of the event (worker.AckAfter: they
// leave in that order on one connection, so the server stores the entry
// before it sees the ack). Waiting would change nothing: an entry that
// could not be stored never held the ack back (the event was delivered); it
// is counted (zen_forwarder_dedupe_records_failed_total) and logged when
// its acknowledgement reports the failure.
//
// Each entry lives its own TTL (streams.Config.DedupeTTLFor: 20 min, 5 h
// for verification.status), since every key costs the NATS server ~400 B
// of memory (issue 22, docs/capacity.md).
//
// Where a duplicate can still reach the target, and only there
// (docs/capacity.md lists them with their sizes):
//   - a copy that comes after the key's TTL: a Twilio retry or a
//     `zen replay` more than DEDUPE_TTL (DEDUPE_LONG_TTL) after the first
//     delivery;
//   - a key not recorded because the bucket is full (DEDUPE_MAX_BYTES,
//     counted as below);
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
	// requests writes the entries; with direct, it reads them too, and the
	// reads of handlers ready together leave in one write.
	requests *natsconn.Requests
	// direct is set when the bucket answers direct gets: isDelivered reads
	// with one.
	direct bool
}

// natsTimeout bounds a direct get, as jetstream's default API timeout
// bounds kv.Get, and the wait for an entry's or a record's acknowledgement.
const natsTimeout = 5 * time.Second

// directGetPrefix is the direct get of a key's last entry in the bucket
// (what kv.Get requests when the bucket allows direct gets).
const directGetPrefix = "$JS.API.DIRECT.GET.KV_" + streams.BucketDedupe + "." + dedupeSubjectPrefix

// isDelivered reports whether key is recorded as delivered. Entries of an
// older scheme ("pending:<seq>"), deleted and purged keys count as not
// delivered.
//
// It is kv.Get's direct get without the rest of kv.Get: no regular
// expression over the key (streams.KVKey makes every key valid), no
// JSON-encoded request that a direct get never sends, no entry to build.
// Those were half the read's CPU. A bucket without direct gets is read
// with kv.Get. TestDirectReadAgreesWithKVGet holds both to the same answers.
func (d *dedupe) isDelivered(ctx context.Context, key string) (bool, error) {
	if !d.direct {
		return d.isDeliveredKV(ctx, key)
	}
	if err := ctx.Err(); err != nil { // shutting down: the read is bounded by natsTimeout alone
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	r, err := d.requests.Do(&nats.Msg{Subject: directGetPrefix + key})
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	if len(r.Data) == 0 {
		switch status := r.Header.Get("Status"); status {
		case "": // an entry without a value: a delete or purge marker
			return false, nil
		case "404": // never written, or expired
			return false, nil
		default:
			return false, fmt.Errorf("read %s: %s %s", key, status, r.Header.Get("Description"))
		}
	}
	return bytes.HasPrefix(r.Data, delivered), nil
}

var delivered = []byte("delivered:")

// isDeliveredKV is isDelivered through kv.Get.
func (d *dedupe) isDeliveredKV(ctx context.Context, key string) (bool, error) {
	e, err := d.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	return strings.HasPrefix(string(e.Value()), "delivered:"), nil
}

// markDelivered records that message seq delivered key, remembered for ttl
// (streams.Config.DedupeTTLFor: the Nats-TTL header, so the bucket holds a
// key only as long as a duplicate of it can come; issue 22); it does not
// wait for the acknowledgement (see above): done gets it. The error is a
// publish that could not even be sent (done is then not called).
func (d *dedupe) markDelivered(key string, ttl time.Duration, seq uint64, at time.Time, done func(duplicate bool, err error)) error {
	m := nats.NewMsg(dedupeSubjectPrefix + key)
	m.Header.Set(jetstream.MsgTTLHeader, ttl.String())
	m.Data = fmt.Appendf(nil, "delivered:%d:%d", seq, at.UnixMilli())
	return d.requests.PublishAsync(m, done)
}

// dedupeSubjectPrefix is where the bucket stores a key: what
// jetstream.KeyValue.Put publishes to (the services use no JetStream domain
// or API prefix).
const dedupeSubjectPrefix = "$KV." + streams.BucketDedupe + "."
