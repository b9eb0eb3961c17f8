package ingester_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/fixture"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/ingester"
)

const (
	publicURL = "https://hooks.example.com"
	authToken = "test-auth-token-not-a-secret"
)

// sign is an independent HMAC-SHA1 of Twilio's algorithm (not pkg/twiliosig).
func sign(token, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := fullURL
	for _, k := range keys {
		vs := append([]string(nil), form[k]...)
		sort.Strings(vs)
		for i, v := range vs {
			if i == 0 || v != vs[i-1] {
				s += k + v
			}
		}
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

type env struct {
	t    *testing.T
	srv  *natstest.Server
	js   jetstream.JetStream
	base string
	svc  *ingester.Service
	logs *observer.ObservedLogs
}

func start(t *testing.T, mod func(*ingester.Config)) *env {
	t.Helper()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	cfg := ingester.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.PublicURL = publicURL
	cfg.AuthTokens = []envconf.Secret{authToken}
	cfg.Conn = srv.Conn(t)
	cfg.PublishTimeout = 2 * time.Second
	cfg.StreamsApply = false
	if mod != nil {
		mod(&cfg)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	svc, err := ingester.New(context.Background(), cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return &env{t: t, srv: srv, js: js, base: "http://" + svc.Addr().String(), svc: svc, logs: logs}
}

// post sends body to path, signed for the public URL unless sig is given.
func (e *env) post(path, ctype string, body []byte, hdr map[string]string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.base+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if _, ok := hdr["X-Twilio-Signature"]; !ok {
		var form url.Values
		if strings.HasPrefix(ctype, "application/x-www-form-urlencoded") {
			form, _ = url.ParseQuery(string(body))
		}
		req.Header.Set("X-Twilio-Signature", sign(authToken, publicURL+path, form))
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (e *env) rawCount() uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), streams.StreamRaw)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

func (e *env) lastRaw(subject string) *jetstream.RawStreamMsg {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), streams.StreamRaw)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		e.t.Fatalf("no message on %s: %v", subject, err)
	}
	return m
}

func repoRoot(t *testing.T) string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("no go.work")
		}
	}
}

