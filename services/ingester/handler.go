package ingester

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/twiliosig"
	"github.com/zen-twilio/zen/pkg/zen"
)

// HeaderRequestMethod records the HTTP method of a stored request (a GET's
// parameters are stored as its form body).
const HeaderRequestMethod = "Zen-Request-Method"

const (
	ctForm = "application/x-www-form-urlencoded"
	ctJSON = "application/json"
)

// webhookHandler checks, cheapest first: method (405), content type (415),
// announced size (413), a missing signature (403); then reads the body under
// its deadline and budget (408, 413, 503), counts its parameters (413),
// parses it (400) and verifies the signature (403); then resolves the event, publishes
// the raw body and answers only after JetStream's acknowledgement (503 with
// Retry-After when that does not come in time). Nothing is published for a
// rejected request.
func (s *Service) webhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := newID()
		out := outcome{event: "none"}
		r, span := s.startSpan(r)
		code := s.serveWebhook(w, r, reqID, &out)
		endSpan(span, reqID, &out, code)
		s.metrics.request(out.event, code)
		s.metrics.latency.Observe(time.Since(start).Seconds())
		lvl := zap.DebugLevel
		if code >= 400 {
			lvl = zap.WarnLevel
		}
		if ce := s.log.Check(lvl, "webhook"); ce != nil {
			fields := []zap.Field{zap.String("request_id", reqID), zap.String("event", out.event), zap.Int("status", code),
				zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Duration("took", time.Since(start))}
			if out.reason != "" {
				fields = append(fields, zap.String("reason", out.reason), zap.String("url", logURL(out.url, r.Method)))
			}
			ce.Write(fields...)
		}
	})
}

// outcome is what the log line of a request tells beyond its status.
type outcome struct {
	event  string // the resolved Twilio event; "none" before resolution
	reason string // why a 403: one of the reason* constants
	url    string // with reason: the URL the signature was checked against
}

// The reasons of a 403, in the log line and in
// zen_ingester_signature_failures_total{reason}; never in the answer.
const (
	reasonMissingSignature = "missing_signature" // no X-Twilio-Signature
	reasonInvalidSignature = "invalid_signature" // not signed by a token of the account it names
	reasonUnknownAccount   = "unknown_account"   // names no account the ingester has tokens for, or two
)

// verify checks the request's signature with the tokens of the account it
// names and returns "" or the reason of the 403. A GET's parameters are
// its query, part of fullURL.
func (s *Service) verify(r *http.Request, fullURL string, params url.Values, jsonBody []byte, sig string) string {
	if sig == "" {
		return reasonMissingSignature
	}
	var err error
	switch {
	case s.keyring.PerAccount() && len(params["AccountSid"]) > 1:
		// One signature cannot be checked for two accounts, and
		// whichever the transformer read need not be the one verified.
		err = twiliosig.ErrUnknownAccount
	case jsonBody != nil:
		err = s.keyring.VerifyJSON(fullURL, jsonBody, sig)
	case r.Method == http.MethodGet:
		err = s.keyring.VerifyForm(fullURL, nil, sig)
	default:
		err = s.keyring.VerifyForm(fullURL, params, sig)
	}
	switch {
	case err == nil:
		return ""
	case errors.Is(err, twiliosig.ErrUnknownAccount):
		return reasonUnknownAccount
	}
	return reasonInvalidSignature
}

// logURL is the URL a signature was checked against as the log shows it:
// exact, but for a GET, whose query holds the request's parameters (phone
// numbers, message bodies), each value is masked and only the names kept;
// at most 2 KiB.
func logURL(fullURL, method string) string {
	const max = 2 << 10
	if method == http.MethodGet {
		if base, query, ok := strings.Cut(fullURL, "?"); ok {
			parts := strings.Split(query, "&")
			for i, p := range parts {
				if k, _, ok := strings.Cut(p, "="); ok {
					parts[i] = k + "=***"
				}
			}
			fullURL = base + "?" + strings.Join(parts, "&")
		}
	}
	if len(fullURL) > max {
		return fullURL[:max] + "…(truncated)"
	}
	return fullURL
}

// reject answers a short body that reveals nothing about why in detail.
func reject(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
	return code
}

// forbid answers 403 and records why (the log line and the metric; never
// the answer).
func (s *Service) forbid(w http.ResponseWriter, out *outcome, reason, fullURL string) int {
	out.reason, out.url = reason, fullURL
	s.metrics.signatures.WithLabelValues(reason).Inc()
	return reject(w, http.StatusForbidden, "forbidden")
}

// mediaType is ctForm or ctJSON for a content type the ingester takes,
// else "". Twilio's exact header needs no parsing.
func mediaType(ctype string) string {
	if ctype == ctForm {
		return ctForm
	}
	mt, _, err := mime.ParseMediaType(ctype)
	if err != nil || (mt != ctForm && mt != ctJSON) {
		return ""
	}
	return mt
}

// tooManyParams reports whether a query or form has more than max
// parameters, counted before anything is parsed.
func tooManyParams(query string, max int) bool {
	return strings.Count(query, "&") >= max
}

// shed answers 503 with Retry-After: Twilio retries later.
func (s *Service) shed(w http.ResponseWriter) int {
	w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
	return reject(w, http.StatusServiceUnavailable, "busy, retry later")
}

