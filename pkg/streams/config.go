package streams

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/envconf"
)

// Config holds the settings of the stream-level objects. Replicas, retention
// and windows are configuration, not code (DESIGN.md).
type Config struct {
	// Replicas of every stream and the KV bucket: 1 locally, 3 in a cluster.
	Replicas int
	// Storage is file storage unless Memory is set (tests only).
	Memory bool

	RawMaxAge          time.Duration // TWILIO_RAW retention (7 days)
	RawMaxBytes        int64         // TWILIO_RAW size cap, 0 for none
	RawDuplicateWindow time.Duration // Twilio retries stored once within this window (10 min)

	EventsMaxAge          time.Duration // ZEN_EVENTS retention (7 days)
	EventsMaxBytes        int64         // ZEN_EVENTS size cap, 0 for none
	EventsDuplicateWindow time.Duration // same dedupe key published once within this window (10 min)

	DLQMaxAge        time.Duration // ZEN_DLQ retention, 0 = until replayed or purged
	AttemptsMaxAge   time.Duration // ZEN_ATTEMPTS retention (3 days)
	AttemptsMaxBytes int64         // ZEN_ATTEMPTS size cap (oldest records dropped)
	DLQMaxBytes      int64         // ZEN_DLQ size cap (new dead letters refused)

	// DedupeTTL is how long a delivered key is remembered (20 min): it
	// covers Twilio's classic-callback retries (minutes), a redelivery
	// after a lost ack (AckWait) and the duplicate windows. Keys of
	// DedupeLongType live DedupeLongTTL instead (Event Streams retries up
	// to 4 hours late). A key costs the server ~350 B of memory
	// (bench/results.md), so the horizon, not the retention, sizes it.
	DedupeTTL      time.Duration
	DedupeLongTTL  time.Duration // 5 h
	DedupeLongType string        // the event type with DedupeLongTTL: verification.status (Event Streams)
	DedupeMaxBytes int64         // zen_dedupe size cap; when full a key is not recorded (counted)
}

// DefaultEventsPerSecond is the sustained rate [DefaultConfig] is sized for
// (a laptop's `make run`); a deployment declares its own with
// CAPACITY_EVENTS_PER_SECOND (deploy/k8s: 1,000).
const DefaultEventsPerSecond = 2

// DefaultConfig returns the defaults of DESIGN.md.
func DefaultConfig() Config {
	return Config{
		Replicas:              1,
		RawMaxAge:             7 * 24 * time.Hour,
		RawDuplicateWindow:    10 * time.Minute,
		EventsMaxAge:          7 * 24 * time.Hour,
		EventsDuplicateWindow: 10 * time.Minute,
		AttemptsMaxAge:        3 * 24 * time.Hour,
		DedupeTTL:             20 * time.Minute,
		DedupeLongTTL:         5 * time.Hour,
		DedupeLongType:        "verification.status",
		// Byte bounds that hold the horizons above at DefaultEventsPerSecond
		// (with MeasuredCosts: 1.2M raw requests and events in 7 days, 0.6M
		// attempt records in 3), so the shipped defaults reach their age
		// before their bound; above that rate a stream refuses writes (the
		// ingester answers 503) rather than drop what is unread.
		RawMaxBytes:      1280 << 20,
		EventsMaxBytes:   2048 << 20,
		AttemptsMaxBytes: 320 << 20,
		DLQMaxBytes:      50 << 20,
		DedupeMaxBytes:   64 << 20,
	}
}

