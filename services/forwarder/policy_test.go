package forwarder_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
	"github.com/zen-twilio/zen/services/forwarder"
)

// policyPackage writes a package with the shipped rule files and
// packageYAML, and returns its directory.
func policyPackage(t *testing.T, shipped, packageYAML string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Glob(filepath.Join(shipped, "*_events.yaml"))
	if err != nil || len(rules) == 0 {
		t.Fatalf("rule files in %s: %v", shipped, err)
	}
	for _, r := range rules {
		b, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, filepath.Base(r)), string(b))
	}
	writeFile(t, filepath.Join(dir, "package.yaml"), packageYAML)
	return dir
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// packageHead is the start of every policy test's package.yaml.
const packageHead = `package: {name: policy-test, version: "1"}
endpoints:
  - {name: twilio-webhook, url: /webhooks/twilio, events: [message.status]}
`

// startPackage runs a forwarder on the package yaml (targets and flows
// after packageHead), with vars for its {{NAME}}s.
func (e *env) startPackage(yaml string, vars map[string]string) *running {
	e.t.Helper()
	dir := policyPackage(e.t, e.pkg, packageHead+yaml)
	return e.start(func(c *forwarder.Config) {
		c.PackageDir = dir
		c.Lookup = envconf.MapLookup(vars)
	})
}

// status publishes a message.status event as the transformer does, with
// the request URL the raw request came in on.
func (e *env) status(sid, status, requestURL string) string {
	e.t.Helper()
	key := "tw-" + sid + ".message.status." + status
	ev := zen.Event{Destination: "warehouse", EventType: "message.status", Timestamp: "2026-06-24T10:00:00Z",
		Payload: zen.Payload{{Name: "message_sid", Value: sid}, {Name: "message_status", Value: status}}}
	b, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	m := nats.NewMsg(streams.EventSubject(ev.EventType))
	m.Data = b
	m.Header.Set(zen.HeaderMsgID, key)
	m.Header.Set(zen.HeaderDedupeKey, key)
	m.Header.Set(zen.HeaderEventType, ev.EventType)
	if requestURL != "" {
		m.Header.Set(zen.HeaderRequestURL, requestURL)
	}
	if _, err := e.js.PublishMsg(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
	return key
}

func (e *env) drainedTarget(name string, timeout time.Duration) {
	e.t.Helper()
	natstest.CheckFor(e.t, timeout, func() error {
		return natstest.Drained(e.ctx, e.js, streams.StreamEvents, streams.ForwarderConsumer(name))
	})
}

// Two targets get different subsets of one stream: "all" every status,
// "failures" only failed and undelivered ones that came in on the
// /webhooks/twilio path; each keeps its own consumer and its own records.
func TestTwoFilteredTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all, failures := newWarehouse(t), newWarehouse(t)
	e.startPackage(`targets:
  - {name: all, url: "{{ALL_URL}}", auth: {type: none}, events: [message.status]}
  - {name: failures, url: "{{FAIL_URL}}", auth: {type: none}, events: [message.status]}
flows:
  - {name: everything, endpoint: twilio-webhook, target: all, events: [message.status]}
  - name: failed-only
    endpoint: twilio-webhook
    target: failures
    events: [message.status]
    filter:
      payload: {message_status: {in: [failed, undelivered]}}
      request: {path: {prefix: /webhooks/twilio}}
`, map[string]string{"ALL_URL": all.srv.URL, "FAIL_URL": failures.srv.URL})
	base := "https://zen.example.test/webhooks/twilio/message-status"
	e.status("SMf1", "delivered", base)
	failed := e.status("SMf2", "failed", base)
	undelivered := e.status("SMf3", "undelivered", base+"?x=1")
	e.status("SMf4", "sent", base)
	e.status("SMf5", "failed", "https://zen.example.test/other/message-status")
	e.drainedTarget("all", 20*time.Second)
	e.drainedTarget("failures", 20*time.Second)
	if got := len(all.posts()); got != 5 {
		t.Errorf("target all got %d events, want 5", got)
	}
	got := failures.posts()
	if len(got) != 2 || got[failed] != 1 || got[undelivered] != 1 {
		t.Errorf("target failures got %v, want %s and %s once each", got, failed, undelivered)
	}
	natstest.CheckFor(t, 5*time.Second, func() error {
		if got := outcomes(e.attempts("tw-SMf1.message.status.delivered")); !strings.Contains(got, "filtered") || !strings.Contains(got, "delivered") {
			return fmt.Errorf("attempts of SMf1 %q, want one delivered (all) and one filtered (failures)", got)
		}
		return nil
	})
}

