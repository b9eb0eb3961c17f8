package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zen-twilio/zen/pkg/natstest"
	"github.com/zen-twilio/zen/pkg/streams"
	"github.com/zen-twilio/zen/pkg/zen"
)

const (
	authToken      = "e2e-auth-token-not-a-secret"
	warehouseToken = "e2e-warehouse-token-not-a-secret"
	target         = "communications-warehouse"
)

func webhookCount() int {
	if n, err := strconv.Atoi(os.Getenv("ZEN_E2E_WEBHOOKS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// sendRate paces the client (webhooks/s) so the faults land mid-run.
func sendRate() float64 {
	if n, err := strconv.ParseFloat(os.Getenv("ZEN_E2E_RATE"), 64); err == nil && n > 0 {
		return n
	}
	return 100
}

// TestNothingLostNothingTwice is issue 8's fault-injection run.
func TestNothingLostNothingTwice(t *testing.T) {
	n := webhookCount()
	root := RepoRoot()
	// NATS: three nodes, streams at R3.
	cluster := natstest.RunCluster(t, 3)
	nc, err := nats.Connect(cluster.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	scfg := streams.DefaultConfig()
	scfg.Replicas = 3
	natstest.CheckFor(t, 60*time.Second, func() error { return streams.Apply(ctx, js, scfg) })

	// The warehouse, misbehaving; its slow answers outlast the forwarder's timeout.
	const httpTimeout = time.Second
	wh := NewWarehouse(warehouseToken, httpTimeout+500*time.Millisecond)
	whAddr := freeAddr(t)
	whSrv := &http.Server{Addr: whAddr, Handler: wh, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = whSrv.ListenAndServe() }()
	defer whSrv.Close()

	p := StartPipeline(t, 2, StageEnv{
		Common: map[string]string{
			"NATS_URL": cluster.URL(), "LOG_LEVEL": "info", "STREAM_REPLICAS": "3", "STREAMS_APPLY": "false",
			"PACKAGE_DIR":         filepath.Join(root, "packages", "transforms", "twilio", "v1"),
			"COMMS_WAREHOUSE_URL": "http://" + whAddr + "/events", "COMMS_WAREHOUSE_TOKEN": warehouseToken,
			"TWILIO_AUTH_TOKEN": authToken,
		},
		Ingester: map[string]string{"PUBLISH_TIMEOUT": "3s"},
		Transformer: map[string]string{
			"TRANSFORMER_ACK_WAIT": "10s", "PUBLISH_TIMEOUT": "3s", "TRANSFORMER_MAX_DELIVER": "50",
			"TRANSFORMER_RETRY_INITIAL": "200ms", "TRANSFORMER_RETRY_MAX": "2s",
		},
		Forwarder: map[string]string{
			"FORWARDER_ACK_WAIT": "5s", "FORWARDER_MAX_DELIVER": "60",
			"FORWARDER_HTTP_TIMEOUT": httpTimeout.String(), "FORWARDER_RETRY_INITIAL": "100ms", "FORWARDER_RETRY_MAX": "1s",
			"FORWARDER_MAX_RETRY_AFTER": "2s",
		},
	})
	ingesters, transformers, forwarders, bases := p.Ingesters, p.Transformers, p.Forwarders, p.Bases

	// Twilio sends; faults are injected as the run progresses.
	hooks := Generate(n, 42)
	client := &Client{Bases: bases, AuthToken: authToken, Deadline: 3 * time.Minute,
		HTTP:     &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}},
		Statuses: map[int]int{}, OKKeys: map[string]bool{}, OKPoison: map[string]bool{}}
	var progress atomic.Int64
	var kills []time.Time
	var faults []string
	var faultMu sync.Mutex
	note := func(s string) {
		faultMu.Lock()
		faults = append(faults, fmt.Sprintf("%s at %d/%d", s, progress.Load(), len(hooks)))
		faultMu.Unlock()
	}
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		waitFor := func(frac float64) {
			for float64(progress.Load()) < frac*float64(len(hooks)) && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
		waitFor(0.15)
		faultMu.Lock()
		kills = append(kills, time.Now())
		faultMu.Unlock()
		forwarders[0].Kill()
		note("SIGKILL forwarder-0")
		time.Sleep(time.Second)
		forwarders[0].Start(t)

		waitFor(0.30)
		transformers[0].Kill()
		note("SIGKILL transformer-0")
		time.Sleep(time.Second)
		transformers[0].Start(t)

		waitFor(0.45)
		clean := ingesters[0].Term(30 * time.Second)
		note(fmt.Sprintf("SIGTERM ingester-0 (clean exit: %v)", clean))
		ingesters[0].Start(t)

		waitFor(0.60)
		info, err := js.Stream(ctx, streams.StreamRaw)
		leader := ""
		if err == nil && info.CachedInfo().Cluster != nil {
			leader = info.CachedInfo().Cluster.Leader
		}
		idx := cluster.Index(leader)
		if idx < 0 {
			idx = 0
		}
		cluster.Stop(idx)
		note("stop NATS node " + leader + " (TWILIO_RAW leader)")
		time.Sleep(3 * time.Second)
		cluster.Start(t, idx)
		note("restart NATS node " + leader)
	}()

	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	rate := sendRate()
	for i, w := range hooks {
		if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			client.Send(ctx, w)
			progress.Add(1)
		}()
	}
	wg.Wait()
	sendTime := time.Since(start)
	<-chaosDone

	// Every event of a 2xx'd webhook must reach the warehouse.
	expected := client.OKKeys
	var missing []string
	deadline := time.Now().Add(4 * time.Minute)
	for {
		acc := wh.Accepted()
		missing = missing[:0]
		for k := range expected {
			if acc[k] == 0 {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	deliverTime := time.Since(start)

	// Lag back to zero on both consumers.
	lag := func() (uint64, error) {
		var total uint64
		for _, c := range []struct{ stream, name string }{{streams.StreamRaw, streams.ConsumerTransformer}, {streams.StreamEvents, streams.ForwarderConsumer(target)}} {
			cons, err := js.Consumer(ctx, c.stream, c.name)
			if err != nil {
				return 0, err
			}
			info, err := cons.Info(ctx)
			if err != nil {
				return 0, err
			}
			total += info.NumPending + uint64(info.NumAckPending) + uint64(info.NumRedelivered)
		}
		return total, nil
	}
	var finalLag uint64
	natstest.CheckFor(t, 2*time.Minute, func() error {
		l, err := lag()
		finalLag = l
		if err != nil {
			return err
		}
		if l != 0 {
			return fmt.Errorf("consumer lag %d", l)
		}
		return nil
	})

	// Dead letters: only the poison inputs.
	dlq := readDLQ(t, ctx, js)

	faultMu.Lock()
	dups, unexplained := wh.Duplicates(kills, 10*time.Second)
	faultMu.Unlock()
	statuses, noKey, badAuth, whTotal := wh.Stats()
	acc := wh.Accepted()
	extra := 0
	for k := range acc {
		if !expected[k] {
			extra++
		}
	}

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(k string, v any, ok bool) {
		mark := "ok"
		if !ok {
			mark = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\n", k, v, mark)
	}
	retries := 0
	for _, w := range hooks {
		if w.Retry {
			retries++
		}
	}
	fmt.Fprintf(tw, "check\tvalue\t\n")
	row("webhooks sent (incl. re-sends, poison)", fmt.Sprintf("%d at %.0f/s", len(hooks), rate), true)
	row("  of which Twilio re-sends", retries, true)
	row("HTTP requests made (client retries on non-2xx)", client.Sent, true)
	row("webhooks answered 2xx", client.OK, len(client.Failed) == 0)
	row("client answers by status", fmtStatuses(client.Statuses), true)
	row("unique events expected", len(expected), true)
	row("unique events the warehouse received", len(expected)-len(missing), len(missing) == 0)
	row("events received that were not expected", extra, extra == 0)
	row("duplicate POSTs committed by the warehouse", len(dups), unexplained == 0)
	row("  of which unexplained", unexplained, unexplained == 0)
	row("warehouse answers by status", fmtStatuses(statuses), true)
	row("warehouse requests without Idempotency-Key / bad token", fmt.Sprintf("%d / %d of %d", noKey, badAuth, whTotal), noKey == 0 && badAuth == 0)
	row("dead letters", fmtDLQ(dlq), dlqOnlyPoison(dlq))
	row("consumer lag at the end", finalLag, finalLag == 0)
	leaks := secretsInLogs(t, p.LogDir, authToken, warehouseToken)
	row("log files containing a secret", leaks, len(leaks) == 0)
	row("send phase / all delivered", fmt.Sprintf("%s / %s", sendTime.Round(time.Millisecond), deliverTime.Round(time.Millisecond)), true)
	tw.Flush()
	report := b.String()
	for _, f := range faults {
		report += "fault: " + f + "\n"
	}
	for _, d := range dups {
		report += fmt.Sprintf("duplicate: %s ×%d — %s\n", d.Key, d.Count, d.Why)
	}
	t.Logf("\n%s", report)
	if path := os.Getenv("ZEN_E2E_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(report), 0o644)
	}

	if len(client.Failed) > 0 {
		t.Errorf("%d webhooks never got a 2xx: %v", len(client.Failed), head(client.Failed, 5))
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("%d events answered 2xx never reached the warehouse: %v", len(missing), head(missing, 10))
	}
	if extra > 0 {
		t.Errorf("%d events reached the warehouse that no 2xx'd webhook produced", extra)
	}
	if unexplained > 0 {
		t.Errorf("%d unexplained duplicate deliveries", unexplained)
	}
	if noKey > 0 || badAuth > 0 {
		t.Errorf("warehouse saw %d requests without Idempotency-Key and %d with a bad token", noKey, badAuth)
	}
	if !dlqOnlyPoison(dlq) {
		t.Errorf("dead letters = %v, want exactly the two poison inputs", fmtDLQ(dlq))
	}
	if len(leaks) > 0 {
		t.Errorf("secrets found in the logs of %v", leaks)
	}
}

type deadLetter struct{ subject, reason, stage string }

func readDLQ(t *testing.T, ctx context.Context, js jetstream.JetStream) []deadLetter {
	t.Helper()
	s, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []deadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		out = append(out, deadLetter{subject: m.Subject, reason: m.Header.Get(zen.HeaderReason), stage: m.Header.Get(zen.HeaderStage)})
	}
	return out
}

func dlqOnlyPoison(dl []deadLetter) bool {
	if len(dl) != 2 {
		return false
	}
	got := []string{dl[0].subject, dl[1].subject}
	sort.Strings(got)
	return got[0] == "zen.dlq.transformer.missing_required" && got[1] == "zen.dlq.transformer.unknown_event"
}

func fmtDLQ(dl []deadLetter) string {
	var parts []string
	for _, d := range dl {
		parts = append(parts, d.subject)
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d %v", len(dl), parts)
}

func fmtStatuses(m map[int]int) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		name := strconv.Itoa(k)
		if k == 0 {
			name = "conn-error"
		}
		parts = append(parts, fmt.Sprintf("%s:%d", name, m[k]))
	}
	return strings.Join(parts, " ")
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// secretsInLogs lists the log files of the run that contain a secret.
func secretsInLogs(t *testing.T, dir string, secrets ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	leaks := []string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				leaks = append(leaks, e.Name())
			}
		}
	}
	return leaks
}
