package twiliosig_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/twiliosig"
)

// refSign is an independent HMAC-SHA1 of Twilio's documented algorithm,
// written here so the tests do not check the code with the code. It works
// on the raw body as Twilio sends it, decoding it itself.
func refSign(t *testing.T, token, fullURL, rawBody string) string {
	t.Helper()
	type kv struct{ k, v string }
	var pairs []kv
	if rawBody != "" {
		for _, part := range strings.Split(rawBody, "&") {
			k, v, _ := strings.Cut(part, "=")
			dk, err := url.QueryUnescape(k)
			if err != nil {
				t.Fatal(err)
			}
			dv, err := url.QueryUnescape(v)
			if err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, kv{dk, dv})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	s := fullURL
	for i, p := range pairs {
		if i > 0 && p == pairs[i-1] {
			continue
		}
		s += p.k + p.v
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func mustVerifier(t testing.TB, tokens ...string) *twiliosig.Verifier {
	v, err := twiliosig.NewVerifier(tokens)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func form(t testing.TB, raw string) url.Values {
	f, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTwilioPublishedVector is the example of Twilio's security docs.
func TestTwilioPublishedVector(t *testing.T) {
	t.Parallel()
	const u = "https://mycompany.com/myapp.php?foo=1&bar=2"
	f := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"}, "From": {"+12349013030"}, "To": {"+18005551212"}}
	const want = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
	if got := twiliosig.Sign(u, f, "12345"); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if err := mustVerifier(t, "12345").VerifyForm(u, f, want); err != nil {
		t.Errorf("VerifyForm(published vector) = %v", err)
	}
	if err := mustVerifier(t, "54321").VerifyForm(u, f, want); !errors.Is(err, twiliosig.ErrInvalidSignature) {
		t.Errorf("wrong token: %v, want ErrInvalidSignature", err)
	}
}

// TestRepeatedKeysSignEveryValue uses the official Node SDK's vector.
func TestRepeatedKeysSignEveryValue(t *testing.T) {
	t.Parallel()
	const u = "https://example.com/webhooks/twilio"
	body := "Body=hi&MediaUrl=https%3A%2F%2Fb.example%2F2&MediaUrl=https%3A%2F%2Fa.example%2F1"
	const want = "+4EfJdL9KkhKSJhNPc8ErvB6ylg="
	if got := refSign(t, "12345", u, body); got != want {
		t.Fatalf("reference HMAC = %s, want the SDK vector %s", got, want)
	}
	if err := mustVerifier(t, "12345").VerifyForm(u, form(t, body), want); err != nil {
		t.Errorf("VerifyForm(repeated keys) = %v", err)
	}
	// Signed with only the first value (twilio-go's map) it must not validate.
	first := refSign(t, "12345", u, "Body=hi&MediaUrl=https%3A%2F%2Fb.example%2F2")
	if err := mustVerifier(t, "12345").VerifyForm(u, form(t, body), first); err == nil {
		t.Error("a signature over one MediaUrl validated a request with two")
	}
}

// TestFormEncodingCases is TW-03: real-shaped bodies, signed by the
// reference HMAC over the raw body, verify after the server parses them.
func TestFormEncodingCases(t *testing.T) {
	t.Parallel()
	v := mustVerifier(t, "test-auth-token")
	long := strings.Repeat("Lorem ipsum dolor sit amet 🙂 ", 300)
	for _, tc := range []struct{ name, url, body string }{
		{"plus for space", "https://hooks.example.com/webhooks/twilio/incoming-message", "Body=hello+world&From=%2B15017122661&MessageSid=SM1"},
		{"percent-20 for space", "https://hooks.example.com/webhooks/twilio/incoming-message", "Body=hello%20world&From=%2B15017122661&MessageSid=SM1"},
		{"plus sign in phone number", "https://hooks.example.com/webhooks/twilio", "To=%2B18005551212&From=%2B15017122661"},
		{"utf-8 and emoji", "https://hooks.example.com/webhooks/twilio", "Body=%C3%BC%C3%B1%C3%AEc%C3%B8d%C3%A9+%F0%9F%91%8B%F0%9F%8F%BD&MessageSid=SM2"},
		{"empty value", "https://hooks.example.com/webhooks/twilio/message-status", "MessageSid=SM3&MessageStatus=delivered&ErrorCode="},
		{"repeated keys", "https://hooks.example.com/webhooks/twilio", "MediaUrl0=https%3A%2F%2Fx%2F1&Tag=b&Tag=a&Tag=b"},
		{"long body", "https://hooks.example.com/webhooks/twilio", "Body=" + url.QueryEscape(long) + "&MessageSid=SM4"},
		{"json-valued parameter", "https://hooks.example.com/webhooks/twilio", "AddOns=" + url.QueryEscape(`{"status":"successful","results":{"a":{"x":[1,2]}}}`) + "&MessageSid=SM5"},
		{"unsorted parameters", "https://hooks.example.com/webhooks/twilio", "Zeta=1&Alpha=2&MessageSid=SM6&Body=z"},
		{"prefix keys", "https://hooks.example.com/webhooks/twilio", "To=%2B1999&ToCountry=US&ToCity=X"},
		{"query string", "https://hooks.example.com/webhooks/twilio?tenant=acme&x=%2F1", "MessageSid=SM7"},
		{"explicit port", "https://hooks.example.com:8443/webhooks/twilio", "MessageSid=SM8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sig := refSign(t, "test-auth-token", tc.url, tc.body)
			if err := v.VerifyForm(tc.url, form(t, tc.body), sig); err != nil {
				t.Errorf("VerifyForm = %v", err)
			}
			if got := twiliosig.Sign(tc.url, form(t, tc.body), "test-auth-token"); got != sig {
				t.Errorf("Sign = %s, reference %s", got, sig)
			}
			// Any change of the body is rejected.
			if err := v.VerifyForm(tc.url, form(t, tc.body+"&Injected=1"), sig); err == nil {
				t.Error("an added parameter still validated")
			}
		})
	}
}

func TestDefaultPortVariants(t *testing.T) {
	t.Parallel()
	v := mustVerifier(t, "tok")
	f := url.Values{"A": {"1"}}
	// Twilio may sign with or without the default port.
	sig := refSign(t, "tok", "https://h.example.com:443/webhooks/twilio", "A=1")
	if err := v.VerifyForm("https://h.example.com/webhooks/twilio", f, sig); err != nil {
		t.Errorf("signed with :443, checked without: %v", err)
	}
	sig = refSign(t, "tok", "https://h.example.com/webhooks/twilio", "A=1&A=2")
	if err := v.VerifyForm("https://h.example.com:443/webhooks/twilio", url.Values{"A": {"1", "2"}}, sig); err != nil {
		t.Errorf("repeated keys, signed without :443, checked with: %v", err)
	}
}

func TestGETSignsTheURLOnly(t *testing.T) {
	t.Parallel()
	u := "https://h.example.com/webhooks/twilio/message-status?MessageSid=SM1&MessageStatus=sent"
	sig := refSign(t, "tok", u, "")
	if err := mustVerifier(t, "tok").VerifyForm(u, nil, sig); err != nil {
		t.Errorf("GET: %v", err)
	}
}

func TestJSONBodySHA256(t *testing.T) {
	t.Parallel()
	body := []byte(`[{"id":"EZ1","data":{"verification_sid":"VE1"}}]`)
	sum := sha256.Sum256(body)
	u := "https://h.example.com/webhooks/twilio/verification-status?bodySHA256=" + hex.EncodeToString(sum[:])
	sig := refSign(t, "tok", u, "")
	v := mustVerifier(t, "tok")
	if err := v.VerifyJSON(u, body, sig); err != nil {
		t.Errorf("VerifyJSON = %v", err)
	}
	gotURL, gotSig := twiliosig.SignJSON("https://h.example.com/webhooks/twilio/verification-status", body, "tok")
	if gotURL != u || gotSig != sig {
		t.Errorf("SignJSON = %s %s, want %s %s", gotURL, gotSig, u, sig)
	}
	if err := v.VerifyJSON(u, append([]byte(nil), append(body[:len(body)-1:len(body)-1], ' ', ']')...), sig); err == nil {
		t.Error("a changed body validated")
	}
	noHash := "https://h.example.com/webhooks/twilio/verification-status"
	if err := v.VerifyJSON(noHash, body, refSign(t, "tok", noHash, "")); err == nil {
		t.Error("a JSON request without bodySHA256 validated")
	}
}

func TestRotatedTokensAndMissingSignature(t *testing.T) {
	t.Parallel()
	v := mustVerifier(t, "new-token", " old-token ")
	u := "https://h.example.com/webhooks/twilio"
	f := url.Values{"A": {"1"}}
	if err := v.VerifyForm(u, f, refSign(t, "old-token", u, "A=1")); err != nil {
		t.Errorf("old token rejected during rotation: %v", err)
	}
	if err := v.VerifyForm(u, f, ""); !errors.Is(err, twiliosig.ErrMissingSignature) {
		t.Errorf("empty signature: %v, want ErrMissingSignature", err)
	}
	if _, err := twiliosig.NewVerifier([]string{" ", ""}); !errors.Is(err, twiliosig.ErrNoToken) {
		t.Errorf("no tokens: %v", err)
	}
}
