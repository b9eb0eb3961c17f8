package main

import (
	"bytes"
	"context"
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
