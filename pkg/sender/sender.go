// Package sender plays Twilio: it signs fixtures the way Twilio does and
// POSTs them (`zen send`), optionally many at once with unique Sids (the load
// generator of the benchmarks).
package sender

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/twiliosig"
)

// Request is one signed webhook, ready to send any number of times (a
// retry by Twilio sends the same bytes and idempotency token).
type Request struct {
	URL         string // the URL to POST to, with bodySHA256 for JSON
	Body        []byte
	ContentType string
	Header      http.Header
	// Key identifies the request: its first Sid (MessageSid, CallSid,
	// verification_sid …), for correlating sends with receipts.
	Key string
}

// Build signs fixture f for target with token. event, when set, is
// appended to target's path (/webhooks/twilio/<event>): the path is part
// of what Twilio signs and the ingester takes the event type from it;
// without it the ingester infers the type from the signed parameters. No
// X-Twilio-Event header is sent: Twilio sends none and the ingester
// ignores it (it is not signed). variant > 0 replaces every Sid of the
// fixture (but the account's and services') with a value unique to (nonce,
// variant), so each variant is a new webhook.
func Build(f *fixture.Fixture, target, token, event string, nonce string, variant int) (*Request, error) {
	if event != "" {
		target = strings.TrimRight(target, "/") + "/" + event
	}
	r := &Request{ContentType: f.ContentType(), Header: http.Header{}}
	if f.IsJSON() {
		body, err := f.Bytes()
		if err != nil {
			return nil, err
		}
		sids := jsonSids(body)
		if variant > 0 {
			for _, s := range sids {
				body = bytes.ReplaceAll(body, []byte(`"`+s+`"`), []byte(`"`+vary(s, nonce, variant)+`"`))
			}
		}
		if len(sids) > 0 {
			r.Key = sids[0]
			if variant > 0 {
				r.Key = vary(sids[0], nonce, variant)
			}
		}
		r.Body = body
		var sig string
		r.URL, sig = twiliosig.SignJSON(target, body, token)
		r.Header.Set("X-Twilio-Signature", sig)
	} else {
		form, err := formOf(f)
		if err != nil {
			return nil, err
		}
		keys := formSidKeys(form)
		for i, k := range keys {
			if variant > 0 {
				form.Set(k, vary(form.Get(k), nonce, variant))
			}
			if i == 0 {
				r.Key = form.Get(k)
			}
		}
		r.Body = []byte(form.Encode())
		r.URL = target
		r.Header.Set("X-Twilio-Signature", twiliosig.Sign(target, form, token))
	}
	r.Header.Set("Content-Type", r.ContentType)
	r.Header.Set("User-Agent", "TwilioProxy/1.1 (zen send)")
	r.Header.Set("I-Twilio-Idempotency-Token", idempotencyToken(f.Name, nonce, variant))
	return r, nil
}

// forms holds each fixture's form, decoded once: a load of thousands of
// requests from a few fixtures decodes each fixture's JSON once, not per
// request. Fixtures are not changed after Load.
var forms sync.Map // *fixture.Fixture → url.Values

// formOf returns a copy of f's form, which the caller may change.
func formOf(f *fixture.Fixture) (url.Values, error) {
	v, ok := forms.Load(f)
	if !ok {
		form, err := f.Form()
		if err != nil {
			return nil, err
		}
		v, _ = forms.LoadOrStore(f, form)
	}
	src := v.(url.Values)
	out := make(url.Values, len(src))
	for k, vs := range src {
		out[k] = slices.Clone(vs)
	}
	return out, nil
}