// ConfigFromEnv overlays the environment on [DefaultConfig]. Variables:
// STREAM_REPLICAS, RAW_MAX_AGE, RAW_MAX_BYTES, RAW_DUPLICATE_WINDOW,
// EVENTS_MAX_AGE, EVENTS_MAX_BYTES, EVENTS_DUPLICATE_WINDOW, DLQ_MAX_AGE,
// ATTEMPTS_MAX_AGE, DEDUPE_TTL. Problems are recorded on r.
func ConfigFromEnv(r *envconf.Reader) Config {
	c := DefaultConfig()
	c.Replicas = r.Int("STREAM_REPLICAS", c.Replicas)
	c.RawMaxAge = r.Duration("RAW_MAX_AGE", c.RawMaxAge)
	c.RawMaxBytes = r.Int64("RAW_MAX_BYTES", c.RawMaxBytes)
	c.RawDuplicateWindow = r.Duration("RAW_DUPLICATE_WINDOW", c.RawDuplicateWindow)
	c.EventsMaxAge = r.Duration("EVENTS_MAX_AGE", c.EventsMaxAge)
	c.EventsMaxBytes = r.Int64("EVENTS_MAX_BYTES", c.EventsMaxBytes)
	c.EventsDuplicateWindow = r.Duration("EVENTS_DUPLICATE_WINDOW", c.EventsDuplicateWindow)
	c.DLQMaxAge = r.Duration("DLQ_MAX_AGE", c.DLQMaxAge)
	c.AttemptsMaxAge = r.Duration("ATTEMPTS_MAX_AGE", c.AttemptsMaxAge)
	c.AttemptsMaxBytes = r.Int64("ATTEMPTS_MAX_BYTES", c.AttemptsMaxBytes)
	c.DLQMaxBytes = r.Int64("DLQ_MAX_BYTES", c.DLQMaxBytes)
	c.DedupeTTL = r.Duration("DEDUPE_TTL", c.DedupeTTL)
	c.DedupeLongTTL = r.Duration("DEDUPE_LONG_TTL", c.DedupeLongTTL)
	c.DedupeMaxBytes = r.Int64("DEDUPE_MAX_BYTES", c.DedupeMaxBytes)
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		r.Fail("STREAM_REPLICAS", "must be 1, 3 or 5, got %d", c.Replicas)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RAW_MAX_AGE", c.RawMaxAge}, {"EVENTS_MAX_AGE", c.EventsMaxAge},
		{"ATTEMPTS_MAX_AGE", c.AttemptsMaxAge}, {"DEDUPE_TTL", c.DedupeTTL}, {"DEDUPE_LONG_TTL", c.DedupeLongTTL},
		{"RAW_DUPLICATE_WINDOW", c.RawDuplicateWindow}, {"EVENTS_DUPLICATE_WINDOW", c.EventsDuplicateWindow},
	} {
		if d.v <= 0 {
			r.Fail(d.name, "must be > 0, got %s", d.v)
		}
	}
	if c.DedupeTTL < time.Second || c.DedupeLongTTL < time.Second {
		r.Fail("DEDUPE_TTL", "DEDUPE_TTL and DEDUPE_LONG_TTL must be >= 1s (a per-key TTL), got %s and %s", c.DedupeTTL, c.DedupeLongTTL)
	}
	if c.RawDuplicateWindow > c.RawMaxAge {
		r.Fail("RAW_DUPLICATE_WINDOW", "must not exceed RAW_MAX_AGE (%s), got %s", c.RawMaxAge, c.RawDuplicateWindow)
	}
	if c.EventsDuplicateWindow > c.EventsMaxAge {
		r.Fail("EVENTS_DUPLICATE_WINDOW", "must not exceed EVENTS_MAX_AGE (%s), got %s", c.EventsMaxAge, c.EventsDuplicateWindow)
	}
	return c
}

func (c Config) storage() jetstream.StorageType {
	if c.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

func (c Config) replicas() int {
	if c.Replicas <= 0 {
		return 1
	}
	return c.Replicas
}

// RawStream returns the configuration of TWILIO_RAW.
func (c Config) RawStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamRaw,
		Description: "Every verified Twilio request, raw body and evidence headers",
		Subjects:    []string{RawRoot + ".>"},
		Retention:   jetstream.LimitsPolicy,
		// A full stream refuses the publish (the ingester answers 503, so
		// Twilio's retry applies) instead of dropping the oldest request,
		// which the transformer may not have read yet (issue 22).
		Discard:    jetstream.DiscardNew,
		Storage:    c.storage(),
		Replicas:   c.replicas(),
		MaxAge:     c.RawMaxAge,
		MaxBytes:   orUnlimited(c.RawMaxBytes),
		Duplicates: c.RawDuplicateWindow,
	}
}