func TestEachFamilyStoredByteForByte(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	files, _ := fixture.List(filepath.Join(repoRoot(t), "fixtures", "twilio"))
	if len(files) < 6 {
		t.Fatalf("want fixtures for every family, got %d", len(files))
	}
	for _, f := range files {
		fx, err := fixture.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := fx.Bytes()
		path := "/webhooks/twilio/" + fx.Event()
		var resp *http.Response
		if fx.IsJSON() {
			sum := sha256.Sum256(body)
			path += "?bodySHA256=" + hex.EncodeToString(sum[:])
			resp = e.post(path, fx.ContentType(), body, map[string]string{"X-Twilio-Signature": sign(authToken, publicURL+path, nil)})
		} else {
			resp = e.post(path, fx.ContentType(), body, map[string]string{"I-Twilio-Idempotency-Token": "tok-" + fx.Name})
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d %s", fx.Name, resp.StatusCode, got)
		}
		switch fx.Event() {
		case "incoming-message", "incoming-call":
			if ct := resp.Header.Get("Content-Type"); ct != "text/xml" || string(got) != "<Response/>" {
				t.Errorf("%s: answer %q %q, want TwiML <Response/>", fx.Name, ct, got)
			}
		default:
			if len(got) != 0 {
				t.Errorf("%s: status callback answered %q, want an empty body", fx.Name, got)
			}
		}
		m := e.lastRaw("twilio.raw." + fx.Event())
		if !bytes.Equal(m.Data, body) {
			t.Errorf("%s: stored body differs from the request body", fx.Name)
		}
		for k, want := range map[string]string{
			"Content-Type": fx.ContentType(), "X-Twilio-Event": fx.Event(), "Zen-Request-Url": publicURL + path,
			"Zen-Request-Method": "POST",
		} {
			if got := m.Header.Get(k); got != want {
				t.Errorf("%s: header %s = %q, want %q", fx.Name, k, got, want)
			}
		}
		for _, k := range []string{"X-Twilio-Signature", "Zen-Request-Id", "Zen-Received-At", "Nats-Msg-Id"} {
			if m.Header.Get(k) == "" {
				t.Errorf("%s: header %s missing", fx.Name, k)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, m.Header.Get("Zen-Received-At")); err != nil {
			t.Errorf("%s: Zen-Received-At: %v", fx.Name, err)
		}
		if !fx.IsJSON() {
			if got := m.Header.Get("Nats-Msg-Id"); got != "t-tok-"+fx.Name {
				t.Errorf("%s: Nats-Msg-Id = %q, want the idempotency token", fx.Name, got)
			}
		}
	}
	if got := e.rawCount(); got != uint64(len(files)) {
		t.Errorf("TWILIO_RAW has %d messages, want %d", got, len(files))
	}
}

func TestResolutionWithoutHeaderOrPath(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, tc := range []struct{ body, want string }{
		{"MessageSid=SM1&SmsStatus=received&Body=hi&From=%2B1&To=%2B2", "incoming-message"},
		{"MessageSid=SM1&MessageStatus=delivered", "message-status"},
		{"CallSid=CA1&CallStatus=ringing&Direction=inbound", "incoming-call"},
		{"CallSid=CA1&CallStatus=completed&CallDuration=3", "call-status"},
		{"CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed", "recording-status"},
		{"Foo=bar", "unknown"},
	} {
		resp := e.post("/webhooks/twilio", "application/x-www-form-urlencoded", []byte(tc.body), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", tc.body, resp.StatusCode)
		}
		if m := e.lastRaw("twilio.raw." + tc.want); string(m.Data) != tc.body {
			t.Errorf("%s stored on twilio.raw.%s as %q", tc.body, tc.want, m.Data)
		}
	}
	// The signed path wins; the unsigned X-Twilio-Event has no say (issue 24).
	e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", []byte("CallSid=CA9&CallStatus=busy"), map[string]string{"X-Twilio-Event": "call-status"})
	if m := e.lastRaw("twilio.raw.message-status"); !strings.Contains(string(m.Data), "CA9") {
		t.Error("a request to /webhooks/twilio/message-status was not stored on twilio.raw.message-status")
	}
	if m := e.lastRaw("twilio.raw.call-status"); strings.Contains(string(m.Data), "CA9") {
		t.Error("X-Twilio-Event re-typed the request as call-status")
	}
}

func TestRetryIsStoredOnce(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	body := []byte("MessageSid=SM1&MessageStatus=sent")
	for i := 0; i < 3; i++ {
		if r := e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", body, map[string]string{"I-Twilio-Idempotency-Token": "same-token"}); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	for i := 0; i < 3; i++ { // no token: the hash of URL + parameters dedupes
		e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", []byte("MessageStatus=delivered&MessageSid=SM1"), nil)
	}
	if got := e.rawCount(); got != 2 {
		t.Errorf("TWILIO_RAW has %d messages after 3+3 retries of 2 callbacks, want 2", got)
	}
}

// zen_ingester_requests_total counts every answer by event and code, the
// stored ones of known events included from the start (at 0).
func TestRequestsAreCountedByEventAndCode(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	const form = "application/x-www-form-urlencoded"
	for i := range 2 {
		if r := e.post("/webhooks/twilio/message-status", form, []byte(fmt.Sprintf("MessageSid=SM%d&MessageStatus=sent", i)), nil); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	if r := e.post("/webhooks/twilio", form, []byte("Foo=bar"), nil); r.StatusCode != 200 {
		t.Fatalf("unknown event: status %d", r.StatusCode)
	}
	if r := e.post("/webhooks/twilio/message-status", form, []byte("MessageSid=SM9"), map[string]string{"X-Twilio-Signature": "forged"}); r.StatusCode != 403 {
		t.Fatalf("forged: status %d", r.StatusCode)
	}
	r, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, want := range []string{
		`zen_ingester_requests_total{code="200",event="message-status"} 2`,
		`zen_ingester_requests_total{code="200",event="unknown"} 1`,
		`zen_ingester_requests_total{code="403",event="none"} 1`,
		`zen_ingester_requests_total{code="200",event="incoming-call"} 0`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRejectionsLeaveTheStreamUntouched(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *ingester.Config) { c.MaxBodyBytes = 1024 })
	form := "application/x-www-form-urlencoded"
	good := []byte("MessageSid=SM1&MessageStatus=sent")
	for _, tc := range []struct {
		name   string
		method string
		ctype  string
		body   []byte
		hdr    map[string]string
		status int
	}{
		{"forged signature", "POST", form, good, map[string]string{"X-Twilio-Signature": sign("wrong-token", publicURL+"/webhooks/twilio/message-status", url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"sent"}})}, 403},
		{"missing signature", "POST", form, good, map[string]string{"X-Twilio-Signature": ""}, 403},
		{"body changed after signing", "POST", form, []byte("MessageSid=SM1&MessageStatus=delivered"), map[string]string{"X-Twilio-Signature": sign(authToken, publicURL+"/webhooks/twilio/message-status", url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"sent"}})}, 403},
		{"wrong content type", "POST", "text/plain", good, nil, 415},
		{"no content type", "POST", "", good, nil, 415},
		{"over the limit", "POST", form, []byte("Body=" + strings.Repeat("x", 2000)), nil, 413},
		{"malformed form", "POST", form, []byte("MessageSid=%zz"), nil, 400},
		{"malformed json", "POST", "application/json", []byte("[{"), nil, 400},
		{"wrong method", "PUT", form, good, nil, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.base+"/webhooks/twilio/message-status", bytes.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			var f url.Values
			if tc.ctype == form {
				f, _ = url.ParseQuery(string(tc.body))
			}
			req.Header.Set("X-Twilio-Signature", sign(authToken, publicURL+"/webhooks/twilio/message-status", f))
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, b, tc.status)
			}
			if tc.status == 403 && strings.TrimSpace(string(b)) != "forbidden" {
				t.Errorf("403 body %q reveals more than needed", b)
			}
		})
	}
	if got := e.rawCount(); got != 0 {
		t.Errorf("TWILIO_RAW has %d messages after only rejected requests, want 0", got)
	}
	// At exactly the limit the request is accepted.
	exact := []byte("MessageSid=SM1&MessageStatus=sent&Pad=")
	exact = append(exact, bytes.Repeat([]byte("x"), 1024-len(exact))...)
	if r := e.post("/webhooks/twilio/message-status", form, exact, nil); r.StatusCode != 200 {
		t.Errorf("a body of exactly MAX_BODY_BYTES got %d, want 200", r.StatusCode)
	}
}

