package forwarder_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/replay"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/worker"
	"github.com/zen-twilio/zen/pkg/zen"
	"github.com/zen-twilio/zen/services/forwarder"
)

const (
	target    = "communications-warehouse"
	testToken = "test-token-not-a-secret"
)

func repoRoot(tb testing.TB) string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			tb.Fatal("no go.work")
		}
	}
}

// request is what the warehouse saw.
type request struct {
	at     time.Time
	header http.Header
	body   []byte
}

// warehouse is a real HTTP target on loopback; answer decides each reply
// from the number of requests so far for the same Idempotency-Key.
type warehouse struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []request
	answer func(w http.ResponseWriter, nth int)
}

func newWarehouse(t *testing.T) *warehouse {
	wh := &warehouse{}
	wh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		wh.mu.Lock()
		key := r.Header.Get("Idempotency-Key")
		nth := 0
		for _, q := range wh.reqs {
			if q.header.Get("Idempotency-Key") == key {
				nth++
			}
		}
		wh.reqs = append(wh.reqs, request{at: time.Now(), header: r.Header.Clone(), body: body})
		answer := wh.answer
		wh.mu.Unlock()
		if answer != nil {
			answer(w, nth)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(wh.srv.Close)
	return wh
}

func (wh *warehouse) setAnswer(f func(w http.ResponseWriter, nth int)) {
	wh.mu.Lock()
	wh.answer = f
	wh.mu.Unlock()
}

func (wh *warehouse) requests() []request {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return append([]request(nil), wh.reqs...)
}

// posts counts requests per Idempotency-Key.
func (wh *warehouse) posts() map[string]int {
	n := map[string]int{}
	for _, r := range wh.requests() {
		n[r.header.Get("Idempotency-Key")]++
	}
	return n
}

type env struct {
	t   *testing.T
	srv *natstest.Server
	js  jetstream.JetStream
	ctx context.Context
	wh  *warehouse
	pkg string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, srv: srv, js: js, ctx: ctx, wh: newWarehouse(t),
		pkg: filepath.Join(repoRoot(t), "packages", "transforms", "twilio", "v1")}
}

type running struct {
	svc  *forwarder.Service
	stop func() error
}

func (e *env) config() forwarder.Config {
	cfg := forwarder.DefaultConfig()
	cfg.PackageDir = e.pkg
	cfg.Lookup = envconf.MapLookup(map[string]string{
		"COMMS_WAREHOUSE_URL":   e.wh.srv.URL + "/events",
		"COMMS_WAREHOUSE_TOKEN": testToken,
	})
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.StreamsApply = false
	cfg.Concurrency = 4
	cfg.Consumer.AckWait = 3 * time.Second
	cfg.Consumer.MaxDeliver = 6
	cfg.Consumer.MaxAckPending = 64
	cfg.Retry = worker.Backoff{Initial: 250 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}
	cfg.HTTPTimeout = time.Second
	cfg.Version = "test"
	return cfg
}

