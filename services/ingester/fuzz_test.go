package ingester

import (
	"net/url"
	"testing"

	"github.com/zen-twilio/zen/pkg/streams"
)

// FuzzResolve: whatever the header, path and body, the ingester resolves a
// known event or "unknown" (stored, then dead-lettered: never dropped), the
// raw subject is a valid single token, and the dedupe id is stable.
func FuzzResolve(f *testing.F) {
	f.Add("", "message-status", "MessageSid=SM1&MessageStatus=sent", false)
	f.Add("incoming-call", "", "CallSid=CA1&CallStatus=ringing&Direction=inbound", false)
	f.Add("", "", `[{"type":"com.twilio.accountsecurity.verify.verification.approved","data":{}}]`, true)
	f.Add("x.y>*", "a b", "%zz&&==", false)
	f.Add("", "verification-status", `{"not":"an array"`, true)
	f.Fuzz(func(t *testing.T, header, path, body string, isJSON bool) {
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
		ev := Resolve(header, path, params, jsonBody, knownEvents)
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
