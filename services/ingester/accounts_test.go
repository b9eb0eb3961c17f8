package ingester_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/services/ingester"
)

// Fake accounts and tokens. Account A is the fixtures' account.
const (
	accountA = "AC00000000000000000000000000000001"
	accountB = "AC0000000000000000000000000000000b"
	accountC = "AC0000000000000000000000000000000c" // no tokens configured
	tokenA   = "test-token-a"
	tokenA2  = "test-token-a-rotated"
	tokenB   = "test-token-b"
	formType = "application/x-www-form-urlencoded"
)

// perAccount configures A (two tokens: a rotation) and B.
func perAccount(c *ingester.Config) {
	c.AuthTokens = nil
	c.AccountTokens = map[string][]envconf.Secret{accountA: {tokenA2, tokenA}, accountB: {tokenB}}
}

// postForm POSTs body to path signed with token ("" sends no signature).
func (e *env) postForm(path, body, token string, hdr map[string]string) (int, string) {
	e.t.Helper()
	form, err := url.ParseQuery(body)
	if err != nil {
		e.t.Fatal(err)
	}
	h := map[string]string{"X-Twilio-Signature": ""}
	if token != "" {
		h["X-Twilio-Signature"] = sign(token, publicURL+path, form)
	}
	for k, v := range hdr {
		h[k] = v
	}
	return answer(e.t, e.post(path, formType, []byte(body), h))
}

// postJSON POSTs an Event Streams body signed with token, as Twilio does:
// bodySHA256 in the signed URL.
func (e *env) postJSON(path, body, token string) (int, string) {
	e.t.Helper()
	sum := sha256.Sum256([]byte(body))
	path += "?bodySHA256=" + hex.EncodeToString(sum[:])
	return answer(e.t, e.post(path, "application/json", []byte(body), map[string]string{"X-Twilio-Signature": sign(token, publicURL+path, nil)}))
}

func answer(t *testing.T, r *http.Response) (int, string) {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r.StatusCode, string(b)
}

func (e *env) metric(series string) string {
	e.t.Helper()
	r, err := http.Get(e.base + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return "absent"
}

// A form is verified only with the tokens of the account it names: A's
// token cannot forge a request claiming B, both of A's rotated tokens work
// and B's does not, an account without tokens is refused; each 403 is
// counted by its reason.
func TestTokensPerAccountForm(t *testing.T) {
	t.Parallel()
	e := start(t, perAccount)
	n := 0
	status := func(account string) string { // a new callback each time
		n++
		return fmt.Sprintf("AccountSid=%s&MessageSid=SM%d&MessageStatus=delivered", account, n)
	}
	const path = "/webhooks/twilio/message-status"
	stored := 0
	for _, tc := range []struct {
		name, body, token string
		want              int
	}{
		{"A signed by A's new token", status(accountA), tokenA2, 200},
		{"A signed by A's old token", status(accountA), tokenA, 200},
		{"B signed by B", status(accountB), tokenB, 200},
		{"B forged with A's token", status(accountB), tokenA, 403},
		{"B forged with A's rotated token", status(accountB), tokenA2, 403},
		{"A forged with B's token", status(accountA), tokenB, 403},
		{"unknown account signed by A", status(accountC), tokenA, 403},
		{"no AccountSid signed by A", "MessageSid=SM1&MessageStatus=delivered", tokenA, 403},
		{"two AccountSids, signed by B", "AccountSid=" + accountB + "&AccountSid=" + accountA + "&MessageSid=SM2&MessageStatus=sent", tokenB, 403},
		{"no signature", status(accountA), "", 403},
	} {
		code, body := e.postForm(path, tc.body, tc.token, nil)
		if code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, code, tc.want)
		}
		if code == 403 && strings.TrimSpace(body) != "forbidden" {
			t.Errorf("%s: 403 body %q tells more than forbidden", tc.name, body)
		}
		if code == 200 {
			stored++
		}
	}
	// A GET names its account in the query.
	getPath := path + "?" + status(accountB)
	for token, want := range map[string]int{tokenB: 200, tokenA: 403} {
		req, _ := http.NewRequest(http.MethodGet, e.base+getPath, nil)
		req.Header.Set("X-Twilio-Signature", sign(token, publicURL+getPath, nil))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET claiming B signed with %s: %d, want %d", token, resp.StatusCode, want)
		}
	}
	if got := e.rawCount(); got != uint64(stored)+1 {
		t.Errorf("TWILIO_RAW has %d messages, want the %d accepted", got, stored+1)
	}
	for reason, want := range map[string]string{"invalid_signature": "4", "unknown_account": "3", "missing_signature": "1"} {
		if got := e.metric(`zen_ingester_signature_failures_total{reason="` + reason + `"}`); got != want {
			t.Errorf("signature failures %s = %s, want %s", reason, got, want)
		}
	}
}

