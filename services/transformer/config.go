package transformer

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/transform"
	"github.com/zen-twilio/zen/pkg/worker"
)

// Config configures the transformer. Build it with ConfigFromEnv or
// DefaultConfig; New validates it.
type Config struct {
	// ListenAddr serves /healthz, /readyz and /metrics.
	ListenAddr string
	// PackageDir is the transform package whose rules apply.
	PackageDir string
	// Lookup supplies the package's {{NAME}} variables (default: the
	// environment the config was read from).
	Lookup envconf.Lookup
	// RedactKey is the HMAC-SHA256 key of the rules' hash redactions
	// (TRANSFORMER_REDACT_KEY). Required only when a rule hashes a field;
	// it is a Secret, so it never prints.
	RedactKey envconf.Secret
	// Concurrency bounds messages handled at once per replica.
	Concurrency int
	// Batch bounds the raw messages transformed and published together (at
	// most Concurrency); Linger is how long a batch waits for more after its
	// first.
	Batch  int
	Linger time.Duration
	// Consumer holds AckWait, MaxDeliver, MaxAckPending.
	Consumer streams.ConsumerSettings
	// Retry is the NakWithDelay schedule of transient failures.
	Retry worker.Backoff
	// PublishTimeout bounds the wait for the event publish acknowledgements.
	PublishTimeout time.Duration
	// ShutdownGrace bounds the wait for in-flight messages on shutdown.
	ShutdownGrace time.Duration

	NATS         natsconn.Settings
	StreamsApply bool
	Streams      streams.Config
	// Capacity is what the start-up check compares Streams with
	// (CAPACITY_EVENTS_PER_SECOND, NATS_MEMORY_LIMIT, NATS_MAX_STORE).
	Capacity streams.Capacity
	LogLevel string
	// Tracing is where spans go (the OTEL_* variables); off by default.
	Tracing tracing.Config

	// Conn, when set, is used instead of connecting (zen dev, tests).
	Conn *nats.Conn
	// Now is the clock of processed_at (default time.Now).
	Now func() time.Time
	// DisableOps skips the ops HTTP listener (zen dev runs its own).
	DisableOps bool
}

// minRedactKeyBytes is the shortest HMAC key accepted: SHA-256's output
// size, as RFC 2104 section 3 recommends.
const minRedactKeyBytes = 32

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddr:     ":8081",
		PackageDir:     "packages/transforms/twilio/v1",
		Concurrency:    32,
		Batch:          16,
		Consumer:       streams.DefaultTransformerSettings(),
		Retry:          worker.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2},
		PublishTimeout: 5 * time.Second,
		ShutdownGrace:  20 * time.Second,
		NATS:           natsconn.DefaultSettings("transformer"),
		StreamsApply:   true,
		Streams:        streams.DefaultConfig(),
		Capacity:       streams.Capacity{EventsPerSecond: streams.DefaultEventsPerSecond},
		LogLevel:       "info",
	}
}

func readConfig(r *envconf.Reader) Config {
	c := DefaultConfig()
	c.ListenAddr = r.String("LISTEN_ADDR", c.ListenAddr)
	c.PackageDir = r.String("PACKAGE_DIR", c.PackageDir)
	c.RedactKey = r.Secret(transform.RedactKeyVar)
	c.Concurrency = r.Int("TRANSFORMER_CONCURRENCY", c.Concurrency)
	c.Batch = r.Int("TRANSFORMER_BATCH", c.Batch)
	c.Linger = r.Duration("TRANSFORMER_LINGER", c.Linger)
	c.Consumer = streams.ConsumerSettingsFromEnv(r, "TRANSFORMER_", c.Consumer)
	c.Retry.Initial = r.Duration("TRANSFORMER_RETRY_INITIAL", c.Retry.Initial)
	c.Retry.Max = r.Duration("TRANSFORMER_RETRY_MAX", c.Retry.Max)
	c.PublishTimeout = r.Duration("PUBLISH_TIMEOUT", c.PublishTimeout)
	c.ShutdownGrace = r.Duration("SHUTDOWN_GRACE", c.ShutdownGrace)
	c.NATS = natsconn.SettingsFromEnv(r, c.NATS)
	c.StreamsApply = r.Bool("STREAMS_APPLY", c.StreamsApply)
	c.Streams = streams.ConfigFromEnv(r)
	c.Capacity = streams.CapacityFromEnv(r)
	c.LogLevel = r.String("LOG_LEVEL", c.LogLevel)
	c.Tracing = tracing.ConfigFromEnv(r, "zen-transformer")
	return c
}

// ConfigFromEnv reads the configuration through lookup (which also supplies
// the package's {{NAME}} variables) and validates it.
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.New(lookup)
	c := readConfig(r)
	c.Lookup = lookup
	return c, errors.Join(r.Err(), c.Validate())
}

// ConfigVars lists every environment variable the transformer reads
// (besides the package's {{NAME}} variables).
func ConfigVars() []string {
	r := envconf.New(envconf.MapLookup(nil))
	readConfig(r)
	return r.Names()
}

// Validate reports every inconsistency, naming the variables.
func (c Config) Validate() error {
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("env var `%s` %s", name, fmt.Sprintf(format, args...)))
	}
	if c.PackageDir == "" {
		fail("PACKAGE_DIR", "is required")
	}
	if n := len(c.RedactKey.Reveal()); n > 0 && n < minRedactKeyBytes {
		fail(transform.RedactKeyVar, "must be at least %d bytes (32 random bytes, e.g. `openssl rand -hex 32`), got %d", minRedactKeyBytes, n)
	}
	if c.Concurrency < 1 {
		fail("TRANSFORMER_CONCURRENCY", "must be >= 1, got %d", c.Concurrency)
	}
	if c.Batch < 1 {
		fail("TRANSFORMER_BATCH", "must be >= 1, got %d", c.Batch)
	}
	if c.Linger < 0 || c.Linger >= c.PublishTimeout {
		fail("TRANSFORMER_LINGER", "must be >= 0 and shorter than PUBLISH_TIMEOUT (%s), got %s", c.PublishTimeout, c.Linger)
	}
	if c.Consumer.MaxAckPending < c.Concurrency {
		fail("TRANSFORMER_MAX_ACK_PENDING", "must be >= TRANSFORMER_CONCURRENCY (%d), got %d", c.Concurrency, c.Consumer.MaxAckPending)
	}
	if c.Retry.Initial <= 0 || c.Retry.Max < c.Retry.Initial {
		fail("TRANSFORMER_RETRY_INITIAL", "must be > 0 and <= TRANSFORMER_RETRY_MAX, got %s and %s", c.Retry.Initial, c.Retry.Max)
	}
	if c.PublishTimeout <= 0 || c.PublishTimeout >= c.Consumer.AckWait {
		fail("PUBLISH_TIMEOUT", "must be > 0 and < TRANSFORMER_ACK_WAIT (%s), got %s", c.Consumer.AckWait, c.PublishTimeout)
	}
	if c.Conn == nil && c.NATS.URL == "" {
		fail("NATS_URL", "is required")
	}
	return errors.Join(errs...)
}
