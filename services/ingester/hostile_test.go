package ingester_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/services/ingester"
)

// A slow-loris client (headers or body trickling in) is cut off by the read
// timeouts, and holds no slot a real request needs.
func TestSlowLorisIsCutOff(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *ingester.Config) {
		c.ReadHeaderTimeout = 500 * time.Millisecond
		c.ReadTimeout = time.Second
		c.MaxInFlight = 2
	})
	addr := strings.TrimPrefix(e.base, "http://")
	drip := func(prefix string) (time.Duration, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, prefix); err != nil {
			return 0, err
		}
		closed := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, conn); close(closed) }()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-closed:
				return time.Since(start), nil
			case <-tick.C:
				if time.Since(start) > 20*time.Second {
					return 0, fmt.Errorf("connection still open after 20s")
				}
				_, _ = conn.Write([]byte("x")) // one byte at a time, forever
			}
		}
	}
	var wg sync.WaitGroup
	results := make([]error, 4)
	for i, prefix := range []string{
		"POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nX-Slow: ",                                                                            // headers never end
		"POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nX-Slow: ",                                                                            // twice
		"POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nA=", // body never ends
		"POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nA=",
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = drip(prefix)
		}()
	}
	// Meanwhile a real request is served.
	time.Sleep(200 * time.Millisecond)
	if r := e.post("/webhooks/twilio/message-status", "application/x-www-form-urlencoded", []byte("MessageSid=SM1&MessageStatus=sent"), nil); r.StatusCode != 200 {
		t.Errorf("a real request during the slow-loris got %d", r.StatusCode)
	}
	wg.Wait()
	for i, err := range results {
		if err != nil {
			t.Errorf("slow client %d: %v", i, err)
		}
	}
	if got := e.rawCount(); got != 1 {
		t.Errorf("TWILIO_RAW has %d messages, want only the real one", got)
	}
}

// A flood of valid requests while NATS is stalled: the ingester sheds load
// with 503 + Retry-After instead of queueing, never holds more than
// MAX_IN_FLIGHT requests, never answers 2xx for what is not stored, and
// serves again once NATS is back.
func TestFloodWhileNATSStallsShedsLoad(t *testing.T) {
	t.Parallel()
	srv := natstest.RunProcess(t)
	nc := natstestConn(t, srv.URL)
	js := jetstreamFor(t, nc)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	const maxInFlight = 8
	cfg := ingester.DefaultConfig()
	cfg.ListenAddr, cfg.PublicURL, cfg.StreamsApply = "127.0.0.1:0", publicURL, false
	cfg.AuthTokens = []envconf.Secret{authToken}
	cfg.Conn, cfg.PublishTimeout, cfg.MaxInFlight = nc, 500*time.Millisecond, maxInFlight
	svc, err := ingester.New(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	base := "http://" + svc.Addr().String()

	srv.Pause(t)
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()

	// Watch the in-flight gauge while the flood runs.
	var maxSeen float64
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	gauge := regexp.MustCompile(`(?m)^zen_ingester_in_flight (\S+)$`)
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
			rec := httptest.NewRecorder()
			svc.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if m := gauge.FindStringSubmatch(rec.Body.String()); m != nil {
				if v, _ := strconv.ParseFloat(m[1], 64); v > maxSeen {
					maxSeen = v
				}
			}
		}
	}()

	const flood = 400
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}, Timeout: 20 * time.Second}
	var mu sync.Mutex
	codes := map[int]int{}
	noRetryAfter := 0
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range flood {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			path := "/webhooks/twilio/message-status"
			body := fmt.Sprintf("MessageSid=SMflood%04d&MessageStatus=sent", i)
			req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			form := map[string][]string{"MessageSid": {fmt.Sprintf("SMflood%04d", i)}, "MessageStatus": {"sent"}}
			req.Header.Set("X-Twilio-Signature", sign(authToken, publicURL+path, form))
			resp, err := client.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[-1]++
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[resp.StatusCode]++
			if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
				noRetryAfter++
			}
		}()
	}
	wg.Wait()
	close(stopWatch)
	<-watched

	if codes[503] != flood {
		t.Errorf("answers while NATS is stalled: %v, want %d × 503 (nothing can be stored, so nothing may be 2xx)", codes, flood)
	}
	if noRetryAfter > 0 {
		t.Errorf("%d 503s without Retry-After", noRetryAfter)
	}
	if maxSeen > maxInFlight {
		t.Errorf("in-flight gauge reached %v, want <= MAX_IN_FLIGHT %d (requests queued instead of being shed)", maxSeen, maxInFlight)
	}
	if maxSeen == 0 {
		t.Errorf("the in-flight gauge never moved: the watcher saw nothing")
	}

	srv.Resume()
	resumed = true
	natstest.CheckFor(t, 20*time.Second, func() error {
		path := "/webhooks/twilio/message-status"
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader("MessageSid=SMafter&MessageStatus=sent"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sign(authToken, publicURL+path, map[string][]string{"MessageSid": {"SMafter"}, "MessageStatus": {"sent"}}))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// The log of a run with real-looking secrets never contains them.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	const token = "ab12cd34ef56ab12cd34ef56ab12cd34" // shaped like a real auth token, fake
	var logs strings.Builder
	var mu sync.Mutex
	core := zapWriterCore(&lockedWriter{w: &logs, mu: &mu})
	srv := natstest.Run(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	lookup := envconf.MapLookup(map[string]string{
		"TWILIO_AUTH_TOKEN": "old-" + token + "," + token, "PUBLIC_URL": publicURL, "LISTEN_ADDR": "127.0.0.1:0",
		"NATS_URL": srv.URL, "NATS_PASSWORD": "nats-" + token, "NATS_USER": "ingester", "STREAMS_APPLY": "false", "LOG_LEVEL": "debug",
	})
	cfg, err := ingester.ConfigFromEnv(lookup)
	if err != nil {
		t.Fatal(err)
	}
	log := zap.New(core)
	log.Info("config", zap.Any("config", cfg)) // what a careless "log the config" would print
	cfg.Conn = srv.Conn(t)
	svc, err := ingester.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	base := "http://" + svc.Addr().String()
	for _, sig := range []string{sign(token, publicURL+"/webhooks/twilio/incoming-message", map[string][]string{"MessageSid": {"SM1"}, "Body": {"hi"}}), "forged-" + token} {
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/twilio/incoming-message", strings.NewReader("MessageSid=SM1&Body=hi"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	cancel()
	<-done
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "webhook") {
		t.Fatalf("no request logs captured:\n%s", out)
	}
	if strings.Contains(out, token) {
		t.Errorf("a secret appears in the logs:\n%s", out)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func zapWriterCore(w io.Writer) zapcore.Core {
	return zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(w), zapcore.DebugLevel)
}

func natstestConn(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func jetstreamFor(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
