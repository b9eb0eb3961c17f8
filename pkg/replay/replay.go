// Package replay puts stored messages back into the pipeline: dead letters
// back to the stage they failed in, raw requests back through the
// transformer (after a rule change), one event back to its target. Every
// replay is safe to repeat: the events' dedupe keys decide what a target
// sees, and a dead letter leaves ZEN_DLQ only once its copy is stored.
package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
)

// HeaderReplay marks a republished message with where it came from
// ("dlq:<seq>", "raw:<seq>", "event:<seq>"), for whoever reads the stream.
const HeaderReplay = "Zen-Replay"

// Message is one stored message.
type Message struct {
	Stream  string
	Seq     uint64
	Subject string
	Time    time.Time
	Header  nats.Header
	Data    []byte
}

// Reason, Stage and Error read a dead letter's headers.
func (m Message) Reason() string { return m.Header.Get(zen.HeaderReason) }
func (m Message) Stage() string  { return m.Header.Get(zen.HeaderStage) }
func (m Message) Error() string  { return m.Header.Get(zen.HeaderError) }

// Filter selects stored messages.
type Filter struct {
	// Subjects filter the stream (NATS wildcards); empty means all.
	Subjects []string
	// Since keeps messages stored at or after it (zero: from the start).
	Since time.Time
	// Until keeps messages stored at or before it (zero: to the end). A
	// stream's timestamps grow with its sequence, so the scan stops at the
	// first message after Until.
	Until time.Time
	// Seqs keeps only these stream sequences (empty: all).
	Seqs []uint64
	// Match, when set, keeps only the messages it returns true for (header
	// filters such as a dead letter's reason). Limit counts kept messages.
	Match func(Message) bool
	// Limit stops after this many matches (0: no limit).
	Limit int
}

// admit says whether m is kept and whether the scan is over.
func (f Filter) admit(m Message) (keep, stop bool) {
	if !f.Until.IsZero() && m.Time.After(f.Until) {
		return false, len(f.Seqs) == 0
	}
	return f.Match == nil || f.Match(m), false
}

// DLQSubject is the ZEN_DLQ subject filter for dead letters of one stage
// ("" = all stages) and, for the forwarder, one target ("" = all): a
// forwarder dead letter's last subject token is its target, a
// transformer's is its reason.
func DLQSubject(stage, target string) string {
	switch {
	case target != "":
		return streams.DLQSubject(streams.StageForwarder, target)
	case stage != "":
		return streams.DLQRoot + "." + streams.Token(stage) + ".>"
	default:
		return streams.DLQRoot + ".>"
	}
}

// HasEventType reports whether m is of event type or Twilio event e: its
// Zen-Event-Type header (events and the forwarder's dead letters) or the
// subject it was stored or failed on (raw requests and the transformer's
// dead letters, twilio.raw.<event>).
func HasEventType(m Message, e string) bool {
	if m.Header.Get(zen.HeaderEventType) == e {
		return true
	}
	subj := m.Header.Get(zen.HeaderOrigSubj)
	if subj == "" {
		subj = m.Subject
	}
	return subj == streams.RawSubject(e) || subj == streams.EventSubject(e)
}