func TestNATSDownAnswers503NeverA2xx(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *ingester.Config) { c.PublishTimeout = 500 * time.Millisecond })
	e.srv.Shutdown()
	for i := 0; i < 5; i++ {
		r := e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", []byte(fmt.Sprintf("MessageSid=SM%d&MessageStatus=sent", i)), nil)
		if r.StatusCode != 503 {
			t.Fatalf("request %d with NATS down: %d, want 503", i, r.StatusCode)
		}
		if r.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	if r, _ := http.Get(e.base + "/readyz"); r.StatusCode != 503 {
		t.Errorf("/readyz with NATS down = %d, want 503", r.StatusCode)
	}
	e.srv.Restart(t)
	natstest.CheckFor(t, 15*time.Second, func() error {
		r := e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", []byte("MessageSid=SMok&MessageStatus=sent"), nil)
		if r.StatusCode != 200 {
			return fmt.Errorf("status %d", r.StatusCode)
		}
		return nil
	})
	// A 503 promises nothing was acknowledged, not that nothing was stored:
	// the client may flush a buffered publish after reconnecting. So Twilio
	// retries each 503'd request, and the retry must be answered 2xx and
	// stored once, whether or not the first copy landed.
	for i := 0; i < 5; i++ {
		r := e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", []byte(fmt.Sprintf("MessageSid=SM%d&MessageStatus=sent", i)), nil)
		if r.StatusCode != 200 {
			t.Errorf("Twilio's retry %d after recovery: %d, want 200", i, r.StatusCode)
		}
	}
	e.js = e.srv.JetStream(t)
	s, err := e.js.Stream(context.Background(), streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for seq := uint64(1); seq <= 20; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			break
		}
		count[string(m.Data)]++
	}
	want := []string{"MessageSid=SMok&MessageStatus=sent"}
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf("MessageSid=SM%d&MessageStatus=sent", i))
	}
	for _, body := range want {
		if count[body] != 1 {
			t.Errorf("TWILIO_RAW holds %q %d times, want exactly once", body, count[body])
		}
	}
	if len(count) != len(want) {
		t.Errorf("TWILIO_RAW holds %d distinct bodies, want %d: %v", len(count), len(want), count)
	}
}