// Each auth type reaches the target as it documents; the OAuth2 token is
// fetched from a loopback token endpoint, cached, and fetched again once
// it is about to expire.
func TestEachAuthTypeIsSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var tokens atomic.Int32
	tokenSrv := newWarehouse(t)
	tokenSrv.setAnswer(func(w http.ResponseWriter, _ int) {
		n := tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		// 11 s: oauth2 refreshes 10 s before expiry, so after 1 s.
		fmt.Fprintf(w, `{"access_token":"test-access-%d","token_type":"Bearer","expires_in":11}`, n)
	})
	targets := map[string]*warehouse{}
	for _, name := range []string{"bearer", "apikey", "basic", "oauth"} {
		targets[name] = newWarehouse(t)
	}
	secretFile := filepath.Join(t.TempDir(), "password")
	writeFile(t, secretFile, "test-password-not-a-secret\n")
	e.startPackage(`targets:
  - {name: bearer, url: "{{B_URL}}", auth: {type: bearer, token: test-token-not-a-secret}, events: [message.status]}
  - {name: apikey, url: "{{K_URL}}", auth: {type: api_key, key: X-Api-Key, value: test-key-not-a-secret}, events: [message.status]}
  - {name: basic, url: "{{P_URL}}", auth: {type: basic, username: zen, password_file: "{{PW_FILE}}"}, events: [message.status]}
  - name: oauth
    url: "{{O_URL}}"
    auth: {type: oauth2, token_url: "{{TOKEN_URL}}", client_id: zen-forwarder, client_secret: test-secret-not-a-secret, scopes: [events.write]}
    events: [message.status]
flows:
  - {name: b, endpoint: twilio-webhook, target: bearer, events: [message.status]}
  - {name: k, endpoint: twilio-webhook, target: apikey, events: [message.status]}
  - {name: p, endpoint: twilio-webhook, target: basic, events: [message.status]}
  - {name: o, endpoint: twilio-webhook, target: oauth, events: [message.status]}
`, map[string]string{"B_URL": targets["bearer"].srv.URL, "K_URL": targets["apikey"].srv.URL, "P_URL": targets["basic"].srv.URL,
		"O_URL": targets["oauth"].srv.URL, "TOKEN_URL": tokenSrv.srv.URL + "/token", "PW_FILE": secretFile})
	e.status("SMa1", "sent", "")
	e.status("SMa2", "sent", "")
	waitPosts(t, targets["oauth"], 2, 20*time.Second)
	time.Sleep(1500 * time.Millisecond) // past the token's refresh point
	e.status("SMa3", "sent", "")
	for name, wh := range targets {
		reqs := waitPosts(t, wh, 3, 20*time.Second)
		for i, r := range reqs {
			var ok bool
			switch name {
			case "bearer":
				ok = r.header.Get("Authorization") == "Bearer test-token-not-a-secret"
			case "apikey":
				ok = r.header.Get("X-Api-Key") == "test-key-not-a-secret" && r.header.Get("Authorization") == ""
			case "basic":
				req := &http.Request{Header: r.header}
				u, p, has := req.BasicAuth()
				ok = has && u == "zen" && p == "test-password-not-a-secret"
			case "oauth":
				ok = strings.HasPrefix(r.header.Get("Authorization"), "Bearer test-access-")
			}
			if !ok {
				t.Errorf("target %s request %d headers %v", name, i, r.header)
			}
		}
	}
	treqs := tokenSrv.requests()
	if n := len(treqs); n < 2 || n > 3 {
		t.Errorf("%d token requests, want 2 (cached, then refreshed once before expiry)", n)
	}
	if len(treqs) > 0 {
		form := string(treqs[0].body)
		if !strings.Contains(form, "grant_type=client_credentials") || !strings.Contains(form, "scope=events.write") {
			t.Errorf("token request %q is not a client-credentials grant with the scope", form)
		}
	}
}

// A target that names a retry policy gets it: linear steps, only the
// statuses it lists retried, and its own number of attempts.
func TestTargetRetryPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	linear, strict := newWarehouse(t), newWarehouse(t)
	linear.setAnswer(func(w http.ResponseWriter, nth int) {
		if nth < 3 {
			w.WriteHeader(http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	strict.setAnswer(func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusServiceUnavailable) })
	e.startPackage(`targets:
  - name: linear
    url: "{{L_URL}}"
    auth: {type: none}
    events: [message.status]
    delivery: {retry: {strategy: linear, initial: 500ms, statuses: [409]}}
  - name: strict
    url: "{{S_URL}}"
    auth: {type: none}
    events: [message.status]
    delivery: {retry: {attempts: 2, initial: 200ms, statuses: [503]}}
flows:
  - {name: l, endpoint: twilio-webhook, target: linear, events: [message.status]}
  - {name: s, endpoint: twilio-webhook, target: strict, events: [message.status]}
`, map[string]string{"L_URL": linear.srv.URL, "S_URL": strict.srv.URL})
	e.status("SMr1", "sent", "")
	checkGaps(t, gaps(waitPosts(t, linear, 4, 20*time.Second)), []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond})
	e.drainedTarget("strict", 20*time.Second)
	if n := len(strict.requests()); n != 2 {
		t.Errorf("strict target got %d POSTs, want its 2 attempts", n)
	}
	natstest.CheckFor(t, 5*time.Second, func() error {
		var mine []forwarder.Attempt
		for _, a := range e.attempts("tw-SMr1.message.status.sent") {
			if a.Target == "strict" {
				mine = append(mine, a)
			}
		}
		if got := outcomes(mine); got != "503:retry 503:dead_letter" {
			return fmt.Errorf("strict target's attempts %q, want 503:retry 503:dead_letter", got)
		}
		return nil
	})
}
