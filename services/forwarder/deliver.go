package forwarder

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/zen-twilio/zen/pkg/pack"
	"github.com/zen-twilio/zen/pkg/tracing"
	"github.com/zen-twilio/zen/pkg/zen"
)

// Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// deliverer POSTs events to one target.
type deliverer struct {
	target    pack.Target
	client    *http.Client
	userAgent string
	secret    []byte // Standard Webhooks key, nil when the target names none
	// destPrefix is how an event already addressed to this target begins.
	destPrefix []byte
	timeout    time.Duration
	auth       authorizer
	now        func() time.Time
	tracer     *tracing.Tracer // sends the attempt's traceparent
}

// newDeliverer POSTs to t through rt (a target with mutual TLS gets a
// transport of its own) within timeout, with tracer's trace context.
func newDeliverer(t pack.Target, rt http.RoundTripper, timeout time.Duration, cfg Config, tracer *tracing.Tracer) *deliverer {
	if t.TLS != nil {
		tr := newTransport(cfg.Concurrency)
		tr.TLSClientConfig = t.TLS.Config
		rt = tr
	}
	d := &deliverer{
		target: t, userAgent: "zen-twilio-forwarder/" + cfg.Version, timeout: timeout, now: cfg.Now, tracer: tracer,
		destPrefix: destinationPrefix(t.Name),
		client: &http.Client{
			Transport: rt,
			// A POST is never followed through a redirect: Classify dead-letters 3xx.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	// Token requests (OAuth2) go through the same transport, bounded too.
	d.auth = newAuthorizer(t.Auth, &http.Client{Transport: rt, Timeout: timeout})
	if s := t.SigningSecret.Reveal(); s != "" {
		d.secret = signingKey(s)
	}
	return d
}

// newTransport is the pooled transport shared by a service's targets.
func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4 * concurrency,
		MaxIdleConnsPerHost:   concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 0, // bounded by the request context
		ForceAttemptHTTP2:     true,
	}
}

// signingKey decodes a "whsec_<base64>" secret; other secrets are used as is.
func signingKey(s string) []byte {
	if rest, ok := strings.CutPrefix(s, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return k
		}
	}
	return []byte(s)
}

// Sign returns the Standard Webhooks signature header value of a message.
func Sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// body returns the event as the target receives it: destination set to the
// target (see withDestination).
func (d *deliverer) body(data []byte) ([]byte, error) {
	return withDestination(data, d.target.Name, d.destPrefix)
}

// withDestination re-encodes an event with destination set to the target
// (field order kept).
// prefix is destinationPrefix(target), computed once per target.
func withDestination(data []byte, target string, prefix []byte) ([]byte, error) {
	// The transformer already names the target when there is one: then the
	// event goes out byte for byte, without a decode.
	if bytes.HasPrefix(data, prefix) && json.Valid(data) {
		return data, nil
	}
	var ev zen.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	if ev.Destination == target {
		return data, nil
	}
	ev.Destination = target
	return json.Marshal(ev)
}

// request builds the POST of body with its idempotency key.
func (d *deliverer) request(ctx context.Context, body []byte, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.target.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.userAgent)
	req.Header.Set("Idempotency-Key", key)
	d.tracer.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if err := d.auth(req); err != nil {
		return nil, err
	}
	if d.secret != nil {
		ts := d.now().Unix()
		req.Header.Set(HeaderWebhookID, key)
		req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderWebhookSignature, Sign(d.secret, key, ts, body))
	}
	return req, nil
}

// result of one POST.
type result struct {
	status     int
	retryAfter string
	snippet    []byte
	err        error
}

// post sends body and reads at most snippetLen bytes of the answer (the rest
// is discarded so the connection is reused).
func (d *deliverer) post(ctx context.Context, body []byte, key string) result {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := d.request(ctx, body, key)
	if err != nil {
		return result{err: err}
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	d.traceStatus(ctx, resp.StatusCode)
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, snippetLen))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return result{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), snippet: snippet}
}

// destinationPrefix is how an encoded zen.Event for target begins.
func destinationPrefix(target string) []byte {
	b, _ := json.Marshal(target)
	return append(append([]byte(`{"destination":`), b...), ',')
}