// List returns the messages of stream that match f, oldest first.
func List(ctx context.Context, js jetstream.JetStream, stream string, f Filter) ([]Message, error) {
	var out []Message
	err := scan(ctx, js, stream, f, func(m Message) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

// scan reads the matching messages with an ordered consumer (or by sequence
// when f.Seqs is set) and calls fn for each.
func scan(ctx context.Context, js jetstream.JetStream, stream string, f Filter, fn func(Message) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	n := 0
	if len(f.Seqs) > 0 {
		for _, seq := range f.Seqs {
			raw, err := s.GetMsg(ctx, seq)
			if err != nil {
				return fmt.Errorf("%s message %d: %w", stream, seq, err)
			}
			m := Message{Stream: stream, Seq: raw.Sequence, Subject: raw.Subject, Time: raw.Time, Header: raw.Header, Data: raw.Data}
			if m.Header == nil {
				m.Header = nats.Header{}
			}
			if keep, _ := f.admit(m); !keep {
				continue
			}
			if err := fn(m); err != nil {
				return err
			}
		}
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: f.Subjects}
	if !f.Since.IsZero() {
		since := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	if info.NumPending == 0 {
		return nil
	}
	for {
		batch, err := c.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return err
			}
			m := Message{Stream: stream, Seq: meta.Sequence.Stream, Subject: msg.Subject(), Time: meta.Timestamp, Header: msg.Headers(), Data: msg.Data()}
			if m.Header == nil {
				m.Header = nats.Header{}
			}
			keep, stop := f.admit(m)
			if stop {
				return nil
			}
			if keep {
				if err := fn(m); err != nil {
					return err
				}
				n++
			}
			if meta.NumPending == 0 || (f.Limit > 0 && n >= f.Limit) {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if got == 0 {
			return fmt.Errorf("read %s: no message within 2s though %d were pending", stream, info.NumPending)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// deadLetterHeaders are the headers a dead letter adds; a replay drops them.
var deadLetterHeaders = []string{
	zen.HeaderError, zen.HeaderReason, zen.HeaderStage, zen.HeaderDeliveries, zen.HeaderOrigStream,
	zen.HeaderOrigSubj, zen.HeaderOrigSeq, zen.HeaderFailedAt, zen.HeaderTarget,
	"Zen-Original-Msg-Id", "Zen-Http-Status", "Zen-Http-Body", HeaderReplay,
}

// DeadLetter republishes dead letter m to the subject it failed on and, once
// that publish is acknowledged, deletes it from ZEN_DLQ. Repeating it after
// a crash between the two steps stores no second copy (the copy's
// Nats-Msg-Id is derived from the dead letter's sequence).
func DeadLetter(ctx context.Context, js jetstream.JetStream, m Message) error {
	subj := m.Header.Get(zen.HeaderOrigSubj)
	if subj == "" {
		return fmt.Errorf("%s message %d has no %s header: not a dead letter", m.Stream, m.Seq, zen.HeaderOrigSubj)
	}
	out := nats.NewMsg(subj)
	out.Data = m.Data
	for k, vs := range m.Header {
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		out.Header[k] = append([]string(nil), vs...)
	}
	for _, h := range deadLetterHeaders {
		out.Header.Del(h)
	}
	id := "dlq:" + strconv.FormatUint(m.Seq, 10)
	out.Header.Set(HeaderReplay, id)
	out.Header.Set(zen.HeaderMsgID, "replay:"+id)
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("republish dead letter %d to %s: %w", m.Seq, subj, err)
	}
	s, err := js.Stream(ctx, m.Stream)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, m.Seq); err != nil && !alreadyGone(err) {
		return fmt.Errorf("republished dead letter %d, but could not delete it from %s (a repeat is harmless): %w", m.Seq, m.Stream, err)
	}
	return nil
}

// Republish stores a copy of m on its own subject with a replay marker, so
// its consumer processes it again: a raw request goes back through the
// transformer, an event back to its targets. nonce distinguishes deliberate
// repeats; the same (m, nonce) stored twice is deduplicated by the stream.
func Republish(ctx context.Context, js jetstream.JetStream, m Message, nonce string) error {
	kind := "raw"
	if m.Stream == streams.StreamEvents {
		kind = "event"
	}
	out := nats.NewMsg(m.Subject)
	out.Data = m.Data
	for k, vs := range m.Header {
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		out.Header[k] = append([]string(nil), vs...)
	}
	if kind == "event" && out.Header.Get(zen.HeaderDedupeKey) == "" {
		out.Header.Set(zen.HeaderDedupeKey, m.Header.Get(zen.HeaderMsgID))
	}
	id := kind + ":" + strconv.FormatUint(m.Seq, 10)
	out.Header.Set(HeaderReplay, id)
	out.Header.Set(zen.HeaderMsgID, "replay:"+id+":"+nonce)
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("republish %s message %d: %w", m.Stream, m.Seq, err)
	}
	return nil
}

// Forget deletes target's delivery record of dedupeKey, so the next copy of
// the event is POSTed again (`zen replay event --force`).
func Forget(ctx context.Context, js jetstream.JetStream, target, dedupeKey string) error {
	kv, err := js.KeyValue(ctx, streams.BucketDedupe)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", streams.BucketDedupe, err)
	}
	err = kv.Delete(ctx, streams.KVKey(target, dedupeKey))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	return nil
}

// alreadyGone is true when a delete failed because the message is gone (a
// repeated replay).
func alreadyGone(err error) bool {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	// nats.go wraps the server's answer as text (ErrMsgDeleteUnsuccessful).
	return strings.Contains(err.Error(), "no message found")
}