// EventsStream returns the configuration of ZEN_EVENTS.
func (c Config) EventsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "Zen events produced by the transformer",
		Subjects:    []string{EventsRoot + ".>"},
		Retention:   jetstream.LimitsPolicy,
		// Full: the transformer's publish fails and the raw message is
		// retried, never an undelivered event dropped.
		Discard:    jetstream.DiscardNew,
		Storage:    c.storage(),
		Replicas:   c.replicas(),
		MaxAge:     c.EventsMaxAge,
		MaxBytes:   orUnlimited(c.EventsMaxBytes),
		Duplicates: c.EventsDuplicateWindow,
	}
}

// DLQStream returns the configuration of ZEN_DLQ. Dead letters are kept until
// an operator replays or purges them (unless DLQMaxAge is set).
func (c Config) DLQStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamDLQ,
		Description: "Messages that failed for good, with the reason; replay with `zen replay dlq`",
		Subjects:    []string{DLQRoot + ".>"},
		Retention:   jetstream.LimitsPolicy,
		// Full: the dead-letter publish fails and the message is retried,
		// not terminated (pkg/worker terminates only after the publish).
		Discard:  jetstream.DiscardNew,
		Storage:  c.storage(),
		Replicas: c.replicas(),
		MaxAge:   c.DLQMaxAge,
		MaxBytes: orUnlimited(c.DLQMaxBytes),
		// A dead letter is published once per failure; a replay of the same
		// message may fail again later and must be recorded again.
		Duplicates: 2 * time.Minute,
	}
}

// AttemptsStream returns the configuration of ZEN_ATTEMPTS.
func (c Config) AttemptsStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamAttempts,
		Description: "One record per delivery attempt: event id, attempt, status, latency, error",
		Subjects:    []string{AttemptsRoot + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     c.storage(),
		Replicas:    c.replicas(),
		MaxAge:      c.AttemptsMaxAge,
		// Records only: the oldest go first.
		MaxBytes: orUnlimited(c.AttemptsMaxBytes),
	}
}

// DedupeBucket returns the configuration of the zen_dedupe KV bucket. Each
// entry carries its own TTL ([Config.DedupeTTLFor], the Nats-TTL header);
// the bucket's TTL is the longest of them. LimitMarkerTTL is what lets a
// bucket take per-key TTLs (nats.go's KeyValueConfig); its markers live 1 s.
// The bucket refuses a put when it holds DedupeMaxBytes (KV buckets discard
// new): the forwarder counts that key as not recorded.
func (c Config) DedupeBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         BucketDedupe,
		Description:    "<target>.<dedupe key> of events delivered to a target, each with its TTL",
		History:        1,
		TTL:            max(c.DedupeTTL, c.DedupeLongTTL),
		LimitMarkerTTL: time.Second,
		MaxBytes:       orUnlimited(c.DedupeMaxBytes),
		Storage:        c.storage(),
		Replicas:       c.replicas(),
	}
}

// DedupeTTLFor returns how long the delivered key of an event of eventType
// is remembered: DedupeLongTTL for DedupeLongType, else DedupeTTL.
func (c Config) DedupeTTLFor(eventType string) time.Duration {
	if eventType == c.DedupeLongType {
		return c.DedupeLongTTL
	}
	return c.DedupeTTL
}

// Streams returns the four stream configurations.
func (c Config) Streams() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{c.RawStream(), c.EventsStream(), c.DLQStream(), c.AttemptsStream()}
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// ConsumerSettings are the delivery settings of one worker's durable consumer.
//
// The consumers have no BackOff: every retry is a NakWithDelay whose delay
// the worker computes from the delivery count (pkg/worker), and a consumer
// BackOff would be added to it. nats-server's processNak backdates a delayed
// NAK by AckWait (= BackOff[0]) while checkPending measures it against
// BackOff[deliveries], so the wait becomes delay + BackOff[n] − BackOff[0]
// (server/consumer.go; measured: 0, 1, 33, 127 s for a 1 s doubling
// schedule). A delivery whose worker died comes back after AckWait.
type ConsumerSettings struct {
	// AckWait is how long a delivered message may stay unacknowledged before
	// JetStream redelivers it. Workers send InProgress during slow work.
	AckWait time.Duration
	// MaxDeliver bounds deliveries; the worker dead-letters on the last one.
	MaxDeliver int
	// MaxAckPending bounds unacknowledged messages across all replicas.
	MaxAckPending int
}

