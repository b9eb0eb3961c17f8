package transform_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/transform"
)

// testRedactKey is the HMAC key of testdata/redact's goldens (fake).
const testRedactKey = "test-redact-key-not-a-secret-0001"

const redactDir = "testdata/redact"

func redactEngine(tb testing.TB, key string) (*transform.Engine, error) {
	tb.Helper()
	p, err := pack.Load(filepath.Join(redactDir, "package"), envconf.MapLookup(nil))
	if err != nil {
		tb.Fatalf("load package: %v", err)
	}
	return transform.New(p, transform.WithClock(func() time.Time { return cardTime }), transform.WithRedactKey(envconf.Secret(key)))
}

// TestRedactGolden: the test package's rule hashes and masks fields, and
// each fixture's output matches its golden, compared as TestGolden does.
func TestRedactGolden(t *testing.T) {
	t.Parallel()
	e, err := redactEngine(t, testRedactKey)
	if err != nil {
		t.Fatal(err)
	}
	fixtures, err := fixture.List(filepath.Join(redactDir, "fixtures"))
	if err != nil || len(fixtures) < 2 {
		t.Fatalf("fixtures: %v, %v", fixtures, err)
	}
	for _, fx := range fixtures {
		name := strings.TrimSuffix(filepath.Base(fx), ".json")
		golden := filepath.Join(redactDir, "goldens", name+".golden.json")
		t.Run(name, func(t *testing.T) {
			if *update {
				results, err := transform.Run(e, fx, cardTime)
				if err != nil {
					t.Fatal(err)
				}
				out, err := transform.Render(results)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := transform.CheckGolden(e, fx, golden, cardTime); err != nil {
				t.Errorf("%v\n(run `go test ./transform -run RedactGolden -update` if the change is intended)", err)
			}
		})
	}
}

// TestRedactGoldenIsKeyedHMAC: the golden's hashes are HMAC-SHA256 under
// the key, computed here independently, and no redacted value appears in
// clear anywhere in the golden.
func TestRedactGoldenIsKeyedHMAC(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(redactDir, "goldens", "incoming_sms.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, []byte(testRedactKey))
	m.Write([]byte("+15017122661"))
	want := "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
	if got := ev.Payload["from_number"]; got != want {
		t.Errorf("from_number = %v, want %v", got, want)
	}
	if got := ev.Payload["twilio"].(map[string]any)["From"]; got != want {
		t.Errorf("twilio.From = %v, want the same hash as from_number %v", got, want)
	}
	unkeyed := sha256.Sum256([]byte("+15017122661"))
	for _, clear := range []string{"+15017122661", "+15551234567", "Hello from Twilio", hex.EncodeToString(unkeyed[:])} {
		if strings.Contains(string(b), clear) {
			t.Errorf("golden holds %q", clear)
		}
	}
	for field, want := range map[string]any{"to_number": "+*******4567", "message_body": "[redacted 18 chars]", "num_media": "[redacted 1 chars]", "message_sid": "SMtest0000000000000000000000000001"} {
		if got := ev.Payload[field]; got != want {
			t.Errorf("%s = %v, want %v", field, got, want)
		}
	}
}

// TestRedactKeyChangesHash: another key gives another hash of the same
// value (a dictionary built without the key is useless).
func TestRedactKeyChangesHash(t *testing.T) {
	t.Parallel()
	hashOf := func(key string) any {
		e, err := redactEngine(t, key)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := transform.Run(e, filepath.Join(redactDir, "fixtures", "incoming_sms.json"), cardTime)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := rs[0].Event.Payload.Get("from_number")
		return v
	}
	a, b := hashOf(testRedactKey), hashOf("test-redact-key-not-a-secret-0002")
	if a == b {
		t.Errorf("two keys gave the same hash %v", a)
	}
	if again := hashOf(testRedactKey); again != a {
		t.Errorf("hash not stable: %v then %v", a, again)
	}
}

// TestRedactHashNeedsKey: a package that hashes, loaded without a key, is
// refused with a message naming the variable and the rule.
func TestRedactHashNeedsKey(t *testing.T) {
	t.Parallel()
	_, err := redactEngine(t, "")
	if err == nil {
		t.Fatal("New without a key accepted a package that hashes")
	}
	for _, want := range []string{transform.RedactKeyVar, "TRANSFORMER_REDACT_KEY", "incoming-message", "message_events.yaml:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestShippedPackageRedactsNothing: redaction is off by default, so the
// shipped package needs no key (its goldens, unchanged, prove the output).
func TestShippedPackageRedactsNothing(t *testing.T) {
	t.Parallel()
	p, err := pack.Load(filepath.Join(repoRoot(t), "packages", "transforms", "twilio", "v1"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p.UsesHash() {
		t.Error("the shipped package hashes a field")
	}
	for _, r := range p.Rules {
		if len(r.Redact) > 0 {
			t.Errorf("shipped rule %s redacts %v", r.TwilioEvent, r.Redact)
		}
	}
	if _, err := transform.New(p); err != nil {
		t.Errorf("New without a key: %v", err)
	}
}

// TestRedactDoesNotTouchTheRequest: a JSON request's $params shares maps
// with the decoded document; redacting twilio.data.from must leave another
// raw copy of the same document in clear.
func TestRedactDoesNotTouchTheRequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pkgYAML, err := os.ReadFile(filepath.Join(redactDir, "package", "package.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.yaml"), pkgYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	rules := `rules:
  - twilio_event: incoming-message
    event_type: message.incoming
    priority: 70
    primary_id: data.sid
    payload:
      - {field: twilio, from: $params, type: raw}
      - {field: copy, from: $params, type: raw}
      - {field: media, from: data.media, type: list}
    redact: {twilio.data.from: mask, media: mask}
`
	if err := os.WriteFile(filepath.Join(dir, "message_events.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := pack.Load(dir, envconf.MapLookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	e, err := transform.New(p)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := e.Transform("incoming-message", "application/json", []byte(`{"data":{"sid":"SM1","from":"+15017122661","media":["https://x/a",7]}}`), cardTime)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(rs[0].Event.Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"twilio":{"data":{"from":"+*******2661","media":["https://x/a",7],"sid":"SM1"}},"copy":{"data":{"from":"+15017122661","media":["https://x/a",7],"sid":"SM1"}},"media":["[redacted 11 chars]","[redacted 1 chars]"]}`
	if string(got) != want {
		t.Errorf("payload = %s\nwant      %s", got, want)
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"e164", "+15017122661", "+*******2661"},
		{"whatsapp", "whatsapp:+14155238886", "whatsapp:+*******8886"},
		{"national digits", "5017122661", "******2661"},
		{"short code", "12345", "[redacted 5 chars]"},
		{"body", "Hello from Twilio!", "[redacted 18 chars]"},
		{"characters not bytes", "Café ☕", "[redacted 6 chars]"},
		{"client identity", "client:alice", "[redacted 12 chars]"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := transform.Mask(tc.in); got != tc.want {
				t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