// formSidKeys are the keys whose values identify the webhook: *Sid keys but
// AccountSid and *ServiceSid, primary ids first.
func formSidKeys(form url.Values) []string {
	var keys []string
	for k := range form {
		if strings.HasSuffix(k, "Sid") && k != "AccountSid" && !strings.HasSuffix(k, "ServiceSid") {
			keys = append(keys, k)
		}
	}
	rank := func(k string) int {
		switch k {
		case "MessageSid", "SmsSid":
			return 0
		case "CallSid":
			return 1
		}
		return 2
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return keys
}

var jsonSidRE = regexp.MustCompile(`"(?:id|[a-z_]*_sid)":"([A-Z]{2}[0-9a-zA-Z.]+)"`)

// jsonSids are the Sid values of a JSON body (ids and *_sid fields but the
// account's and services'), in order of appearance, primary (*_sid) first.
func jsonSids(body []byte) []string {
	var ids, sids []string
	for _, m := range jsonSidRE.FindAllSubmatch(body, -1) {
		field := string(bytes.SplitN(m[0], []byte(`":`), 2)[0][1:])
		v := string(m[1])
		if field == "account_sid" || strings.HasSuffix(field, "service_sid") || slices.Contains(ids, v) || slices.Contains(sids, v) {
			continue
		}
		if field == "id" {
			ids = append(ids, v)
		} else {
			sids = append(sids, v)
		}
	}
	return append(sids, ids...)
}

// vary keeps a Sid's two-letter prefix and replaces the rest with 32 hex
// digits derived from (sid, nonce, variant).
func vary(sid, nonce string, variant int) string {
	h := sha256.New()
	h.Write([]byte(sid))
	h.Write([]byte(nonce))
	_ = binary.Write(h, binary.BigEndian, int64(variant))
	prefix := sid
	if len(prefix) > 2 {
		prefix = prefix[:2]
	}
	return prefix + hex.EncodeToString(h.Sum(nil))[:32]
}

func idempotencyToken(name, nonce string, variant int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d", name, nonce, variant))
	return hex.EncodeToString(h[:16])
}

// NewNonce returns a random nonce so that two load runs never collide.
func NewNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Response is what the endpoint answered.
type Response struct {
	Status  int
	Body    []byte
	Latency time.Duration
	Err     error
}

// Send POSTs r once with client.
func Send(ctx context.Context, client *http.Client, r *Request) Response {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Response{Err: err}
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return Response{Err: err, Latency: time.Since(start)}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return Response{Status: resp.StatusCode, Body: body, Latency: time.Since(start)}
}

// Load describes a load run.
type Load struct {
	Count       int
	Concurrency int
	// Rate, when > 0, paces the sends at this many per second overall.
	Rate float64
	// OnSend, when set, is called just before request i is sent.
	OnSend func(i int, r *Request)
}

// Stats summarises a load run.
type Stats struct {
	Sent      int             `json:"sent"`
	OK        int             `json:"ok"`
	Errors    int             `json:"errors"`
	ByStatus  map[int]int     `json:"by_status"`
	Duration  time.Duration   `json:"duration_ns"`
	PerSecond float64         `json:"per_second"`
	P50       time.Duration   `json:"p50_ns"`
	P99       time.Duration   `json:"p99_ns"`
	Max       time.Duration   `json:"max_ns"`
	FirstErr  string          `json:"first_error,omitempty"`
	Latencies []time.Duration `json:"-"`
}

// Run sends l.Count requests made by build(i) with l.Concurrency workers.
func Run(ctx context.Context, client *http.Client, l Load, build func(i int) (*Request, error)) Stats {
	if l.Concurrency < 1 {
		l.Concurrency = 1
	}
	var next atomic.Int64
	var mu sync.Mutex
	st := Stats{ByStatus: map[int]int{}, Latencies: make([]time.Duration, 0, l.Count)}
	start := time.Now()
	var wg sync.WaitGroup
	for range l.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= l.Count || ctx.Err() != nil {
					return
				}
				if l.Rate > 0 {
					at := start.Add(time.Duration(float64(i) / l.Rate * float64(time.Second)))
					if d := time.Until(at); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
				}
				r, err := build(i)
				var resp Response
				if err != nil {
					resp.Err = err
				} else {
					if l.OnSend != nil {
						l.OnSend(i, r)
					}
					resp = Send(ctx, client, r)
				}
				mu.Lock()
				st.Sent++
				switch {
				case resp.Err != nil:
					st.Errors++
					if st.FirstErr == "" {
						st.FirstErr = resp.Err.Error()
					}
				default:
					st.ByStatus[resp.Status]++
					if resp.Status >= 200 && resp.Status < 300 {
						st.OK++
					} else if st.FirstErr == "" {
						st.FirstErr = fmt.Sprintf("%d %s", resp.Status, bytes.TrimSpace(resp.Body))
					}
					st.Latencies = append(st.Latencies, resp.Latency)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st.Duration = time.Since(start)
	if st.Duration > 0 {
		st.PerSecond = float64(st.Sent) / st.Duration.Seconds()
	}
	slices.Sort(st.Latencies)
	st.P50, st.P99 = Percentile(st.Latencies, 0.50), Percentile(st.Latencies, 0.99)
	if n := len(st.Latencies); n > 0 {
		st.Max = st.Latencies[n-1]
	}
	return st
}

// Percentile of sorted durations (nearest rank).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// Client is an HTTP client sized for concurrency connections.
func Client(concurrency int, timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * concurrency
	t.MaxIdleConnsPerHost = 2 * concurrency
	return &http.Client{Transport: t, Timeout: timeout}
}