// Validate reports every inconsistency, naming the variables of prefix
// (e.g. "TRANSFORMER_").
func (s ConsumerSettings) Validate(r *envconf.Reader, prefix string) {
	if s.AckWait < time.Second {
		r.Fail(prefix+"ACK_WAIT", "must be >= 1s, got %s", s.AckWait)
	}
	if s.MaxDeliver < 1 {
		r.Fail(prefix+"MAX_DELIVER", "must be >= 1, got %d", s.MaxDeliver)
	}
	if s.MaxAckPending < 1 {
		r.Fail(prefix+"MAX_ACK_PENDING", "must be >= 1, got %d", s.MaxAckPending)
	}
}

// ConsumerSettingsFromEnv reads <prefix>ACK_WAIT, <prefix>MAX_DELIVER and
// <prefix>MAX_ACK_PENDING over def, and validates them. <prefix>BACKOFF,
// read by earlier versions, is refused with the reason (see
// ConsumerSettings).
func ConsumerSettingsFromEnv(r *envconf.Reader, prefix string, def ConsumerSettings) ConsumerSettings {
	s := def
	s.AckWait = r.Duration(prefix+"ACK_WAIT", s.AckWait)
	s.MaxDeliver = r.Int(prefix+"MAX_DELIVER", s.MaxDeliver)
	if r.String(prefix+"BACKOFF", "") != "" {
		r.Fail(prefix+"BACKOFF", "is no longer read: a consumer BackOff is added by JetStream to every delayed NAK, "+
			"which stretched the retry schedule (0, 1, 33, 127 s instead of 0, 1, 3, 7 s); the schedule is %sRETRY_INITIAL and %sRETRY_MAX, remove %sBACKOFF", prefix, prefix, prefix)
	}
	s.MaxAckPending = r.Int(prefix+"MAX_ACK_PENDING", s.MaxAckPending)
	s.Validate(r, prefix)
	return s
}

// DefaultTransformerSettings: 30 s ack wait, 10 deliveries.
func DefaultTransformerSettings() ConsumerSettings {
	return ConsumerSettings{
		AckWait:       30 * time.Second,
		MaxDeliver:    10,
		MaxAckPending: 1000,
	}
}

// DefaultForwarderSettings: 30 s ack wait, 12 deliveries.
func DefaultForwarderSettings() ConsumerSettings {
	return ConsumerSettings{
		AckWait:       30 * time.Second,
		MaxDeliver:    12,
		MaxAckPending: 1000,
	}
}

// TransformerConsumer returns the durable consumer `transformer` on TWILIO_RAW.
func TransformerConsumer(s ConsumerSettings) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerTransformer,
		Description:   "Transforms raw Twilio requests into Zen events",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxDeliver:    s.MaxDeliver,
		MaxAckPending: s.MaxAckPending,
		FilterSubject: RawRoot + ".>",
	}
}

// ForwarderConsumer returns the durable consumer `forwarder-<target>` on
// ZEN_EVENTS, filtered to the event types routed to the target.
func ForwarderConsumerConfig(target string, eventTypes []string, s ConsumerSettings) (jetstream.ConsumerConfig, error) {
	if len(eventTypes) == 0 {
		return jetstream.ConsumerConfig{}, fmt.Errorf("forwarder consumer for target %q: no event types routed to it", target)
	}
	subjects := make([]string, 0, len(eventTypes))
	for _, t := range eventTypes {
		subjects = append(subjects, EventSubject(t))
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       ForwarderConsumer(target),
		Description:   "Delivers Zen events to target " + target,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxDeliver:    s.MaxDeliver,
		MaxAckPending: s.MaxAckPending,
	}
	if len(subjects) == 1 {
		cfg.FilterSubject = subjects[0]
	} else {
		cfg.FilterSubjects = subjects
	}
	return cfg, nil
}
