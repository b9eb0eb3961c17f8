package ingester

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natsconn"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/twiliosig"
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
	// AuthTokens are the auth tokens of a single Twilio account
	// (TWILIO_AUTH_TOKEN, comma-separated so a rotated token keeps
	// working): every request is verified with them, whatever account it
	// names.
	AuthTokens []envconf.Secret
	// AccountTokens are the auth tokens of each account, by AccountSid
	// (TWILIO_AUTH_TOKENS or TWILIO_AUTH_TOKENS_FILE; several per account
	// during a rotation): a request is verified only with the tokens of the
	// account it names. Set AuthTokens or AccountTokens, not both.
	AccountTokens map[string][]envconf.Secret
	// accountTokensVar names the variable AccountTokens was read from
	// (set even when it failed to parse), for errors.
	accountTokensVar string
	// InsecureSkipSignature accepts unsigned requests: local experiments only.
	InsecureSkipSignature bool
	// MaxBodyBytes bounds a request body (413 beyond); MaxFormParams its
	// parameters (413 beyond).
	MaxBodyBytes  int64
	MaxFormParams int
	// A body must arrive within BodyReadTimeout + its size/BodyMinRate
	// (bytes per second), else 408: a slow client frees its connection in
	// seconds.
	BodyReadTimeout time.Duration
	BodyMinRate     int64
	// BodyMemoryBytes bounds the bytes of all bodies held at once, charged
	// as they arrive (503 beyond); MaxConnections the open connections
	// (more wait to be accepted). Together they bound the ingester's memory
	// under any flood (docs/configuration.md#memory).
	BodyMemoryBytes int64
	MaxConnections  int
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
	// Capacity is what the start-up check compares Streams with
	// (CAPACITY_EVENTS_PER_SECOND, NATS_MEMORY_LIMIT, NATS_MAX_STORE).
	Capacity streams.Capacity
	LogLevel string
	// Tracing is where spans go (the OTEL_* variables); off by default.
	Tracing tracing.Config

	// Conn, when set, is used instead of connecting to NATS.URL (zen dev,
	// tests); the caller keeps ownership.
	Conn *nats.Conn
	// Listener, when set, is served instead of listening on ListenAddr.
	Listener net.Listener
	// Now is the clock of Zen-Received-At (default time.Now).
	Now func() time.Time
}

// DefaultMaxBodyBytes is 128 KiB. Twilio's bodies are a few KB (the
// largest fixture, an Event Streams batch, is 3.5 KB); the largest a classic
// callback can be is an SMS of 1,600 four-byte characters, percent-encoded
// (19.2 KB), or a Conversations message with its 16 KiB of attributes
// encoded (up to 48 KiB) and its body: 128 KiB holds twice that.
const DefaultMaxBodyBytes = 128 << 10

