package pack_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/pack"
)

// redactPackageDir is the test package of pkg/transform's redaction goldens.
const redactPackageDir = "../transform/testdata/redact/package"

// redactRulePackage writes the redaction test package with its rule file
// replaced by rules.
func redactRulePackage(t *testing.T, rules string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(redactPackageDir, "package.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "package.yaml", string(b))
	write(t, dir, "message_events.yaml", rules)
	return dir
}

const redactRuleHead = `rules:
  - twilio_event: incoming-message
    event_type: message.incoming
    priority: 70
    primary_id: MessageSid
    payload:
      - {field: from_number, from: From}
      - {field: num_media, from: NumMedia, type: integer}
      - {field: twilio, from: $params, type: raw}
`

func TestRedactLoads(t *testing.T) {
	t.Parallel()
	p, err := pack.Load(redactPackageDir, envconf.MapLookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := p.RuleFor("incoming-message")
	if got, want := len(r.Redact), 7; got != want {
		t.Fatalf("redactions = %d, want %d", got, want)
	}
	if d := r.Redact[0]; d.Path != "from_number" || d.Mode != pack.RedactHash || d.Line == 0 {
		t.Errorf("first redaction = %+v, want from_number: hash with its line", d)
	}
	if !p.UsesHash() {
		t.Error("UsesHash = false")
	}
}

// TestRedactRejects: an unknown mode or a path that is no event field of
// the rule is an error at its line, naming the rule.
func TestRedactRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, redact, want string }{
		{"unknown mode", "    redact: {from_number: encrypt}", `message_events.yaml:10: rules[0].redact.from_number: rule "incoming-message": unknown redact mode "encrypt" (want hash or mask)`},
		{"no such field", "    redact: {from_nmber: hash}", `message_events.yaml:10: rules[0].redact.from_nmber: rule "incoming-message": "from_nmber" is not an event field: the rule's payload has no field from_nmber`},
		{"key inside a non-raw field", "    redact: {num_media.x: mask}", `rules[0].redact.num_media.x: rule "incoming-message": "num_media.x" is not an event field: num_media has type integer`},
		{"empty key", "    redact: {twilio.: mask}", `rules[0].redact.twilio.: rule "incoming-message": "twilio." is not an event field: empty key`},
		{"parameter, not field", "    redact: {From: hash}", `"From" is not an event field`},
		{"not a mapping", "    redact: [from_number]", `rules[0].redact: rule "incoming-message": want a mapping of event field to mode (hash or mask)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := pack.Load(redactRulePackage(t, redactRuleHead+tc.redact+"\n"), envconf.MapLookup(nil))
			var pe *pack.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Load = %v, want a *pack.Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not contain %q:\n%v", tc.want, err)
			}
		})
	}
}
