package twiliosig_test

import (
	"net/url"
	"testing"

	"github.com/zen-twilio/zen/pkg/twiliosig"
)

func BenchmarkVerifyForm(b *testing.B) {
	u := "https://hooks.example.com/webhooks/twilio/message-status"
	f := url.Values{"MessageSid": {"SM00000000000000000000000000000002"}, "MessageStatus": {"delivered"}, "SmsStatus": {"delivered"},
		"To": {"+15558675310"}, "From": {"+15017122661"}, "AccountSid": {"AC00000000000000000000000000000001"}, "ApiVersion": {"2010-04-01"}}
	sig := twiliosig.Sign(u, f, "bench-token")
	v, _ := twiliosig.NewVerifier([]string{"bench-token"})
	b.ReportAllocs()
	for b.Loop() {
		if err := v.VerifyForm(u, f, sig); err != nil {
			b.Fatal(err)
		}
	}
}
