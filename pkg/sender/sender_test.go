package sender

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/twiliosig"
)

const token = "test-auth-token-not-a-secret"

// Every fixture, plain and varied, is signed so that the verifier the
// ingester uses accepts it, and variants change the Sids but not the
// account's.
func TestBuildSignsEveryFixture(t *testing.T) {
	paths, err := fixture.List(filepath.Join("..", "..", "fixtures", "twilio"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("fixtures: %v", err)
	}
	v, err := twiliosig.NewVerifier([]string{token})
	if err != nil {
		t.Fatal(err)
	}
	target := "https://example.test/webhooks/twilio"
	for _, p := range paths {
		f, err := fixture.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var plainKey string
		for variant := range 3 {
			r, err := Build(f, target, token, "", "nonce", variant)
			if err != nil {
				t.Fatal(err)
			}
			sig := r.Header.Get("X-Twilio-Signature")
			if f.IsJSON() {
				err = v.VerifyJSON(r.URL, r.Body, sig)
			} else {
				form, perr := url.ParseQuery(string(r.Body))
				if perr != nil {
					t.Fatal(perr)
				}
				err = v.VerifyForm(r.URL, form, sig)
			}
			if err != nil {
				t.Errorf("%s variant %d: signature rejected: %v", f.Name, variant, err)
			}
			if r.Key == "" || seen[r.Key] {
				t.Errorf("%s variant %d: key %q is empty or repeated", f.Name, variant, r.Key)
			}
			seen[r.Key] = true
			if variant > 0 && !strings.Contains(string(r.Body), "AC00000000000000000000000000000001") && strings.Contains(string(f.Body), "AC00000000000000000000000000000001") {
				t.Errorf("%s variant %d: the AccountSid changed", f.Name, variant)
			}
			if r.Header.Get("I-Twilio-Idempotency-Token") == "" {
				t.Errorf("%s: no idempotency token", f.Name)
			}
			if variant == 0 {
				plainKey = r.Key
			}
		}
		// The form each fixture is decoded to once is never changed by a
		// variant: the plain request is the same after them.
		r, err := Build(f, target, token, "", "nonce", 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Key != plainKey {
			t.Errorf("%s: plain request after variants has key %q, want %q", f.Name, r.Key, plainKey)
		}
	}
}

// An event given to Build goes into the signed path, where the ingester
// reads it; no request carries the unsigned X-Twilio-Event header.
func TestBuildPutsTheEventInTheSignedPath(t *testing.T) {
	f, err := fixture.Load(filepath.Join("..", "..", "fixtures", "twilio", "message_status_delivered.json"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := twiliosig.NewVerifier([]string{token})
	if err != nil {
		t.Fatal(err)
	}
	for _, event := range []string{"", "message-status"} {
		r, err := Build(f, "https://example.test/webhooks/twilio/", token, event, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		want := "https://example.test/webhooks/twilio/" + event
		if r.URL != want {
			t.Errorf("event %q: URL %s, want %s", event, r.URL, want)
		}
		if h := r.Header.Get("X-Twilio-Event"); h != "" {
			t.Errorf("event %q: X-Twilio-Event %q sent", event, h)
		}
		form, err := url.ParseQuery(string(r.Body))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyForm(r.URL, form, r.Header.Get("X-Twilio-Signature")); err != nil {
			t.Errorf("event %q: not signed for %s: %v", event, r.URL, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty")
	}
}
