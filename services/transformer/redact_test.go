package transformer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/transform"
	"github.com/zen-twilio/zen/services/transformer"
)

// testRedactKey is the key of pkg/transform's redaction goldens (fake).
const testRedactKey = "test-redact-key-not-a-secret-0001"

func redactDir(tb testing.TB, parts ...string) string {
	return filepath.Join(append([]string{repoRoot(tb), "pkg", "transform", "testdata", "redact"}, parts...)...)
}

// TestRedactKeyIsASecret: the key is read from TRANSFORMER_REDACT_KEY,
// never printed, and a short one is refused by name without its value.
func TestRedactKeyIsASecret(t *testing.T) {
	t.Parallel()
	cfg, err := transformer.ConfigFromEnv(envconf.MapLookup(map[string]string{transform.RedactKeyVar: testRedactKey}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RedactKey.Reveal(); got != testRedactKey {
		t.Errorf("RedactKey = %q, want the variable's value", got)
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg); strings.Contains(s, testRedactKey) {
		t.Error("the printed config holds the redact key")
	}
	_, err = transformer.ConfigFromEnv(envconf.MapLookup(map[string]string{transform.RedactKeyVar: "test-short-key"}))
	if err == nil || !strings.Contains(err.Error(), "`TRANSFORMER_REDACT_KEY` must be at least 32 bytes") {
		t.Errorf("short key: err = %v, want it refused by name", err)
	}
	if err != nil && strings.Contains(err.Error(), "test-short-key") {
		t.Errorf("the error prints the key: %v", err)
	}
}

// TestHashWithoutKeyDoesNotStart: a package that hashes, with no key set,
// stops the transformer at start-up with a message naming the variable.
func TestHashWithoutKeyDoesNotStart(t *testing.T) {
	t.Parallel()
	cfg := transformer.DefaultConfig()
	cfg.PackageDir = redactDir(t, "package")
	cfg.Lookup = envconf.MapLookup(nil)
	cfg.NATS.URL = "nats://127.0.0.1:1" // never dialled: the package is refused first
	_, err := transformer.New(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "TRANSFORMER_REDACT_KEY is not set") {
		t.Fatalf("New = %v, want a refusal naming TRANSFORMER_REDACT_KEY", err)
	}
}

// TestRedactedEventIsPublished: through a real transformer and JetStream,
// the event stored in ZEN_EVENTS is the redaction golden, byte for byte in
// canonical form: no phone number or body reaches the stream in clear.
func TestRedactedEventIsPublished(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(func(c *transformer.Config) {
		c.PackageDir = redactDir(t, "package")
		c.Lookup = envconf.MapLookup(nil)
		c.RedactKey = testRedactKey
	})
	fx, err := fixture.Load(redactDir(t, "fixtures", "incoming_sms.json"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := fx.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	e.raw(fx.Event(), string(body), "redact-1")
	e.drained(20 * time.Second)
	msgs := e.streamMsgs(streams.StreamEvents)
	if len(msgs) != 1 {
		t.Fatalf("ZEN_EVENTS holds %d events, want 1", len(msgs))
	}
	for _, clear := range []string{"+15017122661", "+15551234567", "Hello from Twilio"} {
		if strings.Contains(string(msgs[0].Data), clear) {
			t.Errorf("the published event holds %q", clear)
		}
	}
	got, err := transform.Canonical(msgs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(redactDir(t, "goldens", "incoming_sms.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	cw, err := transform.Canonical(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(cw) {
		t.Errorf("%s", transform.Diff(cw, got))
	}
}