// DefaultConfig returns the defaults (no tokens, no public URL).
func DefaultConfig() Config {
	return Config{
		ListenAddr:        ":8080",
		MaxBodyBytes:      DefaultMaxBodyBytes,
		MaxFormParams:     256,
		BodyReadTimeout:   2 * time.Second,
		BodyMinRate:       16 << 10,
		BodyMemoryBytes:   16 << 20,
		MaxConnections:    2048,
		PublishTimeout:    5 * time.Second,
		MaxInFlight:       128,
		RetryAfter:        5 * time.Second,
		ShutdownGrace:     20 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		NATS:              natsconn.DefaultSettings("ingester"),
		StreamsApply:      true,
		Streams:           streams.DefaultConfig(),
		Capacity:          streams.Capacity{EventsPerSecond: streams.DefaultEventsPerSecond},
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
	c.AccountTokens, c.accountTokensVar = readAccountTokens(r)
	c.InsecureSkipSignature = r.Bool("INSECURE_SKIP_SIGNATURE", false)
	c.MaxBodyBytes = r.Int64("MAX_BODY_BYTES", c.MaxBodyBytes)
	c.MaxFormParams = r.Int("MAX_FORM_PARAMS", c.MaxFormParams)
	c.BodyReadTimeout = r.Duration("BODY_READ_TIMEOUT", c.BodyReadTimeout)
	c.BodyMinRate = r.Int64("BODY_MIN_RATE", c.BodyMinRate)
	c.BodyMemoryBytes = r.Int64("BODY_MEMORY_BYTES", c.BodyMemoryBytes)
	c.MaxConnections = r.Int("MAX_CONNECTIONS", c.MaxConnections)
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
	c.Capacity = streams.CapacityFromEnv(r)
	c.LogLevel = r.String("LOG_LEVEL", c.LogLevel)
	c.Tracing = tracing.ConfigFromEnv(r, "zen-ingester")
	return c
}

// readAccountTokens reads the tokens per account from TWILIO_AUTH_TOKENS
// (`AC…=token[;token2],AC…=token`) or from the file TWILIO_AUTH_TOKENS_FILE
// names (one `AC…=token[;token2]` a line, # comments), not both. The file is
// read once, at start: a rotation is a restart with the new token added.
func readAccountTokens(r *envconf.Reader) (map[string][]envconf.Secret, string) {
	inline := r.Secret("TWILIO_AUTH_TOKENS")
	file := r.String("TWILIO_AUTH_TOKENS_FILE", "")
	name, spec := "TWILIO_AUTH_TOKENS", inline.Reveal()
	switch {
	case inline != "" && file != "":
		r.Fail("TWILIO_AUTH_TOKENS", "and `TWILIO_AUTH_TOKENS_FILE` are both set: use one")
		return nil, name
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			r.Fail("TWILIO_AUTH_TOKENS_FILE", "%v", err)
			return nil, "TWILIO_AUTH_TOKENS_FILE"
		}
		name, spec = "TWILIO_AUTH_TOKENS_FILE", string(b)
	case spec == "":
		return nil, ""
	}
	accounts, err := twiliosig.ParseAccountTokens(spec)
	if err != nil {
		r.Fail(name, "%v", err) // names the entry, never a token
		return nil, name
	}
	out := make(map[string][]envconf.Secret, len(accounts))
	for sid, tokens := range accounts {
		for _, t := range tokens {
			out[sid] = append(out[sid], envconf.Secret(t))
		}
	}
	return out, name
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
	perAccount := c.accountTokensVar
	if perAccount == "" {
		perAccount = "TWILIO_AUTH_TOKENS"
	}
	perAccountSet := len(c.AccountTokens) > 0 || c.accountTokensVar != ""
	switch {
	case len(c.AuthTokens) > 0 && perAccountSet:
		fail("TWILIO_AUTH_TOKEN", "and `%s` are both set: use TWILIO_AUTH_TOKEN for one account, or tokens per account alone", perAccount)
	case len(c.AuthTokens) == 0 && !perAccountSet && !c.InsecureSkipSignature:
		fail("TWILIO_AUTH_TOKEN", "is required, or TWILIO_AUTH_TOKENS (or TWILIO_AUTH_TOKENS_FILE) for tokens per account (or INSECURE_SKIP_SIGNATURE=true for local experiments)")
	case len(c.AccountTokens) > 0:
		if _, err := c.keyring(); err != nil {
			fail(perAccount, "%v", err)
		}
	}
	if c.PublicURL == "" {
		fail("PUBLIC_URL", "is required: the URL Twilio calls, e.g. https://hooks.example.com")
	} else if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		fail("PUBLIC_URL", "must be an absolute http(s) URL without query or fragment, got %q", c.PublicURL)
	}
	if c.MaxBodyBytes <= 0 {
		fail("MAX_BODY_BYTES", "must be > 0, got %d", c.MaxBodyBytes)
	}
	if c.MaxFormParams < 1 {
		fail("MAX_FORM_PARAMS", "must be >= 1, got %d", c.MaxFormParams)
	}
	if c.BodyReadTimeout <= 0 {
		fail("BODY_READ_TIMEOUT", "must be > 0, got %s", c.BodyReadTimeout)
	}
	if c.BodyMinRate < 1 {
		fail("BODY_MIN_RATE", "must be >= 1 (bytes per second), got %d", c.BodyMinRate)
	}
	if c.BodyMemoryBytes < c.MaxBodyBytes {
		fail("BODY_MEMORY_BYTES", "must be >= MAX_BODY_BYTES (%d), got %d", c.MaxBodyBytes, c.BodyMemoryBytes)
	}
	if c.MaxConnections < 1 {
		fail("MAX_CONNECTIONS", "must be >= 1, got %d", c.MaxConnections)
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

// keyring returns the Keyring of the configured tokens: per account when
// AccountTokens is set, else the single account of AuthTokens.
func (c Config) keyring() (*twiliosig.Keyring, error) {
	if len(c.AccountTokens) == 0 {
		return twiliosig.SingleAccount(reveal(c.AuthTokens))
	}
	accounts := make(map[string][]string, len(c.AccountTokens))
	for sid, tokens := range c.AccountTokens {
		accounts[sid] = reveal(tokens)
	}
	return twiliosig.NewKeyring(accounts)
}

func reveal(secrets []envconf.Secret) []string {
	out := make([]string, len(secrets))
	for i, s := range secrets {
		out[i] = s.Reveal()
	}
	return out
}
