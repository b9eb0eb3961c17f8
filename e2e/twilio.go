package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook is one callback as Twilio would send it.
type Webhook struct {
	Event  string     // path segment: incoming-message, message-status, ...
	Form   url.Values // form parameters (nil for JSON)
	JSON   []byte     // JSON body (Verify via Event Streams)
	Token  string     // I-Twilio-Idempotency-Token
	Key    string     // expected dedupe key of the event it produces ("" for poison)
	Poison string     // expected DLQ reason for poison inputs
	Retry  bool       // a re-send of an earlier callback
}

// sign computes X-Twilio-Signature as Twilio documents it, independently of
// the project's pkg/twiliosig: base64(HMAC-SHA1(token, url + sorted k+v)),
// every value of a repeated key, values sorted.
func sign(authToken, fullURL string, form url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := append([]string(nil), form[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Request builds the signed HTTP request for base (an ingester's public URL).
func (w Webhook) Request(ctx context.Context, base, authToken string) (*http.Request, error) {
	u := base + "/webhooks/twilio"
	if w.Event != "" {
		u += "/" + w.Event
	}
	var body []byte
	var sig, ctype string
	if w.JSON != nil {
		sum := sha256.Sum256(w.JSON)
		u += "?bodySHA256=" + hex.EncodeToString(sum[:])
		body, ctype = w.JSON, "application/json"
		sig = sign(authToken, u, nil)
	} else {
		body, ctype = []byte(w.Form.Encode()), "application/x-www-form-urlencoded"
		sig = sign(authToken, u, w.Form)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("X-Twilio-Signature", sig)
	if w.Token != "" {
		req.Header.Set("I-Twilio-Idempotency-Token", w.Token)
	}
	return req, nil
}

// Generate returns n webhooks across the six families with status
// transitions, about 10% re-sends of earlier callbacks (same idempotency
// token), plus the poison inputs, in a shuffled but causal-enough order.
func Generate(n int, seed uint64) []Webhook {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var out []Webhook
	id := 0
	sid := func(prefix string) string { id++; return fmt.Sprintf("%s%032x", prefix, uint64(id)^seed<<20) }
	tok := func() string {
		return fmt.Sprintf("%08x-%04x-4000-8000-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff)
	}
	acct := "AC00000000000000000000000000000e2e"
	num := func() string { return fmt.Sprintf("+1555%07d", rng.IntN(10000000)) }
	originals := 0
	for originals < n*9/10 {
		switch rng.IntN(5) {
		case 0, 1: // a message: incoming or outbound statuses
			ms := sid("SM")
			if rng.IntN(2) == 0 {
				f := url.Values{"MessageSid": {ms}, "SmsSid": {ms}, "AccountSid": {acct}, "From": {num()}, "To": {num()},
					"Body": {"Hello + welcome 👋 ü & more"}, "NumMedia": {"0"}, "SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"}}
				out = append(out, Webhook{Event: "incoming-message", Form: f, Token: tok(), Key: "tw-" + ms + ".message.incoming"})
				originals++
				continue
			}
			statuses := []string{"queued", "sent", "delivered"}
			if rng.IntN(5) == 0 {
				statuses = []string{"queued", "sent", "undelivered"}
			}
			for _, st := range statuses {
				f := url.Values{"MessageSid": {ms}, "SmsSid": {ms}, "AccountSid": {acct}, "From": {num()}, "To": {num()},
					"MessageStatus": {st}, "SmsStatus": {st}, "ApiVersion": {"2010-04-01"}}
				if st == "undelivered" {
					f.Set("ErrorCode", "30003")
				}
				out = append(out, Webhook{Event: "message-status", Form: f, Token: tok(), Key: "tw-" + ms + ".message.status." + st})
				originals++
			}
		case 2: // a call: incoming, then its status sequence, sometimes a recording
			cs := sid("CA")
			from, to := num(), num()
			base := url.Values{"CallSid": {cs}, "AccountSid": {acct}, "From": {from}, "To": {to}, "Direction": {"inbound"}, "ApiVersion": {"2010-04-01"}}
			f := cloneValues(base)
			f.Set("CallStatus", "ringing")
			out = append(out, Webhook{Event: "incoming-call", Form: f, Token: tok(), Key: "tw-" + cs + ".call.incoming"})
			originals++
			for seq, st := range []string{"ringing", "in-progress", "completed"} {
				f := cloneValues(base)
				f.Set("CallStatus", st)
				f.Set("SequenceNumber", fmt.Sprint(seq))
				f.Set("Timestamp", time.Now().UTC().Format(time.RFC1123Z))
				if st == "completed" {
					f.Set("CallDuration", fmt.Sprint(5+rng.IntN(600)))
				}
				out = append(out, Webhook{Event: "call-status", Form: f, Token: tok(), Key: fmt.Sprintf("tw-%s.call.status.%s.%d", cs, st, seq)})
				originals++
			}
			if rng.IntN(2) == 0 {
				rs := sid("RE")
				f := url.Values{"RecordingSid": {rs}, "CallSid": {cs}, "AccountSid": {acct}, "RecordingStatus": {"completed"},
					"RecordingUrl":      {"https://api.twilio.com/2010-04-01/Accounts/" + acct + "/Recordings/" + rs},
					"RecordingDuration": {"42"}, "RecordingChannels": {"1"}, "RecordingSource": {"DialVerb"}}
				out = append(out, Webhook{Event: "recording-status", Form: f, Token: tok(), Key: "tw-" + rs + ".recording.status.completed"})
				originals++
			}
		case 3, 4: // a verification approved, from Event Streams
			ve := sid("VE")
			st := []string{"approved", "pending", "canceled"}[rng.IntN(3)]
			id := fmt.Sprintf("EZ%032x", rng.Uint64())
			ce := []map[string]any{{
				"specversion": "1.0", "type": "com.twilio.accountsecurity.verify.verification." + st,
				"source": "/v2/Services/VA00000000000000000000000000000e2e/Verifications/" + ve,
				"id":     id, "dataschema": "https://events-schemas.twilio.com/AccountSecurity.VerifyEventStreamEvent/1",
				"datacontenttype": "application/json", "time": time.Now().UTC().Format(time.RFC3339),
				"data": map[string]any{"verification_sid": ve, "service_sid": "VA00000000000000000000000000000e2e", "account_sid": acct,
					"channel": "sms", "verification_status": strings.ToUpper(st), "to": num(), "date_created": time.Now().UTC().Format(time.RFC3339)},
			}}
			b, _ := json.Marshal(ce)
			out = append(out, Webhook{Event: "verification-status", JSON: b, Token: tok(), Key: "tw-" + ve + ".verification.status." + st + "." + strings.ToLower(id)})
			originals++
		}
	}
	// ~10% re-sends of callbacks already in the list (Twilio retrying).
	for i := 0; i < n/10; i++ {
		w := out[rng.IntN(len(out))]
		w.Retry = true
		out = append(out, w)
	}
	// Poison inputs, validly signed: a required field missing, an unknown event.
	out = append(out,
		Webhook{Event: "message-status", Form: url.Values{"AccountSid": {acct}, "MessageStatus": {"delivered"}}, Token: tok(), Poison: "missing_required"},
		Webhook{Event: "", Form: url.Values{"AccountSid": {acct}, "Foo": {"bar"}}, Token: tok(), Poison: "unknown_event"},
	)
	// Shuffle within windows so a Sid's callbacks arrive roughly, not strictly, in order.
	const win = 25
	for i := 0; i < len(out); i += win {
		end := min(i+win, len(out))
		rng.Shuffle(end-i, func(a, b int) { out[i+a], out[i+b] = out[i+b], out[i+a] })
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Client plays Twilio: it sends each webhook to one of the ingesters and
// retries on connection errors and non-2xx answers until a 2xx or its
// deadline, as Twilio does with #rc/#rp connection overrides.
type Client struct {
	Bases     []string
	AuthToken string
	HTTP      *http.Client
	// Deadline bounds the retries of one webhook.
	Deadline time.Duration

	next      atomic.Uint64
	mu        sync.Mutex
	Sent      int         // HTTP requests made
	OK        int         // webhooks answered 2xx
	Failed    []string    // webhooks never answered 2xx
	Statuses  map[int]int // every answer by status (0 = connection error)
	OKKeys    map[string]bool
	OKPoison  map[string]bool
	Latencies []time.Duration
}

// Send delivers w, retrying until 2xx; it reports whether w got a 2xx.
func (c *Client) Send(ctx context.Context, w Webhook) bool {
	deadline := time.Now().Add(c.Deadline)
	backoff := 100 * time.Millisecond
	for time.Now().Before(deadline) {
		base := c.Bases[c.next.Add(1)%uint64(len(c.Bases))]
		req, err := w.Request(ctx, base, c.AuthToken)
		if err != nil {
			return false
		}
		start := time.Now()
		resp, err := c.HTTP.Do(req)
		status := 0
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		c.mu.Lock()
		c.Sent++
		c.Statuses[status]++
		if status >= 200 && status < 300 {
			c.OK++
			c.Latencies = append(c.Latencies, time.Since(start))
			if w.Key != "" {
				c.OKKeys[w.Key] = true
			}
			if w.Poison != "" {
				c.OKPoison[w.Poison] = true
			}
			c.mu.Unlock()
			return true
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	c.mu.Lock()
	c.Failed = append(c.Failed, w.Event+" "+w.Key)
	c.mu.Unlock()
	return false
}
