package ingester

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/streams"
)

// Config configures the ingester. Build it with ConfigFromEnv or
// DefaultConfig; New validates it.
type Config struct {
	// ListenAddr serves the webhooks and /healthz, /readyz, /metrics.
	ListenAddr string
	// PublicURL is the scheme://host[:port][/prefix] Twilio calls; the
	// signature is checked against PublicURL + the request's path and query
	// exactly as received (Twilio signs the public URL, not the one behind
	// the load balancer).
	PublicURL string
	// AuthTokens are the Twilio auth tokens (TWILIO_AUTH_TOKEN,
	// comma-separated so a rotated token keeps working).
	AuthTokens []envconf.Secret
	// InsecureSkipSignature accepts unsigned requests: local experiments only.
	InsecureSkipSignature bool
	// MaxBodyBytes bounds a request body (413 beyond).
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for JetStream's acknowledgement (503 beyond).
	PublishTimeout time.Duration
	// MaxInFlight bounds requests being published at once; more get 503
	// at once, so a slow NATS makes the ingester shed load, not queue it.
	MaxInFlight int
	// RetryAfter is the Retry-After of a 503.
	RetryAfter time.Duration
	// ShutdownGrace bounds the wait for in-flight requests on shutdown.
	ShutdownGrace time.Duration
	// ReadHeaderTimeout and ReadTimeout cut off slow clients (slow-loris):
	// the headers, and the whole request, must arrive within them.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// PackageDir, when set, supplies the endpoint's static responses
	// (TwiML for incoming messages and calls) and the known events.
	PackageDir string

	NATS natsconn.Settings
	// StreamsApply creates or updates the streams at start-up; false in
	// locked-down clusters where a Job applies them (then only checked).
	StreamsApply bool
	Streams      streams.Config
	LogLevel     string

	// Conn, when set, is used instead of connecting to NATS.URL (zen dev,
	// tests); the caller keeps ownership.
	Conn *nats.Conn
	// Listener, when set, is served instead of listening on ListenAddr.
	Listener net.Listener
	// Now is the clock of Zen-Received-At (default time.Now).
	Now func() time.Time
}

// DefaultConfig returns the defaults (no tokens, no public URL).
func DefaultConfig() Config {
	return Config{
		ListenAddr:        ":8080",
		MaxBodyBytes:      1 << 20,
		PublishTimeout:    5 * time.Second,
		MaxInFlight:       128,
		RetryAfter:        5 * time.Second,
		ShutdownGrace:     20 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		NATS:              natsconn.DefaultSettings("ingester"),
		StreamsApply:      true,
		Streams:           streams.DefaultConfig(),
		LogLevel:          "info",
	}
}

func readConfig(r *envconf.Reader) Config {
	c := DefaultConfig()
	c.ListenAddr = r.String("LISTEN_ADDR", c.ListenAddr)
	c.PublicURL = strings.TrimRight(r.String("PUBLIC_URL", ""), "/")
	for _, t := range r.List("TWILIO_AUTH_TOKEN", nil) {
		c.AuthTokens = append(c.AuthTokens, envconf.Secret(t))
	}
	c.InsecureSkipSignature = r.Bool("INSECURE_SKIP_SIGNATURE", false)
	c.MaxBodyBytes = r.Int64("MAX_BODY_BYTES", c.MaxBodyBytes)
	c.PublishTimeout = r.Duration("PUBLISH_TIMEOUT", c.PublishTimeout)
	c.MaxInFlight = r.Int("MAX_IN_FLIGHT", c.MaxInFlight)
	c.RetryAfter = r.Duration("RETRY_AFTER", c.RetryAfter)
	c.ShutdownGrace = r.Duration("SHUTDOWN_GRACE", c.ShutdownGrace)
	c.ReadHeaderTimeout = r.Duration("READ_HEADER_TIMEOUT", c.ReadHeaderTimeout)
	c.ReadTimeout = r.Duration("READ_TIMEOUT", c.ReadTimeout)
	c.PackageDir = r.String("PACKAGE_DIR", "")
	c.NATS = natsconn.SettingsFromEnv(r, c.NATS)
	c.StreamsApply = r.Bool("STREAMS_APPLY", c.StreamsApply)
	c.Streams = streams.ConfigFromEnv(r)
	c.LogLevel = r.String("LOG_LEVEL", c.LogLevel)
	return c
}

// ConfigFromEnv reads the configuration through lookup and validates it,
// returning every problem at once.
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.New(lookup)
	c := readConfig(r)
	return c, errors.Join(r.Err(), c.Validate())
}

// ConfigVars lists every environment variable the ingester reads.
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
	if len(c.AuthTokens) == 0 && !c.InsecureSkipSignature {
		fail("TWILIO_AUTH_TOKEN", "is required (or INSECURE_SKIP_SIGNATURE=true for local experiments)")
	}
	if c.PublicURL == "" {
		fail("PUBLIC_URL", "is required: the URL Twilio calls, e.g. https://hooks.example.com")
	} else if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		fail("PUBLIC_URL", "must be an absolute http(s) URL without query or fragment, got %q", c.PublicURL)
	}
	if c.MaxBodyBytes <= 0 {
		fail("MAX_BODY_BYTES", "must be > 0, got %d", c.MaxBodyBytes)
	}
	if c.PublishTimeout <= 0 || c.PublishTimeout > 14*time.Second {
		fail("PUBLISH_TIMEOUT", "must be > 0 and < 15s (Twilio's timeout), got %s", c.PublishTimeout)
	}
	if c.MaxInFlight < 1 {
		fail("MAX_IN_FLIGHT", "must be >= 1, got %d", c.MaxInFlight)
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout < c.ReadHeaderTimeout {
		fail("READ_TIMEOUT", "must be >= READ_HEADER_TIMEOUT > 0, got %s and %s", c.ReadTimeout, c.ReadHeaderTimeout)
	}
	if c.RetryAfter < time.Second {
		fail("RETRY_AFTER", "must be >= 1s, got %s", c.RetryAfter)
	}
	if c.ShutdownGrace <= 0 {
		fail("SHUTDOWN_GRACE", "must be > 0, got %s", c.ShutdownGrace)
	}
	if c.Conn == nil && c.NATS.URL == "" {
		fail("NATS_URL", "is required")
	}
	return errors.Join(errs...)
}
