package transform_test

import (
	"encoding/json"
	"testing"

	"github.com/zen-twilio/zen/pkg/transform"
)

// FuzzTransform: any body, any event, any content type: no panic; either
// events whose JSON encodes and whose keys start with tw-, or a classified
// error.
func FuzzTransform(f *testing.F) {
	e := mustEngine(f)
	f.Add("incoming-message", "application/x-www-form-urlencoded", "MessageSid=SM1&From=%2B1&To=%2B2&Body=hi+there&NumMedia=1&MediaUrl0=u")
	f.Add("message-status", "", "MessageSid=SM1&MessageStatus=delivered&ErrorCode=")
	f.Add("call-status", "", "CallSid=CA1&CallStatus=completed&SequenceNumber=2&CallDuration=9&Timestamp=Wed,+24+Jun+2026+09:59:58+%2B0000")
	f.Add("verification-status", "application/json", `[{"id":"EZ1","data":{"verification_sid":"VE1","verification_status":"APPROVED"}}]`)
	f.Add("verification-status", "application/json", `{"data":{"verification_sid":"VE1","send_code_attempts":{"attempts":[{"channel":"SMS"}]}}}`)
	f.Add("recording-status", "", "RecordingSid=RE1&CallSid=CA1&RecordingStatus=completed&RecordingDuration=-1")
	f.Add("unknown", "text/plain", "\x00\xff")
	f.Fuzz(func(t *testing.T, event, ctype, body string) {
		rs, err := e.Transform(event, ctype, []byte(body), cardTime)
		if err != nil {
			if transform.ReasonOf(err) == transform.ReasonInternal {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		for _, r := range rs {
			if len(r.DedupeKey) < 4 || r.DedupeKey[:3] != "tw-" {
				t.Fatalf("dedupe key %q does not start with tw-", r.DedupeKey)
			}
			if _, err := json.Marshal(r.Event); err != nil {
				t.Fatalf("event does not encode: %v", err)
			}
		}
	})
}