// An Event Streams body is verified with the tokens of the account its
// CloudEvents name, in each of Twilio's shapes: messaging (accountSid),
// Verify (account_sid), voice (the callback's request.parameters.AccountSid).
func TestTokensPerAccountJSON(t *testing.T) {
	t.Parallel()
	e := start(t, perAccount)
	shapes := map[string]func(account string) string{
		"messaging": func(a string) string {
			return `[{"type":"com.twilio.messaging.message.delivered","id":"EZm` + a + `","data":{"accountSid":"` + a + `","messageSid":"SM1","messageStatus":"DELIVERED"}}]`
		},
		"verify": func(a string) string {
			return `[{"type":"com.twilio.accountsecurity.verify.verification.approved","id":"EZv` + a + `","data":{"account_sid":"` + a + `","verification_sid":"VE1"}}]`
		},
		"voice": func(a string) string {
			return `[{"type":"com.twilio.voice.status-callback.call.completed","id":"EZc` + a + `","data":{"sid":"CA1","request":{"parameters":{"AccountSid":"` + a + `","CallSid":"CA1","CallStatus":"completed"}}}}]`
		},
	}
	for name, body := range shapes {
		for _, tc := range []struct {
			what, account, token string
			want                 int
		}{
			{"B signed by B", accountB, tokenB, 200},
			{"A signed by A's old token", accountA, tokenA, 200},
			{"B forged with A's token", accountB, tokenA, 403},
			{"unknown account signed by A", accountC, tokenA, 403},
		} {
			if code, _ := e.postJSON("/webhooks/twilio/event-streams", body(tc.account), tc.token); code != tc.want {
				t.Errorf("%s, %s: status %d, want %d", name, tc.what, code, tc.want)
			}
		}
	}
	mixed := "[" + strings.Trim(shapes["messaging"](accountA), "[]") + "," + strings.Trim(shapes["voice"](accountB), "[]") + "]"
	if code, _ := e.postJSON("/webhooks/twilio/event-streams", mixed, tokenA); code != 403 {
		t.Errorf("a batch naming A and B signed by A: %d, want 403", code)
	}
	if got := e.rawCount(); got != 6 {
		t.Errorf("TWILIO_RAW has %d messages, want the 6 accepted", got)
	}
}

// Every fixture, signed with its account's token, passes a per-account
// ingester, but the one whose AccountSid is a placeholder (not an account
// SID), which is refused as an unknown account.
func TestFixturesPassTokensPerAccount(t *testing.T) {
	t.Parallel()
	e := start(t, perAccount)
	for _, fx := range loadFixtures(t) {
		body, _ := fx.Bytes()
		path := "/webhooks/twilio/" + fx.Event()
		want := 200
		var code int
		if fx.IsJSON() {
			code, _ = e.postJSON(path, string(body), tokenA)
		} else {
			if f, _ := fx.Form(); f.Get("AccountSid") != accountA {
				want = 403
			}
			code, _ = e.postForm(path, string(body), tokenA, nil)
		}
		if code != want {
			t.Errorf("%s: status %d, want %d", fx.Name, code, want)
		}
	}
}

// The single-account form is unchanged: any listed token verifies any
// request, whatever account it names.
func TestSingleAccountAcceptsAnyAccount(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *ingester.Config) { c.AuthTokens = []envconf.Secret{tokenB, authToken} })
	for _, account := range []string{accountA, accountB, accountC} {
		body := "AccountSid=" + account + "&MessageSid=SM1&MessageStatus=sent"
		if code, _ := e.postForm("/webhooks/twilio/message-status", body, authToken, nil); code != 200 {
			t.Errorf("account %s: status %d, want 200", account, code)
		}
	}
}

// The 403 log line says why and against which URL the signature was
// checked, and carries no token, no body and no phone number.
func TestForbiddenLogLine(t *testing.T) {
	t.Parallel()
	e := start(t, perAccount)
	const path = "/webhooks/twilio/incoming-message?tenant=acme"
	body := func(account string) string {
		return "AccountSid=" + account + "&MessageSid=SM1&SmsStatus=received&Body=my+secret+plan&From=%2B15017122661&To=%2B15551234567"
	}
	e.postForm(path, body(accountB), tokenA, nil) // invalid_signature
	e.postForm(path, body(accountC), tokenA, nil) // unknown_account
	e.postForm(path, body(accountA), "", nil)     // missing_signature
	getPath := "/webhooks/twilio/incoming-message?" + body(accountB)
	req, _ := http.NewRequest(http.MethodGet, e.base+getPath, nil)
	req.Header.Set("X-Twilio-Signature", sign(tokenA, publicURL+getPath, nil))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}

	type line struct{ reason, url string }
	var got []line
	var all strings.Builder
	for _, l := range e.logs.All() {
		fields := l.ContextMap()
		fmt.Fprintf(&all, "%s %v\n", l.Message, fields)
		if l.Message == "webhook" && fields["status"] == int64(403) {
			r, _ := fields["reason"].(string)
			u, _ := fields["url"].(string)
			got = append(got, line{r, u})
		}
	}
	want := []line{
		{"invalid_signature", publicURL + path},
		{"unknown_account", publicURL + path},
		{"missing_signature", publicURL + path},
		{"invalid_signature", publicURL + "/webhooks/twilio/incoming-message?AccountSid=***&MessageSid=***&SmsStatus=***&Body=***&From=***&To=***"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("403 log lines (reason, url) = %v\nwant %v", got, want)
	}
	for _, secret := range []string{tokenA, tokenA2, tokenB, "my secret plan", "my+secret+plan", "15017122661", "15551234567", "5017122661"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("the logs contain %q:\n%s", secret, all.String())
		}
	}
}

