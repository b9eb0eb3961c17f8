//go:build soak

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/envconf"
	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
)

// The soak's horizons: the shipped ones scaled from days to minutes, so
// the state reaches its plateau (everything older expires) inside the run.
var soakHorizons = map[string]string{
	"RAW_MAX_AGE": "5m", "EVENTS_MAX_AGE": "5m", "ATTEMPTS_MAX_AGE": "5m", "DLQ_MAX_AGE": "5m",
	"RAW_DUPLICATE_WINDOW": "2m", "EVENTS_DUPLICATE_WINDOW": "2m",
	"DEDUPE_TTL": "3m", "DEDUPE_LONG_TTL": "4m",
}

// sample is the state of the pipeline at one minute of the soak.
type sample struct {
	at                time.Duration
	sent              int64
	natsRSS           int64 // bytes, /proc/<pid>/status VmRSS
	store, memory     uint64
	raw, events, keys uint64 // messages in TWILIO_RAW, ZEN_EVENTS, KV_zen_dedupe
	lag               uint64
	stagesRSS         int64 // the six stage processes together
	status503         int
}

// TestSoak (issue 22) runs the three stages and a nats-server process at
// ZEN_SOAK_RATE webhooks/s (500) for ZEN_SOAK_MINUTES (30) with the
// horizons scaled to minutes, sampling the server's RSS and store every
// minute. It asserts that both level off over the last 10 minutes (the
// least-squares slope, extrapolated over those 10 minutes, is under 10%
// of their mean), that no request is answered 503, that every event
// reaches the warehouse, and that none is delivered twice. `make soak`.
func TestSoak(t *testing.T) {
	minutes, rate := envFloat("ZEN_SOAK_MINUTES", 30), envFloat("ZEN_SOAK_RATE", 500)
	duration := time.Duration(minutes * float64(time.Minute))
	ns := natstest.RunProcess(t)
	js := ns.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), duration+20*time.Minute)
	defer cancel()

	r := envconf.New(envconf.MapLookup(soakHorizons))
	scfg := streams.ConfigFromEnv(r)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if err := streams.Apply(ctx, js, scfg); err != nil {
		t.Fatal(err)
	}

	// A flaky warehouse (5% 500, 1% 429), never slow, so every duplicate
	// POST it commits is one the pipeline should not have made.
	wh := NewWarehouse(warehouseToken, 0)
	wh.Fail500, wh.Fail429, wh.Slow = 0.05, 0.01, 0
	whAddr := freeAddr(t)
	whSrv := &http.Server{Addr: whAddr, Handler: wh, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = whSrv.ListenAndServe() }()
	defer whSrv.Close()

	common := map[string]string{
		"NATS_URL": ns.URL, "LOG_LEVEL": "warn", "STREAMS_APPLY": "false",
		"PACKAGE_DIR":         filepath.Join(RepoRoot(), "packages", "transforms", "twilio", "v1"),
		"COMMS_WAREHOUSE_URL": "http://" + whAddr + "/events", "COMMS_WAREHOUSE_TOKEN": warehouseToken,
		"TWILIO_AUTH_TOKEN": authToken,
	}
	for k, v := range soakHorizons {
		common[k] = v
	}
	p := StartPipeline(t, 2, StageEnv{Common: common})

	client := &Client{Bases: p.Bases, AuthToken: authToken, Deadline: 3 * time.Minute,
		HTTP:     &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		Statuses: map[int]int{}, OKKeys: map[string]bool{}, OKPoison: map[string]bool{}}
	var sent atomic.Int64
	start := time.Now()
	var samples []sample
	take := func() sample {
		s := soakSample(ctx, t, js, ns.Pid(), p)
		s.at, s.sent = time.Since(start), sent.Load()
		client.mu.Lock()
		for code, n := range client.Statuses {
			if code == http.StatusServiceUnavailable {
				s.status503 += n
			}
		}
		client.mu.Unlock()
		samples = append(samples, s)
		t.Logf("minute %.0f: sent %d, nats RSS %s, store %s, keys %d, lag %d", s.at.Minutes(), s.sent, mib(s.natsRSS), mib(int64(s.store)), s.keys, s.lag)
		return s
	}
	samplerDone := make(chan struct{})
	stopSampler := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				take()
			case <-stopSampler:
				return
			}
		}
	}()

	// Twilio: one minute's webhooks at a time (a fresh seed each, so the
	// Sids never repeat), ~10% of them re-sends within the minute.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	perMinute := int(rate * 60)
	i := 0
	for chunk := uint64(1); time.Since(start) < duration; chunk++ {
		for _, w := range Generate(perMinute, 1000+chunk) {
			if time.Since(start) >= duration {
				break
			}
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
			i++
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				client.Send(ctx, w)
				sent.Add(1)
			}()
		}
	}
	wg.Wait()
	close(stopSampler)
	<-samplerDone
	sendTime := time.Since(start)

	var missing []string
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		acc := wh.Accepted()
		missing = missing[:0]
		for k := range client.OKKeys {
			if acc[k] == 0 {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	final := take()
	dups, unexplained := wh.Duplicates(nil, 0)

	var b strings.Builder
	fmt.Fprintf(&b, "soak: %.0f webhooks/s for %s through 2 replicas of each stage and a nats-server process; horizons %v\n\n",
		rate, duration, soakHorizons)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "minute\twebhooks sent\tnats RSS\tstore\tJS memory\tTWILIO_RAW msgs\tZEN_EVENTS msgs\tdedupe keys\tlag\tstages RSS\t503s\t")
	for _, s := range samples {
		fmt.Fprintf(tw, "%.1f\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t\n", s.at.Minutes(), s.sent, mib(s.natsRSS), mib(int64(s.store)),
			mib(int64(s.memory)), s.raw, s.events, s.keys, s.lag, mib(s.stagesRSS), s.status503)
	}
	tw.Flush()
	last := lastMinutes(samples[:len(samples)-1], 10)
	rssSlope, rssMean := slope(last, func(s sample) float64 { return float64(s.natsRSS) })
	storeSlope, storeMean := slope(last, func(s sample) float64 { return float64(s.store) })
	fmt.Fprintf(&b, "\nlast %d minutes of sending: nats RSS slope %+.2f MiB/min (mean %s, %+.1f%% over 10 min); store slope %+.2f MiB/min (mean %s, %+.1f%% over 10 min)\n",
		len(last), rssSlope/(1<<20), mib(int64(rssMean)), 1000*rssSlope/rssMean, storeSlope/(1<<20), mib(int64(storeMean)), 1000*storeSlope/storeMean)
	fmt.Fprintf(&b, "webhooks answered 2xx %d of %d sent (requests by status %s); events expected %d, missing %d; duplicate POSTs %d (unexplained %d); send phase %s\n",
		client.OK, final.sent, fmtStatuses(client.Statuses), len(client.OKKeys), len(missing), len(dups), unexplained, sendTime.Round(time.Second))
	report := b.String()
	t.Logf("\n%s", report)
	if path := os.Getenv("ZEN_SOAK_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(report), 0o644)
	}

	if len(last) < 10 {
		t.Errorf("only %d samples while sending; the soak needs at least 10 minutes (ZEN_SOAK_MINUTES)", len(last))
	}
	if pct := 1000 * rssSlope / rssMean; pct > 10 {
		t.Errorf("nats-server RSS does not level off: %+.1f%% over the last 10 minutes", pct)
	}
	if pct := 1000 * storeSlope / storeMean; pct > 10 {
		t.Errorf("JetStream store does not level off: %+.1f%% over the last 10 minutes", pct)
	}
	if final.status503 > 0 {
		t.Errorf("%d requests answered 503", final.status503)
	}
	if len(client.Failed) > 0 {
		t.Errorf("%d webhooks never got a 2xx", len(client.Failed))
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("%d events answered 2xx never reached the warehouse: %v", len(missing), head(missing, 10))
	}
	if unexplained > 0 {
		t.Errorf("%d duplicate deliveries (no fault was injected)", unexplained)
	}
}