func TestGETRequest(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	path := "/webhooks/twilio/message-status?MessageSid=SM7&MessageStatus=delivered"
	req, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
	req.Header.Set("X-Twilio-Signature", sign(authToken, publicURL+path, nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET status %d", resp.StatusCode)
	}
	m := e.lastRaw("twilio.raw.message-status")
	if string(m.Data) != "MessageSid=SM7&MessageStatus=delivered" || m.Header.Get("Zen-Request-Method") != "GET" {
		t.Errorf("GET stored as %q (%s)", m.Data, m.Header.Get("Zen-Request-Method"))
	}
}

func TestRotatedTokens(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *ingester.Config) { c.AuthTokens = []envconf.Secret{"new-token", authToken} })
	if r := e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", []byte("MessageSid=SM1&MessageStatus=sent"), nil); r.StatusCode != 200 {
		t.Errorf("request signed with the old token during rotation: %d", r.StatusCode)
	}
}

func TestLogsCarryNoSecretsBodiesOrNumbers(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	body := []byte("MessageSid=SM1&SmsStatus=received&Body=my+secret+plan&From=%2B15017122661&To=%2B15551234567")
	e.post("/webhooks/twilio/incoming-message", "application/x-www-form-urlencoded", body, nil)
	e.post("/webhooks/twilio/incoming-message", "application/x-www-form-urlencoded", body, map[string]string{"X-Twilio-Signature": "forged"})
	var all strings.Builder
	for _, l := range e.logs.All() {
		all.WriteString(l.Message)
		for k, v := range l.ContextMap() {
			fmt.Fprintf(&all, " %s=%v", k, v)
		}
		all.WriteString("\n")
	}
	if e.logs.Len() == 0 {
		t.Fatal("no logs captured")
	}
	for _, secret := range []string{authToken, "my secret plan", "my+secret+plan", "15017122661", "forged"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("logs contain %q:\n%s", secret, all.String())
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	_, err := ingester.ConfigFromEnv(envconf.MapLookup(map[string]string{"PUBLIC_URL": "hooks.example.com", "MAX_BODY_BYTES": "-1"}))
	for _, v := range []string{"TWILIO_AUTH_TOKEN", "PUBLIC_URL", "MAX_BODY_BYTES"} {
		if err == nil || !strings.Contains(err.Error(), "`"+v+"`") {
			t.Errorf("error %v does not name %s", err, v)
		}
	}
	cfg, err := ingester.ConfigFromEnv(envconf.MapLookup(map[string]string{"PUBLIC_URL": "https://h.example.com/", "TWILIO_AUTH_TOKEN": "a, b"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AuthTokens) != 2 || cfg.PublicURL != "https://h.example.com" {
		t.Errorf("cfg = %+v", cfg)
	}
	if s := fmt.Sprintf("%v %+v", cfg.AuthTokens, cfg); strings.Contains(s, "a, b") || strings.Contains(s, "[a") {
		t.Errorf("config prints its tokens: %s", s)
	}
	vars := strings.Join(ingester.ConfigVars(), ",")
	for _, v := range []string{"NATS_URL", "TWILIO_AUTH_TOKEN", "PUBLIC_URL", "LISTEN_ADDR", "STREAM_REPLICAS"} {
		if !strings.Contains(vars, v) {
			t.Errorf("ConfigVars lacks %s", v)
		}
	}
}