func loadFixtures(t *testing.T) []*fixture.Fixture {
	t.Helper()
	files, err := fixture.List(filepath.Join(repoRoot(t), "fixtures", "twilio"))
	if err != nil || len(files) < 6 {
		t.Fatalf("fixtures: %v (%d)", err, len(files))
	}
	var out []*fixture.Fixture
	for _, f := range files {
		fx, err := fixture.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fx)
	}
	return out
}

func TestConfigTokensPerAccount(t *testing.T) {
	t.Parallel()
	base := map[string]string{"PUBLIC_URL": publicURL}
	with := func(kv ...string) envconf.Lookup {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return envconf.MapLookup(m)
	}
	cfg, err := ingester.ConfigFromEnv(with("TWILIO_AUTH_TOKENS", accountA+"="+tokenA+";"+tokenA2+", "+accountB+"="+tokenB))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AccountTokens[accountA]) != 2 || len(cfg.AccountTokens[accountB]) != 1 || len(cfg.AuthTokens) != 0 {
		t.Errorf("AccountTokens = %v, AuthTokens = %v", cfg.AccountTokens, cfg.AuthTokens)
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg.AccountTokens); strings.Contains(s, "test-token") {
		t.Errorf("the config prints its tokens: %s", s)
	}

	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# subaccounts of the platform\n"+accountA+"="+tokenA+"\n\n"+accountB+"="+tokenB+";"+tokenA2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = ingester.ConfigFromEnv(with("TWILIO_AUTH_TOKENS_FILE", file))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AccountTokens) != 2 || len(cfg.AccountTokens[accountB]) != 2 {
		t.Errorf("AccountTokens from the file = %v", cfg.AccountTokens)
	}

	for _, tc := range []struct {
		name  string
		env   envconf.Lookup
		names []string
	}{
		{"single and per account", with("TWILIO_AUTH_TOKEN", tokenA, "TWILIO_AUTH_TOKENS", accountA+"="+tokenA), []string{"TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKENS"}},
		{"single and file", with("TWILIO_AUTH_TOKEN", tokenA, "TWILIO_AUTH_TOKENS_FILE", file), []string{"TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKENS_FILE"}},
		{"inline and file", with("TWILIO_AUTH_TOKENS", accountA+"="+tokenA, "TWILIO_AUTH_TOKENS_FILE", file), []string{"TWILIO_AUTH_TOKENS", "TWILIO_AUTH_TOKENS_FILE"}},
		{"not an account SID", with("TWILIO_AUTH_TOKENS", "AC123="+tokenA), []string{"TWILIO_AUTH_TOKENS"}},
		{"account without token", with("TWILIO_AUTH_TOKENS", accountA+"="+tokenA+","+accountB+"="), []string{"TWILIO_AUTH_TOKENS"}},
		{"no file", with("TWILIO_AUTH_TOKENS_FILE", file+".missing"), []string{"TWILIO_AUTH_TOKENS_FILE"}},
		{"nothing", with(), []string{"TWILIO_AUTH_TOKEN"}},
	} {
		_, err := ingester.ConfigFromEnv(tc.env)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, n := range tc.names {
			if !strings.Contains(err.Error(), "`"+n+"`") {
				t.Errorf("%s: error %q does not name %s", tc.name, err, n)
			}
		}
		if strings.Contains(err.Error(), "test-token") {
			t.Errorf("%s: the error reveals a token: %v", tc.name, err)
		}
		if tc.name != "nothing" && strings.Contains(err.Error(), "is required") {
			t.Errorf("%s: error %q also claims no token is set", tc.name, err)
		}
	}
	vars := strings.Join(ingester.ConfigVars(), ",")
	for _, v := range []string{"TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKENS", "TWILIO_AUTH_TOKENS_FILE"} {
		if !strings.Contains(vars+",", v+",") {
			t.Errorf("ConfigVars lacks %s", v)
		}
	}
}
