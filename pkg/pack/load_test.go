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

var env = envconf.MapLookup(map[string]string{
	"COMMS_WAREHOUSE_URL":   "http://127.0.0.1:9/events",
	"COMMS_WAREHOUSE_TOKEN": "test-token-not-a-secret",
})

const shipped = "../../packages/transforms/twilio/v1"

func TestShippedPackageLoadsClean(t *testing.T) {
	t.Parallel()
	p, err := pack.Load(shipped, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %v", p.Warnings)
	}
	// The six classic families, Event Streams messaging and voice, Verify's
	// verification and message-status CloudEvents, and the eleven
	// Conversations post-event webhooks (issue 25).
	if got, want := len(p.Rules), 21; got != want {
		t.Errorf("rules = %d, want %d", got, want)
	}
	tg, ok := p.Target("communications-warehouse")
	if !ok {
		t.Fatal("no communications-warehouse target")
	}
	if tg.URL != "http://127.0.0.1:9/events" || tg.Auth.Token.Reveal() != "test-token-not-a-secret" {
		t.Errorf("target not substituted: url %q", tg.URL)
	}
	routes := p.Routes()
	if len(routes) != 1 || len(routes[0].EventTypes) != 18 {
		t.Errorf("routes = %+v, want all 18 event types to the warehouse", routes)
	}
	if r, ok := p.Response("incoming-call"); !ok || r.Body != "<Response/>" || r.ContentType != "text/xml" {
		t.Errorf("incoming-call response = %+v, %v", r, ok)
	}
	if _, ok := p.Response("message-status"); ok {
		t.Error("status callbacks must have no static response")
	}
	for _, r := range p.Rules {
		if r.Priority == 0 || r.EventType == "" || len(r.PrimaryID) == 0 {
			t.Errorf("rule %s incomplete: %+v", r.TwilioEvent, r)
		}
	}
}

// TestBrokenPackages: each broken package fails with the file:line and field
// of its fault.
func TestBrokenPackages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ dir, want string }{
		{"broken-unknown-key", `package.yaml:47: flows[0].retries: unknown key "retries"`},
		{"broken-missing-env", `package.yaml:35: targets[0].auth.token: environment variable WAREHOUSE_TOKEN_TYPO is not set`},
		{"broken-unknown-target", `package.yaml:48: flows[0].target: unknown target "communications-warehous"`},
		{"broken-no-rule", `package.yaml:56: flows[0].events[6]: event "conversation.message" has no rule`},
		{"broken-bad-conversion", `call_events.yaml:49: rules[1].payload[3].type: unknown conversion "seconds"`},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			_, err := pack.Load(filepath.Join("testdata", tc.dir), env)
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

// TestCardPackageWarnsAboutUnacceptedEvents: the card's own package routes
// three events to a target that does not accept them.
func TestCardPackageWarnsAboutUnacceptedEvents(t *testing.T) {
	t.Parallel()
	p, err := pack.Load(filepath.Join("testdata", "card"), env)
	if err != nil {
		t.Fatalf("the card's package must load (its faults are warnings): %v", err)
	}
	text := ""
	for _, w := range p.Warnings {
		text += w.String() + "\n"
	}
	for _, ev := range []string{"call.status", "recording.status", "verification.status"} {
		if !strings.Contains(text, `routes "`+ev+`" to target "communications-warehouse", which does not accept it`) {
			t.Errorf("no warning for %s:\n%s", ev, text)
		}
	}
	if got := len(p.Routes()[0].EventTypes); got != 3 {
		t.Errorf("the card's warehouse is routed %d events, want the 3 it accepts", got)
	}
}

func TestMissingEnvAllowedForInspection(t *testing.T) {
	t.Parallel()
	p, err := pack.LoadWith(shipped, envconf.MapLookup(nil), pack.Options{AllowMissingEnv: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(p.MissingEnv, ","), "COMMS_WAREHOUSE_TOKEN,COMMS_WAREHOUSE_URL"; got != want {
		t.Errorf("MissingEnv = %s, want %s", got, want)
	}
	_, err = pack.Load(shipped, envconf.MapLookup(nil))
	for _, v := range []string{"COMMS_WAREHOUSE_TOKEN", "COMMS_WAREHOUSE_URL"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("Load without env: error %v does not name %s", err, v)
		}
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "package.yaml", `package: {name: x, version: "1", colour: blue}
endpoints:
  - {name: e, events: [a.b]}
targets:
  - {name: t, url: "http://x", auth: {type: bearer, token: "{{NOPE}}"}, events: [a.b]}
flows:
  - {name: f, endpoint: nowhere, target: t, events: [a.b]}
`)
	write(t, dir, "x_events.yaml", `rules:
  - twilio_event: a
    event_type: a.b
    priority: 500
    primary_id: Sid
    payload:
      - {field: x, from: $nope}
`)
	_, err := pack.Load(dir, env)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"package.colour", "NOPE", `unknown endpoint "nowhere"`, "priority: must be between", "unknown built-in"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %q:\n%v", want, err)
		}
	}
}

func TestEmptyAndInvalidFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "package.yaml", "")
	if _, err := pack.Load(dir, env); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty package.yaml: %v", err)
	}
	write(t, dir, "package.yaml", "package: [\n")
	if _, err := pack.Load(dir, env); err == nil || !strings.Contains(err.Error(), "invalid YAML") {
		t.Errorf("invalid YAML: %v", err)
	}
}

// TestRuleAfterAnUnconditionalRuleIsUnreachable: a rule without a match
// takes every request of its Twilio event, so a later rule of the same
// event is an error naming both lines.
func TestRuleAfterAnUnconditionalRuleIsUnreachable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(shipped, "*.yaml"))
	for _, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		write(t, dir, filepath.Base(src), string(b))
	}
	extra := "\n  - twilio_event: message-status\n    event_type: message.status\n    priority: 75\n    primary_id: MessageSid\n    match: {Foo: bar}\n    payload:\n      - field: message_sid\n        from: MessageSid\n"
	f, err := os.OpenFile(filepath.Join(dir, "message_events.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(extra); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = pack.Load(dir, env)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Load = %v, want an unreachable-rule error", err)
	}
}

func TestMatchCondHolds(t *testing.T) {
	t.Parallel()
	c := pack.MatchCond{Path: "type", Patterns: []string{"onMessageAdded", "com.twilio.messaging.message.*"}}
	for v, want := range map[string]bool{
		"onMessageAdded": true, "onMessageAdd": false, "com.twilio.messaging.message.delivered": true,
		"com.twilio.messaging.inbound-message.received": false, "": false,
	} {
		if got := c.Holds(v); got != want {
			t.Errorf("Holds(%q) = %v, want %v", v, got, want)
		}
	}
}

// A target URL that is not an absolute http(s) URL with a host is refused,
// naming the variable it came from (issue 27).
func TestTargetURLMustBeAbsolute(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"warehouse", "/v1/events", "ftp://warehouse/events", "http://", "warehouse.example.com/v1/events"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			_, err := pack.Load(shipped, envconf.MapLookup(map[string]string{"COMMS_WAREHOUSE_URL": v, "COMMS_WAREHOUSE_TOKEN": "t"}))
			if err == nil {
				t.Fatal("Load accepted the URL")
			}
			for _, want := range []string{"package.yaml:", "targets[0].url", "want an absolute http(s) URL with a host", "from `COMMS_WAREHOUSE_URL`"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}
