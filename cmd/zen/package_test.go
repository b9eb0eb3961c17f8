package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/envconf"
)

func init() {
	// Tests never read the developer's environment.
	lookupEnv = envconf.MapLookup(map[string]string{
		"COMMS_WAREHOUSE_URL":   "http://127.0.0.1:9/events",
		"COMMS_WAREHOUSE_TOKEN": "test-token-not-a-secret",
	})
}

func runZen(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

const shippedPkg = "../../packages/transforms/twilio/v1"

func TestValidateShippedPackage(t *testing.T) {
	code, out, errs := runZen(t, "package", "validate", shippedPkg)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "is valid") {
		t.Errorf("output: %s", out)
	}
}

func TestValidateBrokenPackages(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"broken-unknown-key", "package.yaml:47: flows[0].retries: unknown key"},
		{"broken-missing-env", "package.yaml:35: targets[0].auth.token: environment variable WAREHOUSE_TOKEN_TYPO is not set"},
		{"broken-unknown-target", `package.yaml:48: flows[0].target: unknown target "communications-warehous"`},
		{"broken-no-rule", `package.yaml:56: flows[0].events[6]: event "conversation.message" has no rule`},
		{"broken-bad-conversion", `call_events.yaml:49: rules[1].payload[3].type: unknown conversion "seconds"`},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			code, out, _ := runZen(t, "package", "validate", filepath.Join("../../pkg/pack/testdata", tc.dir))
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output does not contain %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestValidateCardPackageWarns(t *testing.T) {
	code, out, _ := runZen(t, "package", "validate", "../../pkg/pack/testdata/card")
	if code != 1 {
		t.Errorf("exit %d, want 1 (findings)", code)
	}
	for _, ev := range []string{"call.status", "recording.status", "verification.status"} {
		if !strings.Contains(out, `routes "`+ev+`" to target "communications-warehouse", which does not accept it`) {
			t.Errorf("no warning for %s:\n%s", ev, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"package"}, {"package", "frobnicate", "x"}, {"package", "validate"}, {"streams"}} {
		if code, _, _ := runZen(t, args...); code != 2 {
			t.Errorf("zen %v: exit %d, want 2", args, code)
		}
	}
}

func TestInspectShowsEventsAndPriorities(t *testing.T) {
	saved := lookupEnv
	lookupEnv = envconf.MapLookup(nil) // inspect must work without secrets
	defer func() { lookupEnv = saved }()
	code, out, errs := runZen(t, "package", "inspect", shippedPkg)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"message.incoming", "70", "verification.status", "80", "twilio-events", "communications-warehouse", "(unset)", "COMMS_WAREHOUSE_TOKEN"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "test-token-not-a-secret") {
		t.Error("inspect printed a secret")
	}
}

// TestValidateRejectsBadRedact: validate refuses an unknown redact mode and
// a redact path that is no event field, each at its line, naming the rule.
func TestValidateRejectsBadRedact(t *testing.T) {
	const src = "../../pkg/transform/testdata/redact/package"
	rules, err := os.ReadFile(filepath.Join(src, "message_events.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pkgYAML, err := os.ReadFile(filepath.Join(src, "package.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runZen(t, "package", "validate", src); code != 0 {
		t.Fatalf("the redaction test package: exit %d\n%s%s", code, out, errs)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown mode", "from_number: hash", "from_number: encrypt", `message_events.yaml:26: rules[0].redact.from_number: rule "incoming-message": unknown redact mode "encrypt" (want hash or mask)`},
		{"not an event field", "to_number: mask", "to_nmber: mask", `message_events.yaml:27: rules[0].redact.to_nmber: rule "incoming-message": "to_nmber" is not an event field`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			broken := strings.Replace(string(rules), tc.old, tc.new, 1)
			if broken == string(rules) {
				t.Fatalf("%q is not in the rule file", tc.old)
			}
			for name, body := range map[string]string{"package.yaml": string(pkgYAML), "message_events.yaml": broken} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out, _ := runZen(t, "package", "validate", dir)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output does not contain %q:\n%s", tc.want, out)
			}
		})
	}
}