func (e *env) start(mod func(*forwarder.Config)) *running {
	e.t.Helper()
	cfg := e.config()
	cfg.Conn = e.srv.Conn(e.t)
	if mod != nil {
		mod(&cfg)
	}
	svc, err := forwarder.New(context.Background(), cfg, zaptest.NewLogger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	e.t.Cleanup(func() { _ = stop() })
	return &running{svc: svc, stop: stop}
}

// event publishes a Zen event as the transformer does; msgID "" uses the key.
func (e *env) event(key, msgID string) {
	e.t.Helper()
	ev := zen.Event{Destination: "warehouse", EventType: "message.status", Timestamp: "2026-06-24T10:00:00Z",
		Payload: zen.Payload{{Name: "message_sid", Value: strings.TrimPrefix(key, "tw-")}, {Name: "status", Value: "delivered"}}}
	b, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	m := nats.NewMsg(streams.EventSubject(ev.EventType))
	m.Data = b
	if msgID == "" {
		msgID = key
	}
	m.Header.Set(zen.HeaderMsgID, msgID)
	m.Header.Set(zen.HeaderDedupeKey, key)
	m.Header.Set(zen.HeaderEventType, ev.EventType)
	if _, err := e.js.PublishMsg(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
}

// drained waits until the forwarder consumer has acked (or terminated)
// every event in ZEN_EVENTS (the tests store only routed ones).
func (e *env) drained(timeout time.Duration) {
	e.t.Helper()
	natstest.CheckFor(e.t, timeout, func() error {
		return natstest.Drained(e.ctx, e.js, streams.StreamEvents, streams.ForwarderConsumer(target))
	})
}

func (e *env) dlq() []replay.Message {
	e.t.Helper()
	msgs, err := replay.List(e.ctx, e.js, streams.StreamDLQ, replay.Filter{Subjects: []string{replay.DLQSubject(streams.StageForwarder, "")}})
	if err != nil {
		e.t.Fatal(err)
	}
	return msgs
}

func (e *env) attempts(key string) []forwarder.Attempt {
	e.t.Helper()
	msgs, err := replay.List(e.ctx, e.js, streams.StreamAttempts, replay.Filter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []forwarder.Attempt
	for _, m := range msgs {
		var a forwarder.Attempt
		if err := json.Unmarshal(m.Data, &a); err != nil {
			e.t.Fatalf("attempt record %d: %v", m.Seq, err)
		}
		if a.DedupeKey == key {
			out = append(out, a)
		}
	}
	return out
}

func outcomes(as []forwarder.Attempt) string {
	var s []string
	for _, a := range as {
		s = append(s, fmt.Sprintf("%d:%s", a.Status, a.Outcome))
	}
	return strings.Join(s, " ")
}

func waitPosts(t *testing.T, wh *warehouse, n int, timeout time.Duration) []request {
	t.Helper()
	natstest.CheckFor(t, timeout, func() error {
		if got := len(wh.requests()); got < n {
			return fmt.Errorf("%d of %d requests", got, n)
		}
		return nil
	})
	return wh.requests()
}

func TestDeliveredAfterThree503sOnSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.wh.setAnswer(func(w http.ResponseWriter, nth int) {
		if nth < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	e.start(nil)
	e.event("tw-SM503.message.status.delivered", "")
	reqs := waitPosts(t, e.wh, 4, 30*time.Second)
	e.drained(10 * time.Second)
	if len(reqs) != 4 {
		t.Fatalf("warehouse saw %d requests, want 4 (3×503 then 202)", len(reqs))
	}
	// The schedule: 250ms, 500ms, 1s after the 1st, 2nd and 3rd failure.
	for i, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second} {
		gap := reqs[i+1].at.Sub(reqs[i].at)
		if gap < want-50*time.Millisecond || gap > want+3*time.Second {
			t.Errorf("gap before attempt %d = %s, want about %s", i+2, gap, want)
		}
	}
	for i, r := range reqs {
		if got := r.header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("request %d Authorization = %q", i, got)
		}
		if got := r.header.Get("Idempotency-Key"); got != "tw-SM503.message.status.delivered" {
			t.Errorf("request %d Idempotency-Key = %q", i, got)
		}
		if got := r.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("request %d Content-Type = %q", i, got)
		}
		if got := r.header.Get("User-Agent"); got != "zen-twilio-forwarder/test" {
			t.Errorf("request %d User-Agent = %q", i, got)
		}
		if r.header.Get(forwarder.HeaderWebhookSignature) != "" {
			t.Errorf("request %d is signed though the target names no signing secret", i)
		}
	}
	var ev zen.Event
	if err := json.Unmarshal(reqs[3].body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Destination != target || ev.EventType != "message.status" {
		t.Errorf("body destination=%q event_type=%q, want %q message.status", ev.Destination, ev.EventType, target)
	}
	natstest.CheckFor(t, 5*time.Second, func() error {
		got := outcomes(e.attempts("tw-SM503.message.status.delivered"))
		if want := "503:retry 503:retry 503:retry 202:delivered"; got != want {
			return fmt.Errorf("attempts %q, want %q", got, want)
		}
		return nil
	})
	if n := len(e.dlq()); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func TestRetryAfterIsRespected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.wh.setAnswer(func(w http.ResponseWriter, nth int) {
		if nth == 0 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e.start(nil)
	e.event("tw-SM429.message.status.sent", "")
	reqs := waitPosts(t, e.wh, 2, 30*time.Second)
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 1950*time.Millisecond {
		t.Errorf("retried %s after a 429 with Retry-After: 2, want >= 2s (the schedule alone would give 250ms)", gap)
	}
	e.drained(10 * time.Second)
	if n := len(e.wh.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestClientErrorIsDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.wh.setAnswer(func(w http.ResponseWriter, nth int) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"field message_sid is not a SID"}`)
	})
	r := e.start(nil)
	e.event("tw-SM400.message.status.failed", "")
	var dl []replay.Message
	natstest.CheckFor(t, 20*time.Second, func() error {
		if dl = e.dlq(); len(dl) != 1 {
			return fmt.Errorf("%d dead letters", len(dl))
		}
		return nil
	})
	e.drained(10 * time.Second)
	if n := len(e.wh.requests()); n != 1 {
		t.Errorf("%d requests, want exactly 1 (a 400 is not retried)", n)
	}
	d := dl[0]
	if want := streams.DLQSubject(streams.StageForwarder, target); d.Subject != want {
		t.Errorf("dead letter subject %s, want %s", d.Subject, want)
	}
	checks := map[string]string{
		zen.HeaderReason:           "http_400",
		zen.HeaderStage:            streams.StageForwarder,
		forwarder.HeaderHTTPStatus: "400",
		zen.HeaderDedupeKey:        "tw-SM400.message.status.failed",
		zen.HeaderDeliveries:       "1",
	}
	for h, want := range checks {
		if got := d.Header.Get(h); got != want {
			t.Errorf("dead letter %s = %q, want %q", h, got, want)
		}
	}
	if got := d.Header.Get(forwarder.HeaderHTTPBody); !strings.Contains(got, "is not a SID") {
		t.Errorf("dead letter %s = %q, want the response's first bytes", forwarder.HeaderHTTPBody, got)
	}
	if got := d.Error(); !strings.Contains(got, "400") {
		t.Errorf("dead letter %s = %q, want the status", zen.HeaderError, got)
	}
	body := scrape(t, r.svc.Handler(), "/metrics")
	for _, want := range []string{
		`zen_forwarder_dead_letters_total{reason="http_400",target="communications-warehouse"} 1`,
		`zen_forwarder_attempts_total{class="4xx",target="communications-warehouse"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func scrape(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET %s = %d: %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestTargetDownThenReplayedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var down sync.Mutex
	isDown := true
	e.wh.setAnswer(func(w http.ResponseWriter, nth int) {
		down.Lock()
		defer down.Unlock()
		if isDown {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	e.start(func(c *forwarder.Config) {
		c.Consumer.MaxDeliver = 3
		c.Retry = worker.Backoff{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2}
	})
	key := "tw-SMDOWN.message.status.delivered"
	e.event(key, "")
	var dl []replay.Message
	natstest.CheckFor(t, 30*time.Second, func() error {
		if dl = e.dlq(); len(dl) != 1 {
			return fmt.Errorf("%d dead letters", len(dl))
		}
		return nil
	})
	e.drained(10 * time.Second)
	if n := len(e.wh.requests()); n != 3 {
		t.Errorf("%d requests while down, want 3 (MaxDeliver)", n)
	}
	if got := dl[0].Reason(); got != "http_502" {
		t.Errorf("dead letter reason %q, want http_502 (the last answer)", got)
	}

	down.Lock()
	isDown = false
	down.Unlock()
	// Replay twice: the second finds nothing (the first removed the dead
	// letter); republishing the same dead letter again is deduplicated.
	for i := 0; i < 2; i++ {
		if err := replay.DeadLetter(e.ctx, e.js, dl[0]); err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 20*time.Second, func() error {
		if got := e.wh.posts()[key]; got != 4 {
			return fmt.Errorf("%d requests for the key, want 4 (3 failed + 1 replayed)", got)
		}
		return nil
	})
	e.drained(10 * time.Second)
	if n := len(e.dlq()); n != 0 {
		t.Errorf("%d dead letters after the replay, want 0", n)
	}
	last := e.wh.requests()[3]
	if last.header.Get("Idempotency-Key") != key || last.header.Get("Authorization") != "Bearer "+testToken {
		t.Errorf("replayed request headers: %v", last.header)
	}
	// A replay of the event after it arrived is acked without a POST.
	evs, err := replay.List(e.ctx, e.js, streams.StreamEvents, replay.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := replay.Republish(e.ctx, e.js, evs[len(evs)-1], "again"); err != nil {
		t.Fatal(err)
	}
	e.drained(10 * time.Second)
	natstest.CheckFor(t, 5*time.Second, func() error {
		as := e.attempts(key)
		if len(as) == 0 || as[len(as)-1].Outcome != "duplicate" {
			return fmt.Errorf("attempts %s, want a final duplicate", outcomes(as))
		}
		return nil
	})
	if got := e.wh.posts()[key]; got != 4 {
		t.Errorf("%d requests for the key after a second replay, want still 4", got)
	}
}

func TestSameEventTwiceIsPostedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start(nil)
	// Two copies stored in ZEN_EVENTS (different Nats-Msg-Id: published
	// outside the duplicate window, so minutes apart), plus a third inside
	// the window (dropped by the stream).
	key := "tw-SMTWICE.message.status.delivered"
	e.event(key, "copy-1")
	e.drained(20 * time.Second)
	e.event(key, "copy-2")
	e.event(key, "copy-2")
	e.drained(20 * time.Second)
	if got := e.wh.posts()[key]; got != 1 {
		t.Errorf("%d POSTs of one event, want 1", got)
	}
	natstest.CheckFor(t, 5*time.Second, func() error {
		got := outcomes(e.attempts(key))
		if got != "200:delivered 0:duplicate" {
			return fmt.Errorf("attempts %q, want one delivered and one duplicate", got)
		}
		return nil
	})
}

func TestRestartBetweenPublishAndDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Published while no forwarder runs.
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("tw-SMR%02d.message.status.sent", i)
		e.event(keys[i], "")
	}
	// The first forwarder stops (SIGTERM) while deliveries are slow.
	e.wh.setAnswer(func(w http.ResponseWriter, nth int) {
		time.Sleep(50 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	r1 := e.start(func(c *forwarder.Config) { c.Concurrency = 2 })
	waitPosts(t, e.wh, 3, 20*time.Second)
	if err := r1.stop(); err != nil {
		t.Fatalf("first forwarder stopped with %v", err)
	}
	stoppedAt := len(e.wh.requests())
	// Another one takes over; then the same events are published again.
	e.start(nil)
	e.drained(20 * time.Second)
	for _, k := range keys {
		e.event(k, k+"-again")
	}
	e.drained(20 * time.Second)
	posts := e.wh.posts()
	for _, k := range keys {
		if posts[k] != 1 {
			t.Errorf("%s POSTed %d times, want 1", k, posts[k])
		}
	}
	if stoppedAt >= len(keys) {
		t.Logf("the first forwarder delivered everything before it stopped (%d)", stoppedAt)
	}
}

func TestTwoReplicasPostEachEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 200
	e.wh.setAnswer(func(w http.ResponseWriter, nth int) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	seen := make([]sync.Map, 2)
	for i := range 2 {
		e.start(func(c *forwarder.Config) {
			c.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				seen[i].Store(r.Header.Get("Idempotency-Key"), true)
				return http.DefaultTransport.RoundTrip(r)
			})
		})
	}
	for i := range n {
		e.event(fmt.Sprintf("tw-SM%04d.message.status.delivered", i), "")
	}
	e.drained(60 * time.Second)
	posts := e.wh.posts()
	if len(posts) != n {
		t.Errorf("%d distinct events POSTed, want %d", len(posts), n)
	}
	for k, c := range posts {
		if c != 1 {
			t.Errorf("%s POSTed %d times", k, c)
		}
	}
	var per [2]int
	for i := range seen {
		seen[i].Range(func(any, any) bool { per[i]++; return true })
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("replicas delivered %d and %d: want both to share the work", per[0], per[1])
	}
	for i, r := range e.wh.requests() {
		if r.header.Get("Authorization") != "Bearer "+testToken || r.header.Get("Idempotency-Key") == "" {
			t.Fatalf("request %d lacks the bearer token or the Idempotency-Key: %v", i, r.header)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A target with a signing secret gets Standard Webhooks headers that an
// independent verifier accepts.
func TestSignedDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pkg = signedPackage(t, e.pkg)
	secret := []byte("test-signing-key-not-a-secret")
	now := time.Date(2026, 6, 24, 10, 0, 0, 0, time.UTC)
	e.start(func(c *forwarder.Config) {
		c.Lookup = envconf.MapLookup(map[string]string{
			"COMMS_WAREHOUSE_URL":            e.wh.srv.URL + "/events",
			"COMMS_WAREHOUSE_TOKEN":          testToken,
			"COMMS_WAREHOUSE_SIGNING_SECRET": "whsec_" + base64.StdEncoding.EncodeToString(secret),
		})
		c.Now = func() time.Time { return now }
	})
	key := "tw-SMSIGNED.message.status.delivered"
	e.event(key, "")
	r := waitPosts(t, e.wh, 1, 20*time.Second)[0]
	id, ts := r.header.Get("webhook-id"), r.header.Get("webhook-timestamp")
	if id != key || ts != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("webhook-id %q webhook-timestamp %q", id, ts)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id + "." + ts + "." + string(r.body)))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.header.Get("webhook-signature") != want {
		t.Errorf("webhook-signature %q, want %q", r.header.Get("webhook-signature"), want)
	}
}

// signedPackage copies the package and gives its target a signing secret.
func signedPackage(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if en.Name() == "package.yaml" {
			s := string(b)
			old := `auth: {type: bearer, token: "{{COMMS_WAREHOUSE_TOKEN}}"}`
			if !strings.Contains(s, old) {
				t.Fatalf("package.yaml lacks %s", old)
			}
			s = strings.Replace(s, old, old+"\n    signing_secret: \"{{COMMS_WAREHOUSE_SIGNING_SECRET}}\"", 1)
			b = []byte(s)
		}
		if err := os.WriteFile(filepath.Join(out, en.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestOpsEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil)
	e.event("tw-SMOPS.message.status.sent", "")
	e.drained(20 * time.Second)
	base := "http://" + r.svc.Addr().String()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`zen_forwarder_attempts_total{class="2xx",target="communications-warehouse"} 1`,
		`zen_forwarder_delivery_seconds_count{target="communications-warehouse"} 1`,
		`zen_forwarder_in_flight{target="communications-warehouse"} 0`,
		`zen_worker_messages_total`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := r.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	_, err := forwarder.ConfigFromEnv(envconf.MapLookup(map[string]string{
		"FORWARDER_HTTP_TIMEOUT": "60s",
		"FORWARDER_ACK_WAIT":     "30s",
		"FORWARDER_CONCURRENCY":  "0",
	}))
	for _, want := range []string{"FORWARDER_HTTP_TIMEOUT", "FORWARDER_CONCURRENCY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	c, err := forwarder.ConfigFromEnv(envconf.MapLookup(nil))
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.HTTPTimeout >= c.Consumer.AckWait {
		t.Errorf("default HTTP timeout %s not shorter than AckWait %s", c.HTTPTimeout, c.Consumer.AckWait)
	}
}
