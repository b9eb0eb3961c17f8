package pack_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/pack"
)

// policyPackage writes a package with the shipped rule files and
// packageYAML as package.yaml, and returns its directory.
func policyPackage(t *testing.T, packageYAML string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Glob(filepath.Join(shipped, "*_events.yaml"))
	if err != nil || len(rules) == 0 {
		t.Fatalf("shipped rule files: %v", err)
	}
	for _, r := range rules {
		b, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		write(t, dir, filepath.Base(r), string(b))
	}
	write(t, dir, "package.yaml", packageYAML)
	return dir
}

const policyYAML = `package: {name: policy-test, version: "1"}
endpoints:
  - name: twilio-webhook
    url: /webhooks/twilio
    events: [message.status, call.status]
targets:
  - name: warehouse
    url: "{{WH_URL}}"
    auth: {type: basic, username: zen, password_file: secret.txt}
    events: [message.status, call.status]
    delivery:
      timeout: 5s
      concurrency: 8
      retry: {strategy: linear, initial: 2s, max: 1m, attempts: 5, statuses: [503, 4xx, 520-530]}
      rate_limit: {per_second: 20, burst: 5}
      circuit_breaker: {consecutive_failures: 3, failure_rate: 0.5, window: 30s, open_for: 10s}
  - name: alerts
    url: https://alerts.invalid/hook
    auth: {type: api_key, key: X-Api-Key, value: "{{ALERTS_KEY}}"}
    events: [message.status]
  - name: lake
    url: https://lake.invalid/in
    auth: {type: oauth2, token_url: "https://auth.invalid/token", client_id: zen, client_secret: "{{LAKE_SECRET}}", scopes: [events.write]}
    events: [message.status]
flows:
  - name: all
    endpoint: twilio-webhook
    target: warehouse
    events: [message.status, call.status]
  - name: failures
    endpoint: twilio-webhook
    target: alerts
    events: [message.status]
    filter:
      payload: {message_status: {in: [failed, undelivered]}}
      request:
        path: {prefix: /webhooks/twilio}
        query: {tenant: {not_in: [test]}}
        headers: {i-twilio-idempotency-token: {exists: true}}
  - name: lake
    endpoint: twilio-webhook
    target: lake
    events: [message.status]
`

var policyEnv = envconf.MapLookup(map[string]string{"WH_URL": "http://127.0.0.1:9/in", "ALERTS_KEY": "test-key-not-a-secret", "LAKE_SECRET": "test-secret-not-a-secret"})