func (s *Service) serveWebhook(w http.ResponseWriter, r *http.Request, reqID string, out *outcome) int {
	w.Header().Set(zen.HeaderRequestID, reqID)
	receivedAt := s.cfg.Now().UTC()
	fullURL := s.cfg.PublicURL + r.RequestURI

	// The cheapest rejections first: method, content type, announced size
	// and a missing signature need no byte of the body.
	var ctype, mt string // as received, and which of ctForm, ctJSON
	switch r.Method {
	case http.MethodGet:
		ctype, mt = ctForm, ctForm
	case http.MethodPost:
		ctype = r.Header.Get("Content-Type")
		if mt = mediaType(ctype); mt == "" {
			return reject(w, http.StatusUnsupportedMediaType, "unsupported content type: send application/x-www-form-urlencoded or application/json")
		}
		if r.ContentLength > s.cfg.MaxBodyBytes {
			w.Header().Set("Connection", "close")
			return reject(w, http.StatusRequestEntityTooLarge, "request body too large")
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		return reject(w, http.StatusMethodNotAllowed, "method not allowed")
	}
	sig := r.Header.Get(zen.HeaderTwilioSignature)
	if s.keyring != nil && sig == "" {
		// Close rather than let net/http drain the unread body first.
		w.Header().Set("Connection", "close")
		return s.forbid(w, out, reasonMissingSignature, fullURL)
	}

	var (
		body     []byte
		params   url.Values
		jsonBody []byte
	)
	if r.Method == http.MethodGet {
		if tooManyParams(r.URL.RawQuery, s.cfg.MaxFormParams) {
			return reject(w, http.StatusRequestEntityTooLarge, "too many parameters")
		}
		params = r.URL.Query()
		body = []byte(r.URL.RawQuery)
	} else {
		var (
			held int64
			err  error
		)
		body, held, err = s.readBody(w, r)
		if err != nil {
			if err == errBodyBudget {
				return s.shed(w)
			}
			return reject(w, bodyStatus(err), err.Error())
		}
		defer s.bodies.give(held)
		if mt == ctJSON {
			if !json.Valid(body) {
				return reject(w, http.StatusBadRequest, "malformed JSON body")
			}
			jsonBody = body
		} else {
			if tooManyParams(string(body), s.cfg.MaxFormParams) {
				return reject(w, http.StatusRequestEntityTooLarge, "too many form parameters")
			}
			if params, err = url.ParseQuery(string(body)); err != nil {
				return reject(w, http.StatusBadRequest, "malformed form body")
			}
		}
	}

	if s.keyring != nil {
		if reason := s.verify(r, fullURL, params, jsonBody, sig); reason != "" {
			return s.forbid(w, out, reason, fullURL)
		}
	}

	// The path is part of the signed URL and the parameters are signed;
	// X-Twilio-Event is neither (and real Twilio never sends it), so it
	// has no say in the event type.
	out.event = Resolve(r.PathValue("event"), params, jsonBody, s.known)
	s.traceSid(r.Context(), params)

	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		return s.shed(w)
	}

	// The evidence headers. The keys are canonical already, so they are set
	// directly, and all values share one array: two allocations, not ten.
	msg := &nats.Msg{Subject: streams.RawSubject(out.event), Data: body, Header: make(nats.Header, 9)}
	values := make([]string, 0, 9)
	set := func(k, v string) {
		values = append(values, v)
		msg.Header[k] = values[len(values)-1 : len(values) : len(values)]
	}
	set(zen.HeaderContentType, ctype)
	if sig != "" {
		set(zen.HeaderTwilioSignature, sig)
	}
	set(zen.HeaderTwilioEvent, out.event)
	token := r.Header.Get(zen.HeaderIdempotencyToken)
	if token != "" {
		set(zen.HeaderIdempotencyToken, token)
	}
	set(zen.HeaderRequestID, reqID)
	set(zen.HeaderReceivedAt, receivedAt.Format(time.RFC3339Nano))
	set(zen.HeaderRequestURL, fullURL)
	set(HeaderRequestMethod, r.Method)
	set(zen.HeaderMsgID, msgID(token, fullURL, params, jsonBody))

	if !s.nc.IsConnected() {
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
		return reject(w, http.StatusServiceUnavailable, "temporarily unavailable, retry later")
	}
	pstart := time.Now()
	err := s.publish(r.Context(), msg)
	s.metrics.publish.Observe(time.Since(pstart).Seconds())
	if err != nil {
		s.log.Warn("publish not acknowledged", zap.String("request_id", reqID), zap.String("event", out.event), zap.Error(err))
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
		return reject(w, http.StatusServiceUnavailable, "temporarily unavailable, retry later")
	}

	if resp, ok := s.responses[out.event]; ok {
		w.Header().Set("Content-Type", resp.ContentType)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, resp.Body)
		return http.StatusOK
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

// msgID is the JetStream de-duplication id: Twilio's idempotency token when
// sent, else a hash of the URL and the sorted parameters (or the JSON body),
// so Twilio's retries of one callback are stored once. The hashed bytes are
// URL 0 (key 0 value 0)… or URL 0 body; the ids of a version are the ids of
// the next (TestMsgIDIsStable), or a retry across an upgrade is stored twice.
func msgID(token, fullURL string, params url.Values, jsonBody []byte) string {
	if token != "" {
		return "t-" + token
	}
	// Built on the stack and hashed once: a hash.Hash's Write through its
	// interface would copy each key and value to the heap.
	var buf [1024]byte
	b := append(append(buf[:0], fullURL...), 0)
	if jsonBody != nil {
		b = append(b, jsonBody...)
	} else {
		var kbuf [32]string
		keys := kbuf[:0]
		for k := range params {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			for _, v := range params[k] {
				b = append(append(append(append(b, k...), 0), v...), 0)
			}
		}
	}
	sum := sha256.Sum256(b)
	var id [2 + 2*sha256.Size]byte
	id[0], id[1] = 'h', '-'
	hex.Encode(id[2:], sum[:])
	return string(id[:])
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
