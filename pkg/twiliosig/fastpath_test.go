package twiliosig

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"

	"github.com/twilio/twilio-go/client"
)

// The fast path of VerifyForm accepts a signature only when it equals Sign
// over the exact URL; this checks that twilio-go's validator accepts every
// such signature, so the fast path never lets through what twilio-go would
// refuse.
func TestFastPathAgreesWithTwilioGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	urls := []string{
		"https://hooks.example.com/webhooks/twilio",
		"https://hooks.example.com:443/webhooks/twilio/message-status",
		"http://127.0.0.1:8080/webhooks/twilio",
		"https://hooks.example.com:8443/webhooks/twilio?x=1&y=%20z",
		"https://hooks.example.com/webhooks/twilio?bodySHA256=abc",
	}
	alphabet := []rune("abcXYZ019 +%&=é🙂\x00\n")
	str := func(n int) string {
		r := make([]rune, rng.IntN(n))
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(r)
	}
	for i := range 5000 {
		u := urls[rng.IntN(len(urls))]
		form := url.Values{}
		for range rng.IntN(8) {
			form.Set(str(6)+"k", str(12))
		}
		token := fmt.Sprintf("token-%d", i)
		sig := Sign(u, form, token)
		params := map[string]string{}
		for k, vs := range form {
			params[k] = vs[0]
		}
		rv := client.NewRequestValidator(token)
		if !rv.Validate(u, params, sig) {
			t.Fatalf("fast path would accept what twilio-go refuses: url %q form %q", u, form)
		}
		v, _ := NewVerifier([]string{token})
		if err := v.VerifyForm(u, form, sig); err != nil {
			t.Fatalf("VerifyForm rejects its own signature: %v", err)
		}
	}
}