func soakSample(ctx context.Context, t *testing.T, js jetstream.JetStream, natsPid int, p *Pipeline) sample {
	var s sample
	s.natsRSS = rss(natsPid)
	for _, pr := range p.All() {
		s.stagesRSS += rss(pr.Pid())
	}
	if ai, err := js.AccountInfo(ctx); err == nil {
		s.store, s.memory = ai.Store, ai.Memory
	} else {
		t.Logf("account info: %v", err)
	}
	msgs := func(name string) uint64 {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return 0
		}
		return st.CachedInfo().State.Msgs
	}
	s.raw, s.events, s.keys = msgs(streams.StreamRaw), msgs(streams.StreamEvents), msgs("KV_"+streams.BucketDedupe)
	for _, c := range []struct{ stream, name string }{{streams.StreamRaw, streams.ConsumerTransformer}, {streams.StreamEvents, streams.ForwarderConsumer(target)}} {
		if cons, err := js.Consumer(ctx, c.stream, c.name); err == nil {
			info := cons.CachedInfo()
			s.lag += info.NumPending + uint64(info.NumAckPending)
		}
	}
	return s
}

// lastMinutes returns the samples of the last n minutes of s.
func lastMinutes(s []sample, n int) []sample {
	if len(s) == 0 {
		return nil
	}
	from := s[len(s)-1].at - time.Duration(n)*time.Minute + 30*time.Second
	for i, x := range s {
		if x.at >= from {
			return s[i:]
		}
	}
	return nil
}

// slope is the least-squares slope of v over the samples, per minute, and v's mean.
func slope(s []sample, v func(sample) float64) (perMinute, mean float64) {
	n := float64(len(s))
	if n < 2 {
		return 0, 0
	}
	var sx, sy, sxx, sxy float64
	for _, x := range s {
		m, y := x.at.Minutes(), v(x)
		sx, sy, sxx, sxy = sx+m, sy+y, sxx+m*m, sxy+m*y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx), sy / n
}
