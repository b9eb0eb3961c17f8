package forwarder

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/worker"
)

// Config configures the forwarder. Build it with ConfigFromEnv or
// DefaultConfig; New validates it.
type Config struct {
	// ListenAddr serves /healthz, /readyz and /metrics.
	ListenAddr string
	// PackageDir is the transform package: its targets and flows.
	PackageDir string
	// Lookup supplies the package's {{NAME}} variables (target URL, token).
	Lookup envconf.Lookup
	// Concurrency bounds deliveries at once, per target, per replica. A
	// delivery holds its slot for the dedupe read and the POST, so one
	// replica delivers at most Concurrency / (read + POST latency) events/s:
	// 128 slots are 2,560/s at 50 ms, and on a saturated machine (make bench)
	// 32 slots, not the CPU, were the limit.
	Concurrency int
	// Consumer holds AckWait, MaxDeliver, MaxAckPending.
	Consumer streams.ConsumerSettings
	// Retry is the redelivery schedule after a retryable failure.
	Retry worker.Backoff
	// HTTPTimeout bounds one POST; it must be shorter than AckWait.
	HTTPTimeout time.Duration
	// MaxRetryAfter caps a target's Retry-After.
	MaxRetryAfter time.Duration
	// ShutdownGrace bounds the wait for in-flight deliveries on shutdown.
	ShutdownGrace time.Duration
	// Version goes into the User-Agent.
	Version string

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
	// Transport, when set, replaces the pooled HTTP transport (tests).
	Transport http.RoundTripper
	// Now is the clock of attempt records and signatures (default time.Now).
	Now func() time.Time
	// DisableOps skips the ops HTTP listener (zen dev runs its own).
	DisableOps bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddr:    ":8082",
		PackageDir:    "packages/transforms/twilio/v1",
		Concurrency:   128,
		Consumer:      streams.DefaultForwarderSettings(),
		Retry:         worker.Backoff{Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2},
		HTTPTimeout:   10 * time.Second,
		MaxRetryAfter: 5 * time.Minute,
		ShutdownGrace: 20 * time.Second,
		Version:       "dev",
		NATS:          natsconn.DefaultSettings("forwarder"),
		StreamsApply:  true,
		Streams:       streams.DefaultConfig(),
		Capacity:      streams.Capacity{EventsPerSecond: streams.DefaultEventsPerSecond},
		LogLevel:      "info",
	}
}

func readConfig(r *envconf.Reader) Config {
	c := DefaultConfig()
	c.ListenAddr = r.String("LISTEN_ADDR", c.ListenAddr)
	c.PackageDir = r.String("PACKAGE_DIR", c.PackageDir)
	c.Concurrency = r.Int("FORWARDER_CONCURRENCY", c.Concurrency)
	c.Consumer = streams.ConsumerSettingsFromEnv(r, "FORWARDER_", c.Consumer)
	c.Retry.Initial = r.Duration("FORWARDER_RETRY_INITIAL", c.Retry.Initial)
	c.Retry.Max = r.Duration("FORWARDER_RETRY_MAX", c.Retry.Max)
	c.Retry.Multiplier = float64(r.Int("FORWARDER_RETRY_MULTIPLIER", int(c.Retry.Multiplier)))
	c.HTTPTimeout = r.Duration("FORWARDER_HTTP_TIMEOUT", c.HTTPTimeout)
	c.MaxRetryAfter = r.Duration("FORWARDER_MAX_RETRY_AFTER", c.MaxRetryAfter)
	c.ShutdownGrace = r.Duration("SHUTDOWN_GRACE", c.ShutdownGrace)
	c.NATS = natsconn.SettingsFromEnv(r, c.NATS)
	c.StreamsApply = r.Bool("STREAMS_APPLY", c.StreamsApply)
	c.Streams = streams.ConfigFromEnv(r)
	c.Capacity = streams.CapacityFromEnv(r)
	c.LogLevel = r.String("LOG_LEVEL", c.LogLevel)
	c.Tracing = tracing.ConfigFromEnv(r, "zen-forwarder")
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

// ConfigVars lists every environment variable the forwarder reads (besides
// the package's {{NAME}} variables).
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
	if c.Concurrency < 1 {
		fail("FORWARDER_CONCURRENCY", "must be >= 1, got %d", c.Concurrency)
	}
	if c.HTTPTimeout <= 0 || c.HTTPTimeout >= c.Consumer.AckWait {
		fail("FORWARDER_HTTP_TIMEOUT", "must be > 0 and shorter than FORWARDER_ACK_WAIT (%s), got %s", c.Consumer.AckWait, c.HTTPTimeout)
	}
	if c.Retry.Initial <= 0 || c.Retry.Max < c.Retry.Initial || c.Retry.Multiplier < 1 {
		fail("FORWARDER_RETRY_INITIAL", "must be > 0, <= FORWARDER_RETRY_MAX, with FORWARDER_RETRY_MULTIPLIER >= 1; got %s, %s, %v", c.Retry.Initial, c.Retry.Max, c.Retry.Multiplier)
	}
	if c.MaxRetryAfter < 0 {
		fail("FORWARDER_MAX_RETRY_AFTER", "must be >= 0, got %s", c.MaxRetryAfter)
	}
	if c.Consumer.MaxAckPending < c.Concurrency {
		fail("FORWARDER_MAX_ACK_PENDING", "must be >= FORWARDER_CONCURRENCY (%d), got %d", c.Concurrency, c.Consumer.MaxAckPending)
	}
	if c.Conn == nil && c.NATS.URL == "" {
		fail("NATS_URL", "is required")
	}
	return errors.Join(errs...)
}
