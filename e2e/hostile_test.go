//go:build hostile

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
)

// The ingester under attack, as anyone on the internet can attack it: the
// real binary with its shipped defaults, a nats-server process, and at once
//   - HOSTILE_SLOW connections (1,000) sending their bodies a byte a second,
//     each reopened as soon as the ingester cuts it off;
//   - HOSTILE_FLOODERS senders (8) of ~1 MiB unsigned forms with tens of
//     thousands of parameters, back to back, half announcing their length
//     and half chunked, as fast as the machine sends them;
//   - valid signed webhooks at HOSTILE_RATE (50/s).
// For HOSTILE_SECONDS (30), the valid ones must keep >= 99% success with
// p99 <= 50 ms, every 200 stored, and the ingester's RSS must stay under its
// container limit (256 MiB in deploy/k8s). `make hostile` runs it.

const (
	hostileToken  = "hostile-test-token-not-a-secret"
	hostilePublic = "https://hooks.example.com"
	ingesterLimit = 256 << 20 // deploy/k8s/base/ingester: resources.limits.memory
)

func TestHostileFloodCannotStarveOrInflate(t *testing.T) {
	var (
		slow     = int(envFloat("HOSTILE_SLOW", 1000))
		flooders = int(envFloat("HOSTILE_FLOODERS", 8))
		rate     = envFloat("HOSTILE_RATE", 50)
		seconds  = envFloat("HOSTILE_SECONDS", 30)
	)
	srv := natstest.RunProcess(t)
	js := srv.JetStream(t)
	natstest.ApplyStreams(t, js, streams.DefaultConfig())
	addr := freeAddr(t)
	env := map[string]string{
		"LISTEN_ADDR": addr, "PUBLIC_URL": hostilePublic, "TWILIO_AUTH_TOKEN": hostileToken,
		"NATS_URL": srv.URL, "STREAMS_APPLY": "false", "LOG_LEVEL": "error",
		// As the Deployment sets it (resourceFieldRef limits.memory).
		"CONTAINER_MEMORY_LIMIT": fmt.Sprint(ingesterLimit),
	}
	if v := os.Getenv("HOSTILE_GOGC"); v != "" { // to compare with another GC setting
		env["GOGC"] = v
	}
	ing := NewProc("ingester", Binaries(t)+"/ingester", t.TempDir(), env)
	ing.Start(t)
	defer ing.Term(10 * time.Second)
	waitHTTP(t, "http://"+addr+"/readyz")
	base := "http://" + addr

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds*float64(time.Second)))
	defer cancel()
	var wg sync.WaitGroup

	// RSS, sampled every 100 ms.
	var maxRSS atomic.Int64
	wg.Go(func() {
		for ctx.Err() == nil {
			if r := rss(ing.Pid()); r > maxRSS.Load() {
				maxRSS.Store(r)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	// The slow bodies.
	var slowOpened, slowCut atomic.Int64
	for range slow {
		wg.Go(func() { slowBody(ctx, addr, &slowOpened, &slowCut) })
	}

	// The flood of large unsigned forms.
	var flood floodCounts
	big := strings.Repeat("a=1&", (1<<20)/4)
	for i := range flooders {
		wg.Go(func() { floodForms(ctx, base, big, i%2 == 1, &flood) })
	}

	time.Sleep(time.Second) // the attack is under way before the first valid request
	lat, codes := validAt(ctx, base, rate)
	wg.Wait()

	ok := codes[http.StatusOK]
	total := 0
	for _, n := range codes {
		total += n
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	info, err := js.Stream(context.Background(), streams.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	stored := info.CachedInfo().State.Msgs
	floodSeconds := seconds - 1
	report := fmt.Sprintf(`hostile flood, %s, ingester with the shipped defaults, nats-server process
attack: %d slow-body connections (%d opened, %d cut off by the ingester), %d senders of ~1 MiB unsigned forms:
        %d sent (%.0f/s, %.0f MiB/s), answered %s, %d cut (connection closed before an answer)
valid:  %d signed webhooks at %.0f/s: %d answered 200 (%.2f%%), others %s
        latency p50 %s, p99 %s, max %s; TWILIO_RAW holds %d
ingester RSS: max %s (container limit %s)
`, time.Now().UTC().Format("2006-01-02 15:04 MST"), slow, slowOpened.Load(), slowCut.Load(), flooders,
		flood.sent.Load(), float64(flood.sent.Load())/floodSeconds, float64(flood.sent.Load())/floodSeconds, fmtStatuses(flood.answered()), flood.cut.Load(),
		total, rate, ok, 100*float64(ok)/float64(max(total, 1)), fmtStatuses(others(codes)),
		p(0.50).Round(100*time.Microsecond), p(0.99).Round(100*time.Microsecond), p(1).Round(100*time.Microsecond), stored,
		mib(maxRSS.Load()), mib(ingesterLimit))
	t.Log("\n" + report)
	if path := os.Getenv("ZEN_HOSTILE_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(report), 0o644)
	}
	if float64(ok) < 0.99*float64(total) || total == 0 {
		t.Errorf("valid webhooks: %d of %d answered 200, want >= 99%%", ok, total)
	}
	if p(0.99) > 50*time.Millisecond {
		t.Errorf("valid webhooks: p99 %s, want <= 50ms", p(0.99))
	}
	if uint64(ok) != stored {
		t.Errorf("%d valid webhooks answered 200 but TWILIO_RAW holds %d", ok, stored)
	}
	if maxRSS.Load() >= ingesterLimit {
		t.Errorf("ingester RSS reached %s, over its %s limit", mib(maxRSS.Load()), mib(ingesterLimit))
	}
	if slowCut.Load() == 0 {
		t.Error("no slow body was cut off")
	}
}

// slowBody keeps one connection sending a body a byte a second, reopening
// it whenever the ingester closes it, until ctx ends.
func slowBody(ctx context.Context, addr string, opened, cut *atomic.Int64) {
	for ctx.Err() == nil {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		opened.Add(1)
		head := "POST /webhooks/twilio/message-status HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
			"X-Twilio-Signature: c2xvdw==\r\nContent-Length: 4000\r\n\r\nMessageSid="
		_, err = io.WriteString(conn, head)
		closed := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, conn); close(closed) }()
		for err == nil {
			select {
			case <-ctx.Done():
				conn.Close()
				return
			case <-closed:
				err = io.EOF
				cut.Add(1)
			case <-time.After(time.Second):
				_, err = conn.Write([]byte("S"))
			}
		}
		conn.Close()
	}
}

type floodCounts struct {
	sent, cut atomic.Int64
	mu        sync.Mutex
	codes     map[int]int
}

func (f *floodCounts) add(code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.codes == nil {
		f.codes = map[int]int{}
	}
	f.codes[code]++
}

func (f *floodCounts) answered() map[int]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.codes
}

// floodForms POSTs the ~1 MiB form back to back until ctx ends, with a
// forged signature, announcing its length or chunked.
func floodForms(ctx context.Context, base, form string, chunked bool, f *floodCounts) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for ctx.Err() == nil {
		var body io.Reader = strings.NewReader(form)
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/twilio/message-status", body)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", "Zm9yZ2Vk")
		f.sent.Add(1)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				f.cut.Add(1)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		f.add(resp.StatusCode)
	}
}

// validAt sends signed webhooks at rate until ctx ends and returns their
// latencies and status codes (0: no answer).
func validAt(ctx context.Context, base string, rate float64) ([]time.Duration, map[int]int) {
	var (
		mu    sync.Mutex
		lat   []time.Duration
		codes = map[int]int{}
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return lat, codes
		case <-tick.C:
		}
		wg.Go(func() {
			form := url.Values{"MessageSid": {fmt.Sprintf("SM%032x", i)}, "MessageStatus": {"delivered"},
				"AccountSid": {"AC00000000000000000000000000000000"}, "To": {"+15005550006"}, "From": {"+15005550001"}}
			path := "/webhooks/twilio/message-status"
			req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", sign(hostileToken, hostilePublic+path, form))
			start := time.Now()
			code := 0
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == http.StatusOK {
				lat = append(lat, d)
			}
		})
	}
}

func others(codes map[int]int) map[int]int {
	out := map[int]int{}
	for c, n := range codes {
		if c != http.StatusOK {
			out[c] = n
		}
	}
	return out
}

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, func() error {
		resp, err := http.Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d", u, resp.StatusCode)
		}
		return nil
	})
}
