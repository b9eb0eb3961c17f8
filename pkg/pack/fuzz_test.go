package pack_test

import (
	"testing"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/pack"
)

// FuzzLoadPackage: any package.yaml loads or is refused with findings; it
// never panics, and a refusal always names at least one finding.
func FuzzLoadPackage(f *testing.F) {
	f.Add(policyYAML)
	f.Add("targets: [{name: a, url: x, auth: {type: oauth2}, events: [], delivery: {retry: {statuses: [5xx, 1-2, 600]}}}]")
	f.Add("flows: [{name: f, endpoint: e, target: t, events: [x], filter: {payload: {a: {in: 1}}, request: {path: {}}}}]")
	f.Fuzz(func(t *testing.T, packageYAML string) {
		dir := policyPackage(t, packageYAML)
		_, err := pack.Load(dir, policyEnv)
		if e, ok := err.(*pack.Error); ok && len(e.Findings) == 0 {
			t.Fatalf("refused with no finding")
		}
	})
}

// FuzzLoadRules: any rule file (seeded with every redact form) loads or is
// refused with findings; it never panics.
func FuzzLoadRules(f *testing.F) {
	f.Add(redactRuleHead + "    redact: {from_number: hash, twilio.From: hash, twilio.Body: mask}\n")
	f.Add(redactRuleHead + "    redact: {from_number: encrypt, nope: mask, num_media.x: hash, twilio.: mask}\n")
	f.Add(redactRuleHead + "    redact: [from_number]\n")
	f.Fuzz(func(t *testing.T, rules string) {
		_, err := pack.Load(redactRulePackage(t, rules), envconf.MapLookup(nil))
		if e, ok := err.(*pack.Error); ok && len(e.Findings) == 0 {
			t.Fatalf("refused with no finding")
		}
	})
}