func TestDeliveryPolicyLoads(t *testing.T) {
	t.Parallel()
	dir := policyPackage(t, policyYAML)
	write(t, dir, "secret.txt", "test-password-not-a-secret\n")
	p, err := pack.Load(dir, policyEnv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	wh, _ := p.Target("warehouse")
	if wh.Auth.Type != "basic" || wh.Auth.Username != "zen" || wh.Auth.Token.Reveal() != "test-password-not-a-secret" {
		t.Errorf("basic auth = %q %q, password from the file %q", wh.Auth.Type, wh.Auth.Username, wh.Auth.Token.Reveal())
	}
	d := wh.Delivery
	if d.Timeout != 5*time.Second || d.Concurrency != 8 || d.Retry.Strategy != "linear" || d.Retry.Initial != 2*time.Second ||
		d.Retry.Max != time.Minute || d.Retry.Attempts != 5 || d.RateLimit.PerSecond != 20 || d.RateLimit.Burst != 5 {
		t.Errorf("delivery = %+v", d)
	}
	for status, want := range map[int]bool{503: true, 500: false, 404: true, 429: true, 525: true, 531: false} {
		if got := d.Retry.Retries(status); got != want {
			t.Errorf("Retries(%d) = %v, want %v", status, got, want)
		}
	}
	if b := d.Breaker; !b.Enabled || b.ConsecutiveFailures != 3 || b.FailureRate != 0.5 || b.Window != 30*time.Second || b.OpenFor != 10*time.Second || b.MinRequests != 10 {
		t.Errorf("breaker = %+v", b)
	}
	if al, _ := p.Target("alerts"); al.Auth.Key != "X-Api-Key" || al.Auth.Token.Reveal() != "test-key-not-a-secret" {
		t.Errorf("api_key auth = %+v", al.Auth)
	}
	if lk, _ := p.Target("lake"); lk.Auth.TokenURL != "https://auth.invalid/token" || lk.Auth.ClientID != "zen" || strings.Join(lk.Auth.Scopes, ",") != "events.write" {
		t.Errorf("oauth2 auth = %+v", lk.Auth)
	}
	// The defaults: no delivery block, the statuses Twilio's guide retries.
	if al, _ := p.Target("alerts"); al.Delivery.Breaker.Enabled || !al.Delivery.Retry.Retries(502) || al.Delivery.Retry.Retries(404) {
		t.Errorf("alerts delivery defaults = %+v", al.Delivery)
	}
}

func TestFlowFilterMatches(t *testing.T) {
	t.Parallel()
	dir := policyPackage(t, policyYAML)
	write(t, dir, "secret.txt", "x")
	p, err := pack.Load(dir, policyEnv)
	if err != nil {
		t.Fatal(err)
	}
	flows := p.FlowsTo("alerts", "message.status")
	if len(flows) != 1 || flows[0].Filter.Empty() {
		t.Fatalf("flows to alerts = %+v", flows)
	}
	f := flows[0].Filter
	input := func(status, rawURL string, token bool) pack.FilterInput {
		u, _ := url.Parse(rawURL)
		return pack.FilterInput{
			Payload: func(field string) (string, bool) { return status, field == "message_status" && status != "" },
			URL:     u,
			Header: func(name string) (string, bool) {
				return "tok", token && name == "I-Twilio-Idempotency-Token"
			},
		}
	}
	for _, c := range []struct {
		name, status, url string
		token, want       bool
	}{
		{"failed", "failed", "https://h/webhooks/twilio/message-status?tenant=a", true, true},
		{"undelivered", "undelivered", "https://h/webhooks/twilio/message-status", true, true},
		{"delivered", "delivered", "https://h/webhooks/twilio/message-status", true, false},
		{"no status", "", "https://h/webhooks/twilio/message-status", true, false},
		{"other path", "failed", "https://h/other", true, false},
		{"test tenant", "failed", "https://h/webhooks/twilio/x?tenant=test", true, false},
		{"no tenant passes not_in", "failed", "https://h/webhooks/twilio/x", true, true},
		{"no token", "failed", "https://h/webhooks/twilio/x", false, false},
	} {
		if got := f.Match(input(c.status, c.url, c.token)); got != c.want {
			t.Errorf("%s: Match = %v, want %v", c.name, got, c.want)
		}
	}
}

// Each broken policy is refused with the file, line and field of its fault.
func TestBrokenDeliveryPolicies(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, from, to, want string }{
		{"unknown auth", "type: api_key, key: X-Api-Key", "type: hmac, key: X-Api-Key", `package.yaml:19: targets[1].auth.type: unknown auth type "hmac"`},
		{"api_key without value", `, value: "{{ALERTS_KEY}}"`, "", "package.yaml:19: targets[1].auth.value: is required for api_key auth"},
		{"key of another type", "username: zen,", "username: zen, token: x,", "package.yaml:9: targets[0].auth.token: does not apply to basic auth"},
		{"bad strategy", "strategy: linear", "strategy: fibonacci", `package.yaml:14: targets[0].delivery.retry.strategy: want exponential or linear, got "fibonacci"`},
		{"bad status", "statuses: [503,", "statuses: [200,", `package.yaml:14: targets[0].delivery.retry.statuses[0]: want a status`},
		{"bad duration", "timeout: 5s", "timeout: soon", `package.yaml:12: targets[0].delivery.timeout: want a positive duration such as 30s, got "soon"`},
		{"rate too low", "per_second: 20", "per_second: 0", `package.yaml:15: targets[0].delivery.rate_limit.per_second: want a number above 0`},
		{"breaker without open_for", ", open_for: 10s}", "}", "package.yaml:16: targets[0].delivery.circuit_breaker.open_for: is required"},
		{"unknown delivery key", "concurrency: 8", "parallelism: 8", `package.yaml:13: targets[0].delivery.parallelism: unknown key "parallelism"`},
		{"filter on a field no rule makes", "message_status: {in:", "message_state: {in:", `package.yaml:35: flows[1].filter.payload.message_state: no rule of [message.status] produces payload field "message_state"`},
		{"two operators", "{in: [failed, undelivered]}", "{in: [failed], prefix: f}", "package.yaml:35: flows[1].filter.payload.message_status: want exactly one of in, not_in, prefix, exists"},
		{"missing secret file", "password_file: secret.txt", "password_file: nowhere.txt", "package.yaml:9: targets[0].auth.password_file: open"},
		{"tls on http", "    events: [message.status]\n  - name: lake", "    events: [message.status]\n    tls: {ca_file: ca.pem}\n  - name: lake", "targets[1].tls: needs an https:// url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(policyYAML, c.from) {
				t.Fatalf("policyYAML has no %q", c.from)
			}
			yaml := strings.Replace(policyYAML, c.from, c.to, 1)
			if c.name == "tls on http" {
				yaml = strings.Replace(yaml, "url: https://alerts.invalid/hook", "url: http://alerts.invalid/hook", 1)
			}
			dir := policyPackage(t, yaml)
			write(t, dir, "secret.txt", "x")
			write(t, dir, "ca.pem", "not a certificate")
			_, err := pack.Load(dir, policyEnv)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load error = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}
