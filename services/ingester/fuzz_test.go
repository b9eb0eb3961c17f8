package ingester

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/zen-twilio/zen/pkg/streams"
)

// FuzzResolve: whatever the path and body, the ingester resolves a known
// event or "unknown" (stored, then dead-lettered: never dropped), the raw
// subject is a valid single token, and the dedupe id is stable.
func FuzzResolve(f *testing.F) {
	f.Add("message-status", "MessageSid=SM1&MessageStatus=sent", false)
	f.Add("", "CallSid=CA1&CallStatus=ringing&Direction=inbound", false)
	f.Add("", `[{"type":"com.twilio.accountsecurity.verify.verification.approved","data":{}}]`, true)
	f.Add("a b", "%zz&&==", false)
	f.Add("verification-status", `{"not":"an array"`, true)
	f.Fuzz(func(t *testing.T, path, body string, isJSON bool) {
		var params url.Values
		var jsonBody []byte
		if isJSON {
			jsonBody = []byte(body)
		} else {
			p, err := url.ParseQuery(body)
			if err != nil {
				return // the ingester answers 400 before resolving
			}
			params = p
		}
		ev := Resolve(path, params, jsonBody, knownEvents)
		if ev != EventUnknown && !knownEvents[ev] {
			t.Fatalf("Resolve = %q: neither a known event nor %q", ev, EventUnknown)
		}
		subj := streams.RawSubject(ev)
		for i := len(streams.RawRoot) + 1; i < len(subj); i++ {
			if c := subj[i]; c == '.' || c == '*' || c == '>' || c == ' ' {
				t.Fatalf("raw subject %q has more than one token after the root", subj)
			}
		}
		u := "https://hooks.example.com/webhooks/twilio"
		if a, b := msgID("", u, params, jsonBody), msgID("", u, params, jsonBody); a != b || len(a) < 3 {
			t.Fatalf("msgID unstable or empty: %q %q", a, b)
		}
	})
}

// TestMsgIDIsStable pins the de-duplication ids: a change here stores every
// retry that straddles an upgrade twice.
func TestMsgIDIsStable(t *testing.T) {
	t.Parallel()
	q := func(s string) url.Values { v, _ := url.ParseQuery(s); return v }
	u := "https://hooks.example.com/webhooks/twilio/message-status"
	big := url.Values{} // more keys and bytes than msgID's stack buffers hold
	for i := 0; i < 40; i++ {
		big.Add(fmt.Sprintf("Key%02d", i), strings.Repeat("v", 30+i))
	}
	for _, tc := range []struct {
		token  string
		params url.Values
		json   string
		want   string
	}{
		{"", q("MessageSid=SM1&MessageStatus=sent&AccountSid=AC1"), "", "h-2078aed5fbfd4f26ba94c4fce1e65bdba7c70e49c29e5857a49e86b7dce6207f"},
		{"", q("MediaUrl0=b&MediaUrl0=a&Body=h%C3%A9&Empty="), "", "h-fe435a68401b5e2f6d7e1c029c7cd56a738847301286e44d0596c63c31466bb0"},
		{"", nil, `[{"type":"x"}]`, "h-a770bcbd71f994f93293abe74907c794fa8df3bc064b8bd35e25cc4a17f49a47"},
		{"", url.Values{}, "", "h-ab27f9c15f2c25acb2b8afee7526d42b888cc442766ad3262ed03dae23b4f280"},
		{"tok", q("A=1"), "", "t-tok"},
		{"", big, "", "h-60b30499e01d8698b0f6921df24aec406645fc95538fecb5919307c7c7a300f4"},
	} {
		var js []byte
		if tc.json != "" {
			js = []byte(tc.json)
		}
		if got := msgID(tc.token, u, tc.params, js); got != tc.want {
			t.Errorf("msgID(%q, %v, %s) = %s, want %s", tc.token, tc.params, tc.json, got, tc.want)
		}
	}
}
